package txshim

import (
	"testing"
	"time"
)

// TestResyncNotValidCheckInherited: a table that inherits a CHECK constraint NOT VALID and
// declares it itself too (ALTER TABLE ... INHERIT of a table that had it) holds it both ways.
// Dropped for the copy in the order of their names, the child's came before its parent's, which
// PostgreSQL refuses (an inherited constraint), and no resync could succeed.
func TestResyncNotValidCheckInherited(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE zparent (v int)`, `CREATE TABLE achild (v int)`,
		`INSERT INTO zparent VALUES (-1)`, `INSERT INTO achild VALUES (-2)`,
		`ALTER TABLE zparent ADD CONSTRAINT pos CHECK (v > 0) NOT VALID`,
		`ALTER TABLE achild ADD CONSTRAINT pos CHECK (v > 0) NOT VALID`,
		`ALTER TABLE achild INHERIT zparent`)
	sh := syncedShipper(t, p)
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	requireSame(t, p)
	const cons = `SELECT string_agg(conrelid::regclass || ' ' || conname || ' ' || convalidated || ' ' || conislocal || ' ' || coninhcount, ', ' ORDER BY conrelid::regclass::text, conname) FROM pg_constraint WHERE contype = 'c'`
	if l, pe := queryOne[string](t, p.ldb, cons), queryOne[string](t, p.pdb, cons); l != pe {
		t.Fatalf("CHECK constraints after resync: local %s, peer %s", l, pe)
	}
}
