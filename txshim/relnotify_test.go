package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRelationsThatNotify: a transaction that reads a view calling pg_notify or a function that
// may notify, or inserts into a table whose column default calls such a function, cannot be
// prepared. The shim knew of tables whose triggers notify only: it dual committed such a
// transaction, whose PREPARE TRANSACTION failed with 0A000, and the client's COMMIT rolled back
// where PostgreSQL's commits. Such a transaction now commits plainly.
func TestRelationsThatNotify(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	setup := dialRaw(t, s)
	if got := setup.query(`CREATE FUNCTION tandem_nf() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM pg_notify('tandem_ch', 'f'); RETURN 1; END$$;
CREATE VIEW nv AS SELECT pg_notify('tandem_ch', 'v')::text AS n;
CREATE VIEW nv2 AS SELECT tandem_nf() AS n;
CREATE VIEW nv3 AS SELECT * FROM nv2;
CREATE TABLE dflt (id int, n int DEFAULT tandem_nf())`); strings.Contains(got, "E") {
		t.Fatalf("setup: %q", got)
	}
	// The shim reads the lists again at the first statement that needs them after DDL through
	// it: one that reads, then the wait for the lists.
	ddl := time.Now()
	time.Sleep(2 * ddlReread)
	setup.query("SELECT * FROM acct")
	for deadline := time.Now().Add(10 * time.Second); !s.Catalog().ReadAt.After(ddl); {
		if time.Now().After(deadline) {
			t.Fatalf("the shim's lists: %+v", s.Catalog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stmts := []string{
		"SELECT * FROM nv",
		"SELECT * FROM nv2",
		"TABLE nv3",
		"INSERT INTO dflt (id) VALUES (1)",
	}
	for i, st := range stmts {
		r := dialRaw(t, s) // each its own session: a failed PREPARE makes the session's later commits plain
		r.t = t
		q := fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 0); %s; COMMIT", i+1, st)
		if got := r.query(q); strings.Contains(got, "E") {
			t.Errorf("%q: %q", q, got)
		}
	}
	if n := rowCount(t, c, "true"); n != len(stmts) {
		t.Errorf("%d rows committed, want %d", n, len(stmts))
	}
	if n := preparedCount(t, c); n != 0 {
		t.Errorf("%d prepared transactions left", n)
	}
}
