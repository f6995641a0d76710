package txshim

import (
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// staleLSN is the lsn of a decision row left on the peer by an earlier transaction that had
// the same xid: one of the site's database before it was restored or re-initialised, whose
// LSNs had gone far past the new cluster's.
const staleLSN = "AB/CDEF0000"

// plainWithXID commits stmt plainly on p's local database in a transaction whose xid it reads
// first, calls before with that transaction's decision-row key (plainGID of site "a") just
// before the COMMIT, and returns the key.
func plainWithXID(t *testing.T, p *capPair, stmt string, before func(gid string)) string {
	t.Helper()
	ctx := capCtx(t, 30*time.Second)
	conn, err := p.ldb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	var full string
	if err := conn.QueryRowContext(ctx, `SELECT pg_current_xact_id()::text`).Scan(&full); err != nil {
		t.Fatal(err)
	}
	x64, err := strconv.ParseUint(full, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	gid := plainGID("a", uint32(x64))
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		t.Fatal(err)
	}
	before(gid)
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	return gid
}

// journalPos waits until sh's journal holds gid and returns its stream position: the end of
// the transaction, which its decision row records.
func journalPos(t *testing.T, sh *Shipper, gid string) pglogrepl.LSN {
	t.Helper()
	var pos pglogrepl.LSN
	waitFor(t, gid+" in the journal", func() bool {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		for _, e := range sh.journal {
			if e.gid == gid {
				pos = e.pos
				return true
			}
		}
		return false
	})
	return pos
}

// plantDecision writes on the peer the decision row gid with lsn ("" for NULL, as an older
// version wrote them).
func plantDecision(t *testing.T, p *capPair, gid, lsn string) {
	t.Helper()
	var arg any
	if lsn != "" {
		arg = lsn
	}
	if _, err := p.pdb.Exec(`INSERT INTO tandem.decisions (gid, lsn) VALUES ($1, $2::pg_lsn)`, gid, arg); err != nil {
		t.Fatal(err)
	}
}

// TestPlainXIDReused: after a site's database is restored from a backup or re-initialised,
// its xids repeat, and the other database still holds the decision rows of the plain commits
// that had them before (plainGID has neither term nor database identity; pruning keeps rows
// whose lsn is past the new cluster's slot). A new plain commit with such an xid must be
// shipped, its stale row replaced, not taken for one the peer has: catch-up, plainLoop and
// settle tell them apart by the row's lsn. A row with the transaction's own lsn is still a
// duplicate (skipped, not applied twice), and so is one with no lsn (an older version's).
func TestPlainXIDReused(t *testing.T) {
	t.Parallel()
	t.Run("Ship", func(t *testing.T) {
		p := startCapPair(t)
		p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
		sh := syncedShipper(t, p)
		ctx := capCtx(t, 60*time.Second)

		// Online: plainLoop ships it as it comes.
		before, st0 := lsnOf(t, p.ldb, `SELECT pg_current_wal_lsn()::text`), sh.Stats()
		online := plainWithXID(t, p, `INSERT INTO kv VALUES (1, 'online')`, func(gid string) { plantDecision(t, p, gid, staleLSN) })
		after := lsnOf(t, p.ldb, `SELECT pg_current_wal_lsn()::text`)
		waitFor(t, "plainLoop to ship "+online, func() bool {
			st := sh.Stats()
			return st.Shipped+st.Skipped > st0.Shipped+st0.Skipped || sh.Err() != nil
		})
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 1`); n != 1 {
			t.Errorf("%s, whose xid has a stale decision row on the peer, is not there (stats %+v, err %v)", online, sh.Stats(), sh.Err())
		}
		if l := lsnOf(t, p.pdb, `SELECT lsn::text FROM tandem.decisions WHERE gid = '`+online+`'`); l <= before || l > after {
			t.Errorf("the decision row of %s has lsn %s, want the new transaction's end (in %s..%s)", online, l, before, after)
		}

		// Solo, then catch-up: one with a stale row, one the peer has (its own lsn).
		sh.goDown("test: the peer was unreachable", nil)
		stale := plainWithXID(t, p, `INSERT INTO kv VALUES (2, 'solo')`, func(gid string) { plantDecision(t, p, gid, staleLSN) })
		stalePos := journalPos(t, sh, stale)
		same := plainWithXID(t, p, `INSERT INTO kv VALUES (3, 'shipped before')`, func(string) {})
		samePos := journalPos(t, sh, same)
		// As a crash after the peer's commit leaves it: the peer has it, the slot resends it.
		plantDecision(t, p, same, samePos.String())
		if _, err := p.pdb.Exec(`INSERT INTO kv VALUES (3, 'shipped before')`); err != nil {
			t.Fatal(err)
		}
		st0 = sh.Stats()
		if err := sh.CatchUp(ctx, nil); err != nil {
			t.Fatalf("CatchUp: %v", err)
		}
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 2`); n != 1 {
			t.Fatalf("catch-up left out %s, whose xid has a stale decision row on the peer", stale)
		}
		if l := lsnOf(t, p.pdb, `SELECT lsn::text FROM tandem.decisions WHERE gid = '`+stale+`'`); l != stalePos {
			t.Errorf("the decision row of %s has lsn %s, want %s", stale, l, stalePos)
		}
		if st := sh.Stats(); st.Shipped-st0.Shipped != 1 || st.Skipped-st0.Skipped != 1 || sh.Err() != nil {
			t.Errorf("catch-up shipped %d, skipped %d (err %v): want 1 shipped (%s), 1 skipped (%s, on the peer)",
				st.Shipped-st0.Shipped, st.Skipped-st0.Skipped, sh.Err(), stale, same)
		}
		requireSame(t, p)
	})

	// A backup's settle lets the slot go past its own transactions the peer has: not past one
	// whose gid has only a stale row there. That one is shipped when the site is master again.
	t.Run("Settle", func(t *testing.T) {
		p := startCapPair(t)
		p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
		installPair(t, p)
		// Committed alone as master, with no sidecar running: both in the slot.
		stale := plainWithXID(t, p, `INSERT INTO kv VALUES (1, 'solo')`, func(gid string) { plantDecision(t, p, gid, staleLSN) })
		old := plainWithXID(t, p, `INSERT INTO kv VALUES (2, 'shipped by an older version')`, func(gid string) { plantDecision(t, p, gid, "") })
		if _, err := p.pdb.Exec(`INSERT INTO kv VALUES (2, 'shipped by an older version')`); err != nil {
			t.Fatal(err)
		}
		bk := pairShipper(p, 1, 3*time.Second)
		bk.SetBackup(true)
		bk.SetBypassFrom(lsnOf(t, p.ldb, `SELECT pg_current_wal_lsn()::text`))
		runShipper(t, bk)
		waitFor(t, "settle to let "+old+" go", func() bool { return bk.Stats().Skipped > 0 })
		time.Sleep(2 * settleEvery) // passes of settle enough to let the other go, were it taken for the peer's
		if st, b := bk.Stats(), bk.Backlog(); st.Skipped != 1 || b != 1 || st.Bypassed != 0 {
			t.Fatalf("stats %+v, backlog %d: want %s let go (skipped 1), %s held (backlog 1, its xid's row on the peer is stale)", st, b, old, stale)
		}

		// Master again: the held one ships over its stale row.
		bk.SetTerm(1)
		bk.SetBackup(false)
		if err := bk.CatchUp(capCtx(t, 30*time.Second), nil); err != nil {
			t.Fatal(err)
		}
		if n := queryOne[string](t, p.pdb, `SELECT lsn::text FROM tandem.decisions WHERE gid = $1`, stale); n == staleLSN {
			t.Errorf("the stale decision row of %s is still there", stale)
		}
		requireSame(t, p)
	})
}
