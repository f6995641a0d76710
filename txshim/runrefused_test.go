package txshim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// backlogEntries returns the journal's finished plain commits, in stream order.
func backlogEntries(t *testing.T, sh *Shipper) []jentry {
	t.Helper()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []jentry
	for _, e := range sh.journal {
		if e.plain && e.txn != nil && e.state != stDone {
			out = append(out, *e)
		}
	}
	return out
}

// TestCatchUpRunWithAppliedMidway: the peer already has a transaction in the middle of what
// catch-up ships in one run (its decision row and its changes: a run left half-recorded, say).
// The whole run is pipelined in one round trip (several: it spans applyBatch changes, a COPY,
// a table's first look-up): the run is refused as a whole, rolled back, and its transactions go
// one at a time; the one the peer had is skipped, every other applied once.
func TestCatchUpRunWithAppliedMidway(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE notes (id int PRIMARY KEY, v int)`, `CREATE TABLE bulk (id int PRIMARY KEY)`,
		`CREATE TABLE cnt (id int PRIMARY KEY, v int)`, `INSERT INTO cnt SELECT g, 0 FROM generate_series(1, 90) g`)
	installPair(t, p)
	sh := pairShipper(p, 2, 10*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)

	p.peer.Kill()
	const n = 30
	const dup = 20 // its changes lie past the run's first applyBatch changes
	for i := 1; i <= n; i++ {
		q := fmt.Sprintf(`INSERT INTO notes VALUES (%d, %d); UPDATE cnt SET v = v + 1`, i, i)
		if i == 3 {
			// A COPY in the run (copyMin rows, within runMaxChanges).
			q = `INSERT INTO bulk SELECT g FROM generate_series(1, 70) g`
		}
		p.local.Exec(t, "BEGIN; "+q+"; COMMIT")
	}
	waitForLong(t, "the backlog", 20*time.Second, func() bool { return sh.Backlog() == n && sh.linkState() == linkDown })
	es := backlogEntries(t, sh)
	if len(es) != n {
		t.Fatalf("%d entries in the journal, want %d", len(es), n)
	}
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	// The peer has transaction dup already: its rows and its decision row. The counters' updates
	// commute, so the peer holds what it would after dup alone.
	e := es[dup-1]
	p.peer.Exec(t, fmt.Sprintf(`BEGIN; INSERT INTO notes VALUES (%d, %d); UPDATE cnt SET v = v + 1;
INSERT INTO tandem.decisions (gid, lsn) VALUES ('%s', '%s'); COMMIT`, dup, dup, e.gid, e.end))

	if err := sh.CatchUp(capCtx(t, 60*time.Second), nil); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if !sh.PeerSynced() || sh.Backlog() != 0 {
		t.Fatalf("after CatchUp: synced %v, backlog %d", sh.PeerSynced(), sh.Backlog())
	}
	requireSame(t, p)
	if st := sh.Stats(); st.Shipped != n-1 || st.Skipped != 1 {
		t.Errorf("stats %+v: want %d shipped, 1 skipped", st, n-1)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid LIKE 'tandem_a_plain_%'`); got != n {
		t.Errorf("%d plain decision rows on the peer, want %d", got, n)
	}
	if got := queryOne[int](t, p.pdb, `SELECT min(v) FROM cnt`); got != n-1 {
		t.Errorf("counters at %d on the peer, want %d (each transaction once)", got, n-1)
	}
}

// TestCatchUpRunRefusedMidway: the peer holds a row that conflicts with a transaction in the
// middle of a run (it diverged). The run is rolled back; the transactions before the refused
// one are shipped one at a time, once each; the refused one ends catch-up (ErrNeedsResync),
// and nothing after it reaches the peer.
func TestCatchUpRunRefusedMidway(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE notes (id int PRIMARY KEY, v int)`, `CREATE TABLE bulk (id int PRIMARY KEY)`,
		`CREATE TABLE cnt (id int PRIMARY KEY, v int)`, `INSERT INTO cnt SELECT g, 0 FROM generate_series(1, 90) g`)
	installPair(t, p)
	sh := pairShipper(p, 2, 10*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)

	p.peer.Kill()
	const n = 30
	const bad = 20
	for i := 1; i <= n; i++ {
		q := fmt.Sprintf(`INSERT INTO notes VALUES (%d, %d); UPDATE cnt SET v = v + 1`, i, i)
		if i == 3 {
			q = `INSERT INTO bulk SELECT g FROM generate_series(1, 70) g`
		}
		p.local.Exec(t, "BEGIN; "+q+"; COMMIT")
	}
	waitForLong(t, "the backlog", 20*time.Second, func() bool { return sh.Backlog() == n && sh.linkState() == linkDown })
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	p.peer.Exec(t, fmt.Sprintf(`INSERT INTO notes VALUES (%d, -1)`, bad))

	err := sh.CatchUp(capCtx(t, 60*time.Second), nil)
	if err == nil || !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp = %v, want ErrNeedsResync", err)
	}
	if sh.PeerSynced() {
		t.Fatal("synced after a refusal")
	}
	// Transactions 1..bad-1 once each (one of them is the COPY, without a counter update).
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid LIKE 'tandem_a_plain_%'`); got != bad-1 {
		t.Errorf("%d plain decision rows on the peer, want %d", got, bad-1)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM notes`); got != bad-1 {
		t.Errorf("%d notes on the peer, want %d", got, bad-1)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM bulk`); got != 70 {
		t.Errorf("%d bulk rows on the peer, want 70", got)
	}
	if got := queryOne[int](t, p.pdb, `SELECT min(v) FROM cnt`); got != bad-2 {
		t.Errorf("counters at %d on the peer, want %d (each transaction once)", got, bad-2)
	}
	if got := queryOne[int](t, p.pdb, `SELECT v FROM notes WHERE id = 2`); got != 2 {
		t.Errorf("note 2 is %d on the peer", got)
	}
}

// TestCatchUpRunRefusedInCopy: as TestCatchUpRunRefusedMidway, the refusal in the COPY a
// transaction of the run streams its inserts into.
func TestCatchUpRunRefusedInCopy(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE notes (id int PRIMARY KEY, v int)`, `CREATE TABLE bulk (id int PRIMARY KEY)`)
	installPair(t, p)
	sh := pairShipper(p, 2, 10*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)

	p.peer.Kill()
	const n = 10
	const bad = 5
	for i := 1; i <= n; i++ {
		q := fmt.Sprintf(`INSERT INTO notes VALUES (%d, %d)`, i, i)
		if i == bad {
			q = `INSERT INTO bulk SELECT g FROM generate_series(1, 70) g`
		}
		p.local.Exec(t, q)
	}
	waitForLong(t, "the backlog", 20*time.Second, func() bool { return sh.Backlog() == n && sh.linkState() == linkDown })
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	p.peer.Exec(t, `INSERT INTO bulk VALUES (35)`)

	err := sh.CatchUp(capCtx(t, 60*time.Second), nil)
	if err == nil || !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp = %v, want ErrNeedsResync", err)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid LIKE 'tandem_a_plain_%'`); got != bad-1 {
		t.Errorf("%d plain decision rows on the peer, want %d", got, bad-1)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM notes`); got != bad-1 {
		t.Errorf("%d notes on the peer, want %d", got, bad-1)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM bulk`); got != 1 {
		t.Errorf("%d bulk rows on the peer, want 1", got)
	}
}

// TestApplyRunRefusalNamesItsTransaction: a run's transactions are pipelined together, so the
// refusal is read after later ones were queued; it must name the transaction the peer refused,
// not the one being queued when the results were read.
func TestApplyRunRefusalNamesItsTransaction(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE tally (k int PRIMARY KEY, c int)`)
	installPair(t, p)
	p.peer.Exec(t, `INSERT INTO tally VALUES (2, 0)`)
	ctx := capCtx(t, 20*time.Second)
	a, err := dialApply(ctx, p.peer.DSN("app"), "a", originName("a", 9), applyAppName, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close(ctx)
	rel := &Relation{ID: 1, Namespace: "public", Name: "tally", ReplicaIdentity: 'd',
		Columns: []RelColumn{{Name: "k", Key: true, TypeOID: 23, TypeMod: -1}, {Name: "c", TypeOID: 23, TypeMod: -1}}}
	v := func(s string) Value { return Value{Kind: ValueText, Data: []byte(s)} }
	var txns []*Txn
	var gids []string
	for i := 1; i <= 3; i++ {
		txns = append(txns, &Txn{XID: uint32(100 + i), EndLSN: pglogrepl.LSN(0x1000 * i), Time: time.Now(), Changes: []Change{
			{Kind: ChangeInsert, Rel: rel, New: []Value{v(strconv.Itoa(i)), v("0")}},
		}})
		gids = append(gids, plainGID("a", uint32(100+i)))
	}
	err = a.applyRun(ctx, txns, gids, 0)
	if !errors.Is(err, errRunRefused) {
		t.Fatalf("applyRun = %v, want a refusal", err)
	}
	if !strings.Contains(err.Error(), gids[1]+" ") {
		t.Errorf("applyRun = %v: the refusal does not name %s, the transaction refused", err, gids[1])
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tally`); n != 1 {
		t.Errorf("%d rows on the peer after a refused run, want 1", n)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions`); n != 0 {
		t.Errorf("%d decision rows on the peer after a refused run", n)
	}
}
