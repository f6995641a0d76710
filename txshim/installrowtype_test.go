package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallRowTypeColumnOrder: install takes a table whose columns are in another order on
// each database (the apply maps them by name: TestApplyColumnOrder), but a table's row type may
// be a column's type too — directly, as an array, under a domain, as a composite type's
// attribute — and a value of it is shipped as its text, which gives the fields by position.
// The peer read (1,x,y) of co (id, a, b) as co (id, b, a): a and b swapped, silently, and verify
// saw the same text on both sides. Install must refuse such a table's other order, naming its
// row type; a table whose row type no column uses keeps its freedom.
func TestInstallRowTypeColumnOrder(t *testing.T) {
	t.Parallel()
	const local, peer = `CREATE TABLE co (id int PRIMARY KEY, a text, b text)`, `CREATE TABLE co (id int PRIMARY KEY, b text, a text)`
	for _, tc := range []struct {
		name string
		uses []string // on both databases
		ok   bool
	}{
		{name: "column", uses: []string{`CREATE TABLE hist (id int PRIMARY KEY, snap co)`}},
		{name: "array", uses: []string{`CREATE TABLE hist (id int PRIMARY KEY, snaps co[])`}},
		{name: "domain", uses: []string{`CREATE DOMAIN cod AS co`, `CREATE TABLE hist (id int PRIMARY KEY, snap cod)`}},
		{name: "composite attribute", uses: []string{`CREATE TYPE wrap AS (at timestamptz, snap co)`, `CREATE TABLE hist (id int PRIMARY KEY, w wrap)`}},
		{name: "unused", ok: true, uses: []string{`CREATE FUNCTION co_label(c co) RETURNS text LANGUAGE sql AS 'SELECT c.a'`,
			`CREATE VIEW cov AS SELECT c AS snap, ARRAY[c] AS snaps FROM co c`, `CREATE UNLOGGED TABLE cache (id int PRIMARY KEY, snap co)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startCapPair(t)
			p.local.Exec(t, local)
			p.peer.Exec(t, peer)
			p.both(t, tc.uses...)
			err := Install(capCtx(t, 60*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger())
			switch {
			case tc.ok && err != nil:
				t.Fatalf("Install refused a column order no value's text depends on: %v", err)
			case tc.ok:
			case err == nil:
				t.Fatal("Install accepted another column order of a table whose row type a column holds")
			case !strings.Contains(err.Error(), `type "public"."co"`) || !strings.Contains(err.Error(), "b text, a text"):
				t.Errorf("the refusal does not name co's row type and its order on the peer: %v", err)
			}
		})
	}
}
