package txshim

import (
	"testing"
	"time"
)

// TestResyncKeepsUnloggedChild: resync leaves UNLOGGED tables out (their rows are not shipped):
// on the peer it empties only one that refers to a copied table by a foreign key, which
// PostgreSQL empties with it. Its TRUNCATE of an inheritance parent took the parent's children
// along, an UNLOGGED one among them, whose rows on the peer were lost.
func TestResyncKeepsUnloggedChild(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	// aa: events is not first in the TRUNCATE's list (each name takes its own ONLY).
	p.both(t, `CREATE TABLE aa (k int PRIMARY KEY)`, `CREATE TABLE events (id int, what text)`,
		`CREATE UNLOGGED TABLE scratch () INHERITS (events)`, `INSERT INTO events VALUES (1, 'kept')`)
	p.peer.Exec(t, `INSERT INTO scratch VALUES (7, 'the peer''s own')`)
	sh := syncedShipper(t, p)
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM ONLY scratch`); n != 1 {
		t.Fatalf("the peer's UNLOGGED child holds %d rows after resync, want its 1", n)
	}
}
