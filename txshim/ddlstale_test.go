package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNotifyTriggerRightAfterDDL: a trigger that notifies, created through the shim, makes the
// transactions that write its table ones that cannot be prepared. The shim read its lists again
// at the first statement that needed them after the DDL, but that statement went on with the
// lists read before, as did those that came while the read ran: their transactions were dual
// committed, PREPARE TRANSACTION failed with 0A000, and the client's COMMIT rolled back where
// PostgreSQL's commits. They now wait for the lists.
func TestNotifyTriggerRightAfterDDL(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	setup := dialRaw(t, s)
	for _, q := range []string{
		`CREATE TABLE jobs (id int PRIMARY KEY)`,
		`CREATE FUNCTION jobs_n() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_notify('jobs', NEW.id::text); RETURN NEW; END$$`,
		`CREATE TRIGGER jobs_t AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_n()`,
	} {
		if got := setup.query(q); got != "CZ" {
			t.Fatalf("%s: %q", q, got)
		}
	}
	time.Sleep(2 * ddlReread)
	for i := 1; i <= 2; i++ {
		r := dialRaw(t, s) // each its own session: a failed PREPARE makes the session's later commits plain
		r.t = t
		q := fmt.Sprintf("BEGIN; INSERT INTO jobs VALUES (%d); COMMIT", i)
		if got := r.query(q); strings.Contains(got, "E") {
			t.Errorf("%q: %q", q, got)
		}
	}
	var n int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM jobs").Scan(&n); err != nil || n != 2 {
		t.Errorf("jobs has %d rows (%v), want 2", n, err)
	}
}
