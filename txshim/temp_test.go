package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestTempObjectsCommitPlainly: a write transaction that operated on temporary objects the shim
// did not see coming — made, used or dropped by a function (through the shim or made straight
// on the database, with static or dynamic SQL), or made by such a function in an earlier
// transaction of the session and written by a plain INSERT later — commits plainly in dual mode
// (PostgreSQL cannot PREPARE it) instead of failing at PREPARE with 0A000 and losing the
// client's transaction; its reply waits until the peer has its rows. Temporary tables made
// through the shim (ON COMMIT DROP too) were already seen; a session that never made a
// temporary object still commits on both databases.
func TestTempObjectsCommitPlainly(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	if _, err := admin.Exec(ctx, `CREATE TABLE rows (id int PRIMARY KEY);
CREATE FUNCTION tmp_static(i int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE scratch (a int);
  INSERT INTO scratch VALUES (i);
  INSERT INTO rows SELECT a FROM scratch;
  DROP TABLE scratch;
  RETURN i;
END $$;
CREATE FUNCTION tmp_dynamic(i int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'CREATE TEMP TABLE ' || quote_ident('dyn_' || i) || ' (a int) ON COMMIT DROP';
  EXECUTE format('INSERT INTO %I VALUES (%s)', 'dyn_' || i, i);
  EXECUTE format('INSERT INTO rows SELECT a FROM %I', 'dyn_' || i);
  RETURN i;
END $$`); err != nil {
		t.Fatal(err)
	}
	// Made straight on the database: not in the shim's lists until it reads them again, and
	// in information_schema, where its lists do not look.
	// direct_tmp is made on the peer too, where the shim does not look: verify compares the
	// databases' functions.
	if _, err := e.peerDB.Exec(directTmp); err != nil {
		t.Fatal(err)
	}
	if _, err := e.localDB.Exec(directTmp + `;
CREATE FUNCTION information_schema.make_kept() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE kept (a int);
  RETURN 0;
END $$`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); e.peerString(t, "SELECT coalesce(to_regprocedure('tmp_dynamic(int)')::text, '')") == ""; {
		if time.Now().After(deadline) {
			t.Fatal("the peer has no function tmp_dynamic after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	before := e.shim.Stats()
	// committed runs stmts, the last of which commits a write that operated on temporary
	// objects: it commits plainly, and the peer has its row when the client hears of it.
	committed := func(what string, c *pgx.Conn, id int, stmts ...string) {
		t.Helper()
		pre := e.shim.Stats()
		for _, q := range stmts {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Errorf("%s: %s: %v", what, q, err)
				if c.PgConn().TxStatus() != 'I' {
					c.Exec(ctx, "ROLLBACK")
				}
				return
			}
		}
		if got := e.peerString(t, "SELECT count(*)::text FROM rows WHERE id = $1", id); got != "1" {
			t.Errorf("%s: row %d not on the peer when the client heard of the commit", what, id)
		}
		if st := e.shim.Stats(); st.Unwrapped != pre.Unwrapped+1 || st.CommitsDual != pre.CommitsDual {
			t.Errorf("%s: stats before %+v, after %+v: want one more unwrapped commit", what, pre, st)
		}
	}

	committed("function making and dropping a temporary table, autocommit", e.connect(t), 1, "SELECT tmp_static(1)")
	committed("function making and dropping a temporary table, explicit transaction", e.connect(t), 2,
		"BEGIN", "SELECT tmp_static(2)", "COMMIT")
	committed("dynamic SQL making an ON COMMIT DROP temporary table", e.connect(t), 3, "SELECT tmp_dynamic(3)")
	committed("function made straight on the database, with a write", e.connect(t), 4,
		"BEGIN", "SELECT direct_tmp(4)", "INSERT INTO rows VALUES (4)", "COMMIT")
	// A temporary table made by a function the shim does not know of in an earlier transaction
	// (taken for a read: committed as one), then written by plain statements.
	later := e.connect(t)
	if _, err := later.Exec(ctx, "SELECT information_schema.make_kept()"); err != nil {
		t.Fatal(err)
	}
	committed("plain INSERT into a temporary table a function made earlier, with a write", later, 5,
		"BEGIN", "INSERT INTO kept VALUES (5)", "INSERT INTO rows VALUES (5)", "COMMIT")
	// Seen by the lexer already: ON COMMIT DROP, and a temporary table of an earlier transaction.
	committed("ON COMMIT DROP temporary table through the shim", e.connect(t), 6,
		"BEGIN", "CREATE TEMP TABLE ocd (a int) ON COMMIT DROP", "INSERT INTO ocd VALUES (6)", "INSERT INTO rows SELECT a FROM ocd", "COMMIT")
	shimTemp := e.connect(t)
	if _, err := shimTemp.Exec(ctx, "CREATE TEMP TABLE st (a int)"); err != nil {
		t.Fatal(err)
	}
	committed("temporary table made through the shim earlier", shimTemp, 7,
		"BEGIN", "INSERT INTO st VALUES (7)", "INSERT INTO rows SELECT a FROM st", "COMMIT")

	// A session without temporary objects still commits on both databases.
	mid := e.shim.Stats()
	if _, err := admin.Exec(ctx, "INSERT INTO rows VALUES (8)"); err != nil {
		t.Fatal(err)
	}
	if st := e.shim.Stats(); st.CommitsDual != mid.CommitsDual+1 || st.Unwrapped != mid.Unwrapped {
		t.Fatalf("ordinary write: stats before %+v, after %+v: want one more dual commit", mid, st)
	}
	if t.Failed() {
		return
	}
	e.settle(t, before)
}

// directTmp makes a function, not a temporary object itself, that makes a temporary table.
const directTmp = `CREATE FUNCTION direct_tmp(i int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS kept (a int);
  INSERT INTO kept VALUES (i);
  RETURN i;
END $$`
