package txshim

import (
	"strings"
	"testing"
)

// TestDecideOwnOutcomeUnknown: a gid of site a (the master) prepared only on site b's
// database, while a's database cannot tell whether the gid's xid committed — here its xid is
// "in the future" there, as after a restore or re-initialisation of that database; an xid too
// old for pg_xact_status (NULL) is the same case. a may have rolled it back, so committing
// b's copy (or rolling it back, were a to have committed it) is a guess: `tandem resolve`
// (Decide) refuses either, saying what is unknown and what to check, and does it only with
// the operator's explicit override (DecideOptions.AcceptUnknownOwnOutcome).
func TestDecideOwnOutcomeUnknown(t *testing.T) {
	t.Parallel()
	p, ctx := decidePair(t)
	r := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger()})
	// pg_xact_status on a's database: NULL for the first (its 32 low bits are 0, no xid it
	// remembers), "in the future" for the second (far past anything it has assigned).
	gid, gid2 := gidFor("a", 2, 1<<40), gidFor("a", 2, 1<<40+5)
	prepareLocal(t, p.pdb, gid, `INSERT INTO kv VALUES (1, 'applied copy')`)
	prepareLocal(t, p.pdb, gid2, `INSERT INTO kv VALUES (2, 'applied copy')`)
	for _, g := range []string{gid, gid2} {
		for _, commit := range []bool{true, false} {
			err := r.Decide(ctx, g, commit)
			if err == nil || !strings.Contains(err.Error(), "cannot tell whether its transaction committed") ||
				!strings.Contains(err.Error(), "check on the local database") {
				t.Fatalf("Decide(%s, commit=%v) with the own site's outcome unknown: %v; want a refusal saying what is unknown and what to check", g, commit, err)
			}
			if !preparedOn(t, p.pdb, g) {
				t.Fatalf("Decide(%s, commit=%v) finished it on site b's database", g, commit)
			}
		}
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`); n != 0 {
		t.Fatalf("site b's database has %d rows of a transaction site a may have rolled back", n)
	}

	// The operator checked and overrides: the copy is committed on b's database.
	if err := r.DecideWith(ctx, gid, true, DecideOptions{AcceptUnknownOwnOutcome: true}); err != nil {
		t.Fatalf("DecideWith(commit, AcceptUnknownOwnOutcome): %v", err)
	}
	if preparedOn(t, p.pdb, gid) || queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 1`) != 1 {
		t.Fatal("the override did not commit the copy on site b's database")
	}

	// The same with the override for a roll-back.
	if err := r.DecideWith(ctx, gid2, false, DecideOptions{AcceptUnknownOwnOutcome: true}); err != nil {
		t.Fatalf("DecideWith(rollback, AcceptUnknownOwnOutcome): %v", err)
	}
	if preparedOn(t, p.pdb, gid2) || queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 2`) != 0 {
		t.Fatal("the override did not roll the copy back on site b's database")
	}
}
