package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDoBlockNotifies: a transaction with a DO block that notifies — NOTIFY or pg_notify in
// its body, or a call of a function that may notify — cannot be prepared. The lexer saw no
// NOTIFY in the block's body, a string to it, so the shim dual committed the transaction: its
// PREPARE TRANSACTION failed with 0A000 and the client's COMMIT rolled back where PostgreSQL's
// commits. Such a transaction now commits plainly, as one that notifies outside a DO block.
func TestDoBlockNotifies(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	setup := dialRaw(t, s)
	if got := setup.query(`CREATE FUNCTION tandem_nf() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM pg_notify('tandem_ch', 'f'); RETURN 1; END$$`); got != "CZ" {
		t.Fatalf("CREATE FUNCTION: %q", got)
	}
	time.Sleep(time.Second) // the shim reads the catalog again after DDL through it
	blocks := []string{
		"DO $$BEGIN PERFORM pg_notify('tandem_ch', 'x'); END$$",
		"DO $$BEGIN NOTIFY tandem_ch; END$$",
		"DO $do$BEGIN EXECUTE 'LISTEN tandem_ch'; END$do$",
		"DO LANGUAGE plpgsql $$BEGIN PERFORM tandem_nf(); END$$",
	}
	for i, b := range blocks {
		r := dialRaw(t, s) // each its own session: a failed PREPARE makes the session's later commits plain
		r.t = t
		q := fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 0); %s; COMMIT", i+1, b)
		if got := r.query(q); strings.Contains(got, "E") {
			t.Errorf("%q: %q", q, got)
		}
	}
	if n := rowCount(t, c, "true"); n != len(blocks) {
		t.Errorf("%d rows committed, want %d", n, len(blocks))
	}
	if n := preparedCount(t, c); n != 0 {
		t.Errorf("%d prepared transactions left", n)
	}
}
