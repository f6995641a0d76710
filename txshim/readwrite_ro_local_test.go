package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReadOnlySetLocalTransactionReadWrite: SET LOCAL TRANSACTION … and SET SESSION
// TRANSACTION … are PostgreSQL's spellings of SET TRANSACTION … (SET [LOCAL | SESSION]
// set_rest): READ WRITE in them made a read-only mode's transaction read-write as SET
// TRANSACTION READ WRITE did, and nextval moved the backup's sequence. They are refused with
// 25006 as SET TRANSACTION READ WRITE is; SET LOCAL TRANSACTION READ ONLY passes.
func TestReadOnlySetLocalTransactionReadWrite(t *testing.T) {
	for q, want := range map[string]bool{
		"SET LOCAL TRANSACTION READ WRITE":                                 true,
		"set session transaction isolation level serializable, read write": true,
		"SET LOCAL TRANSACTION ISOLATION LEVEL READ COMMITTED":             false,
		"SET SESSION TRANSACTION READ ONLY":                                false,
		"SET SESSION SESSION CHARACTERISTICS AS TRANSACTION READ WRITE":    false,
		"SET LOCAL transaction_read_only = on":                             false,
	} {
		var got bool
		for _, st := range splitStatements(q) {
			got = got || makesReadWrite(q, st)
		}
		if got != want {
			t.Errorf("%q: makesReadWrite %v, want %v", q, got, want)
		}
	}

	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE SEQUENCE rseq`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeReadOnly, 1)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, 60*time.Second)
	for _, set := range []string{"SET LOCAL TRANSACTION READ WRITE", "SET SESSION TRANSACTION READ WRITE"} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			conn := s.connect(t)
			var codes []string
			for _, q := range []string{"BEGIN", set, "SELECT nextval('rseq')", "ROLLBACK"} {
				if _, err := conn.Exec(ctx, q, mode); err != nil {
					codes = append(codes, pgCode(err))
				}
			}
			conn.Close(ctx)
			last := queryOne[int64](t, db, `SELECT last_value FROM rseq`)
			called := queryOne[bool](t, db, `SELECT is_called FROM rseq`)
			if last != 1 || called {
				t.Errorf("%s (%v): read-only mode: the sequence moved (last_value %d, is_called %v)", set, mode, last, called)
				db.Exec(`SELECT setval('rseq', 1, false)`)
			}
			if len(codes) == 0 || codes[0] != "25006" {
				t.Errorf("%s (%v): errors %v, want 25006 first", set, mode, codes)
			}
		}
	}
}
