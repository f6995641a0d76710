package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestVerifyLargeObjectPrivilegesLonelyRole: roles are the clusters', and an owner or a
// privilege naming a role the other cluster lacks is left out of the comparison of objects'
// owners and privileges (diffObjectFacts) — a site's own role cannot use the other's database
// at all. A large object's owner and privileges were compared as text, and one owned by, or
// granted to, a role of one cluster alone was named as differing, with nothing to end it.
func TestVerifyLargeObjectPrivilegesLonelyRole(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.local.Exec(t, `CREATE ROLE lol_owner`)
	p.local.Exec(t, `CREATE ROLE lol_reader`)
	p.both(t, `CREATE ROLE lol_shared`,
		`SELECT lo_from_bytea(3000, 'owned')`, `SELECT lo_from_bytea(3001, 'granted')`, `SELECT lo_from_bytea(3002, 'shared')`)
	p.local.Exec(t, `ALTER LARGE OBJECT 3000 OWNER TO lol_owner`)
	p.local.Exec(t, `GRANT SELECT ON LARGE OBJECT 3001 TO lol_reader`)
	p.peer.Exec(t, `GRANT SELECT ON LARGE OBJECT 3002 TO lol_shared`) // on both clusters: named
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN(p.local.Database()), p.peer.DSN(p.peer.Database()))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || !strings.Contains(diffs[0], "large objects differ: 3002's owner or privileges differ") || strings.Contains(diffs[0], "3000") || strings.Contains(diffs[0], "3001") {
		t.Fatalf("verify: %q, want 3002's privileges named alone", diffs)
	}
}
