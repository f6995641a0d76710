package txshim

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

func TestGID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		site      string
		term, xid uint64
	}{{"site1", 3, 771}, {"a_1", 0, 1}, {"x_2_3", 18446744073709551615, 42}} {
		gid := gidFor(c.site, c.term, c.xid)
		site, term, xid, ok := parseGID(gid)
		if !ok || site != c.site || term != c.term || xid != c.xid {
			t.Errorf("parseGID(%q) = %q %d %d %v", gid, site, term, xid, ok)
		}
	}
	for _, bad := range []string{"", "tandem_", "tandem_a_1", "tandem__1_2", "other_a_1_2", "tandem_a_plain_7", "tandem_a_1_x",
		"tandem_A_1_2", "tandem_a'b_1_2", "tandem_a b_1_2", `tandem_a\_1_2`, "tandem__a_1_2", "tandem_" + strings.Repeat("s", 33) + "_1_2"} {
		if _, _, _, ok := parseGID(bad); ok {
			t.Errorf("parseGID(%q) accepted", bad)
		}
	}
}

// capShipper is a running Shipper for site "a" from p.local to p.peer.
func startShipper(t *testing.T, p *capPair) *Shipper {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.Default()
	}
	s := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2, OpTimeout: 3 * time.Second, Logger: logger})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			t.Errorf("shipper: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

// prepareLocal runs stmts in a transaction on db and prepares it as gid.
func prepareLocal(t *testing.T, db *sql.DB, gid string, stmts ...string) {
	t.Helper()
	ctx := capCtx(t, 10*time.Second)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range append(append([]string{"BEGIN"}, stmts...), "PREPARE TRANSACTION "+sqlLiteral(gid)) {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func preparedOn(t *testing.T, db *sql.DB, gid string) bool {
	return queryOne[int](t, db, `SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1`, gid) == 1
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dualCommit runs the §5.3 commit procedure by hand: local prepare, peer prepare, local commit,
// peer commit.
func dualCommit(t *testing.T, p *capPair, s *Shipper, gid string, stmts ...string) {
	t.Helper()
	prepareLocal(t, p.ldb, gid, stmts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Prepare(ctx, gid); err != nil {
		p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
		t.Fatalf("Prepare(%s): %v", gid, err)
	}
	if !preparedOn(t, p.pdb, gid) {
		t.Fatalf("%s is not prepared on the peer after Prepare", gid)
	}
	if _, err := p.ldb.Exec("COMMIT PREPARED " + sqlLiteral(gid)); err != nil {
		t.Fatal(err)
	}
	s.Commit(gid)
	waitFor(t, gid+" committed on the peer", func() bool { return !preparedOn(t, p.pdb, gid) })
}

func requireSame(t *testing.T, p *capPair) {
	t.Helper()
	// A 300 000-row table's checksums on a loaded 2-CPU machine took longer than 10 s.
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("databases differ:\n%s", strings.Join(diffs, "\n"))
	}
}

func TestShipEndToEnd(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t,
		`CREATE TABLE serial_t (id serial PRIMARY KEY, v text, at timestamptz DEFAULT now(), r float8 DEFAULT random(), u uuid DEFAULT gen_random_uuid(), big text)`,
		`CREATE TABLE ident_t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int, doubled int GENERATED ALWAYS AS (n * 2) STORED)`,
		`CREATE TABLE nopk (a int, b text)`,
		`CREATE TABLE parted (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu')`,
		`CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us')`)
	if err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	s := startShipper(t, p)

	dualCommit(t, p, s, gidFor("a", 1, 1),
		`INSERT INTO serial_t (v, big) VALUES ('one', repeat(md5(random()::text), 400)), ('two', NULL), ('three', 'x')`,
		`INSERT INTO ident_t (n) VALUES (1), (2), (3)`,
		`INSERT INTO nopk VALUES (1, 'a'), (1, 'a'), (2, NULL)`,
		`INSERT INTO parted VALUES (1, 'eu', 10), (2, 'us', 20)`)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT doubled FROM ident_t WHERE n = 3`); n != 6 {
		t.Errorf("generated column on the peer = %d, want 6", n)
	}

	t.Run("update and delete", func(t *testing.T) {
		dualCommit(t, p, s, gidFor("a", 1, 2),
			`UPDATE serial_t SET v = 'uno', at = now() WHERE v = 'one'`, // the TOASTed column stays unchanged
			`UPDATE serial_t SET id = 100 WHERE v = 'two'`,
			`DELETE FROM serial_t WHERE v = 'three'`,
			`UPDATE ident_t SET n = n + 10`,
			`UPDATE nopk SET b = 'b' WHERE ctid = (SELECT min(ctid) FROM nopk WHERE a = 1)`,
			`DELETE FROM nopk WHERE b IS NULL`,
			`UPDATE parted SET region = 'us' WHERE id = 1`, // moves the row to another partition
			`UPDATE parted SET v = v + 1 WHERE id = 2`)
		requireSame(t, p)
	})

	t.Run("rolled back savepoint does not ship", func(t *testing.T) {
		dualCommit(t, p, s, gidFor("a", 1, 3),
			`INSERT INTO serial_t (v) VALUES ('kept')`,
			`SAVEPOINT s1`,
			`INSERT INTO serial_t (v) VALUES ('undone')`,
			`ROLLBACK TO SAVEPOINT s1`)
		requireSame(t, p)
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM serial_t WHERE v = 'undone'`); n != 0 {
			t.Error("rolled-back savepoint change reached the peer")
		}
	})

	t.Run("truncate and ddl", func(t *testing.T) {
		dualCommit(t, p, s, gidFor("a", 1, 4),
			`INSERT INTO tandem.ddl (stmt) VALUES ('ALTER TABLE nopk ADD COLUMN c int DEFAULT 7')`,
			`ALTER TABLE nopk ADD COLUMN c int DEFAULT 7`,
			`INSERT INTO nopk VALUES (5, 'after ddl', 8)`,
			`TRUNCATE parted`)
		requireSame(t, p)
		if n := queryOne[int](t, p.pdb, `SELECT c FROM nopk WHERE a = 5`); n != 8 {
			t.Errorf("row inserted after the DDL has c = %d on the peer, want 8", n)
		}
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM parted`); n != 0 {
			t.Errorf("parted has %d rows on the peer after TRUNCATE", n)
		}
	})

	t.Run("plain commits ship in order", func(t *testing.T) {
		p.local.Exec(t, `INSERT INTO serial_t (v) VALUES ('plain 1')`)
		p.local.Exec(t, `UPDATE serial_t SET v = 'plain 2' WHERE v = 'plain 1'`)
		waitFor(t, "plain commits on the peer", func() bool {
			return queryOne[int](t, p.pdb, `SELECT count(*) FROM serial_t WHERE v = 'plain 2'`) == 1
		})
		requireSame(t, p)
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid LIKE 'tandem_a_plain_%'`); n != 2 {
			t.Errorf("%d plain decision rows on the peer, want 2", n)
		}
	})

	t.Run("changes with an origin are not shipped back", func(t *testing.T) {
		// As if applied here from site b: the transaction carries the origin tandem_b.
		conn, err := p.ldb.Conn(capCtx(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`SELECT pg_replication_origin_create('tandem_b')`,
			`SELECT pg_replication_origin_session_setup('tandem_b')`,
			`BEGIN`,
			`SELECT pg_replication_origin_xact_setup('0/AB', now())`,
			`INSERT INTO serial_t (v) VALUES ('from b')`,
			`COMMIT`,
			`SELECT pg_replication_origin_session_reset()`,
		} {
			if _, err := conn.ExecContext(context.Background(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		conn.Close()
		p.local.Exec(t, `INSERT INTO serial_t (v) VALUES ('after b')`)
		waitFor(t, "the next plain commit on the peer", func() bool {
			return queryOne[int](t, p.pdb, `SELECT count(*) FROM serial_t WHERE v = 'after b'`) == 1
		})
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM serial_t WHERE v = 'from b'`); n != 0 {
			t.Error("a transaction with an origin was shipped")
		}
		// A 300 000-row table's checksums on a loaded 2-CPU machine took longer than 10 s.
		diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) != 1 || !strings.Contains(diffs[0], "public.serial_t has") || !strings.Contains(diffs[0], "rows on the local database but") {
			t.Errorf("Verify = %q, want one row-count difference in serial_t", diffs)
		}
		p.local.Exec(t, `DELETE FROM serial_t WHERE v = 'from b'`)
		// That DELETE ships and misses on the peer (the row never went there): the plain
		// stream stops with a divergence error.
		waitFor(t, "the plain stream to report divergence", func() bool { return s.Err() != nil })
		if !strings.Contains(s.Err().Error(), "divergence") {
			t.Errorf("Err() = %v", s.Err())
		}
		requireSame(t, p)
	})

	// The slot forgets what the peer committed.
	waitFor(t, "the slot to confirm past the shipped transactions", func() bool {
		return queryOne[bool](t, p.ldb, `SELECT confirmed_flush_lsn > '0/0' FROM pg_replication_slots WHERE slot_name = 'tandem_a'`)
	})
}

func TestShipFailures(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`,
		`INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g`)
	if err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	s := startShipper(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE acct SET balance = balance - 5 WHERE id = 1`, `UPDATE acct SET balance = balance + 5 WHERE id = 2`)

	t.Run("update missing on the peer is definite", func(t *testing.T) {
		if _, err := p.pdb.Exec(`DELETE FROM acct WHERE id = 3`); err != nil {
			t.Fatal(err)
		}
		refusedAsDivergence(t, p, s, gidFor("a", 1, 2), `UPDATE acct SET balance = 0 WHERE id = 3`)
		p.pdb.Exec(`INSERT INTO acct VALUES (3, 100)`)
		// The connection is usable afterwards.
		dualCommit(t, p, s, gidFor("a", 1, 3), `UPDATE acct SET balance = 1 WHERE id = 3`)
		requireSame(t, p)
	})

	t.Run("newer term on the peer is refused", func(t *testing.T) {
		if err := WriteTermRecord(capCtx(t, 5*time.Second), p.pdb, 5, "b", false); err != nil {
			t.Fatal(err)
		}
		gid := gidFor("a", 4, 4)
		prepareLocal(t, p.ldb, gid, `UPDATE acct SET balance = 2 WHERE id = 4`)
		err := s.Prepare(capCtx(t, 10*time.Second), gid)
		var pe *PeerError
		if !errors.As(err, &pe) || !pe.Definite || !strings.Contains(err.Error(), "term") {
			t.Fatalf("Prepare = %v, want a definite stale-term PeerError", err)
		}
		p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(gid))

		// The same term held by another master is refused too, and cannot be overwritten.
		gid = gidFor("a", 5, 4)
		prepareLocal(t, p.ldb, gid, `UPDATE acct SET balance = 2 WHERE id = 4`)
		err = s.Prepare(capCtx(t, 10*time.Second), gid)
		if !errors.As(err, &pe) || !pe.Definite || !strings.Contains(err.Error(), "(master b)") {
			t.Fatalf("Prepare under the same term of another master = %v, want a definite stale-term PeerError", err)
		}
		p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(gid))
		if err := WriteTermRecord(capCtx(t, 5*time.Second), p.pdb, 5, "a", true); !errors.Is(err, ErrStaleTerm) {
			t.Fatalf("WriteTermRecord of term 5 for a over b's: %v, want ErrStaleTerm", err)
		}
		if err := WriteTermRecord(capCtx(t, 5*time.Second), p.pdb, 5, "b", true); err != nil {
			t.Fatalf("WriteTermRecord by the term's own master: %v", err)
		}
		if err := WriteTermRecord(capCtx(t, 5*time.Second), p.pdb, 6, "a", true); err != nil {
			t.Fatal(err)
		}
		dualCommit(t, p, s, gidFor("a", 6, 5), `UPDATE acct SET balance = 2 WHERE id = 4`)
	})

	t.Run("no decoded changes is not definite", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		err := s.Prepare(ctx, gidFor("a", 6, 999999))
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Definite {
			t.Fatalf("Prepare of an unknown gid = %v, want a non-definite PeerError", err)
		}
	})

	t.Run("peer killed is not definite and does not hang", func(t *testing.T) {
		gid := gidFor("a", 6, 6)
		prepareLocal(t, p.ldb, gid, `UPDATE acct SET balance = 3 WHERE id = 5`)
		p.peer.Kill()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		err := s.Prepare(ctx, gid)
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Definite {
			t.Fatalf("Prepare with the peer killed = %v, want a non-definite PeerError", err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("Prepare took %v with a 3s deadline", d)
		}
		p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(gid))
	})
}

// TestJournalBound drives the journal with synthetic stream events (no database): it stays
// within its bound while the peer is down, counts what it dropped, asks for a new stream once
// catch-up shipped most of it, and takes the resent events without counting any twice.
func TestJournalBound(t *testing.T) {
	t.Parallel()
	const bound = 4096
	s := NewShipper(ShipperConfig{Site: "a", MaxJournalBytes: bound, Logger: quietLogger()})
	rel := &Relation{ID: 1, Namespace: "public", Name: "t", Columns: []RelColumn{{Name: "v"}}}
	ev := func(i int) Event {
		txn := &Txn{XID: uint32(i), Changes: []Change{{Kind: ChangeInsert, Rel: rel, New: []Value{{Kind: ValueText, Data: make([]byte, 200)}}}}}
		return Event{Txn: txn, Pos: pglogrepl.LSN(100 * i)}
	}
	s.goDown("test", nil)
	const n = 100
	for i := 1; i <= n; i++ {
		s.add(ev(i))
		s.add(Event{Pos: pglogrepl.LSN(100*i + 50)}) // a keepalive position
	}
	if s.held > bound+eventSize(ev(1)) || !s.gap {
		t.Fatalf("journal holds %d bytes with bound %d (gap %v)", s.held, bound, s.gap)
	}
	kept := 0
	for _, e := range s.journal {
		if e.plain {
			kept++
		}
	}
	if got := s.Backlog(); got != n || kept == 0 || kept >= n || s.dropped != n-kept {
		t.Fatalf("Backlog %d, kept %d, dropped %d: want %d in all", got, kept, s.dropped, n)
	}
	if s.confirmed != 0 {
		t.Fatalf("confirmed %s with nothing on the peer", s.confirmed)
	}

	// Catch-up ships the kept transactions; a new stream is asked for once most are done.
	s.mu.Lock()
	s.link = linkCatchUp
	for _, e := range s.journal {
		if e.plain {
			s.markDoneLocked(e)
		}
	}
	s.advanceLocked()
	s.mu.Unlock()
	select {
	case <-s.restart:
	default:
		t.Fatal("no new stream asked for after the kept transactions were shipped")
	}
	if want := pglogrepl.LSN(100*kept + 50); s.confirmed != want {
		t.Errorf("confirmed %s, want %s (past the shipped transactions only)", s.confirmed, want)
	}
	// decodeLoop's part of a restart, then the slot resends everything after confirmed.
	s.gap, s.fresh = false, true
	for i := kept; i <= n; i++ {
		s.add(ev(i))
		s.add(Event{Pos: pglogrepl.LSN(100*i + 50)})
	}
	if got := s.Backlog(); got != n-kept {
		t.Errorf("Backlog after the resend = %d, want %d", got, n-kept)
	}
	s.mu.Lock()
	first := s.journal[0]
	s.mu.Unlock()
	if first.txn == nil || first.txn.XID != uint32(kept+1) {
		t.Errorf("first journal entry after the resend is %+v, want transaction %d", first, kept+1)
	}
}

// TestAbandon: a site in split brain gives up what it committed alone — kept in the journal or
// dropped from it for the bound — so that it is never shipped into the newer term's database
// and the slot lets go of it; a transaction still prepared locally stays for the resolver, and
// what the stream delivers afterwards is taken as usual.
func TestAbandon(t *testing.T) {
	t.Parallel()
	const bound = 4096
	s := NewShipper(ShipperConfig{Site: "a", MaxJournalBytes: bound, Logger: quietLogger()})
	rel := &Relation{ID: 1, Namespace: "public", Name: "t", Columns: []RelColumn{{Name: "v"}}}
	txn := func(i int) *Txn {
		return &Txn{XID: uint32(i), Changes: []Change{{Kind: ChangeInsert, Rel: rel, New: []Value{{Kind: ValueText, Data: make([]byte, 200)}}}}}
	}
	s.goDown("test", nil)
	// 1: committed alone with two-phase commit; 2: still prepared locally; 3..n: plain commits.
	p1, p2 := txn(1), txn(2)
	p1.Prepared, p1.GID = true, "tandem_a_1_1"
	p2.Prepared, p2.GID = true, "tandem_a_1_2"
	s.add(Event{Txn: p1, Pos: 100})
	s.add(Event{Finish: &Finish{GID: p1.GID, XID: 1, Committed: true}, Pos: 150})
	s.add(Event{Txn: p2, Pos: 200})
	const n = 100
	for i := 3; i <= n; i++ {
		s.add(Event{Txn: txn(i), Pos: pglogrepl.LSN(100 * i)})
	}
	if !s.gap || s.Backlog() != n {
		t.Fatalf("gap %v, Backlog %d: want a gap and %d", s.gap, s.Backlog(), n)
	}

	if got := s.Abandon(); got != n-1 {
		t.Errorf("Abandon gave up %d transactions, want %d (all but the one still prepared)", got, n-1)
	}
	if got := s.Backlog(); got != 1 || s.gap {
		t.Errorf("after Abandon: Backlog %d, gap %v; want 1 (the prepared one), no gap", got, s.gap)
	}
	if s.confirmed != 150 {
		t.Errorf("confirmed %s, want 0/96 (up to the transaction still prepared)", s.confirmed)
	}
	// A resent event is not taken again; a new one is.
	s.add(Event{Txn: txn(n), Pos: pglogrepl.LSN(100 * n)})
	s.add(Event{Txn: txn(n + 1), Pos: pglogrepl.LSN(100 * (n + 1))})
	if got := s.Backlog(); got != 2 {
		t.Errorf("Backlog %d after a resent and a new transaction, want 2", got)
	}
	// The resolver rolls the prepared one back: the slot may forget everything before the new one.
	s.add(Event{Finish: &Finish{GID: p2.GID, XID: 2}, Pos: pglogrepl.LSN(100*(n+1) + 50)})
	if want := pglogrepl.LSN(100 * n); s.confirmed != want {
		t.Errorf("confirmed %s, want %s", s.confirmed, want)
	}

	// On a backup, what the decoder delivers of them later (a restart reads the slot again) is
	// given up as it comes, until the site is master again.
	s.SetBackup(true)
	s.add(Event{Txn: txn(n + 2), Pos: pglogrepl.LSN(100 * (n + 2))})
	if got := s.Backlog(); got != 1 {
		t.Errorf("Backlog %d after a transaction delivered to an abandoning backup, want 1 (the one before)", got)
	}
	s.SetBackup(false)
	s.add(Event{Txn: txn(n + 3), Pos: pglogrepl.LSN(100 * (n + 3))})
	if got := s.Backlog(); got != 2 {
		t.Errorf("Backlog %d once master again, want 2", got)
	}
}

// startAcctPair is a pair with table acct (ids 1-3, balance 100 each) on both and Tandem
// installed for site a.
func startAcctPair(t *testing.T) *capPair {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`,
		`INSERT INTO acct SELECT g, 100 FROM generate_series(1, 3) g`)
	if err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	return p
}

// shippingAcct is a pair with an empty acct table, installed, and a running Shipper of site a
// in term 1.
func shippingAcct(t *testing.T) (*capPair, *Shipper) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`)
	installPair(t, p)
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		SequenceInterval: -1, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	return p, sh
}

// TestApplyTerminatesBlocker: a session holding a row lock on the peer's database (an old
// master's transaction left open, say) would hold every apply of that row until it times out;
// the apply's watchdog terminates it, the dual commit goes through, and the blocker's
// transaction never commits.
func TestApplyTerminatesBlocker(t *testing.T) {
	t.Parallel()
	p := startAcctPair(t)
	s := startShipper(t, p)
	ctx := capCtx(t, 30*time.Second)
	blocker, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	for _, q := range []string{"BEGIN", "UPDATE acct SET balance = -1 WHERE id = 1"} {
		if _, err := blocker.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE acct SET balance = balance + 5 WHERE id = 1`)
	t.Logf("dual commit through a blocked row took %v", time.Since(start))
	if _, err := blocker.ExecContext(ctx, "COMMIT"); err == nil {
		t.Error("the blocking transaction committed after the apply")
	}
	requireSame(t, p)
	if b := queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 1`); b != 105 {
		t.Errorf("balance on the peer = %d, want 105", b)
	}
}

// TestWaitForSlowDecoder drives waitForPrepare with synthetic stream events: a commit whose
// changes the decoder has not delivered by its deadline waits on while the decoder reads (a
// large transaction before it still streaming) and gets them; with the decoder stalled it gives
// up about at its deadline; a cancelled wait returns at once.
func TestWaitForSlowDecoder(t *testing.T) {
	t.Parallel()
	s := NewShipper(ShipperConfig{Site: "a", Logger: quietLogger()})
	s.mu.Lock()
	s.link = linkOnline
	s.mu.Unlock()
	rel := &Relation{ID: 1, Namespace: "public", Name: "t", Columns: []RelColumn{{Name: "v"}}}
	prepared := func(gid string, pos int) Event {
		txn := &Txn{XID: uint32(pos), GID: gid, Prepared: true,
			Changes: []Change{{Kind: ChangeInsert, Rel: rel, New: []Value{{Kind: ValueText, Data: []byte("x")}}}}}
		return Event{Txn: txn, Pos: pglogrepl.LSN(pos)}
	}

	// The decoder reads on for 1.5 s past a 200 ms deadline, then delivers the gid.
	gid := gidFor("a", 1, 1)
	go func() {
		for range 15 {
			time.Sleep(100 * time.Millisecond)
			s.received.Add(1)
		}
		s.add(prepared(gid, 100))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, txn, err := s.waitForPrepare(ctx, gid)
	if err != nil || txn == nil || txn.GID != gid {
		t.Fatalf("waitForPrepare behind a reading decoder: %v (txn %v)", err, txn)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("got the changes after %v, before the decoder delivered them", d)
	}

	// The decoder stalled: the wait ends about at its deadline.
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, _, err := s.waitForPrepare(ctx, gidFor("a", 1, 2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitForPrepare with a stalled decoder: %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond+decodeGrace {
		t.Errorf("a stalled decoder held the wait for %v", d)
	}

	// Cancelled: at once, whatever the decoder does.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	if _, _, err := s.waitForPrepare(ctx, gidFor("a", 1, 3)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waitForPrepare: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a cancelled wait took %v", d)
	}
}

// TestApplyBlockedByPrepared: a transaction prepared on the peer and left in doubt (here one of
// site b, as a master that lost its role leaves it) holds the row a dual commit's apply needs.
// The watchdog spares prepared transactions but asks for a resolver pass
// (OnPreparedBlocker), which settles it, and the apply goes on long before its deadline.
func TestApplyBlockedByPrepared(t *testing.T) {
	t.Parallel()
	p := startAcctPair(t)
	// As in tandem, the resolver leaves alone what this site is still committing.
	inFlight := func(gid string) bool { return strings.HasPrefix(gid, "tandem_a_") }
	res := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger(), InFlight: inFlight})
	var asked atomic.Int64
	var passes sync.WaitGroup
	// Cleanups run last first: the shipper (registered below) stops before the passes are
	// waited for, so none starts after that.
	t.Cleanup(passes.Wait)
	rctx := capCtx(t, time.Minute)
	s := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: quietLogger(),
		OnPreparedBlocker: func() {
			asked.Add(1)
			passes.Go(func() { _, _ = res.ResolveOnce(rctx) })
		}})
	runShipper(t, s)
	left := gidFor("b", 9, 77)
	prepareLocal(t, p.pdb, left, `UPDATE acct SET balance = -1 WHERE id = 1`)

	start := time.Now()
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE acct SET balance = balance + 5 WHERE id = 1`)
	took := time.Since(start)
	t.Logf("dual commit behind a prepared transaction left in doubt took %v", took)
	if took > 5*time.Second || asked.Load() == 0 {
		t.Errorf("took %v, resolver asked %d times: want a pass asked for and the apply through well before its 10 s", took, asked.Load())
	}
	if preparedOn(t, p.pdb, left) {
		t.Errorf("%s is still prepared on the peer", left)
	}
	requireSame(t, p)
	if b := queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 1`); b != 105 {
		t.Errorf("balance on the peer = %d, want 105 (the in-doubt change rolled back, the commit applied)", b)
	}
}

// startKVShipper starts a pair with table kv installed for site a (term 1) and a running
// Shipper, online.
func startKVShipper(t *testing.T) (*capPair, *Shipper) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	return p, startShipper(t, p)
}

// prepareBoth prepares gid with stmts on the local database and, through s, on the peer, and
// commits it locally: a dual commit up to the peer's COMMIT PREPARED (DESIGN §5.3 step 3).
func prepareBoth(t *testing.T, p *capPair, s *Shipper, gid string, stmts ...string) {
	t.Helper()
	prepareLocal(t, p.ldb, gid, stmts...)
	if err := s.Prepare(capCtx(t, 10*time.Second), gid); err != nil {
		p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
		t.Fatalf("Prepare(%s): %v", gid, err)
	}
	p.local.Exec(t, "COMMIT PREPARED "+sqlLiteral(gid))
}

// TestPlainAfterDualCommit: a plain commit that updates a row a dual commit inserted ships
// only once the peer has committed that dual commit, not when it is only prepared there
// (DESIGN §5.2 "Order on the peer"): the peer's COMMIT PREPARED may come well after the
// local one (§5.3 step 3), and the UPDATE would otherwise miss the row there, taken for
// divergence.
func TestPlainAfterDualCommit(t *testing.T) {
	t.Parallel()
	p, s := startKVShipper(t)
	gid := gidFor("a", 1, 1)
	prepareBoth(t, p, s, gid, `INSERT INTO kv VALUES (1, 'a')`)
	p.local.Exec(t, `UPDATE kv SET v = 'b' WHERE k = 1`) // plain: not through the shim
	waitFor(t, "both transactions decoded", func() bool { return s.Backlog() == 2 })
	time.Sleep(300 * time.Millisecond) // time enough to ship the plain commit, were it shipped
	if err := s.Err(); err != nil {
		t.Fatalf("the plain commit shipped before the peer committed the row it updates: %v", err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE v = 'b'`); n != 0 {
		t.Fatalf("the update is on the peer before the insert it follows is committed there")
	}
	s.Commit(gid) // late, as after a slow session
	waitFor(t, "both on the peer", func() bool {
		return s.Backlog() == 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE v = 'b'`) == 1
	})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	requireSame(t, p)
}

// dropNextOp makes the next peer operation asked of s be dropped, its queue full: it holds
// every connection of the operation loops, lets each loop take one operation (each then waits
// for a connection), and fills the queue with rollbacks of gids that are nowhere (harmless).
// give lets them go on, well within OpTimeout.
func dropNextOp(t *testing.T, s *Shipper) (give func()) {
	t.Helper()
	var slots []*applySlot
	for range cap(s.opPool.slots) {
		slots = append(slots, <-s.opPool.slots)
	}
	give = func() {
		for _, sl := range slots {
			s.opPool.slots <- sl
		}
	}
	dummy := func(i int) peerOp { return peerOp{gid: gidFor("nowhere", 1, uint64(i))} }
	for i := range opLoops {
		s.ops <- dummy(i)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.ops) > 0 {
		if time.Now().After(deadline) {
			give()
			t.Fatal("the operation loops did not take an operation")
		}
		time.Sleep(time.Millisecond)
	}
	for i := opLoops; len(s.ops) < cap(s.ops); i++ {
		s.ops <- dummy(i)
	}
	return give
}

// TestPeerCommitAskedAgain: a dual commit's COMMIT PREPARED on the peer that is lost (dropped
// from a full operation queue; a failed one is the same) is asked for again, so the
// transaction does not stay prepared on the peer with the slot stuck before it; and one the
// resolver committed there meanwhile is found committed (its decision row) and done.
func TestPeerCommitAskedAgain(t *testing.T) {
	t.Parallel()
	p, s := startKVShipper(t)
	lsn := func() pglogrepl.LSN {
		l, err := pglogrepl.ParseLSN(queryOne[string](t, p.ldb, `SELECT pg_current_wal_lsn()::text`))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	confirmedPast := func(at pglogrepl.LSN) func() bool {
		return func() bool {
			l, err := pglogrepl.ParseLSN(queryOne[string](t, p.ldb, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'tandem_a'`))
			return err == nil && l > at
		}
	}

	t.Run("dropped", func(t *testing.T) {
		before := lsn()
		gid := gidFor("a", 1, 1)
		prepareBoth(t, p, s, gid, `INSERT INTO kv VALUES (1, 'a')`)
		give := dropNextOp(t, s)
		s.Commit(gid)
		give()
		waitForLong(t, "the peer's COMMIT PREPARED asked for again", 20*time.Second, func() bool {
			return !preparedOn(t, p.pdb, gid) && s.Backlog() == 0
		})
		waitForLong(t, "the slot to confirm past it", 20*time.Second, confirmedPast(before))
		requireSame(t, p)
	})

	t.Run("committed by the resolver", func(t *testing.T) {
		before := lsn()
		gid := gidFor("a", 1, 2)
		prepareBoth(t, p, s, gid, `INSERT INTO kv VALUES (2, 'b')`)
		give := dropNextOp(t, s)
		s.Commit(gid)
		give()
		if _, err := p.pdb.Exec("COMMIT PREPARED " + sqlLiteral(gid)); err != nil {
			t.Fatal(err)
		}
		waitForLong(t, "the entry done", 20*time.Second, func() bool { return s.Backlog() == 0 })
		waitForLong(t, "the slot to confirm past it", 20*time.Second, confirmedPast(before))
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		requireSame(t, p)
	})
}

// logBuffer collects a logger's output; safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestShipTransientRefusal: a transaction shipped from the stream whose apply the peer turns
// down for the moment — the victim of a deadlock there — is sent again once the other session
// is gone, online and in catch-up: no divergence (needs resync), the peer stays or gets in step.
func TestShipTransientRefusal(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one'), (2, 'two')`)
	installPair(t, p)
	var logs logBuffer
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 10 * time.Second, SequenceInterval: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}

	// deadlock makes ship's transaction (it updates k = 1, then k = 2) the victim of a deadlock
	// on the peer, with a session that locked k = 2 first and then asks for k = 1. The session
	// is counted among the shipper's own (ownPIDs), so that the apply's watchdog spares it, and detects deadlocks later
	// than the apply, so that the apply is the one refused. Then it rolls back.
	deadlock := func(ship func()) {
		t.Helper()
		ctx := capCtx(t, 30*time.Second)
		blocker, err := p.pdb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer blocker.Close()
		var pid int
		if err := blocker.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		sh.own.add(uint32(pid))
		defer sh.own.remove(uint32(pid))
		for _, q := range []string{`SET application_name = 'tandem apply'`, `SET deadlock_timeout = '30s'`,
			`BEGIN`, `UPDATE kv SET v = 'blocker' WHERE k = 2`} {
			if _, err := blocker.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		ship()
		waitFor(t, "the apply to wait for the row lock of k = 2", func() bool {
			return queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_stat_activity
WHERE application_name LIKE 'tandem apply%' AND pid <> $1 AND wait_event_type = 'Lock'`, pid) > 0
		})
		// Waits until the peer refuses the apply (deadlock_timeout: 1s).
		if _, err := blocker.ExecContext(ctx, `UPDATE kv SET v = 'blocker' WHERE k = 1`); err != nil {
			t.Fatalf("blocker: %v", err)
		}
		if _, err := blocker.ExecContext(ctx, `ROLLBACK`); err != nil {
			t.Fatal(err)
		}
	}
	peerHas := func(v1, v2 string) func() bool {
		return func() bool {
			return queryOne[string](t, p.pdb, `SELECT string_agg(v, ',' ORDER BY k) FROM kv`) == v1+","+v2
		}
	}

	// Online: a plain commit, shipped as it comes.
	deadlock(func() { p.local.Exec(t, `UPDATE kv SET v = 'a1' WHERE k = 1; UPDATE kv SET v = 'a2' WHERE k = 2`) })
	waitFor(t, "the plain commit on the peer", func() bool { return sh.Err() != nil || peerHas("a1", "a2")() })
	if err := sh.Err(); err != nil {
		t.Fatalf("online: %v", err)
	}
	if !sh.PeerSynced() {
		t.Error("online: the peer is no longer synced")
	}

	// In catch-up: the peer was down meanwhile.
	sh.goDown("test", nil)
	p.local.Exec(t, `UPDATE kv SET v = 'b1' WHERE k = 1; UPDATE kv SET v = 'b2' WHERE k = 2`)
	waitFor(t, "the commit in the backlog", func() bool { return sh.Backlog() == 1 })
	caught := make(chan error, 1)
	deadlock(func() { go func() { caught <- sh.CatchUp(capCtx(t, 30*time.Second), nil) }() })
	if err := <-caught; err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if !peerHas("b1", "b2")() || sh.Err() != nil || !sh.PeerSynced() {
		t.Fatalf("after catch-up: err %v, synced %v", sh.Err(), sh.PeerSynced())
	}
	requireSame(t, p)

	// A dual commit's prepare: asked again, not failed (the client's transaction would be).
	gid := gidFor("a", 1, 1)
	prepared := make(chan error, 1)
	deadlock(func() {
		prepareLocal(t, p.ldb, gid, `UPDATE kv SET v = 'c1' WHERE k = 1`, `UPDATE kv SET v = 'c2' WHERE k = 2`)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			prepared <- sh.Prepare(ctx, gid)
		}()
	})
	if err := <-prepared; err != nil {
		p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
		t.Fatalf("Prepare after a deadlock on the peer: %v", err)
	}
	if _, err := p.ldb.Exec("COMMIT PREPARED " + sqlLiteral(gid)); err != nil {
		t.Fatal(err)
	}
	sh.Commit(gid)
	waitFor(t, gid+" committed on the peer", func() bool { return !preparedOn(t, p.pdb, gid) })
	if !peerHas("c1", "c2")() {
		t.Fatal("the dual commit is not on the peer")
	}
	requireSame(t, p)
	if n := strings.Count(logs.String(), "SQLSTATE 40P01"); n < 3 {
		t.Errorf("%d deadlocks logged, want one online, one in catch-up and one in a prepare; log:\n%s", n, logs.String())
	}
}

// TestPrepareLongDDL: a transaction whose DDL took long on the local database (an index built
// on a large table, say) may take as long on the peer: its apply is not cut off at the commit's
// usual bound, which would take the peer for unreachable after every try, catch-up included.
func TestPrepareLongDDL(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	installPair(t, p)
	s := startShipper(t, p)
	const ddl = `CREATE TABLE napped AS SELECT n FROM generate_series(1, 3) n, pg_sleep(1.5)`
	gid := gidFor("a", 1, 1)
	prepareLocal(t, p.ldb, gid, `INSERT INTO tandem.ddl (stmt) VALUES (`+sqlLiteral(ddl)+`)`, ddl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Prepare(ctx, gid); err != nil {
		p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
		t.Fatalf("Prepare: %v", err)
	}
	if _, err := p.ldb.Exec("COMMIT PREPARED " + sqlLiteral(gid)); err != nil {
		t.Fatal(err)
	}
	s.Commit(gid)
	waitFor(t, gid+" committed on the peer", func() bool { return !preparedOn(t, p.pdb, gid) })
	requireSame(t, p)
}

// leftoverPlains is how many plain commits killedMasterLeftovers makes: more than a 16 KiB
// journal holds.
const leftoverPlains = 20

// killedMasterLeftovers makes p's local database what a master's sidecar killed -9 leaves: a
// dual commit and plain commits shipped from the stream, all committed on the peer with their
// decision rows, still in the slot (a transaction in doubt before them, rolled back since,
// kept the slot from being confirmed past them). It returns the WAL position before the last
// plain commit.
func killedMasterLeftovers(t *testing.T, p *capPair) (beforePlain pglogrepl.LSN) {
	t.Helper()
	m := pairShipper(p, 1, 3*time.Second)
	m.SetTerm(1)
	stop := runShipper(t, m)
	start := lsnOf(t, p.ldb, `SELECT pg_current_wal_lsn()::text`)
	prepareLocal(t, p.ldb, "tandem_a_1_1000000", `INSERT INTO kv VALUES (100, 'in doubt')`)
	dualCommit(t, p, m, "tandem_a_1_1000001", `INSERT INTO kv VALUES (1, 'dual')`)
	for k := 2; k < 2+leftoverPlains; k++ {
		beforePlain = lsnOf(t, p.ldb, `SELECT pg_current_wal_lsn()::text`)
		p.local.Exec(t, `INSERT INTO kv VALUES ($1, repeat('plain', 200))`, k)
	}
	waitFor(t, "the plain commits on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`) == 1+leftoverPlains && m.Backlog() == 1
	})
	stop()
	if c := lsnOf(t, p.ldb, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'tandem_a'`); c > start {
		t.Fatalf("the slot was confirmed to %s, past the transaction in doubt (after %s)", c, start)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid IN ('tandem_a_1_1000001') OR gid LIKE 'tandem_a_plain_%'`); n != 1+leftoverPlains {
		t.Fatalf("%d decision rows on the peer, want %d", n, 1+leftoverPlains)
	}
	// The resolver's outcome: it is not on the peer.
	if _, err := p.ldb.Exec(`ROLLBACK PREPARED 'tandem_a_1_1000000'`); err != nil {
		t.Fatal(err)
	}
	return beforePlain
}

func lsnOf(t *testing.T, db *sql.DB, q string) pglogrepl.LSN {
	t.Helper()
	l, err := pglogrepl.ParseLSN(queryOne[string](t, db, q))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestBackupBypassAfterRestart: a master's sidecar killed -9 leaves in its slot transactions
// the peer has already (their decision rows there); it restarts as backup. A: the new
// master's term record reached this database first (bypass boundary 0): they were reported
// as writes that bypassed Tandem, a false alarm; now only a real one is. B: it had not
// (boundary: the WAL position at start): they were kept for a next master term, and the
// slot held the backup's WAL for ever; now the slot goes past them, and only what the peer
// lacks (a solo commit) is kept, shipped once the site is master again.
func TestBackupBypassAfterRestart(t *testing.T) {
	t.Parallel()
	backup := func(t *testing.T, p *capPair, log *logBuffer) *Shipper {
		// A small journal: the leftovers are read from the slot in several streams.
		bk := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
			OpTimeout: 3 * time.Second, SequenceInterval: -1, MaxJournalBytes: 16 << 10, SpillBytes: -1,
			Logger: slog.New(slog.NewTextHandler(log, nil))})
		bk.SetBackup(true)
		return bk
	}
	t.Run("NewMasterFirst", func(t *testing.T) {
		p := startCapPair(t)
		p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
		installPair(t, p)
		killedMasterLeftovers(t, p)
		if err := WriteTermRecord(capCtx(t, 5*time.Second), p.ldb, 2, "b", true); err != nil {
			t.Fatal(err)
		}
		p.local.Exec(t, `INSERT INTO kv VALUES (99, 'stray')`) // a real bypass
		stray := lsnOf(t, p.ldb, `SELECT pg_current_wal_lsn()::text`)
		var log logBuffer
		bk := backup(t, p, &log)
		bk.SetBypassFrom(0)
		runShipper(t, bk)
		waitFor(t, "the slot past everything", func() bool {
			return bk.Backlog() == 0 && bk.Stats().Bypassed > 0 &&
				lsnOf(t, p.ldb, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'tandem_a'`) >= stray
		})
		time.Sleep(2 * time.Second) // passes of settle enough to report the leftovers, were they taken for bypasses
		if st := bk.Stats(); st.Bypassed != 1 || st.Skipped != 1+leftoverPlains {
			t.Errorf("stats %+v: want 1 bypassed (the stray write), %d skipped (on the peer)", st, 1+leftoverPlains)
		}
		if n := strings.Count(log.String(), "bypassed Tandem"); n != 1 {
			t.Errorf("%d reports of a bypass, want 1:\n%s", n, log.String())
		}
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 99`); n != 0 {
			t.Error("the backup shipped the stray write")
		}
	})
	t.Run("OldMasterRecord", func(t *testing.T) {
		p := startCapPair(t)
		p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
		installPair(t, p)
		beforePlain := killedMasterLeftovers(t, p)
		p.local.Exec(t, `INSERT INTO kv VALUES (0, 'solo')`) // committed alone as master: the peer lacks it
		from := lsnOf(t, p.ldb, `SELECT pg_current_wal_lsn()::text`)
		var log logBuffer
		bk := backup(t, p, &log)
		bk.SetBypassFrom(from)
		runShipper(t, bk)
		waitFor(t, "the slot past what the peer has", func() bool {
			return lsnOf(t, p.ldb, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'tandem_a'`) > beforePlain
		})
		time.Sleep(2 * time.Second) // passes of settle enough to report the leftovers, were they taken for bypasses
		if st, b := bk.Stats(), bk.Backlog(); st.Bypassed != 0 || b != 1 || st.Skipped != 1+leftoverPlains {
			t.Errorf("stats %+v, backlog %d: want no bypass, %d skipped (on the peer), the solo commit held", st, b, 1+leftoverPlains)
		}
		if st := bk.Stats(); st.Restarts == 0 {
			t.Errorf("stats %+v: the journal never overflowed; the leftovers were read in one stream", st)
		}
		if strings.Contains(log.String(), "bypassed Tandem") {
			t.Errorf("a bypass reported:\n%s", log.String())
		}
		// Master again: the solo commit ships, what the peer had is not applied twice.
		bk.SetTerm(1)
		bk.SetBackup(false)
		if err := bk.CatchUp(capCtx(t, 30*time.Second), nil); err != nil {
			t.Fatal(err)
		}
		requireSame(t, p)
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`); n != 2+leftoverPlains {
			t.Fatalf("the peer holds %d rows, want %d", n, 2+leftoverPlains)
		}
	})
}
