package txshim

import (
	"testing"
	"time"
)

// TestVerifyLargeObjects: large objects live in pg_largeobject, which no publication holds:
// written through the shim they stay on the local database (README), yet verify called such
// databases identical. A large object on one database only, or with other contents, is a
// difference, naming it by its OID; the same objects on both are not.
func TestVerifyLargeObjects(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `SELECT lo_from_bytea(1000, 'same')`, `SELECT lo_from_bytea(1002, convert_to(repeat('x', 5000), 'UTF8'))`)
	verify := func() []string {
		t.Helper()
		diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
		if err != nil {
			t.Fatal(err)
		}
		return diffs
	}
	if diffs := verify(); len(diffs) != 0 {
		t.Fatalf("verify of the same large objects: %q", diffs)
	}
	p.local.Exec(t, `SELECT lo_from_bytea(1001, 'local only')`)
	p.peer.Exec(t, `SELECT lo_put(1002, 4500, 'y')`)
	p.peer.Exec(t, `SELECT lo_from_bytea(1003, '')`)
	want := "large objects differ: 1001 only on the local database, 1002 differs, 1003 only on the peer"
	if diffs := verify(); len(diffs) != 1 || diffs[0] != want {
		t.Errorf("verify: %q, want [%q]", diffs, want)
	}
}
