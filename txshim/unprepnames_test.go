package txshim

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestUnprepNameReused: a prepared statement name that once ran pg_notify stayed marked for the
// session: deallocated (or closed, or dropped with DEALLOCATE ALL or DISCARD ALL) and prepared
// again as an ordinary write, every transaction that ran it with SQL EXECUTE committed plainly,
// unwrapped, instead of on both databases; and a client preparing and deallocating ever new
// names kept a record of each for as long as the session lasted.
func TestUnprepNameReused(t *testing.T) {
	t.Parallel()
	_, _, s := dualShim(t)
	r := dialRaw(t, s)
	r.t = t
	notify := func(name string) string {
		return "PREPARE " + name + " AS SELECT pg_catalog.pg_notify('tandem_ch', 'x')"
	}
	cases := []struct {
		name  string
		setup func()
		run   string
	}{
		{"deallocate", func() {
			r.query(notify("p"))
			r.query("DEALLOCATE p")
			r.query("PREPARE p AS INSERT INTO acct VALUES (1, 0)")
		}, "BEGIN; EXECUTE p; COMMIT"},
		{"close", func() {
			for _, m := range []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "pn", Query: "SELECT pg_notify('tandem_ch', 'y')"},
				&pgproto3.Close{ObjectType: 'S', Name: "pn"},
				&pgproto3.Parse{Name: "pn", Query: "INSERT INTO acct VALUES (2, 0)"},
			} {
				r.fe.Send(m)
				if got, _ := r.sync(); got != "1Z" && got != "3Z" {
					t.Fatalf("%T: %q", m, got)
				}
			}
		}, "BEGIN; EXECUTE pn; COMMIT"},
		{"deallocate all", func() {
			r.query(notify("d"))
			r.query("DEALLOCATE ALL")
			r.query("PREPARE d AS INSERT INTO acct VALUES (3, 0)")
		}, "BEGIN; EXECUTE d; COMMIT"},
		{"discard all", func() {
			r.query(notify("e"))
			r.query("DISCARD ALL")
			r.query("PREPARE e AS INSERT INTO acct VALUES (4, 0)")
		}, "BEGIN; EXECUTE e; COMMIT"},
	}
	for _, tc := range cases {
		tc.setup()
		before := s.Stats()
		if got := r.query(tc.run); strings.Contains(got, "E") {
			t.Fatalf("%s: %q", tc.run, got)
		}
		after := s.Stats()
		if d, u := after.CommitsDual-before.CommitsDual, after.Unwrapped-before.Unwrapped; d != 1 || u != 0 {
			t.Errorf("%s: %d dual commits, %d unwrapped; want 1, 0", tc.name, d, u)
		}
	}
}
