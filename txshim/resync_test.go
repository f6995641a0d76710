package txshim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// TestResync: after the peer diverged (a shipped transaction refused: ErrNeedsResync), Resync
// copies the application tables — generated columns, a table without a key, a serial — and the
// Shipper goes on from there: the databases are identical, the peer's sequence is not behind
// its rows, and later commits ship.
func TestResync(t *testing.T) {
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`,
		`CREATE TABLE gen (id serial PRIMARY KEY, a int NOT NULL, b int GENERATED ALWAYS AS (a * 2) STORED)`,
		`CREATE TABLE nokey (x int, y text)`,
		`INSERT INTO kv VALUES (1, 'one'), (2, 'two')`)
	installPair(t, p)
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
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
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp before resync = %v, want ErrNeedsResync", err)
	}

	held := 0
	hold := func(ctx context.Context) (func(), error) { held++; return func() {}, nil }
	if err := sh.Resync(capCtx(t, 30*time.Second), hold); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if held != 2 || sh.Err() != nil || !sh.PeerSynced() { // for the snapshot, and for the tail
		t.Fatalf("after Resync: held %d, err %v, synced %v", held, sh.Err(), sh.PeerSynced())
	}
	requireSame(t, p)
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
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: quietLogger()})
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
func TestResyncWhileWriting(t *testing.T) {
	const accounts = 20
	p, sh, shim := startShipPair(t, nil, Options{OnPeerDown: func() bool { return true }},
		`CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`,
		fmt.Sprintf(`INSERT INTO acct SELECT g, 1000 FROM generate_series(1, %d) g`, accounts),
		`CREATE TABLE moves (id serial PRIMARY KEY, acct int, delta int, at timestamptz DEFAULT now())`,
		`CREATE TABLE notes (a int, b text)`,
		`CREATE TABLE bulk (id int PRIMARY KEY, body text)`,
		`INSERT INTO bulk SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 300000) g`)

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
