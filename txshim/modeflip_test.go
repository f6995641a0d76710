package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestModeFlipsUnderLoad: sessions that connect, read and write while the mode changes under
// them every few milliseconds (read-only, dual, solo, as a site starting up or failing over
// goes through them) get an answer to every request: a result, or an SQL error (a write refused
// with 25006) — never a hang nor a lost connection. A session that got no reply is what an e2e
// server waiting on its first query through a backup's shim had looked like.
func TestModeFlipsUnderLoad(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)

	stop := make(chan struct{})
	var flips sync.WaitGroup
	flips.Add(1)
	go func() {
		defer flips.Done()
		modes := []Mode{ModeReadOnly, ModeDual, ModeSolo, ModeDual, ModeReadOnly}
		term := uint64(1)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+i%7) * time.Millisecond):
			}
			if m := modes[i%len(modes)]; m == ModeDual {
				term++
				s.SetMode(m, term)
			} else {
				s.SetMode(m, term)
			}
		}
	}()

	var ops, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	deadline := time.Now().Add(6 * time.Second)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			round := modeFlipRound
			if w%2 == 1 {
				round = modeFlipRoundPQ // lib/pq, as the example server uses
			}
			for i := 0; time.Now().Before(deadline); i++ {
				if err := round(s, w, i, &ops, &refused); err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	flips.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d requests answered, %d writes refused while read-only", ops.Load(), refused.Load())
	if ops.Load() < 100 {
		t.Errorf("only %d requests answered in 6 s", ops.Load())
	}
	// Settled in dual mode, a fresh session writes, and the write is a dual commit.
	s.SetMode(ModeDual, 1000)
	peer.take()
	conn := s.connect(t)
	if _, err := conn.Exec(context.Background(), "INSERT INTO acct VALUES (-1, 0)"); err != nil {
		t.Fatalf("write in dual mode after the flips: %v", err)
	}
	if calls := peer.take(); len(calls) != 2 || !strings.HasPrefix(calls[0], "prepare tandem_site1_1000_") || calls[1] != "commit "+strings.TrimPrefix(calls[0], "prepare ") {
		t.Fatalf("peer calls %v; want the prepare and commit of one transaction of term 1000", calls)
	}
}

// modeFlipRound is one session of TestModeFlipsUnderLoad: connect, then a read with an argument
// (extended protocol), a simple-protocol read, and an explicit write transaction. Each request
// must be answered within 10 s; an SQL error is an answer.
func modeFlipRound(s *testShim, w, i int, ops, refused *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	answered := answerer(s, ops, refused)
	var n int
	if err := answered("read", conn.QueryRow(ctx, "SELECT count(*) FROM acct WHERE id > $1", -5).Scan(&n)); err != nil {
		return err
	}
	if err := answered("simple read", conn.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&n)); err != nil {
		return err
	}
	id := w*1_000_000 + i
	_, err = conn.Exec(ctx, fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 0); COMMIT", id))
	if err := answered("write", err); err != nil {
		return err
	}
	// The session is usable after whatever the write met.
	return answered("read after the write", conn.QueryRow(ctx, "SELECT 1").Scan(&n))
}

// modeFlipRoundPQ is modeFlipRound through lib/pq, whose extended protocol differs from pgx's
// (Parse, Describe and Sync, then Bind, Execute and Sync).
func modeFlipRoundPQ(s *testShim, w, i int, ops, refused *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// lib/pq waits for a reply past its context (it sends a cancel and reads on): the socket's
	// own deadline bounds a request that gets none.
	connector, err := pq.NewConnector(s.dsn(pgtest.Superuser))
	if err != nil {
		return err
	}
	connector.Dialer(deadlineDialer{10 * time.Second})
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	answered := answerer(s, ops, refused)
	var n int
	if err := answered("read", conn.QueryRowContext(ctx, "SELECT count(*) FROM acct WHERE id > $1", -5).Scan(&n)); err != nil {
		return err
	}
	id := w*1_000_000 + i
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return answered("begin", err)
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO acct VALUES ($1, 0)", id)
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	if err := answered("write", err); err != nil {
		return err
	}
	return answered("read after the write", conn.QueryRowContext(ctx, "SELECT 1").Scan(&n))
}

// answerer returns the check of one request of TestModeFlipsUnderLoad: nil for a result or an
// SQL error (counted, and counted as refused for 25006), else the error, named by what, with
// the shim's sessions and goroutines at that moment.
func answerer(s *testShim, ops, refused *atomic.Int64) func(what string, err error) error {
	return func(what string, err error) error {
		var pe *pgconn.PgError
		var qe *pq.Error
		switch {
		case err == nil:
		case errors.As(err, &pe):
			if pe.Code == "25006" {
				refused.Add(1)
			}
		case errors.As(err, &qe):
			if qe.Code == "25006" {
				refused.Add(1)
			}
		default:
			// What the sessions wait for now, while the one that got no answer still is.
			return fmt.Errorf("%s: %w\nsessions:\n%s\nlocal database:\n%s\nshim goroutines:\n%s", what, err, s.sessionQueues(), pgtest.Activity(s.c.DSN(s.c.Database())), shimStacks())
		}
		ops.Add(1)
		return nil
	}
}

// deadlineDialer dials TCP connections that end all I/O after its duration.
type deadlineDialer struct{ d time.Duration }

func (d deadlineDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialTimeout(network, address, d.d)
}

func (d deadlineDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err == nil {
		err = c.SetDeadline(time.Now().Add(d.d))
	}
	return c, err
}

// TestReadOnlyAfterClientTurnsItOff: in read-only mode a client that turns
// default_transaction_read_only off (SET, SET SESSION CHARACTERISTICS, RESET ALL as pools send
// it, set_config) still cannot write with a statement the lexer takes for a read, in the simple
// or extended protocol, pipelined behind the change or after a COMMIT in the same request. The
// shim had put the setting on once per session, and these SELECTs ran unwrapped: nextval,
// setval and (before PostgreSQL 16, even with the setting on) lo_create and lo_from_bytea
// committed on the read-only site. Promoted, the session gets the client's own value back.
func TestReadOnlyAfterClientTurnsItOff(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE SEQUENCE rseq`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeReadOnly, 1)
	ctx := capCtx(t, 60*time.Second)
	offs := []string{
		"SET default_transaction_read_only = off",
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
		"RESET ALL",
		"SELECT set_config('default_transaction_read_only', 'off', false)",
	}
	writes := []string{
		"SELECT nextval('rseq')",
		"SELECT setval('rseq', 1000)",
		"SELECT lo_create(4242)",
		"SELECT lo_from_bytea(4343, 'hello')",
	}
	var conns []*pgx.Conn
	for _, off := range offs {
		conn := s.connect(t)
		conns = append(conns, conn)
		for _, w := range writes {
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
				if _, err := conn.Exec(ctx, off, mode); err != nil {
					t.Fatalf("%s: %v", off, err)
				}
				if _, err := conn.Exec(ctx, w, mode); pgCode(err) != "25006" {
					t.Errorf("after %s, %s (%v): %v, want 25006", off, w, mode, err)
				}
			}
			// Pipelined: the write is sent before the change is answered.
			p := conn.PgConn().StartPipeline(ctx)
			p.SendQueryParams(off, nil, nil, nil, nil)
			p.Sync()
			p.SendQueryParams(w, nil, nil, nil, nil)
			p.Sync()
			// Each request's error: a statement's, or the shim's at the commit it wrapped the
			// statement in, after the statement's own replies.
			var errs []error
			for syncs := 0; syncs < 2; {
				res, err := p.GetResults()
				switch res := res.(type) {
				case *pgconn.ResultReader:
					_, err = res.Close()
				case *pgconn.PipelineSync:
					syncs++
					continue
				}
				if pgCode(err) == "" && err != nil {
					t.Fatal(err)
				}
				if len(errs) == syncs {
					errs = append(errs, nil)
				}
				if err != nil {
					errs[syncs] = err
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if len(errs) != 2 || errs[0] != nil || pgCode(errs[1]) != "25006" {
				t.Errorf("pipelined %s, then %s: %v, want 25006 for the second", off, w, errs)
			}
		}
		// The next transaction after a COMMIT in the same request.
		if _, err := conn.Exec(ctx, off+"; COMMIT; SELECT nextval('rseq')", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "25006" {
			t.Errorf("%s; COMMIT; SELECT nextval: %v, want 25006", off, err)
		}
	}
	db := c.Open(t, c.Database())
	if last, called := queryOne[int64](t, db, `SELECT last_value FROM rseq`), queryOne[bool](t, db, `SELECT is_called FROM rseq`); last != 1 || called {
		t.Errorf("read-only mode: the sequence moved: last_value %d, is_called %v", last, called)
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM pg_largeobject_metadata`); n != 0 {
		t.Errorf("read-only mode: %d large object(s) created", n)
	}

	// Promoted: each session has the value the client left (off; RESET ALL: the default, off).
	s.SetMode(ModeDual, 2)
	for i, conn := range conns {
		var got string
		if err := conn.QueryRow(ctx, "SHOW default_transaction_read_only").Scan(&got); err != nil || got != "off" {
			t.Errorf("after %s, promoted: default_transaction_read_only %q (%v), want off", offs[i], got, err)
		}
	}
}

// TestSettingReportedBeforeOwnBegin: a write after a Flush, behind a statement that changes a
// setting PostgreSQL reports (DISCARD ALL, RESET ALL, SET application_name), gets the shim's
// BEGIN before it; PostgreSQL reports the change (ParameterStatus) just before the
// ReadyForQuery, after the BEGIN's replies, which the shim then did not recognise: the client
// got them (CommandComplete BEGIN, two CloseCompletes) and a ReadyForQuery 'T', the shim's
// block left open. In read-only mode DISCARD ALL, which turns the shim's
// default_transaction_read_only off, did that every time. The replies now match PostgreSQL's,
// on a session that is read-only by default in read-only mode, with a Flush or a Sync between.
func TestSettingReportedBeforeOwnBegin(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)
	const insert = "INSERT INTO acct VALUES (1, 0)"
	// sep: the message between the statement and the write, if any.
	run := func(r *rawSession, first string, sep pgproto3.FrontendMessage) string {
		for _, m := range pbeMsgs("", first) {
			r.fe.Send(m)
		}
		if sep != nil {
			r.fe.Send(sep)
		}
		for _, m := range pbeMsgs("", insert) {
			r.fe.Send(m)
		}
		r.fe.Send(&pgproto3.Sync{})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		got := r.replies()
		if _, ok := sep.(*pgproto3.Sync); ok {
			got += " " + r.replies()
		}
		// What the session is in afterwards, and what was written.
		got += " " + r.query("SELECT 1") + fmt.Sprintf(", rows %d", rowCount(t, c, "true"))
		c.Exec(t, "DELETE FROM acct")
		// ParameterStatus: the shim's own SET of default_transaction_read_only.
		return strings.ReplaceAll(strings.ReplaceAll(got, "S ", ""), " STDCZ", " TDCZ")
	}
	for _, mode := range []Mode{ModeReadOnly, ModeSolo, ModeDual} {
		s.SetMode(mode, 1)
		dsn := c.DSN(c.Database())
		if mode == ModeReadOnly {
			// Read-only by default: DISCARD ALL and RESET ALL leave it on.
			dsn += "&default_transaction_read_only=on"
		}
		for _, first := range []string{"DISCARD ALL", "RESET ALL", "SET application_name = 'changed'", "SET work_mem = '7MB'"} {
			for _, sep := range []pgproto3.FrontendMessage{&pgproto3.Flush{}, &pgproto3.Sync{}, nil} {
				name := "nothing"
				if sep != nil {
					name = strings.TrimPrefix(fmt.Sprintf("%T", sep), "*pgproto3.")
				}
				t.Run(fmt.Sprintf("%s, %s, %s, insert", mode, first, name), func(t *testing.T) {
					direct, shim := dialRawDSN(t, dsn), dialRaw(t, s)
					for _, r := range []*rawSession{direct, shim} {
						// A setting the statement then reports changing in every mode.
						r.query("SET application_name = 'before'")
					}
					want := run(direct, first, sep)
					peer.take()
					if got := run(shim, first, sep); got != want {
						t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
					}
					if calls := peer.take(); mode == ModeDual && len(calls) != 2 || mode != ModeDual && len(calls) != 0 {
						t.Errorf("peer calls %v", calls)
					}
				})
			}
		}
	}
	if n := preparedCount(t, c); n != 0 {
		t.Fatalf("%d transactions left prepared", n)
	}
}

// TestPromotedMidTransaction: a session whose transaction began while the site was read-only
// (the shim put default_transaction_read_only on) ends it after the site became master, and
// writes in the same request: the write begins a new transaction on a master, and must not be
// refused as on a read-only site.
func TestPromotedMidTransaction(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)
	for i, end := range []string{"COMMIT", "ROLLBACK"} {
		t.Run(end, func(t *testing.T) {
			s.SetMode(ModeReadOnly, 1)
			conn := s.connect(t)
			ctx := capCtx(t, 20*time.Second)
			if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			s.SetMode(ModeDual, 2)
			q := fmt.Sprintf("%s; INSERT INTO acct VALUES (%d, 0)", end, 100+i)
			if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatalf("%q in dual mode, the transaction begun while read-only: %v", q, err)
			}
			var ro string
			if err := conn.QueryRow(ctx, "SHOW default_transaction_read_only").Scan(&ro); err != nil || ro != "off" {
				t.Errorf("default_transaction_read_only after the promotion: %q, %v; want off", ro, err)
			}
		})
	}
}

// TestRollbackThenReadAfterModeChange: a session whose transaction began in one mode ends it
// with ROLLBACK after the mode changed, and runs in the same request a statement the lexer
// takes for a read that writes (nextval, setval, lo_create run unwrapped). Demoted meanwhile
// (read-only or fenced), the statement must not write: the session's
// default_transaction_read_only, off while it was master, was put back on after a COMMIT but
// not after a ROLLBACK, and the sequence moved on the read-only site. Promoted meanwhile, the
// statement must run: the setting the shim held on for the read-only site stayed on, and
// nextval was refused on the master.
func TestRollbackThenReadAfterModeChange(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE SEQUENCE rseq`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeSolo, 1)
	ctx := capCtx(t, 60*time.Second)
	db := c.Open(t, c.Database())
	moved := func() bool {
		return queryOne[bool](t, db, `SELECT is_called FROM rseq`)
	}
	// "failed ROLLBACK": the transaction failed before the mode changed.
	for _, end := range []string{"ROLLBACK", "ABORT", "failed ROLLBACK", "failed COMMIT", "COMMIT"} {
		for _, w := range []string{"SELECT nextval('rseq')", "SELECT setval('rseq', 500)"} {
			for _, tc := range []struct{ from, to Mode }{
				{ModeSolo, ModeReadOnly}, {ModeDual, ModeReadOnly}, {ModeSolo, ModeFenced}, {ModeDual, ModeFenced},
				{ModeReadOnly, ModeDual}, {ModeReadOnly, ModeSolo},
			} {
				for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
					if mode != pgx.QueryExecModeSimpleProtocol && strings.HasPrefix(end, "failed ") {
						continue // pgx describes the batch's statements first, which fails there
					}
					name := fmt.Sprintf("%s to %s, %s; %s (%v)", tc.from, tc.to, end, w, mode)
					s.SetMode(tc.from, 1)
					conn := s.connect(t)
					if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(end, "failed ") {
						if _, err := conn.Exec(ctx, "SELECT 1/0"); pgCode(err) != "22012" {
							t.Fatalf("SELECT 1/0: %v", err)
						}
					}
					s.SetMode(tc.to, 1)
					rollback := strings.TrimPrefix(end, "failed ")
					var err error
					if mode == pgx.QueryExecModeSimpleProtocol {
						_, err = conn.Exec(ctx, rollback+"; "+w, mode)
					} else {
						// The extended protocol, pipelined in one request.
						b := &pgx.Batch{}
						b.Queue(rollback)
						b.Queue(w)
						err = conn.SendBatch(ctx, b).Close()
					}
					switch master := tc.to == ModeDual || tc.to == ModeSolo; {
					case master && err != nil:
						t.Errorf("%s: %v, want it run on the master", name, err)
					case !master && moved():
						t.Errorf("%s: the sequence moved on a %s site (err %v)", name, tc.to, err)
					}
					conn.Close(ctx)
					c.Exec(t, `SELECT setval('rseq', 1, false)`)
				}
			}
		}
	}
	// No mode change: a client on the read-only site turns the setting off, and a ROLLBACK
	// ends the transaction it began in, in the same request.
	s.SetMode(ModeReadOnly, 1)
	conn := s.connect(t)
	for _, q := range []string{
		"SET default_transaction_read_only = off; BEGIN; ROLLBACK; SELECT nextval('rseq')",
		"BEGIN; SET default_transaction_read_only = off; COMMIT; BEGIN; ROLLBACK; SELECT nextval('rseq')",
	} {
		_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if moved() {
			t.Errorf("read-only site, %s: the sequence moved (err %v)", q, err)
			c.Exec(t, `SELECT setval('rseq', 1, false)`)
		}
	}
}

// TestReadOnlyDiscardAllPipelined: in read-only and fenced modes, an extended request that runs
// DISCARD ALL and then, before its Sync, a statement the lexer takes for a read that writes
// (nextval, setval, lo_create run unwrapped) must not write. DISCARD ALL commits at once and
// resets default_transaction_read_only to off; the shim put it back on before DISCARD ALL, not
// after, and the statement ran in the next implicit transaction with it off: the sequence moved
// on the read-only site.
func TestReadOnlyDiscardAllPipelined(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE SEQUENCE rseq`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeReadOnly, 1)
	db := c.Open(t, c.Database())
	for _, mode := range []Mode{ModeReadOnly, ModeFenced} {
		for i, w := range []string{"SELECT nextval('rseq')", "SELECT setval('rseq', 500)", "SELECT lo_create(4242)", "SELECT nextval('rseq')"} {
			flush := i == 3 // a Flush after DISCARD ALL
			s.SetMode(ModeReadOnly, 1)
			r := dialRaw(t, s)
			if mode == ModeFenced {
				// A transaction open while the site was fenced: its end may come in the request.
				r.query("BEGIN")
				s.SetMode(mode, 1)
				r.stmt("COMMIT")
			}
			r.stmt("DISCARD ALL")
			var got string
			if flush {
				got = r.flush('C')
			}
			r.stmt(w)
			more, _ := r.sync()
			got += more
			seq := queryOne[bool](t, db, `SELECT is_called FROM rseq`)
			lo := queryOne[int](t, db, `SELECT count(*) FROM pg_largeobject_metadata`)
			if seq || lo != 0 {
				t.Errorf("%s: DISCARD ALL, then (Flush %v) %s in one extended request (replies %s): wrote (sequence moved %v, %d large objects)", mode, flush, w, got, seq, lo)
				c.Exec(t, `SELECT setval('rseq', 1, false)`)
				c.Exec(t, `SELECT lo_unlink(oid) FROM pg_largeobject_metadata`)
			}
			// The session goes on.
			if got := r.query("SELECT 1"); mode == ModeReadOnly && strings.Contains(got, "E") {
				t.Errorf("%s: the next request: %s", mode, got)
			}
			r.conn.Close()
		}
	}
}

// TestRollbackThenAloneStatementAfterModeChange: a simple Query that ends the session's
// transaction (ROLLBACK, or COMMIT of a failed one) after the mode changed is split there, so
// that default_transaction_read_only is put back before what follows
// (TestRollbackThenReadAfterModeChange). One statement left after it ran alone, outside any
// transaction block, where PostgreSQL runs it in the query's implicit block: LOCK and DECLARE
// failed (25P01) where PostgreSQL runs them, and VACUUM ran where PostgreSQL refuses it
// (25001). The replies must be PostgreSQL's (the ParameterStatus of the setting aside).
func TestRollbackThenAloneStatementAfterModeChange(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE TABLE lt (id int)`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeSolo, 1)
	noStatus := func(got string) string { return strings.ReplaceAll(got, "S", "") }
	for _, end := range []string{"ROLLBACK", "failed COMMIT"} {
		for _, q := range []string{"LOCK TABLE lt IN ACCESS SHARE MODE", "DECLARE cc CURSOR FOR SELECT 1", "VACUUM lt", "SELECT 2"} {
			for _, tc := range []struct{ from, to Mode }{{ModeSolo, ModeReadOnly}, {ModeReadOnly, ModeSolo}} {
				query := strings.TrimPrefix(end, "failed ") + "; " + q
				run := func(r *rawSession) (string, string) {
					r.query("BEGIN")
					if end == "failed COMMIT" {
						r.query("SELECT 1/0")
					}
					s.SetMode(tc.to, 1)
					return noStatus(r.query(query)), noStatus(r.query("SELECT 1"))
				}
				s.SetMode(tc.from, 1)
				r := dialRaw(t, s)
				got, gotNext := run(r)
				r.conn.Close()
				d := dialRawDSN(t, c.DSN(c.Database()))
				want, wantNext := run(d)
				d.conn.Close()
				if got != want || gotNext != wantNext {
					t.Errorf("%s to %s, BEGIN (%s), %q: replies %s, then %s; PostgreSQL's %s, then %s", tc.from, tc.to, end, query, got, gotNext, want, wantNext)
				}
			}
		}
	}
}
