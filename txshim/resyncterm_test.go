package txshim

import (
	"errors"
	"testing"
	"time"
)

// TestResyncRefusesNewerTerm: a resync asked of a master that has lost its role without knowing
// yet (its process paused, a cut link: the other site took a newer term, and its database now
// holds that term's record) emptied the newer master's tables and filled them with the old
// master's copy, throwing away what the new master committed: the copy's transaction on the
// peer checked no term, where every apply does (DESIGN §3 fencing in the databases). It must
// be refused there with ErrStaleTerm, and leave the peer's rows as they are.
func TestResyncRefusesNewerTerm(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	sh := syncedShipper(t, p) // site "a", term 1
	// Site b took term 2, its database being this Shipper's peer, and committed there.
	if err := WriteTermRecord(capCtx(t, 10*time.Second), p.pdb, 2, "b", false); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pdb.Exec(`INSERT INTO kv VALUES (2, 'committed by the master of term 2')`); err != nil {
		t.Fatal(err)
	}
	err := sh.Resync(capCtx(t, 30*time.Second), nil)
	if !errors.Is(err, ErrStaleTerm) {
		t.Errorf("Resync of the master of term 1 into a database at term 2 = %v, want ErrStaleTerm", err)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 2`); got != 1 {
		t.Errorf("the new master's row after the old master's resync: %d rows, want 1", got)
	}
}
