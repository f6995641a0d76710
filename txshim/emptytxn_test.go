package txshim

import "testing"

// TestNothingToDecode: a transaction that got an id but whose changes decode to nothing — row
// locks only (SELECT … FOR UPDATE, the common "lock, look, decide not to write"), writes to an
// UNLOGGED table only, an explicit pg_current_xact_id() — was prepared but never delivered by
// the decoder: its dual commit waited out commit_timeout for it and sent the site on alone,
// the peer out of step until catch-up. Each now commits dual at once, the peer in step.
func TestNothingToDecode(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t, `CREATE TABLE k (id int PRIMARY KEY, v text)`, `INSERT INTO k VALUES (1, 'a')`,
		`CREATE UNLOGGED TABLE u (id int)`)
	for _, q := range []string{
		`BEGIN; SELECT * FROM k FOR UPDATE; COMMIT`,
		`BEGIN; SELECT * FROM k WHERE id = 1 FOR SHARE; COMMIT`,
		`INSERT INTO u VALUES (1)`,
		`BEGIN; SELECT pg_current_xact_id(); COMMIT`,
		// A chained transaction keeps its characteristics behind the check's new column.
		`BEGIN ISOLATION LEVEL REPEATABLE READ; INSERT INTO k VALUES (2, 'b'); COMMIT AND CHAIN; INSERT INTO k SELECT 3, current_setting('transaction_isolation'); COMMIT`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped() // fails unless the site is still dual with the peer in step
	if got := queryOne[string](t, p.pdb, `SELECT v FROM k WHERE id = 3`); got != "repeatable read" {
		t.Errorf("the chained transaction ran at %q, want repeatable read", got)
	}
}
