package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestDoBlockCallsQuotedName: a DO block calling, by a quoted name with capitals, a function
// that may notify cannot be prepared. The words of the block's body were looked up folded to
// lower case, quoted or not, so "Nf" was taken for nf: the transaction was dual committed, its
// PREPARE TRANSACTION failed with 0A000 and the client's COMMIT rolled back where PostgreSQL's
// commits.
func TestDoBlockCallsQuotedName(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	setup := dialRaw(t, s)
	if got := setup.query(`CREATE FUNCTION "Nf"() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM pg_notify('tandem_ch', 'f'); RETURN 1; END$$`); got != "CZ" {
		t.Fatalf("CREATE FUNCTION: %q", got)
	}
	time.Sleep(time.Second) // the shim reads the catalog again after DDL through it
	r := dialRaw(t, s)
	r.t = t
	q := `BEGIN; INSERT INTO acct VALUES (1, 0); DO $$BEGIN PERFORM "Nf"(); END$$; COMMIT`
	if got := r.query(q); strings.Contains(got, "E") {
		t.Errorf("%q: %q", q, got)
	}
	if n := rowCount(t, c, "true"); n != 1 {
		t.Errorf("%d rows committed, want 1", n)
	}
	if n := preparedCount(t, c); n != 0 {
		t.Errorf("%d prepared transactions left", n)
	}
}
