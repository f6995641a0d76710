package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestResync: after the peer diverged (a shipped transaction refused: ErrNeedsResync), Resync
// copies the application tables — generated columns, a table without a key, a serial — and the
// Shipper goes on from there: the databases are identical, the peer's sequence is not behind
// its rows, and later commits ship.
func TestResync(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`,
		`CREATE TABLE gen (id serial PRIMARY KEY, a int NOT NULL, b int GENERATED ALWAYS AS (a * 2) STORED)`,
		`CREATE TABLE nokey (x int, y text)`,
		`CREATE TABLE nocols ()`, `CREATE TABLE onlygen (g int GENERATED ALWAYS AS (7) STORED)`,
		// Tables outside the copy's list that refer to one in it (the peer's TRUNCATE must take
		// them along): a partitioned table, whose foreign key sits on its parent, and an
		// UNLOGGED table (never shipped).
		`CREATE TABLE part (id int PRIMARY KEY, k int REFERENCES kv) PARTITION BY RANGE (id)`,
		`CREATE TABLE part1 PARTITION OF part FOR VALUES FROM (0) TO (1000)`,
		`CREATE UNLOGGED TABLE ucache (k int REFERENCES kv)`,
		`INSERT INTO kv VALUES (1, 'one'), (2, 'two')`, `INSERT INTO part VALUES (1, 2)`)
	sh := syncedShipper(t, p)
	p.local.Exec(t, `INSERT INTO gen (a) SELECT g FROM generate_series(1, 50) g`)
	p.local.Exec(t, `INSERT INTO nokey VALUES (1, 'a'), (1, 'a'), (2, NULL)`)
	// The last commit on the peer (the backlog alone may be 0 before the decoder reads it).
	waitFor(t, "the peer to hold the first commits", func() bool {
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM nokey`).Scan(&n) == nil && n == 3 && sh.Backlog() == 0
	})
	requireSame(t, p)

	p.pdb.Exec(`DELETE FROM kv WHERE k = 1`) // the peer diverges
	p.local.Exec(t, `UPDATE kv SET v = 'uno' WHERE k = 1`)
	waitFor(t, "the stream to stop on the divergence", func() bool { return sh.Err() != nil })
	p.local.Exec(t, `INSERT INTO gen (a) VALUES (100), (101)`) // held back behind the refusal
	p.local.Exec(t, `DELETE FROM nokey WHERE x = 2`)
	p.local.Exec(t, `INSERT INTO nocols DEFAULT VALUES`)
	p.local.Exec(t, `INSERT INTO onlygen DEFAULT VALUES`)
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp before resync = %v, want ErrNeedsResync", err)
	}

	// A transaction prepared on the peer (in doubt) must be settled first: the copy would
	// wait for its locks, and its commit would apply it twice.
	prepareLocal(t, p.pdb, "tandem_b_1_9", `UPDATE kv SET v = 'in doubt' WHERE k = 2`)
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err == nil || !strings.Contains(err.Error(), "prepared on the peer") {
		t.Fatalf("Resync with a transaction prepared on the peer = %v, want a refusal naming it", err)
	}
	p.pdb.Exec(`ROLLBACK PREPARED 'tandem_b_1_9'`)

	held := 0
	hold := func(ctx context.Context) (func(), error) { held++; return func() {}, nil }
	if err := sh.Resync(capCtx(t, 30*time.Second), hold); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if held != 2 || sh.Err() != nil || !sh.PeerSynced() { // for the snapshot, and for the tail
		t.Fatalf("after Resync: held %d, err %v, synced %v", held, sh.Err(), sh.PeerSynced())
	}
	requireSame(t, p)
	const copiedQ = `SELECT (SELECT count(*) FROM nocols) || ' ' || (SELECT count(*) || ':' || min(g) FROM onlygen)`
	if got := queryOne[string](t, p.pdb, copiedQ); got != "1 1:7" {
		t.Errorf("tables of no published column on the peer after resync: %s, want 1 1:7", got)
	}
	var last, top int
	if err := p.pdb.QueryRow(`SELECT last_value, (SELECT max(id) FROM gen) FROM gen_id_seq`).Scan(&last, &top); err != nil || last < top {
		t.Fatalf("peer sequence after resync: last_value %d, max(id) %d (%v)", last, top, err)
	}

	// Shipping goes on from the copy: later commits reach the peer once, in order.
	p.local.Exec(t, `UPDATE kv SET v = 'one again' WHERE k = 1`)
	p.local.Exec(t, `INSERT INTO gen (a) VALUES (200)`)
	p.local.Exec(t, `INSERT INTO nokey VALUES (3, 'c')`)
	waitFor(t, "later commits on the peer", func() bool { // the last of them
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM nokey WHERE x = 3`).Scan(&n) == nil && n == 1 && sh.Backlog() == 0
	})
	requireSame(t, p)
	if st := sh.Stats(); st.Resyncs != 1 {
		t.Fatalf("stats %+v, want one resync", st)
	}
}

// TestBackupBypass: a backup's Shipper never ships a transaction of its own database's made
// after it became backup (SetBypassFrom; a write that bypassed Tandem there): it counts it and
// lets the slot go past it. One committed before — what the site committed as master alone —
// stays for the next master term, when it ships.
func TestBackupBypass(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	sh := pairShipper(p, 1, 3*time.Second)
	sh.SetBackup(true)
	runShipper(t, sh)
	p.local.Exec(t, `INSERT INTO kv VALUES (0, 'solo backlog')`) // the last master term's
	var lsn string
	if err := p.ldb.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	from, err := pglogrepl.ParseLSN(lsn)
	if err != nil {
		t.Fatal(err)
	}
	// A stray write after the boundary, decoded before the boundary is known: taken for
	// backlog first, let go when it is.
	p.local.Exec(t, `INSERT INTO kv VALUES (1, 'stray')`)
	waitFor(t, "both seen", func() bool { return sh.Backlog() == 2 })
	sh.SetBypassFrom(from)
	waitFor(t, "the stray write reported", func() bool { return sh.Stats().Bypassed == 1 })
	if st, b := sh.Stats(), sh.Backlog(); st.Bypassed != 1 || b != 1 {
		t.Fatalf("after SetBypassFrom: %d bypassed, backlog %d; want 1 and 1", st.Bypassed, b)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'stray too')`)
	waitFor(t, "the second stray write seen", func() bool { return sh.Stats().Bypassed == 2 })
	time.Sleep(300 * time.Millisecond) // time enough to ship them, were they shipped
	var n int
	if err := p.pdb.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the peer holds %d rows (%v): a backup shipped its own write", n, err)
	}
	if b := sh.Backlog(); b != 1 {
		t.Fatalf("backlog %d, want 1 (the solo commit from before the boundary)", b)
	}
	// Once master, the backlog and its new writes ship; the stray write never does.
	sh.SetBackup(false)
	if err := sh.CatchUp(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'shipped')`)
	waitFor(t, "a master's writes on the peer", func() bool {
		return p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k IN (0, 2)`).Scan(&n) == nil && n == 2
	})
	if err := p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k IN (1, 3)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("stray writes reached the peer (%d, %v)", n, err)
	}
}

// TestResyncWhileWriting: commits go on while Resync copies the tables — they are held only
// while it takes its snapshot, and again for the catch-up's tail — and end on the peer once,
// with both databases identical.
//
// Its 100 000-row table (26 MB) makes the copy take seconds beside holds of tens of
// milliseconds: a copy run while commits were held would show.
//
// Not parallel: the copy of its table and the catch-up behind three writers must end within
// Resync's 60 s context, which other tests running beside it on a loaded 2-CPU machine made it
// miss ("Resync: catch-up: context deadline exceeded").
func TestResyncWhileWriting(t *testing.T) {
	const accounts = 20
	p, sh, shim := startShipPair(t, nil, Options{OnPeerDown: func() bool { return true }},
		`CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`,
		fmt.Sprintf(`INSERT INTO acct SELECT g, 1000 FROM generate_series(1, %d) g`, accounts),
		`CREATE TABLE moves (id serial PRIMARY KEY, acct int, delta int, at timestamptz DEFAULT now())`,
		`CREATE TABLE notes (a int, b text)`,
		`CREATE TABLE bulk (id int PRIMARY KEY, body text)`,
		`INSERT INTO bulk SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 100000) g`)

	var w *bankWriters
	type span struct{ from, to time.Time }
	var mu sync.Mutex
	var holds []span
	hold := gateHold(sh, shim, &w, func(from, to time.Time) {
		mu.Lock()
		holds = append(holds, span{from, to})
		mu.Unlock()
	})
	if err := sh.CatchUp(capCtx(t, 20*time.Second), hold); err != nil {
		t.Fatal(err)
	}
	w = startBankWriters(t, shim, 3, accounts)
	waitForLong(t, "dual commits", 20*time.Second, func() bool { return shim.Stats().CommitsDual >= 30 })
	p.pdb.Exec(`DELETE FROM bulk WHERE id % 1000 = 0`) // the peer diverges behind Tandem's back

	mu.Lock()
	holds = nil
	mu.Unlock()
	start := time.Now()
	if err := sh.Resync(capCtx(t, 60*time.Second), hold); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	took := time.Since(start)
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after Resync: mode %v, synced %v", m, sh.PeerSynced())
	}
	mu.Lock()
	hs := holds
	mu.Unlock()
	if len(hs) != 2 {
		t.Fatalf("commits held %d times during Resync, want 2 (snapshot, tail)", len(hs))
	}
	// Between the two holds the copy ran, and the writers went on committing.
	copying := hs[1].from.Sub(hs[0].to)
	solo := shim.Stats().CommitsSolo
	t.Logf("resync took %v; commits held %v for the snapshot and %v for the tail; %v between, %d solo commits in all",
		took, hs[0].to.Sub(hs[0].from), hs[1].to.Sub(hs[1].from), copying, solo)
	if held := hs[0].to.Sub(hs[0].from) + hs[1].to.Sub(hs[1].from); held > copying {
		t.Errorf("commits held %v of the resync's %v: the copy (%v) ran while they were held", held, took, copying)
	}
	if solo == 0 {
		t.Error("no commit while the tables were copied")
	}
	dual0 := shim.Stats().CommitsDual
	waitForLong(t, "dual commits after resync", 20*time.Second, func() bool { return shim.Stats().CommitsDual >= dual0+30 })
	w.halt()
	if errs := w.errors(); len(errs) > 0 {
		t.Fatalf("clients saw %d errors; first: %v", len(errs), errs[0])
	}
	waitForLong(t, "nothing left for the peer", 20*time.Second, func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	requireSame(t, p)
	if got, want := queryOne[int](t, p.pdb, `SELECT count(*) FROM moves`), int(w.commits.Load()); got != want {
		t.Errorf("peer has %d moves, clients committed %d", got, want)
	}
}

// TestResyncKeepsGap drives the journal with synthetic stream events (no database): the
// journal dropped events for its bound (a gap), and Resync's copy was taken at L, after what
// the journal holds and before the last dropped event. The stream that dropped them still
// delivers an event before it stops; it is not taken (it would move the journal's end past
// what was dropped), and the new stream, read from L, brings every transaction after L.
func TestResyncKeepsGap(t *testing.T) {
	t.Parallel()
	const bound = 4096
	s := NewShipper(ShipperConfig{Site: "a", MaxJournalBytes: bound, Logger: quietLogger()})
	rel := &Relation{ID: 1, Namespace: "public", Name: "t", Columns: []RelColumn{{Name: "v"}}}
	ev := func(i int) Event {
		txn := &Txn{XID: uint32(i), Changes: []Change{{Kind: ChangeInsert, Rel: rel, New: []Value{{Kind: ValueText, Data: make([]byte, 200)}}}}}
		return Event{Txn: txn, Pos: pglogrepl.LSN(100 * i)}
	}
	s.goDown("the peer refused a transaction", nil)
	const n, l = 30, 20
	for i := 1; i <= n; i++ {
		s.add(ev(i))
	}
	s.mu.Lock()
	kept, gap := len(s.journal), s.gap
	s.mu.Unlock()
	if !gap || kept >= l {
		t.Fatalf("journal holds %d transactions, gap %v: want a gap before %d", kept, gap, l)
	}

	// Resync: the copy holds everything up to L.
	s.mu.Lock()
	s.link = linkCatchUp
	s.copiedLocked(pglogrepl.LSN(100 * l))
	s.mu.Unlock()
	select {
	case <-s.restart:
	default:
		t.Fatal("no new stream asked for after the copy")
	}
	s.add(ev(n + 1)) // the old stream, before it stops
	// decodeLoop's part of the restart, then the slot resends what follows its confirmed
	// position (which may lag behind L).
	s.mu.Lock()
	if s.gap {
		s.gap, s.fresh = false, true
	}
	s.mu.Unlock()
	for i := l - 5; i <= n+1; i++ {
		s.add(ev(i))
	}

	s.mu.Lock()
	var got []string
	for _, e := range s.journal {
		if e.plain {
			got = append(got, fmt.Sprint(e.txn.XID))
		}
	}
	gap = s.gap
	s.mu.Unlock()
	var want []string
	for i := l + 1; i <= n+1; i++ {
		want = append(want, fmt.Sprint(i))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") || gap {
		t.Errorf("journal after the new stream holds transactions [%s] (gap %v), want [%s]", strings.Join(got, " "), gap, strings.Join(want, " "))
	}
	if b := s.Backlog(); b != len(want) {
		t.Errorf("Backlog %d, want %d", b, len(want))
	}
}

// TestResyncDuringGap: Resync while the journal has dropped events for its bound and local
// commits go on (held only for the snapshot and the tail). The stream that dropped them may
// deliver more before the new stream starts; nothing committed after the copy is lost on the
// peer, and the peer is synced with nothing left in the slot. Three rounds: before the
// journal kept its gap through Resync, about one in three lost transactions.
func TestResyncDuringGap(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `CREATE TABLE log (id serial PRIMARY KEY, body text)`,
		`INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, MaxJournalBytes: 16 << 10, SequenceInterval: -1, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	count := func(db *sql.DB) int { return queryOne[int](t, db, `SELECT count(*) FROM log`) }
	// A writer commits alone, one row a transaction; each holds gate (read), which hold takes.
	var gate sync.RWMutex
	hold := func(context.Context) (func(), error) { gate.Lock(); return gate.Unlock, nil }
	for round := 1; round <= 3; round++ {
		p.pdb.Exec(`DELETE FROM kv WHERE k = 1`) // the peer diverges
		p.local.Exec(t, fmt.Sprintf(`UPDATE kv SET v = 'round %d' WHERE k = 1`, round))
		waitFor(t, "the stream to stop on the divergence", func() bool { return sh.Err() != nil })

		stop, done := make(chan struct{}), make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				gate.RLock()
				_, err := p.ldb.Exec(`INSERT INTO log (body) VALUES (repeat('x', 200))`)
				gate.RUnlock()
				if err != nil {
					done <- err
					return
				}
				// Paced: on a tmpfs (pgtest's root) an unpaced writer commits faster than a
				// one-connection Shipper can follow, and the catch-up behind it never ended.
				time.Sleep(time.Millisecond)
			}
		}()
		waitForLong(t, "the journal to drop events", 20*time.Second, func() bool {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			return sh.gap
		})
		err := sh.Resync(capCtx(t, 60*time.Second), hold)
		close(stop)
		if werr := <-done; werr != nil {
			t.Fatalf("writer: %v", werr)
		}
		if err != nil {
			t.Fatalf("round %d: Resync: %v", round, err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for sh.Backlog() > 0 || count(p.pdb) != count(p.ldb) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: local %d rows, peer %d; backlog %d, synced %v", round, count(p.ldb), count(p.pdb), sh.Backlog(), sh.PeerSynced())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !sh.PeerSynced() {
			t.Fatalf("round %d: not synced after Resync", round)
		}
		requireSame(t, p)
	}
}

// TestResyncVerifySettings: with DateStyle, TimeZone, IntervalStyle, extra_float_digits,
// bytea_output and search_path set differently on the two databases, Verify finds
// dual-committed rows identical, and Resync copies the values as they are (compared under
// fixed settings), not as the peer misreads the local database's spelling of them.
func TestResyncVerifySettings(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SCHEMA other`,
		`CREATE TABLE vals (id int PRIMARY KEY, d date, tz timestamptz, f8 float8, iv interval, b bytea, rc regclass)`)
	for _, q := range []string{
		`ALTER DATABASE app SET datestyle = 'SQL, DMY'`,
		`ALTER DATABASE app SET timezone = 'Europe/Berlin'`,
		`ALTER DATABASE app SET extra_float_digits = 0`,
		`ALTER DATABASE app SET intervalstyle = 'sql_standard'`,
		`ALTER DATABASE app SET bytea_output = 'escape'`,
	} {
		p.local.Exec(t, q)
	}
	for _, q := range []string{
		`ALTER DATABASE app SET datestyle = 'Postgres, MDY'`,
		`ALTER DATABASE app SET timezone = 'Asia/Tokyo'`,
		`ALTER DATABASE app SET extra_float_digits = 1`,
		`ALTER DATABASE app SET intervalstyle = 'iso_8601'`,
		`ALTER DATABASE app SET search_path = other`,
	} {
		p.peer.Exec(t, q)
	}
	sh := syncedShipper(t, p)
	dualCommit(t, p, sh, gidFor("a", 1, 1), `INSERT INTO public.vals VALUES
  (1, '2024-01-02', '2024-01-02 03:04:05.123456+00', 0.1::float8 + 0.2::float8, '-1 days +02:03:04', '\x00ff5c'::bytea, 'public.vals'::regclass),
  (2, '1999-12-31', '2000-02-29 23:59:59+05:30', 1e300, '1 year 2 mons -3 days -00:00:01.5', '', 'pg_catalog.pg_class'::regclass)`)
	const q = `SELECT ROW(id, d, tz, f8, iv, b, rc)::text FROM public.vals ORDER BY id`
	want := pinnedRows(t, p.ldb, q)
	if got := pinnedRows(t, p.pdb, q); got != want {
		t.Fatalf("the peer's rows after the dual commit:\n%s\nwant:\n%s", got, want)
	}
	requireSame(t, p)

	p.pdb.Exec(`UPDATE public.vals SET d = NULL, f8 = 0`) // the peer diverges
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if got := pinnedRows(t, p.pdb, q); got != want {
		t.Errorf("the peer's rows after Resync:\n%s\nwant:\n%s", got, want)
	}
	requireSame(t, p)
}

// TestResyncAsyncCommit: a commit made with synchronous_commit = off (a client's setting, in
// solo mode) is visible before its WAL is written. Resync's snapshot holds it, so the point the
// stream goes on from must be past it: taken at the WAL's write position, the stream sent it
// again after the copy, and the peer refused the duplicate (ErrNeedsResync once more).
func TestResyncAsyncCommit(t *testing.T) {
	t.Parallel()
	// The WAL writer flushes an asynchronous commit within wal_writer_delay: long enough for
	// the Resync below to run before it.
	p := startCapPair(t, pgtest.WithSetting("wal_writer_delay", "10000ms"))
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	ctx := capCtx(t, 60*time.Second)
	conn, err := p.ldb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{`SET synchronous_commit = off`, `INSERT INTO kv VALUES (1, 'async')`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	hold := func(ctx context.Context) (func(), error) { return func() {}, nil }
	if err := sh.Resync(ctx, hold); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'sync')`) // flushes the WAL: the stream goes on
	waitForLong(t, "the later commit on the peer, or a refusal", 30*time.Second, func() bool {
		return sh.Err() != nil || (queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 2`) == 1 && sh.Backlog() == 0)
	})
	if err := sh.Err(); err != nil {
		t.Fatalf("after Resync: %v", err)
	}
	requireSame(t, p)
}

// TestResyncEndsBlockers: a session on the peer's (the backup's) database holding a lock on an
// application table — a read through the backup's read-only shim left open in a transaction,
// say — kept the copy's TRUNCATE waiting without end, and every later read of those tables
// queued behind it. As for an apply (apply.go watch), the session is ended.
func TestResyncEndsBlockers(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	ctx := capCtx(t, 60*time.Second)
	p.local.Exec(t, `INSERT INTO kv VALUES (1, 'one')`)
	reader, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for _, q := range []string{`BEGIN`, `SELECT count(*) FROM kv`} {
		if _, err := reader.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := sh.Resync(rctx, nil); err != nil {
		t.Fatalf("Resync with a reader holding a lock on the peer: %v", err)
	}
	if err := reader.PingContext(ctx); err == nil {
		t.Error("the reader's session that blocked the copy is still there")
	}
	requireSame(t, p)
}

// TestResyncSurvivesLocalCrash: the slot's confirmed position reaches disk only at a checkpoint,
// so after the local database crashes the stream sends again what came before the last copy of
// the tables (Resync) — transactions that have no decision rows on the peer, since the copy
// holds them. Applied again, an insert into a table without a key doubled its row, and one into
// a table with a key was refused: the peer needed resync again.
func TestResyncSurvivesLocalCrash(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `CREATE TABLE nokey (x int, y text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	cfg := ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: quietLogger()}
	sh := NewShipper(cfg)
	sh.SetTerm(1)
	stop := runShipper(t, sh)
	ctx := capCtx(t, 90*time.Second)
	if err := sh.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	p.pdb.Exec(`DELETE FROM kv WHERE k = 1`) // the peer diverges
	p.local.Exec(t, `UPDATE kv SET v = 'uno' WHERE k = 1`)
	waitFor(t, "the stream to stop on the divergence", func() bool { return sh.Err() != nil })
	p.local.Exec(t, `INSERT INTO nokey VALUES (1, 'a')`)
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'two')`)
	if err := sh.Resync(ctx, nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	requireSame(t, p)

	stop()
	p.local.Kill()
	if err := p.local.Restart(); err != nil {
		t.Fatal(err)
	}
	p.ldb = p.local.Open(t, p.local.Database())
	sh2 := NewShipper(cfg)
	sh2.SetTerm(1)
	runShipper(t, sh2)
	if err := sh2.CatchUp(ctx, nil); err != nil {
		t.Fatalf("catch-up after the local database crashed: %v", err)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'three')`)
	waitFor(t, "the later commit on the peer, or a refusal", func() bool {
		return sh2.Err() != nil || queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 3`) == 1
	})
	if err := sh2.Err(); err != nil {
		t.Fatalf("after the crash: %v", err)
	}
	requireSame(t, p)
}

// TestResyncRewriteDuringCopy: commits go on while Resync copies, and TRUNCATE and the
// table-rewriting forms of ALTER TABLE are not MVCC-safe — a table rewritten after the copy's
// snapshot reads empty to it. Such DDL on the local database, committed after the snapshot and
// before the copy reached the table (here while the copy waits for a lock on the table before
// it), left the peer's copy of the table empty, and the DDL, shipped after L, rewrote the empty
// table there: the peer lost every row of it and was called synced.
func TestResyncRewriteDuringCopy(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE aa (k int PRIMARY KEY)`, `CREATE TABLE zz (k int PRIMARY KEY, v int)`)
	sh := syncedShipper(t, p)
	p.local.Exec(t, `INSERT INTO zz SELECT g, g FROM generate_series(1, 10) g`)
	waitFor(t, "the peer to hold the rows", func() bool {
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM zz`).Scan(&n) == nil && n == 10 && sh.Backlog() == 0
	})
	ctx := capCtx(t, 60*time.Second)
	blocker, err := p.ldb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	if _, err := blocker.Exec(`LOCK TABLE aa IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sh.Resync(ctx, nil) }()
	waitFor(t, "the copy to wait for aa (its snapshot taken)", func() bool {
		var n int
		return p.ldb.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND (query LIKE 'COPY public.aa%' OR query LIKE 'LOCK TABLE public.aa%')`).Scan(&n) == nil && n == 1
	})
	// A rewrite of zz (as DDL through the shim would), leaving its definition as it was.
	p.local.Exec(t, `ALTER TABLE zz ALTER COLUMN v TYPE bigint`)
	p.local.Exec(t, `ALTER TABLE zz ALTER COLUMN v TYPE int`)
	blocker.Rollback()
	err = <-done
	t.Logf("Resync: %v", err)
	if err != nil {
		return // refused: not called synced
	}
	var n int
	if err := p.pdb.QueryRow(`SELECT count(*) FROM zz`).Scan(&n); err != nil || n != 10 {
		t.Fatalf("the peer holds %d rows of zz after Resync (%v), the local database 10; synced %v", n, err, sh.PeerSynced())
	}
	requireSame(t, p)
}
