package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestVerifySubtleValues: Verify names a table whose one value differs from the other
// database's only subtly — equal under its type's "=", or spelled alike by careless output —
// and no other.
func TestVerifySubtleValues(t *testing.T) {
	t.Parallel()
	cases := []struct{ typ, local, peer string }{
		{"float8", `'0'`, `'-0'`},
		{"float8", `0.1::float8 + 0.2::float8`, `0.3`},
		{"real", `'1.4e-45'`, `'0'`},
		{"numeric", `1.0`, `1.00`},
		{"numeric", `'NaN'`, `'Infinity'`},
		{"timestamptz", `'2024-01-01 00:00:00+00'`, `'2024-01-01 00:00:00.000001+00'`},
		{"interval", `'1 day'`, `'24:00:00'`},
		{"interval", `'1 mon'`, `'30 days'`},
		{"json", `'{"a":1}'`, `'{"a": 1}'`},
		{"jsonb", `'{"a":1.0}'`, `'{"a":1}'`},
		{"int[]", `'[2:3]={1,2}'`, `'{1,2}'`},
		{"text[]", `'{a,NULL}'`, `'{a,"NULL"}'`},
		{"bytea", `'\x00'`, `'\x0000'`},
		{"varbit", `B'1'`, `B'10'`},
		{"money", `1.00`, `1.01`},
		{"text", `'a'`, `'a '`},
		{"text", `NULL`, `''`},
		{"text", `U&'\00e9'`, `U&'e\0301'`},
		{"int4multirange", `'{[1,3)}'`, `'{[1,4)}'`},
		{"timetz", `'10:00+05'`, `'05:00+00'`},
		{"inet", `'10.0.0.1/8'`, `'10.0.0.1/16'`},
		{"point", `'(0,0)'`, `'(-0,0)'`},
		{"float8[]", `'{NaN}'`, `'{-0}'`},
		{"date", `'infinity'`, `'5874897-12-31'`},
	}
	p := startCapPair(t)
	for i, c := range cases {
		p.both(t, fmt.Sprintf(`CREATE TABLE v%d (id int PRIMARY KEY, v %s)`, i, c.typ),
			fmt.Sprintf(`CREATE TABLE n%d (v %s)`, i, c.typ))
		p.local.Exec(t, fmt.Sprintf(`INSERT INTO v%d VALUES (1, %s)`, i, c.local))
		p.peer.Exec(t, fmt.Sprintf(`INSERT INTO v%d VALUES (1, %s)`, i, c.peer))
		p.local.Exec(t, fmt.Sprintf(`INSERT INTO n%d VALUES (%s)`, i, c.local))
		p.peer.Exec(t, fmt.Sprintf(`INSERT INTO n%d VALUES (%s)`, i, c.peer))
	}
	diffs, err := Verify(capCtx(t, 60*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(diffs, "\n")
	for i, c := range cases {
		for _, tb := range []string{"v", "n"} {
			if !strings.Contains(all, fmt.Sprintf("table public.%s%d ", tb, i)) {
				t.Errorf("%s %s against %s (table %s%d): no difference named", c.typ, c.local, c.peer, tb, i)
			}
		}
	}
	if len(diffs) != 2*len(cases) {
		t.Errorf("Verify: %d differences, want %d:\n%s", len(diffs), 2*len(cases), all)
	}
}
