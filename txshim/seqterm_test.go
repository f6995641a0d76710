package txshim

import (
	"errors"
	"testing"
	"time"
)

// TestSequenceCopyRefusesNewerTerm: a master that has lost its role without knowing yet (its
// process paused, a cut link between the sidecars) went on copying its sequence positions into
// its peer database, now its successor's, which holds a newer term: a CYCLE sequence there was
// set back to the old master's position, and the new master then handed out again the values
// it had handed out since (DESIGN §5.2: no sequence on a master may hand out a value a
// committed row holds). The copy checked no term, where every apply does (§3 fencing in the
// databases); it now leaves a database at a newer term alone.
func TestSequenceCopyRefusesNewerTerm(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SEQUENCE cyc MAXVALUE 1000 CYCLE`, `CREATE SEQUENCE ids`)
	installPair(t, p)
	const every = 50 * time.Millisecond
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 5 * time.Second, SequenceInterval: every, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	// Site b took term 2 in the peer database and handed out 50 values of each sequence there;
	// site a, master of term 1 still in its own eyes, handed out 5 and 500.
	if err := WriteTermRecord(capCtx(t, 10*time.Second), p.pdb, 2, "b", false); err != nil {
		t.Fatal(err)
	}
	p.peer.Exec(t, `SELECT nextval('cyc'), nextval('ids') FROM generate_series(1, 50)`)
	p.local.Exec(t, `SELECT nextval('cyc') FROM generate_series(1, 5)`)
	p.local.Exec(t, `SELECT nextval('ids') FROM generate_series(1, 500)`)
	time.Sleep(20 * every)
	cyc := queryOne[int64](t, p.pdb, `SELECT last_value FROM pg_sequences WHERE sequencename = 'cyc'`)
	ids := queryOne[int64](t, p.pdb, `SELECT last_value FROM pg_sequences WHERE sequencename = 'ids'`)
	if cyc != 50 || ids != 50 {
		t.Errorf("the new master's sequences after 20 copy periods of the old master: cyc %d, ids %d; want both left at 50", cyc, ids)
	}
}

// TestCatchUpSequencesRefuseNewerTerm: a catch-up with nothing left to ship copied the sequence
// positions into a peer database at a newer term, its successor's, unchecked (the ships check
// the term, but there were none): a CYCLE sequence there went back onto values the new master
// had handed out. The catch-up now fails there with ErrStaleTerm, the sequences left alone.
func TestCatchUpSequencesRefuseNewerTerm(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SEQUENCE cyc MAXVALUE 1000 CYCLE`)
	sh := syncedShipper(t, p) // site "a", term 1
	if err := WriteTermRecord(capCtx(t, 10*time.Second), p.pdb, 2, "b", false); err != nil {
		t.Fatal(err)
	}
	p.peer.Exec(t, `SELECT nextval('cyc') FROM generate_series(1, 50)`)
	p.local.Exec(t, `SELECT nextval('cyc') FROM generate_series(1, 5)`)
	sh.Unsync()
	err := sh.CatchUp(capCtx(t, 30*time.Second), nil)
	if !errors.Is(err, ErrStaleTerm) {
		t.Errorf("CatchUp of the master of term 1 into a database at term 2 = %v, want ErrStaleTerm", err)
	}
	if cyc := queryOne[int64](t, p.pdb, `SELECT last_value FROM pg_sequences WHERE sequencename = 'cyc'`); cyc != 50 {
		t.Errorf("the new master's CYCLE sequence after the old master's catch-up: %d, want 50", cyc)
	}
}
