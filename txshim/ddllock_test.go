package txshim

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCatalogReadDuringOpenDDL: the lists read again after DDL through the shim must not wait
// for that DDL's transaction. The read deparsed every view (pg_get_viewdef), which locks the
// view and the tables it reads: with ALTER TABLE on a table a view reads left open in a
// transaction, the read waited on its lock, and every statement of every session that needed
// the lists waited funcWait for it, the DDL's own session too, until the read gave up.
func TestCatalogReadDuringOpenDDL(t *testing.T) {
	t.Parallel()
	_, _, s := dualShim(t)
	setup := dialRaw(t, s)
	if got := setup.query(`CREATE TABLE vt (id int); CREATE VIEW vv AS SELECT id AS pg_notify_x FROM vt;
CREATE TABLE dn (id int, n text DEFAULT pg_notify('tandem_ch', 'd')::text);
CREATE FUNCTION vt_n() RETURNS bigint LANGUAGE sql STABLE BEGIN ATOMIC SELECT count(*) FROM vt; END;
CREATE FUNCTION "Tw"() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN 1; END$$;
CREATE FUNCTION sb_n() RETURNS void LANGUAGE sql STABLE BEGIN ATOMIC SELECT pg_notify('tandem_ch', 's'); END;
CREATE FUNCTION sb_w() RETURNS int LANGUAGE sql STABLE RETURN "Tw"() OPERATOR(pg_catalog.+) (SELECT count(*) FROM vt)::int`); strings.Contains(got, "E") {
		t.Fatalf("setup: %q", got)
	}
	ddl := time.Now()
	time.Sleep(2 * ddlReread)
	setup.query("SELECT * FROM acct")
	for deadline := time.Now().Add(10 * time.Second); !s.Catalog().ReadAt.After(ddl); {
		if time.Now().After(deadline) {
			t.Fatalf("the shim's lists: %+v", s.Catalog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the read finds is unchanged: the default calling pg_notify; a column named like it
	// is no call.
	if got := s.Catalog().NotifyTables; !slices.Equal(got, []string{"dn"}) {
		t.Errorf("relations that notify: %q, want [dn]", got)
	}
	// SQL-standard bodies are read from their dependencies and stored trees.
	s.funcs.mu.Lock()
	got := s.funcs.cat.funcs
	s.funcs.mu.Unlock()
	for name, notify := range map[string]bool{"Tw": false, "sb_n": true, "sb_w": false} {
		if nt, ok := got[name]; !ok || nt != notify {
			t.Errorf("function %s: listed %v, may notify %v; want listed, %v", name, ok, nt, notify)
		}
	}
	if _, ok := got["vt_n"]; ok {
		t.Errorf("vt_n listed as a function that may write: %v", got)
	}
	a := dialRaw(t, s)
	a.t = t
	if got := a.query("BEGIN; ALTER TABLE vt ADD COLUMN c int; DROP VIEW vv"); strings.Contains(got, "E") {
		t.Fatalf("ALTER TABLE: %q", got)
	}
	time.Sleep(2 * ddlReread)
	other := dialRaw(t, s)
	other.t = t
	for i, r := range []*rawSession{a, other, a, other} {
		start := time.Now()
		if got := r.query("SELECT * FROM acct"); strings.Contains(got, "E") {
			t.Fatalf("SELECT: %q", got)
		}
		if d := time.Since(start); d > funcWait/2 {
			t.Errorf("statement %d took %v with the DDL's transaction open", i, d)
		}
	}
	if got := a.query("COMMIT"); strings.Contains(got, "E") {
		t.Errorf("COMMIT: %q", got)
	}
}
