package txshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

func TestLexCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sql     string
		calls   string // joined by ","
		creates string
	}{
		{"SELECT f(1)", "f", ""},
		{"TABLE v", "", ""},
		{"select My_Func (1), s.G(2)", "my_func,g", ""},
		{`SELECT "Odd""Name"(1)`, `Odd"Name`, ""},
		{"SELECT count(*) FROM t WHERE a IN (1, 2)", "count,in", ""},
		{"SELECT 'f(1)', $$g(2)$$ -- h(3)\n", "", ""},
		{"SELECT f", "", ""},
		{"WITH x AS (SELECT w(1)) SELECT * FROM x", "as,w", ""},
		{"EXPLAIN SELECT f(1)", "", ""},
		{"EXPLAIN ANALYZE SELECT f(1)", "f", ""},
		{"SHOW f(1)", "", ""},
		{"INSERT INTO t VALUES (f(1))", "values,f", ""},
		{"CREATE OR REPLACE FUNCTION s.Add_One(i int) RETURNS int LANGUAGE sql AS $$ SELECT i + 1 $$", "", "add_one"},
		{`CREATE FUNCTION "Mixed"() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END`, "", "Mixed"},
		{"CREATE PROCEDURE p() LANGUAGE sql AS $$ SELECT 1 $$", "", ""},
		{"CREATE FUNCTION f() RETURNS int STABLE LANGUAGE sql AS $$ SELECT 1 $$", "", "f"},
		{"SELECT " + strings.Repeat("f(1), ", maxCalls+1) + "1", strings.TrimSuffix(strings.Repeat("f,", maxCalls), ",") + ",…", ""},
	}
	for _, tt := range tests {
		sts := splitStatements(tt.sql)
		if len(sts) != 1 {
			t.Fatalf("%q: %d statements", tt.sql, len(sts))
		}
		got := strings.Join(folded(sts[0].Calls), ",")
		if sts[0].ManyCalls {
			got += ",…"
		}
		if got != tt.calls || sts[0].Creates != tt.creates {
			t.Errorf("%q: calls %q creates %q, want %q and %q", tt.sql, got, sts[0].Creates, tt.calls, tt.creates)
		}
		if stable := strings.Contains(tt.sql, "STABLE"); sts[0].CreatesStable != stable {
			t.Errorf("%q: CreatesStable %v, want %v", tt.sql, sts[0].CreatesStable, stable)
		}
	}
	for sql, want := range map[string]string{
		"SELECT a FROM S.V1 WHERE x = 'Y'":    "select,a,from,s,v1,where,x",
		"insert into Jobs values (1)":         "insert,into,jobs,values",
		"SHOW work_mem":                       "",
		"EXPLAIN SELECT * FROM v":             "",
		"CREATE VIEW v AS SELECT * FROM jobs": "",

		// More words than the lexer keeps: ManyNames.
		"SELECT " + strings.Repeat("c, ", maxWords) + "c FROM v": "select" + strings.Repeat(",c", maxWords-1) + ",…",
	} {
		st := splitStatements(sql)[0]
		got := strings.Join(folded(st.Names), ",")
		if st.ManyNames {
			got += ",…"
		}
		if got != want {
			t.Errorf("%q: names %q, want %q", sql, got, want)
		}
	}
}

// TestWritingFunctionCommitsDual: a read that calls a function that writes is committed on both
// databases before the client hears of it, in every form a client sends it; reads that call
// only harmless functions pass as before.
func TestWritingFunctionCommitsDual(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL+`
CREATE FUNCTION open_acct(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING id $$;
CREATE FUNCTION "Open_Acct_PL"(i int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); END $$;
CREATE FUNCTION bal_of(i int) RETURNS int LANGUAGE sql STABLE AS $$ SELECT bal FROM acct WHERE id = i $$;
CREATE FUNCTION enqueue(i int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); PERFORM pg_notify('jobs', i::text); END $$;
CREATE TABLE jobs (id int PRIMARY KEY);
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NOTIFY jobs; RETURN NEW; END $$;
CREATE TRIGGER jobs_t AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_notify();
CREATE VIEW new_acct AS SELECT open_acct(13) AS id;
CREATE VIEW new_acct_too AS SELECT * FROM new_acct;
CREATE FUNCTION open_acct_stable(i int) RETURNS int LANGUAGE sql STABLE AS $$ SELECT open_acct(i) $$;
CREATE VIEW new_acct_stable AS SELECT open_acct_stable(14) AS id;
CREATE FUNCTION enqueue_later(i int) RETURNS void LANGUAGE plpgsql STABLE AS $$ BEGIN PERFORM public.enqueue(i); END $$;
CREATE TABLE jobs3 (id int PRIMARY KEY);
CREATE FUNCTION jobs3_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM "enqueue"(NEW.id + 1000); RETURN NEW; END $$;
CREATE TRIGGER jobs3_t AFTER INSERT ON jobs3 FOR EACH ROW EXECUTE FUNCTION jobs3_enqueue();
CREATE FUNCTION open_dyn(i int) RETURNS int LANGUAGE plpgsql STABLE AS $$ DECLARE r int;
  BEGIN EXECUTE 'SELECT open_' || 'acct($1)' INTO r USING i; RETURN r; END $$;`)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer, FuncRefresh: 200 * time.Millisecond}, ModeDual, 1)
	conn := s.connect(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	dual := func(what string, id int) {
		t.Helper()
		checkDual(t, peer.take(), 1)
		if rowCount(t, c, "id = "+strconv.Itoa(id)) != 1 || preparedCount(t, c) != 0 {
			t.Fatalf("%s: row %d missing or a prepared transaction left", what, id)
		}
	}

	cat := s.Catalog()
	for deadline := time.Now().Add(10 * time.Second); cat.ReadAt.IsZero() && time.Now().Before(deadline); cat = s.Catalog() {
		time.Sleep(10 * time.Millisecond) // the shim reads the catalog as it starts
	}
	if cat.ReadAt.IsZero() || cat.Err != "" || cat.WriterFunctions != 6 || cat.NotifyingFunctions != 2 ||
		strings.Join(cat.WriterViews, ",") != "new_acct,new_acct_stable,new_acct_too" || strings.Join(cat.NotifyTables, ",") != "jobs,jobs3" {
		t.Fatalf("catalog %+v: want 6 writer functions (open_acct, Open_Acct_PL, enqueue, open_acct_stable, enqueue_later, open_dyn), "+
			"2 notifying (enqueue, enqueue_later), views new_acct, new_acct_stable and new_acct_too, tables jobs and jobs3", cat)
	}
	exec("SELECT open_acct(1)") // simple protocol
	dual("simple", 1)
	exec("SELECT open_acct($1)", 2) // extended
	dual("extended", 2)
	exec(`SELECT "Open_Acct_PL"(3)`)
	dual("quoted name, PL/pgSQL", 3)
	exec("BEGIN")
	exec("SELECT public.open_acct(4)")
	exec("COMMIT")
	dual("explicit transaction", 4)
	exec("SELECT * FROM open_acct(5)")
	dual("in FROM", 5)
	exec("SELECT * FROM new_acct_too")
	dual("through a view of a view", 13)
	exec("SELECT open_acct_stable(15)") // PostgreSQL lets a STABLE function call one that writes
	dual("through a STABLE function", 15)
	exec("SELECT * FROM new_acct_stable")
	dual("through a view calling a STABLE function", 14)
	exec("SELECT open_dyn(17)") // SQL built at run time may call anything
	dual("through a STABLE function running dynamic SQL", 17)

	before := s.Stats()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) + coalesce(bal_of($1), 0) FROM acct WHERE id IN (1, 2)", 1).Scan(&n); err != nil || n != 2 {
		t.Fatalf("read: %d, %v", n, err)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("a read calling only stable and built-in functions reached the peer: %v", calls)
	}
	if after := s.Stats(); after.CommitsPlain != before.CommitsPlain || after.Unwrapped != before.Unwrapped {
		t.Fatalf("a read was wrapped: stats before %+v, after %+v", before, after)
	}

	// What notifies cannot be prepared: it commits plainly, without the error PREPARE would give.
	before = s.Stats()
	exec("SELECT enqueue(11)")
	exec("INSERT INTO jobs VALUES (1)")
	exec("INSERT INTO public.jobs VALUES ($1)", 2)
	exec("SELECT enqueue_later(16)")         // notifies through the function it calls
	exec("INSERT INTO jobs3 VALUES ($1)", 1) // the trigger's function calls one that notifies
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("a transaction that notifies reached the peer's prepare: %v", calls)
	}
	if st := s.Stats(); st.Unwrapped != before.Unwrapped+5 || rowCount(t, c, "id IN (11, 16, 1001)") != 3 {
		t.Fatalf("stats before %+v, after %+v: want five unwrapped commits", before, st)
	}
	before = s.Stats()

	// Created through the shim: counts at once (the DDL itself commits dual).
	exec("CREATE FUNCTION open_two(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING id $$")
	checkDual(t, peer.take(), 1)
	exec("SELECT open_two(6)")
	dual("created through the shim", 6)
	exec("CREATE FUNCTION open_two_stable(i int) RETURNS int LANGUAGE sql STABLE AS $$ SELECT open_two(i) $$")
	checkDual(t, peer.take(), 1)
	exec("SELECT open_two_stable(8)")
	dual("a STABLE function calling one that writes, created through the shim", 8)
	exec("CREATE FUNCTION two() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 2 $$")
	checkDual(t, peer.take(), 1)
	before = s.Stats()
	exec("SELECT two()")
	if calls := peer.take(); len(calls) != 0 || s.Stats().CommitsPlain != before.CommitsPlain {
		t.Fatalf("a read calling a STABLE function created through the shim: peer calls %v, stats %+v", calls, s.Stats())
	}
	exec("CREATE FUNCTION enqueue_two(i int) RETURNS void LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); PERFORM pg_notify('jobs', i::text); END $$")
	checkDual(t, peer.take(), 1)
	before = s.Stats()
	exec("SELECT enqueue_two(12)")
	if calls := peer.take(); len(calls) != 0 || s.Stats().Unwrapped != before.Unwrapped+1 {
		t.Fatalf("a function that notifies, created through the shim: peer calls %v, stats %+v", calls, s.Stats())
	}
	// A trigger that notifies, made through the shim: the lists are read again soon after.
	exec("CREATE TABLE jobs_two (id int PRIMARY KEY)")
	exec("CREATE TRIGGER jobs_two_t AFTER INSERT ON jobs_two FOR EACH ROW EXECUTE FUNCTION jobs_notify()")
	checkDual(t, peer.take(), 2)
	time.Sleep(2 * ddlReread)
	deadline := time.Now().Add(10 * time.Second)
	for !s.funcs.notifies("jobs_two") {
		if time.Now().After(deadline) {
			t.Fatal("a trigger that notifies, made through the shim, was not seen after 10 s")
		}
		exec("SELECT count(*) FROM jobs_two") // a statement that needs the lists starts the read
		time.Sleep(20 * time.Millisecond)
	}
	exec("INSERT INTO jobs_two VALUES (1)")
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("an insert into a table whose trigger notifies reached the peer's prepare: %v", calls)
	}
	before = s.Stats()

	// Created behind the shim's back: counts once the list is read again.
	c.Exec(t, "CREATE FUNCTION open_three(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING id $$")
	deadline = time.Now().Add(10 * time.Second)
	for !s.funcs.mayWrite([]string{"open_three"}, false) {
		if time.Now().After(deadline) {
			t.Fatal("a function created on the database was not taken for a writer after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	exec("SELECT open_three(7)")
	dual("created on the database", 7)
	if st := s.Stats(); st.Unwrapped != before.Unwrapped {
		t.Fatalf("unwrapped commits: %d, want %d", st.Unwrapped, before.Unwrapped)
	}
}

// TestWritesWaitForPeer: with the real Shipper, the client hears of a write's commit only once
// the peer has the write — here, only after a lock on the peer's table is let go: a read that
// calls a writing function (a dual commit), and the writes committed plainly in dual mode (a
// read whose write the shim cannot see, through a function it does not know of; a session with a
// temporary table; a procedure's commits, and a DO block's).
func TestWritesWaitForPeer(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	client := e.connect(t)
	// Through the shim: the DDL ships to the peer, and the function counts at once.
	if _, err := client.Exec(ctx, `CREATE TABLE fnrows (id int PRIMARY KEY);
CREATE FUNCTION add_row(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO fnrows VALUES (i) RETURNING id $$;
CREATE PROCEDURE add_two(a int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO fnrows VALUES (a); COMMIT; INSERT INTO fnrows VALUES (a + 1); END $$`); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); e.peerString(t, "SELECT coalesce(to_regprocedure('add_two(int)')::text, '')") == ""; {
		if time.Now().After(deadline) {
			t.Fatal("the peer has no procedure add_two after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A write the shim cannot see coming: a function it does not know of (made on the database,
	// in information_schema, where its lists do not look).
	if _, err := e.localDB.Exec(`CREATE FUNCTION information_schema.next_row() RETURNS int LANGUAGE sql
AS $$ SELECT add_row((SELECT coalesce(max(id), 0) + 1 FROM fnrows)) $$`); err != nil {
		t.Fatal(err)
	}
	temp := e.connect(t)
	if _, err := temp.Exec(ctx, "CREATE TEMP TABLE scratch (a int)"); err != nil {
		t.Fatal(err)
	}

	waitsForPeer := func(what string, write func() error) {
		t.Helper()
		lock, err := e.peerDB.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Rollback()
		if _, err := lock.Exec("LOCK TABLE fnrows IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- write() }()
		select {
		case err := <-done:
			t.Fatalf("%s: the commit returned (%v) while the peer could not take the row", what, err)
		case <-time.After(500 * time.Millisecond):
		}
		if err := lock.Rollback(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the commit did not return after the peer's lock was let go", what)
		}
	}

	before := e.shim.Stats()
	waitsForPeer("SELECT add_row(1)", func() error {
		_, err := client.Exec(ctx, "SELECT add_row(1)")
		return err
	})
	if st := e.shim.Stats(); st.CommitsDual != before.CommitsDual+1 || st.Unwrapped != before.Unwrapped {
		t.Fatalf("stats before %+v, after %+v: want one more dual commit", before, st)
	}
	waitsForPeer("a write through a function the shim does not know of, in a transaction", func() error {
		tx, err := client.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT information_schema.next_row()"); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	waitsForPeer("a session with a temporary table", func() error {
		_, err := temp.Exec(ctx, "INSERT INTO fnrows VALUES (100)")
		return err
	})
	waitsForPeer("CALL, simple protocol", func() error {
		_, err := client.Exec(ctx, "CALL add_two(200)")
		return err
	})
	waitsForPeer("CALL, extended protocol", func() error {
		_, err := client.Exec(ctx, "CALL add_two($1)", 300)
		return err
	})
	waitsForPeer("DO with COMMIT", func() error {
		_, err := client.Exec(ctx, "DO $$ BEGIN INSERT INTO fnrows VALUES (400); COMMIT; INSERT INTO fnrows VALUES (401); END $$")
		return err
	})
	fast := e.connect(t)
	var addRow uint32
	if err := fast.QueryRow(ctx, "SELECT 'add_row(int)'::regprocedure::oid").Scan(&addRow); err != nil {
		t.Fatal(err)
	}
	waitsForPeer("a fast-path function call", func() error {
		fe := fast.PgConn().Frontend()
		fe.Send(&pgproto3.FunctionCall{Function: addRow, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("500")}})
		if err := fe.Flush(); err != nil {
			return err
		}
		var failed error
		for {
			m, err := fe.Receive()
			if err != nil {
				return err
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				failed = fmt.Errorf("%s: %s", m.Code, m.Message)
			case *pgproto3.ReadyForQuery:
				return failed
			}
		}
	})
	if st := e.shim.Stats(); st.Unwrapped != before.Unwrapped+2 || st.LeftInDoubt != 0 {
		t.Fatalf("stats before %+v, after %+v: want two more unwrapped commits", before, st)
	}
	if got := e.peerString(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM fnrows WHERE id <> 1"); got != "2,100,200,201,300,301,400,401,500" {
		t.Fatalf("plainly committed rows on the peer when their clients heard of the commit: %q, want 2,100,200,201,300,301,400,401,500", got)
	}
	// COMMIT AND CHAIN has begun the next transaction: its reply does not wait (nor go solo).
	start := time.Now()
	for _, q := range []string{"BEGIN", "SELECT information_schema.next_row()", "COMMIT AND CHAIN", "COMMIT"} {
		if _, err := client.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if took := time.Since(start); took > 2*time.Second || e.shim.Stats().Unwrapped != before.Unwrapped+3 {
		t.Fatalf("COMMIT AND CHAIN of a write committed plainly: %v, stats %+v", took, e.shim.Stats())
	}
	e.settle(t, before)
}

// TestPlainCommitPeerKilled: a write committed plainly in dual mode whose peer database is gone
// is answered within commit_timeout, the site going on alone as when a dual commit's peer fails.
func TestPlainCommitPeerKilled(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.dsn())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE fnrows (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE scratch (a int)"); err != nil {
		t.Fatal(err)
	}
	before := e.shim.Stats()
	e.peer.Kill()
	start := time.Now()
	if _, err := conn.Exec(ctx, "INSERT INTO fnrows VALUES (1)"); err != nil {
		t.Fatalf("plain commit with the peer gone: %v", err)
	}
	took := time.Since(start)
	t.Logf("answered %v after the peer was killed", took.Round(time.Millisecond))
	if took > 5*time.Second+2*time.Second {
		t.Fatalf("answered after %v: commit_timeout is 5 s", took)
	}
	st := e.shim.Stats()
	if m, _ := e.shim.Mode(); m != ModeSolo || st.Unwrapped != before.Unwrapped+1 || st.PeerErrors != before.PeerErrors+1 {
		t.Fatalf("mode %v, stats before %+v, after %+v: want solo, one more unwrapped commit and peer error", m, before, st)
	}
	var n int
	if err := e.localDB.QueryRow("SELECT count(*) FROM fnrows").Scan(&n); err != nil || n != 1 {
		t.Fatalf("local rows %d, %v", n, err)
	}
}

// mayWrite tells whether a read calling names (and more when many) may write.
func (f *writerFuncs) mayWrite(names []string, many bool) bool {
	st := statement{Kind: kindRead, Calls: names, ManyCalls: many}
	f.check(&st)
	return st.Kind == kindWrite
}

// notifies tells whether the lists say a trigger of table rel may notify.
func (f *writerFuncs) notifies(rel string) bool {
	st := statement{Kind: kindWrite, Names: []string{rel}}
	f.check(&st)
	return st.Unpreparable
}

// folded is names as looked up.
func folded(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, string(foldName(n, nil)))
	}
	return out
}

// TestWriterFuncsReads: before any read of the lists a read that calls a function is a write; a
// failing read is retried at most once a second, not by every statement; once read, the lists
// decide.
func TestWriterFuncsReads(t *testing.T) {
	t.Parallel()
	var loads atomic.Int32
	fail := true
	var mu sync.Mutex
	f := newWriterFuncs(nil, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.load = func(context.Context) (*catalogInfo, error) {
		loads.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return nil, errors.New("no catalog")
		}
		return &catalogInfo{funcs: map[string]bool{"f": false}, writeViews: map[string]struct{}{"wv": {}}, notifyRels: map[string]struct{}{}}, nil
	}
	defer f.stop()
	read := func(call string) stmtKind {
		st := statement{Kind: kindRead, Calls: []string{call}}
		f.check(&st)
		return st.Kind
	}
	for i := 0; i < 50; i++ {
		if k := read("g"); k != kindWrite {
			t.Fatalf("before any read of the lists: %v, want write", k)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d reads of the lists for 50 statements within a second, want 1", n)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	time.Sleep(1100 * time.Millisecond)
	if k := read("g"); k != kindRead || loads.Load() != 2 {
		t.Fatalf("after a successful read: g is %v (want read), %d reads (want 2)", k, loads.Load())
	}
	if k := read("F"); k != kindWrite {
		t.Fatalf("F (f, folded) is %v, want write", k)
	}
	if e := f.lastErr; e != nil {
		t.Fatalf("last error %v after a successful read", e)
	}
	// A view named past the words the lexer keeps may be one that calls a writing function.
	long := splitStatements("SELECT " + strings.Repeat("c, ", maxWords) + "c FROM wv")[0]
	if f.check(&long); long.Kind != kindWrite {
		t.Fatalf("a read naming a view past the words kept is %v, want write", long.Kind)
	}
}

// TestCloseOver: what may write or notify follows the names sources mention, through any
// number of functions and procedures and around cycles, never through trigger functions (they
// cannot be called), and only from what may.
func TestCloseOver(t *testing.T) {
	t.Parallel()
	fns := []catalogFunc{
		{oid: "1", name: "w", kind: 'f', volatile: true, src: "INSERT INTO t VALUES (1)"},
		{oid: "2", name: "s1", kind: 'f', src: "SELECT W()"}, // folded
		{oid: "3", name: "s2", kind: 'f', src: "BEGIN RETURN public.s1(); END"},
		{oid: "4", name: "pure", kind: 'f', src: "SELECT 1 -- not w2"},
		{oid: "5", name: "Quoted", kind: 'f', src: "RETURN $q$s2()$q$"}, // s2 after a dollar tag
		{oid: "6", name: "calls_quoted", kind: 'f', src: `SELECT "Quoted"()`},
		{oid: "7", name: "quoted", kind: 'f', src: "SELECT 1"}, // not "Quoted"
		{oid: "8", name: "a", kind: 'f', src: "SELECT b()"},
		{oid: "9", name: "b", kind: 'f', src: "SELECT a()"}, // a cycle of reads
		{oid: "10", name: "n", kind: 'f', src: "PERFORM pg_notify('c', 'x')"},
		{oid: "11", name: "via_n", kind: 'f', src: "PERFORM n()"},
		{oid: "12", name: "trg", kind: 't', volatile: true, src: "BEGIN PERFORM via_n(); RETURN NEW; END"},
		{oid: "13", name: "trg_plain", kind: 't', volatile: true, src: "BEGIN INSERT INTO log VALUES (1); RETURN NEW; END"},
		{oid: "14", name: "calls_trg", kind: 'f', src: "SELECT trg_plain()"}, // a trigger function writes nothing by name
		{oid: "15", name: "p", kind: 'p', volatile: true, src: "INSERT INTO t VALUES (2)"},
		{oid: "16", name: "calls_p", kind: 'f', src: "CALL p()"},
		{oid: "17", name: "listens", kind: 'f', src: "LISTEN c"},
		{oid: "18", name: "dyn", kind: 'f', src: "BEGIN EXECUTE 'SELECT ' || fname || '()'; END"}, // stable, but may call anything
	}
	cat, oids := closeOver(fns, [][2]string{{"t1", "12"}, {"t2", "13"}, {"t3", "99"}})
	got := func(m map[string]bool, notify bool) string {
		var names []string
		for n, nt := range m {
			if !notify || nt {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		return strings.Join(names, ",")
	}
	if w := got(cat.funcs, false); w != "Quoted,calls_p,calls_quoted,dyn,listens,n,s1,s2,via_n,w" {
		t.Errorf("may write or notify: %s", w)
	}
	if n := got(cat.funcs, true); n != "listens,n,via_n" {
		t.Errorf("may notify: %s", n)
	}
	slices.Sort(oids)
	if o := strings.Join(oids, ","); o != "1,16,18,2,3,5,6" {
		t.Errorf("writer oids %s, want those of w, s1, s2, Quoted, calls_quoted, calls_p, dyn", o)
	}
	if rels := strings.Join(slices.Sorted(maps.Keys(cat.notifyRels)), ","); rels != "t1" {
		t.Errorf("tables whose trigger may notify: %s, want t1", rels)
	}
}
