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

// TestResyncLostSlotRefusesNewerTerm: a resync after the slot was lost, asked of a master that
// has lost its role without knowing yet, recorded in its successor's database that that
// database is owed a copy (owedGID), and made its own slot anew, before the copy's term check
// refused it: the successor's site later needed a full resync for nothing. The mark is written
// in a transaction that checks the peer's term record first, and the refusal comes before the
// slot is touched.
func TestResyncLostSlotRefusesNewerTerm(t *testing.T) {
	t.Parallel()
	p, sh, _ := shippingKV(t) // site "a", term 1
	dropSlot(t, p)
	waitFor(t, "the Shipper to see the slot gone", func() bool { return sh.Err() != nil })
	// Site b took term 2, its database being this Shipper's peer.
	if err := WriteTermRecord(capCtx(t, 10*time.Second), p.pdb, 2, "b", false); err != nil {
		t.Fatal(err)
	}
	err := sh.Resync(capCtx(t, 30*time.Second), nil)
	if !errors.Is(err, ErrStaleTerm) {
		t.Errorf("Resync of the master of term 1 into a database at term 2 = %v, want ErrStaleTerm", err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = $1`, owedGID("a")); n != 0 {
		t.Errorf("the refused resync left the mark %s in the newer master's database", owedGID("a"))
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, SlotName("a")); n != 0 {
		t.Errorf("the refused resync made the slot anew")
	}
}
