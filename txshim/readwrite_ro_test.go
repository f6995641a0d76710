package txshim

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestReadOnlyClientMadeReadWrite: on a backup (read-only mode) a client could make its own
// transaction read-write — BEGIN/START TRANSACTION … READ WRITE, SET TRANSACTION READ WRITE,
// SET [LOCAL] transaction_read_only = off, RESET transaction_read_only — in either protocol,
// alone or in a multi-statement query, and write in it: its rows were rolled back at COMMIT
// (25006), but nextval and setval, which no rollback undoes, moved the backup's sequence, and
// the transaction could hold the locks of its writes (against the apply) until it ended. As
// on a hot standby, such a statement is refused now, so every write fails with 25006 whatever
// the client does; reads, the harmless characteristics (READ ONLY, isolation levels, the
// session's default) and an idle session are unaffected, and once master the same statements
// write. The same in fenced mode, for a transaction open from before.
func TestReadOnlyClientMadeReadWrite(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE SEQUENCE rseq`)
	c.Exec(t, `CREATE TABLE rt (id int PRIMARY KEY)`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeReadOnly, 1)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, 120*time.Second)
	idle := s.connect(t) // connected before, idle throughout
	simple, ext := pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement
	type step struct {
		q    string
		mode pgx.QueryExecMode
	}
	steps := func(mode pgx.QueryExecMode, qs ...string) []step {
		var r []step
		for _, q := range qs {
			r = append(r, step{q, mode})
		}
		return r
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"BEGIN READ WRITE", steps(simple, "BEGIN READ WRITE", "SELECT nextval('rseq')", "INSERT INTO rt VALUES (1)", "COMMIT")},
		{"multi-statement BEGIN READ WRITE", steps(simple, "BEGIN READ WRITE; SELECT setval('rseq', 500); COMMIT")},
		{"START TRANSACTION", steps(simple, "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ /* c */ WRITE", "SELECT nextval('rseq')", "COMMIT")},
		{"BEGIN WORK", steps(simple, "begin work read write", "SELECT nextval('rseq')", "ROLLBACK")},
		{"SET TRANSACTION", steps(simple, "BEGIN", "SET TRANSACTION READ WRITE", "SELECT nextval('rseq')", "ROLLBACK")},
		{"SET TRANSACTION isolation", steps(simple, "BEGIN", "SET TRANSACTION ISOLATION LEVEL READ COMMITTED READ WRITE", "SELECT nextval('rseq')", "ROLLBACK")},
		{"SET LOCAL", steps(simple, "BEGIN", "SET LOCAL transaction_read_only = off", "SELECT nextval('rseq')", "ROLLBACK")},
		{"SET quoted", steps(simple, "BEGIN", `SET SESSION "transaction_read_only" TO 'false'`, "SELECT nextval('rseq')", "ROLLBACK")},
		{"SET U&", steps(simple, "BEGIN", `SET U&"transaction_read_onl\0079" = 0`, "SELECT nextval('rseq')", "ROLLBACK")},
		{"SET DEFAULT", steps(simple, "BEGIN", "SET transaction_read_only TO DEFAULT", "SELECT nextval('rseq')", "ROLLBACK")},
		{"RESET", steps(simple, "BEGIN", "RESET transaction_read_only", "SELECT nextval('rseq')", "ROLLBACK")},
		{"savepoint", steps(simple, "BEGIN READ WRITE", "SAVEPOINT a", "SELECT nextval('rseq')", "RELEASE a", "ROLLBACK")},
		{"PREPARE/EXECUTE", steps(simple, "PREPARE pn AS SELECT nextval('rseq')", "BEGIN READ WRITE", "EXECUTE pn", "COMMIT")},
		{"implicit multi-statement", steps(simple, "SET TRANSACTION READ WRITE; SELECT nextval('rseq')")},
		{"implicit multi-statement SET", steps(simple, "SET transaction_read_only = off; SELECT setval('rseq', 500); INSERT INTO rt VALUES (2)")},
		{"DO block", steps(simple, "SET TRANSACTION READ WRITE; DO $$BEGIN PERFORM nextval('rseq'); END$$")},
		{"extended BEGIN READ WRITE", steps(ext, "BEGIN READ WRITE", "SELECT nextval('rseq')", "INSERT INTO rt VALUES (3)", "COMMIT")},
		{"extended SET TRANSACTION", steps(ext, "BEGIN", "SET TRANSACTION READ WRITE", "SELECT setval('rseq', 500)", "ROLLBACK")},
		{"extended SET", steps(ext, "BEGIN", "SET transaction_read_only = off", "SELECT nextval('rseq')", "ROLLBACK")},
	}
	// check: nothing written, and the first error 25006.
	check := func(name string, codes []string) {
		t.Helper()
		last := queryOne[int64](t, db, `SELECT last_value FROM rseq`)
		called := queryOne[bool](t, db, `SELECT is_called FROM rseq`)
		if last != 1 || called {
			t.Errorf("%s: read-only mode: the sequence moved (last_value %d, is_called %v)", name, last, called)
			db.Exec(`SELECT setval('rseq', 1, false)`)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM rt`); n != 0 {
			t.Errorf("%s: read-only mode: %d row(s) written", name, n)
			db.Exec(`TRUNCATE rt`)
		}
		if len(codes) == 0 || codes[0] != "25006" {
			t.Errorf("%s: errors %v, want 25006 first", name, codes)
		}
	}
	for _, tc := range cases {
		conn := s.connect(t)
		var codes []string
		for _, st := range tc.steps {
			_, err := conn.Exec(ctx, st.q, st.mode)
			if code := pgCode(err); code != "" {
				codes = append(codes, code)
			} else if err != nil {
				t.Fatalf("%s: %s: %v", tc.name, st.q, err)
			}
		}
		check(tc.name, codes)
		// The session reads on.
		var ro string
		if err := conn.QueryRow(ctx, "SELECT count(*)::text FROM rt").Scan(&ro); err != nil {
			t.Errorf("%s: a read after: %v", tc.name, err)
		}
		conn.Close(ctx)
	}

	// Pipelined in one request (extended protocol), and with a Flush after the change, the
	// write sent once its reply came.
	for _, tc := range []struct {
		name       string
		qs         []string
		flushAfter int
	}{
		{"pipeline", []string{"SET TRANSACTION READ WRITE", "SELECT nextval('rseq')", "INSERT INTO rt VALUES (4)"}, 0},
		{"pipeline BEGIN", []string{"BEGIN READ WRITE", "SELECT setval('rseq', 500)", "COMMIT"}, 0},
		{"pipeline flush", []string{"BEGIN", "SET transaction_read_only = off", "SELECT setval('rseq', 500)", "INSERT INTO rt VALUES (5)", "COMMIT"}, 2},
	} {
		conn := s.connect(t)
		p := conn.PgConn().StartPipeline(ctx)
		var codes []string
		read := func(n int) {
			for range n {
				res, err := p.GetResults()
				if rr, ok := res.(*pgconn.ResultReader); ok {
					_, err = rr.Close()
				}
				if code := pgCode(err); code != "" {
					codes = append(codes, code)
				} else if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
			}
		}
		for i, q := range tc.qs {
			if i == tc.flushAfter && i > 0 {
				p.SendFlushRequest()
				if err := p.Flush(); err != nil {
					t.Fatal(err)
				}
				read(i)
			}
			p.SendQueryParams(q, nil, nil, nil, nil)
		}
		p.SendPipelineSync()
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		read(len(tc.qs) - tc.flushAfter + 1)
		if err := p.Close(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		check(tc.name, codes)
		conn.Close(ctx)
	}

	// What cannot make a transaction read-write passes: reads in transactions of every kind.
	conn := s.connect(t)
	for _, q := range []string{
		"BEGIN READ ONLY; SELECT count(*) FROM rt; COMMIT",
		"BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION READ ONLY; SELECT 1; COMMIT",
		"BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE; SELECT 1; COMMIT",
		"BEGIN; SET LOCAL transaction_read_only = on; SET transaction_read_only TO 'yes'; SELECT 1; COMMIT",
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
		"SELECT 'BEGIN READ WRITE', 'SET transaction_read_only = off'",
	} {
		if _, err := conn.Exec(ctx, q, simple); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	// A Query that does not parse fails whole, as PostgreSQL fails it, none of it run.
	for _, q := range []string{"SELECT 1; BEGIN READ WRITE; SELECT 1 +", "SELECT 1; SET transaction_read_only = off; SELECT (1"} {
		r := dialRaw(t, s)
		got := strings.ReplaceAll(r.query(q), "S", "")
		r.conn.Close()
		d := dialRawDSN(t, c.DSN(c.Database()))
		d.query("SET default_transaction_read_only = on")
		want := strings.ReplaceAll(d.query(q), "S", "")
		d.conn.Close()
		if got != want {
			t.Errorf("%q: replies %s; PostgreSQL's %s", q, got, want)
		}
	}
	// Fenced: a transaction open from before, begun read-only, cannot be made read-write
	// either; new ones are refused (57P03).
	fc := s.connect(t)
	if _, err := fc.Exec(ctx, "BEGIN", simple); err != nil {
		t.Fatal(err)
	}
	s.SetMode(ModeFenced, 1)
	var codes []string
	for _, q := range []string{"SET TRANSACTION READ WRITE", "SELECT nextval('rseq')", "ROLLBACK", "SELECT 1"} {
		if _, err := fc.Exec(ctx, q, simple); err != nil {
			codes = append(codes, pgCode(err))
		}
	}
	check("fenced", codes)
	if len(codes) != 3 || codes[2] != "57P03" {
		t.Errorf("fenced: errors %v, want 25006, 25P02 (the transaction failed), 57P03 (a new one)", codes)
	}
	s.SetMode(ModeReadOnly, 1)
	var one int
	if err := idle.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("the idle session: %v", err)
	}

	// Master: the same statements write, on the sessions of before.
	s.SetMode(ModeDual, 2)
	for _, cn := range []*pgx.Conn{idle, conn} {
		for _, q := range []string{
			"BEGIN READ WRITE; SELECT nextval('rseq'); INSERT INTO rt SELECT coalesce(max(id), 0) + 1 FROM rt; COMMIT",
			"BEGIN; SET TRANSACTION READ WRITE; INSERT INTO rt SELECT coalesce(max(id), 0) + 1 FROM rt; COMMIT",
		} {
			if _, err := cn.Exec(ctx, q, simple); err != nil {
				t.Errorf("dual: %s: %v", q, err)
			}
		}
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM rt`); n != 4 {
		t.Errorf("dual: %d rows, want 4", n)
	}
}

// TestMakesReadWrite: the statements that may make a transaction read-write, in the spellings
// PostgreSQL takes, and those that cannot.
func TestMakesReadWrite(t *testing.T) {
	for q, want := range map[string]bool{
		"BEGIN READ WRITE": true,
		"begin isolation level serializable, read write":            true,
		"START TRANSACTION READ/**/WRITE;":                          true,
		"BEGIN WORK READ WRITE;":                                    true,
		"BEGIN TRANSACTION DEFERRABLE READ -- c\n WRITE":            true,
		"SET TRANSACTION READ WRITE":                                true,
		"set transaction isolation level read committed read write": true,
		"SET transaction_read_only = off":                           true,
		"SET LOCAL transaction_read_only TO false":                  true,
		`SET SESSION "Transaction_Read_Only" = 'no'`:                true,
		`SET U&"transaction_read_only" = off`:                       true,
		`SET u&"\0074ransaction_read_only" = on`:                    true,
		"SET transaction_read_only = DEFAULT":                       true,
		"SET transaction_read_only TO default;":                     true,
		"RESET transaction_read_only":                               true,
		`RESET "transaction_read_only"`:                             true,
		"SET transaction_read_only FROM CURRENT":                    true,
		"SET transaction_read_only = 'of'":                          true,
		"SET transaction_read_only = 0":                             true,
		"SET transaction_read_only = 10":                            true,
		"/* c */ SET transaction_read_only = off":                   true,
		"BEGIN":                                false,
		"BEGIN READ ONLY":                      false,
		"BEGIN ISOLATION LEVEL READ COMMITTED": false,
		"START TRANSACTION READ ONLY, ISOLATION LEVEL READ UNCOMMITTED": false,
		"SET TRANSACTION READ ONLY":                                     false,
		"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ":               false,
		"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'":                false,
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE":         false,
		"SET default_transaction_read_only = off":                       false,
		"SET transaction_read_only = on":                                false,
		"SET transaction_read_only TO 'true'":                           false,
		"SET LOCAL transaction_read_only = 1;":                          false,
		"set transaction_read_only = YES":                               false,
		"RESET ALL":                                                     false,
		"RESET default_transaction_read_only":                           false,
		"SET search_path = read, write":                                 false,
		"SELECT 'BEGIN READ WRITE', 'SET transaction_read_only = off'":  false,
		"SELECT set_config('transaction_read_only', 'off', true)":       false, // PostgreSQL refuses it after the snapshot (25001)
		"COMMIT":                      false,
		"DO $$BEGIN PERFORM 1; END$$": false,
	} {
		var got bool
		for _, st := range splitStatements(q) {
			got = got || makesReadWrite(q, st)
		}
		if got != want {
			t.Errorf("%q: makesReadWrite %v, want %v", q, got, want)
		}
	}
}
