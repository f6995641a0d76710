package txshim

import (
	"testing"
	"time"
)

// TestKeyAddedToFullIdentityTable pins down what happens when a table Install gave REPLICA
// IDENTITY FULL (it had no key) gets a primary key through the shim: it keeps FULL on both
// databases (nothing resets it: the shim checks only DDL that may leave a table keyless), so
// its updates and deletes ship the whole old row and the peer finds the row by every column.
// That costs WAL and apply time but not correctness: rows with NULLs, json (no equality) and
// point values are still found, one row each, and the databases stay identical. ALTER TABLE …
// REPLICA IDENTITY DEFAULT through the shim goes back to the key on both.
func TestKeyAddedToFullIdentityTable(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE doc (id int NOT NULL, j json, pt point, n text)`)
	ctx := capCtx(t, 60*time.Second)
	if err := sh.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	c := shim.connect(t)
	for _, q := range []string{
		`INSERT INTO doc VALUES (1, '{"a": 1}', '(1,2)', NULL), (2, NULL, NULL, 'two'), (3, '[1, 2]', '(0,0)', NULL)`,
		`ALTER TABLE doc ADD PRIMARY KEY (id)`,
		`UPDATE doc SET n = 'one' WHERE id = 1`,
		`UPDATE doc SET j = '{"b": 2}' WHERE id = 2`,
		`DELETE FROM doc WHERE id = 3`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The last commit's change on the peer (the DELETE), not only an earlier one's: the
	// backlog is empty too between the decoder's deliveries of two commits.
	waitForLong(t, "the peer to hold every commit, or a refusal", 30*time.Second, func() bool {
		return sh.Err() != nil || (queryOne[bool](t, p.pdb, `SELECT count(*) FILTER (WHERE n = 'one') = 1 AND count(*) FILTER (WHERE id = 3) = 0 FROM doc`) && sh.Backlog() == 0)
	})
	if err := sh.Err(); err != nil {
		t.Fatalf("shipping: %v", err)
	}
	requireSame(t, p)
	for i, db := range [2]string{"local", "peer"} {
		d := p.ldb
		if i == 1 {
			d = p.pdb
		}
		if got := queryOne[string](t, d, `SELECT relreplident::text FROM pg_class WHERE oid = 'doc'::regclass`); got != "f" {
			t.Errorf("%s: doc's replica identity is %q; this test pins down that it stays f (FULL)", db, got)
		}
	}

	// The way back to the key, through the shim: shipped to the peer like any DDL.
	for _, q := range []string{`ALTER TABLE doc REPLICA IDENTITY DEFAULT`, `UPDATE doc SET n = 'uno' WHERE id = 1`} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitForLong(t, "the peer to hold the last update, or a refusal", 30*time.Second, func() bool {
		return sh.Err() != nil || (queryOne[int](t, p.pdb, `SELECT count(*) FROM doc WHERE n = 'uno'`) == 1 && sh.Backlog() == 0)
	})
	if err := sh.Err(); err != nil {
		t.Fatalf("shipping: %v", err)
	}
	requireSame(t, p)
	if got := queryOne[string](t, p.pdb, `SELECT relreplident::text FROM pg_class WHERE oid = 'doc'::regclass`); got != "d" {
		t.Errorf("peer: doc's replica identity is %q after REPLICA IDENTITY DEFAULT through the shim, want d", got)
	}
}
