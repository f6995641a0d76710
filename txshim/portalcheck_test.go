package txshim

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPortalToCheck: a COMMIT's portal is checked unless bound in the steps before it with
// nothing between that may end its transaction; the usual shape allocates nothing.
func TestPortalToCheck(t *testing.T) {
	build := func(ms ...pgproto3.FrontendMessage) *extUnit {
		u := &extUnit{}
		for _, m := range ms {
			lo := len(u.buf)
			u.buf, _ = m.Encode(u.buf)
			it := item{typ: u.buf[lo], lo: lo, hi: len(u.buf), info: stmtInfo{kind: kindEmpty}}
			if e, ok := m.(*pgproto3.Execute); ok && e.MaxRows == 1 {
				it.info.kind = kindCommit
			}
			u.items = append(u.items, it)
		}
		return u
	}
	commit := &pgproto3.Execute{MaxRows: 1}
	named := &pgproto3.Execute{Portal: "cp", MaxRows: 1}
	for _, c := range []struct {
		u     *extUnit
		lo    int
		check bool
	}{
		{build(&pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, commit), 0, false},
		{build(&pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Execute{}, named), 0, false},
		{build(&pgproto3.Bind{DestinationPortal: "cp"}, named), 1, true},
		{build(&pgproto3.Bind{DestinationPortal: "cp"}, named, named), 0, true},
		{build(&pgproto3.Bind{DestinationPortal: "cq"}, named), 0, true},
		{build(named), 0, true},
	} {
		i := len(c.u.items) - 1
		if _, check := portalToCheck(c.u, c.lo, i); check != c.check {
			t.Errorf("%q from %d: check %v, want %v", c.u.buf, c.lo, check, c.check)
		}
	}
	u := build(&pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, named)
	if n := testing.AllocsPerRun(100, func() { portalToCheck(u, 0, 2) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
