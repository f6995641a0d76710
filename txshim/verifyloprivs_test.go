package txshim

import (
	"testing"
	"time"
)

// TestVerifyLargeObjectPrivileges: a large object alike on both databases but owned by another
// role, or granted otherwise (GRANT SELECT ON LARGE OBJECT), on one of them — a copy made by
// hand, as large objects are never shipped — was called identical; after a failover the
// applications' roles could not read or write it. Its owner and privileges are compared with
// its contents; the same privileges granted in another order are alike.
func TestVerifyLargeObjectPrivileges(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE ROLE lo_reader`, `CREATE ROLE lo_writer`, `CREATE ROLE lo_owner`,
		`SELECT lo_from_bytea(2000, 'granted')`, `SELECT lo_from_bytea(2001, 'owned')`, `SELECT lo_from_bytea(2002, 'same')`)
	p.local.Exec(t, `GRANT SELECT ON LARGE OBJECT 2000 TO lo_reader`)
	p.peer.Exec(t, `ALTER LARGE OBJECT 2001 OWNER TO lo_owner`)
	p.local.Exec(t, `GRANT SELECT ON LARGE OBJECT 2002 TO lo_reader`)
	p.local.Exec(t, `GRANT UPDATE ON LARGE OBJECT 2002 TO lo_writer`)
	p.peer.Exec(t, `GRANT UPDATE ON LARGE OBJECT 2002 TO lo_writer`)
	p.peer.Exec(t, `GRANT SELECT ON LARGE OBJECT 2002 TO lo_reader`)
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	want := "large objects differ: 2000's owner or privileges differ, 2001's owner or privileges differ"
	if len(diffs) != 1 || diffs[0] != want {
		t.Errorf("verify: %q, want [%q]", diffs, want)
	}
}
