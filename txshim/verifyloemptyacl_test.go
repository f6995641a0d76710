package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestVerifyLargeObjectNoPrivileges: a large object whose privileges were all revoked, its
// owner's too (REVOKE ALL ON LARGE OBJECT … FROM its owner: an empty ACL, not NULL), read as
// NULL privileges, and verify failed ("converting NULL to string is unsupported") instead of
// comparing: one such object kept every verification from ending. It is compared, the same on
// both alike, and named where the other's are not revoked.
func TestVerifyLargeObjectNoPrivileges(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `SELECT lo_from_bytea(4000, 'none')`, `SELECT lo_from_bytea(4001, 'one side')`,
		`DO $$BEGIN EXECUTE format('REVOKE ALL ON LARGE OBJECT 4000 FROM %I', current_user); END$$`)
	p.local.Exec(t, `DO $$BEGIN EXECUTE format('REVOKE ALL ON LARGE OBJECT 4001 FROM %I', current_user); END$$`)
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN(p.local.Database()), p.peer.DSN(p.peer.Database()))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || !strings.Contains(diffs[0], "large objects differ: 4001's owner or privileges differ") || strings.Contains(diffs[0], "4000") {
		t.Fatalf("verify: %q, want 4001's privileges named alone", diffs)
	}
}
