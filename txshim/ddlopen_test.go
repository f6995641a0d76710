package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestNotifyTriggerMadeInOpenTransaction: after DDL through the shim the lists are read again at
// the first statement that needs them once ddlReread passed; a trigger that notifies, made in a
// transaction still open then, was not in what that read saw, and no read followed its COMMIT
// until FuncRefresh: the first transaction that wrote its table was dual committed, its PREPARE
// TRANSACTION failed with 0A000 and the client's COMMIT rolled back where PostgreSQL's commits.
func TestNotifyTriggerMadeInOpenTransaction(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	setup := dialRaw(t, s)
	if got := setup.query(`CREATE TABLE jobs2 (id int PRIMARY KEY)`); got != "CZ" {
		t.Fatalf("setup: %q", got)
	}
	r := dialRaw(t, s)
	r.t = t
	for _, q := range []string{
		`BEGIN`,
		`CREATE FUNCTION jobs2_n() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_notify('jobs', NEW.id::text); RETURN NEW; END$$`,
		`CREATE TRIGGER jobs2_t AFTER INSERT ON jobs2 FOR EACH ROW EXECUTE FUNCTION jobs2_n()`,
	} {
		if got := r.query(q); strings.Contains(got, "E") {
			t.Fatalf("%s: %q", q, got)
		}
	}
	time.Sleep(2 * ddlReread)
	r.query("SELECT * FROM acct") // the lists are read again, the trigger not committed yet
	if got := r.query("COMMIT"); strings.Contains(got, "E") {
		t.Fatalf("COMMIT: %q", got)
	}
	time.Sleep(2 * ddlReread)
	w := dialRaw(t, s)
	w.t = t
	if got := w.query("BEGIN; INSERT INTO jobs2 VALUES (1); COMMIT"); strings.Contains(got, "E") {
		t.Errorf("insert: %q", got)
	}
	var n int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM jobs2").Scan(&n); err != nil || n != 1 {
		t.Errorf("jobs2 has %d rows (%v), want 1", n, err)
	}
}
