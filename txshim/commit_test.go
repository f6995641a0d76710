package txshim

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// fakePeer records the commit procedure's calls; the real Peer (ship.go) is tested by its owner.
// On Prepare it checks that the transaction is already prepared locally (DESIGN §5.3: local
// first, recovery relies on it).
type fakePeer struct {
	c *pgtest.Cluster
	t *testing.T

	mu         sync.Mutex
	calls      []string
	prepareErr error
	notLocal   []string // gids that were not prepared locally when Prepare came
}

func (p *fakePeer) Prepare(ctx context.Context, gid string) error {
	conn, err := pgx.Connect(ctx, p.c.DSN(p.c.Database()))
	if err == nil {
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1", gid).Scan(&n)
		conn.Close(ctx)
		if err == nil && n != 1 {
			err = errors.New("not prepared")
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.notLocal = append(p.notLocal, gid)
	}
	p.calls = append(p.calls, "prepare "+gid)
	return p.prepareErr
}

func (p *fakePeer) Commit(gid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "commit "+gid)
}

func (p *fakePeer) Rollback(gid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "rollback "+gid)
}

func (p *fakePeer) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	if len(p.notLocal) > 0 {
		p.t.Errorf("peer Prepare before local PREPARE for %v", p.notLocal)
		p.notLocal = nil
	}
	return c
}

const installSQL = `CREATE SCHEMA IF NOT EXISTS tandem;
CREATE TABLE IF NOT EXISTS tandem.state (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  term bigint NOT NULL, master text NOT NULL, peer_synced boolean NOT NULL);
INSERT INTO tandem.state VALUES (1, 1, 'site1', true) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS tandem.ddl (id bigserial PRIMARY KEY, stmt text NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS acct (id int PRIMARY KEY, bal int NOT NULL);`

// dualShim starts a cluster with installSQL's objects and a shim in dual mode (term 1) over it,
// its peer a fakePeer.
func dualShim(t *testing.T) (*pgtest.Cluster, *fakePeer, *testShim) {
	t.Helper()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	return c, peer, startShim(t, c, Options{Peer: peer}, ModeDual, 1)
}

var gidRE = regexp.MustCompile(`^tandem_site1_1_[0-9]+$`)

// checkDual asserts calls are exactly n dual commits: prepare g, commit g with well-formed gids.
func checkDual(t *testing.T, calls []string, n int) {
	t.Helper()
	if len(calls) != 2*n {
		t.Fatalf("peer calls %v, want %d prepare/commit pairs", calls, n)
	}
	for i := 0; i < n; i++ {
		p, c := calls[2*i], calls[2*i+1]
		gid := strings.TrimPrefix(p, "prepare ")
		if !strings.HasPrefix(p, "prepare ") || c != "commit "+gid || !gidRE.MatchString(gid) {
			t.Fatalf("peer calls %v: pair %d is not prepare/commit of one gid", calls, i)
		}
	}
}

func rowCount(t *testing.T, c *pgtest.Cluster, where string) int {
	t.Helper()
	var n int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM acct WHERE " + where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func preparedCount(t *testing.T, c *pgtest.Cluster) int {
	t.Helper()
	var n int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM pg_prepared_xacts").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestDualCommit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	var downCalls int
	var downMu sync.Mutex
	s := startShim(t, c, Options{Peer: peer, OnPeerDown: func() bool { downMu.Lock(); downCalls++; downMu.Unlock(); return true }}, ModeDual, 1)
	conn := s.connect(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) error {
		_, err := conn.Exec(ctx, sql, args...)
		return err
	}

	t.Run("explicit", func(t *testing.T) {
		if err := exec("BEGIN"); err != nil {
			t.Fatal(err)
		}
		if err := exec("INSERT INTO acct VALUES (1, 100)"); err != nil {
			t.Fatal(err)
		}
		if err := exec("COMMIT"); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 1)
		if rowCount(t, c, "id = 1") != 1 || preparedCount(t, c) != 0 {
			t.Fatal("row missing or prepared transaction left")
		}
	})
	t.Run("implicit simple", func(t *testing.T) {
		// pgx's Exec without arguments uses the simple protocol.
		if err := exec("INSERT INTO acct VALUES (2, 100)"); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 1)
		if rowCount(t, c, "id = 2") != 1 {
			t.Fatal("row missing")
		}
	})
	t.Run("implicit extended", func(t *testing.T) {
		if err := exec("INSERT INTO acct VALUES ($1, $2)", 3, 100); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 1)
		if rowCount(t, c, "id = 3") != 1 {
			t.Fatal("row missing")
		}
	})
	t.Run("pgx transaction extended", func(t *testing.T) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE acct SET bal = bal - $1 WHERE id = $2", 10, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "UPDATE acct SET bal = bal + $1 WHERE id = $2", 10, 2); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 1)
		if rowCount(t, c, "id = 1 AND bal = 90") != 1 {
			t.Fatal("update missing")
		}
	})
	t.Run("extended COMMIT", func(t *testing.T) {
		if err := exec("BEGIN"); err != nil {
			t.Fatal(err)
		}
		if err := exec("INSERT INTO acct VALUES ($1, $2)", 70, 0); err != nil {
			t.Fatal(err)
		}
		res := conn.PgConn().ExecParams(ctx, "COMMIT", nil, nil, nil, nil).Read()
		if res.Err != nil || res.CommandTag.String() != "COMMIT" {
			t.Fatalf("extended COMMIT: %q %v", res.CommandTag, res.Err)
		}
		checkDual(t, peer.take(), 1)
		if rowCount(t, c, "id = 70") != 1 {
			t.Fatal("row missing")
		}
	})
	t.Run("DDL recorded", func(t *testing.T) {
		if err := exec("CREATE TABLE t2 (a int); INSERT INTO t2 VALUES (1)"); err != nil {
			t.Fatal(err)
		}
		res := conn.PgConn().ExecParams(ctx, "ALTER TABLE t2 ADD COLUMN b int", nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		checkDual(t, peer.take(), 2)
		rows, err := c.Open(t, c.Database()).Query("SELECT stmt FROM tandem.ddl ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var st string
			rows.Scan(&st)
			got = append(got, st)
		}
		// t2 has no primary key: the shim gives it REPLICA IDENTITY FULL after its CREATE.
		if strings.Join(got, "|") != "CREATE TABLE t2 (a int)|ALTER TABLE public.t2 REPLICA IDENTITY FULL|ALTER TABLE t2 ADD COLUMN b int" {
			t.Fatalf("tandem.ddl rows %q", got)
		}
	})
	t.Run("multi-statement", func(t *testing.T) {
		// Two transactions in one Query: the explicit one, then an implicit one after COMMIT.
		if err := exec("BEGIN; INSERT INTO acct VALUES (4, 1); COMMIT; INSERT INTO acct VALUES (5, 1)"); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 2)
		if rowCount(t, c, "id IN (4, 5)") != 2 {
			t.Fatal("rows missing")
		}
		// An implicit transaction spanning statements, ended by the client's COMMIT.
		if err := exec("INSERT INTO acct VALUES (6, 1); INSERT INTO acct VALUES (7, 1); COMMIT; SELECT 1"); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 1)
		// An error in a later statement rolls back the whole implicit transaction.
		err := exec("INSERT INTO acct VALUES (8, 1); INSERT INTO acct VALUES (1, 1)")
		if pgCode(err) != "23505" {
			t.Fatalf("want unique violation, got %v", err)
		}
		if len(peer.take()) != 0 || rowCount(t, c, "id = 8") != 0 {
			t.Fatal("failed implicit transaction reached the peer or left a row")
		}
	})
	t.Run("batch", func(t *testing.T) {
		b := &pgx.Batch{}
		for i := 10; i < 15; i++ {
			b.Queue("INSERT INTO acct VALUES ($1, 0)", i)
		}
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 1) // one implicit transaction up to the Sync
		if rowCount(t, c, "id BETWEEN 10 AND 14") != 5 {
			t.Fatal("batch rows missing")
		}
	})
	t.Run("read-only never touches the peer", func(t *testing.T) {
		if err := exec("BEGIN"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := exec("COMMIT"); err != nil {
			t.Fatal(err)
		}
		if err := exec("SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if calls := peer.take(); len(calls) != 0 {
			t.Fatalf("read-only transaction called the peer: %v", calls)
		}
	})
	t.Run("temp objects commit plainly", func(t *testing.T) {
		conn2 := s.connect(t)
		before := s.Stats().Unwrapped
		if _, err := conn2.Exec(ctx, "CREATE TEMP TABLE tt (a int)"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn2.Exec(ctx, "INSERT INTO tt VALUES (1); INSERT INTO acct VALUES (20, 0)"); err != nil {
			t.Fatal(err)
		}
		if calls := peer.take(); len(calls) != 0 {
			t.Fatalf("unpreparable transaction called the peer: %v", calls)
		}
		if got := s.Stats().Unwrapped - before; got != 2 {
			t.Fatalf("unwrapped commits %d, want 2", got)
		}
		if rowCount(t, c, "id = 20") != 1 {
			t.Fatal("row missing")
		}
	})
	t.Run("client two-phase refused", func(t *testing.T) {
		err := exec("BEGIN; INSERT INTO acct VALUES (30, 0); PREPARE TRANSACTION 'mine'")
		if pgCode(err) != "0A000" || !strings.Contains(err.Error(), "tandem:") {
			t.Fatalf("want 0A000 tandem error, got %v", err)
		}
		if err := exec("ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if rowCount(t, c, "id = 30") != 0 || preparedCount(t, c) != 0 {
			t.Fatal("refused transaction left something")
		}
	})
	t.Run("definite peer error rolls back", func(t *testing.T) {
		peer.mu.Lock()
		peer.prepareErr = &PeerError{Step: "apply", Definite: true, Err: errors.New("row missing on peer")}
		peer.mu.Unlock()
		defer func() { peer.mu.Lock(); peer.prepareErr = nil; peer.mu.Unlock() }()
		err := exec("INSERT INTO acct VALUES (40, 0)")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || !strings.HasPrefix(pe.Code, "XX") || !strings.HasPrefix(pe.Message, "tandem:") {
			t.Fatalf("want an XX tandem: error, got %v", err)
		}
		calls := peer.take()
		if len(calls) != 2 || !strings.HasPrefix(calls[0], "prepare ") || !strings.HasPrefix(calls[1], "rollback ") {
			t.Fatalf("peer calls %v, want prepare then rollback", calls)
		}
		if rowCount(t, c, "id = 40") != 0 || preparedCount(t, c) != 0 {
			t.Fatal("refused transaction committed or stayed prepared")
		}
		peer.mu.Lock()
		peer.prepareErr = nil
		peer.mu.Unlock()
		// The session goes on.
		if err := exec("INSERT INTO acct VALUES (41, 0)"); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 1)
	})
	t.Run("stale term refused", func(t *testing.T) {
		c.Exec(t, "UPDATE tandem.state SET term = 5")
		defer c.Exec(t, "UPDATE tandem.state SET term = 1")
		err := exec("INSERT INTO acct VALUES (50, 0)")
		if pgCode(err) != "25006" || !strings.Contains(err.Error(), "term") {
			t.Fatalf("want 25006 about the term, got %v", err)
		}
		if calls := peer.take(); len(calls) != 0 || rowCount(t, c, "id = 50") != 0 {
			t.Fatalf("fenced commit went through: calls %v", calls)
		}
	})
	t.Run("unknown peer outcome goes solo", func(t *testing.T) {
		peer.mu.Lock()
		peer.prepareErr = &PeerError{Step: "apply", Definite: false, Err: context.DeadlineExceeded}
		peer.mu.Unlock()
		defer func() { peer.mu.Lock(); peer.prepareErr = nil; peer.mu.Unlock() }()
		if err := exec("INSERT INTO acct VALUES (60, 0)"); err != nil {
			t.Fatal(err)
		}
		calls := peer.take()
		if len(calls) != 1 || !strings.HasPrefix(calls[0], "prepare ") {
			t.Fatalf("peer calls %v, want one prepare", calls)
		}
		if m, _ := s.Mode(); m != ModeSolo {
			t.Fatalf("mode %v, want solo", m)
		}
		downMu.Lock()
		n := downCalls
		downMu.Unlock()
		if n != 1 {
			t.Fatalf("OnPeerDown called %d times", n)
		}
		if rowCount(t, c, "id = 60") != 1 || preparedCount(t, c) != 0 {
			t.Fatal("solo commit missing or left prepared")
		}
		// Solo: no peer at all.
		if err := exec("INSERT INTO acct VALUES (61, 0)"); err != nil {
			t.Fatal(err)
		}
		if calls := peer.take(); len(calls) != 0 {
			t.Fatalf("solo mode called the peer: %v", calls)
		}
	})
	st := s.Stats()
	if st.CommitsDual < 9 || st.PeerErrors != 2 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFailpointLeavesPrepared(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	s.hooks.failpoint.set(func(step string) error {
		if step == "after-local-prepare" {
			return errors.New("injected crash")
		}
		return nil
	})
	conn := s.connect(t)
	_, err := conn.Exec(context.Background(), "INSERT INTO acct VALUES (1, 1)")
	if err == nil {
		t.Fatal("commit succeeded through an injected crash")
	}
	// The session died between local PREPARE and the peer: the transaction stays in doubt,
	// prepared locally with its gid, for the resolver.
	var gid string
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Open(t, c.Database()).QueryRow("SELECT gid FROM pg_prepared_xacts").Scan(&gid)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !gidRE.MatchString(gid) {
		t.Fatalf("prepared gid %q", gid)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("peer called after the crash point: %v", calls)
	}
	c.Exec(t, fmt.Sprintf("ROLLBACK PREPARED '%s'", gid))
}

// TestTransactionEdges checks PostgreSQL's own semantics survive the shim's interception.
func TestTransactionEdges(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)

	// COMMIT AND CHAIN: a dual commit, then a new transaction with the same characteristics.
	r.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
	r.query("INSERT INTO acct VALUES (1, 0)")
	if got := r.query("COMMIT AND CHAIN"); got != "CZ" {
		t.Fatalf("COMMIT AND CHAIN: %q", got)
	}
	checkDual(t, peer.take(), 1)
	if got := r.query("SHOW transaction_isolation"); got != "TDCZ" {
		t.Fatalf("SHOW: %q", got)
	}
	r.fe.Send(&pgproto3.Query{String: "SELECT current_setting('transaction_isolation')"})
	r.fe.Flush()
	var iso string
	var status byte
	for {
		m, err := r.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := m.(*pgproto3.DataRow); ok {
			iso = string(d.Values[0])
		}
		if z, ok := m.(*pgproto3.ReadyForQuery); ok {
			status = z.TxStatus
			break
		}
	}
	if iso != "repeatable read" || status != 'T' {
		t.Fatalf("chained transaction: isolation %q, status %c", iso, status)
	}
	r.query("INSERT INTO acct VALUES (2, 0)")
	r.query("COMMIT")
	checkDual(t, peer.take(), 1)

	// An error inside a transaction: COMMIT answers ROLLBACK, nothing reaches the peer.
	r.query("BEGIN")
	r.query("INSERT INTO acct VALUES (3, 0)")
	if got := r.query("INSERT INTO acct VALUES (1, 0)"); got != "E(23505)Z" {
		t.Fatalf("duplicate: %q", got)
	}
	if got := r.query("COMMIT"); got != "CZ" {
		t.Fatalf("COMMIT of an aborted transaction: %q", got)
	}
	// Savepoints pass through; the rolled-back part is not committed.
	r.query("BEGIN; INSERT INTO acct VALUES (4, 0); SAVEPOINT a; INSERT INTO acct VALUES (5, 0); ROLLBACK TO a; COMMIT")
	checkDual(t, peer.take(), 1)
	if rowCount(t, c, "id IN (3, 5)") != 0 || rowCount(t, c, "id = 4") != 1 {
		t.Fatal("aborted or rolled-back rows committed")
	}
	// An implicit transaction ended by the client's ROLLBACK: nothing committed.
	r.query("INSERT INTO acct VALUES (6, 0); ROLLBACK")
	if rowCount(t, c, "id = 6") != 0 {
		t.Fatal("INSERT; ROLLBACK committed the row")
	}
	// BEGIN after statements of an implicit transaction makes it explicit, without a warning.
	if got := r.query("INSERT INTO acct VALUES (7, 0); BEGIN; INSERT INTO acct VALUES (8, 0)"); got != "CCCZ" {
		t.Fatalf("implicit then BEGIN: %q", got)
	}
	if got := r.query("COMMIT"); got != "CZ" {
		t.Fatalf("COMMIT: %q", got)
	}
	checkDual(t, peer.take(), 1)
	if rowCount(t, c, "id IN (7, 8)") != 2 {
		t.Fatal("rows of the converted transaction missing")
	}
	// A function that writes, called by SELECT, makes a write transaction (funcs.go); a write the
	// shim cannot see (through a function made on the database in information_schema, where the
	// shim's lists do not look) commits plainly, counted.
	r.query("CREATE FUNCTION ins(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING i $$")
	checkDual(t, peer.take(), 1)
	c.Exec(t, "CREATE FUNCTION information_schema.ins_hidden(i int) RETURNS int LANGUAGE sql AS $$ SELECT ins(i) $$")
	before := s.Stats().Unwrapped
	r.query("BEGIN")
	r.query("SELECT ins(9)")
	if got := r.query("COMMIT"); got != "CZ" {
		t.Fatalf("COMMIT: %q", got)
	}
	checkDual(t, peer.take(), 1)
	r.query("BEGIN")
	r.query("SELECT information_schema.ins_hidden(10)")
	if got := r.query("COMMIT"); got != "CZ" {
		t.Fatalf("COMMIT: %q", got)
	}
	if calls := peer.take(); len(calls) != 0 || s.Stats().Unwrapped != before+1 || rowCount(t, c, "id IN (9, 10)") != 2 {
		t.Fatalf("hidden write: peer calls %v, unwrapped %d (was %d)", calls, s.Stats().Unwrapped, before)
	}
	// A client's two-phase command is refused with exactly an error, in the simple and the
	// extended protocol, and aborts its transaction.
	r.query("BEGIN")
	if got := r.query("PREPARE TRANSACTION 'x'"); got != "E(0A000)Z" {
		t.Fatalf("PREPARE TRANSACTION: %q", got)
	}
	r.query("ROLLBACK")
	r.fe.SendParse(&pgproto3.Parse{Query: "COMMIT PREPARED 'x'"})
	r.fe.SendBind(&pgproto3.Bind{})
	r.fe.SendExecute(&pgproto3.Execute{})
	r.fe.SendSync(&pgproto3.Sync{})
	r.fe.Flush()
	if got, err := r.until('Z'); err != nil || got != "12E(0A000)Z" {
		t.Fatalf("extended COMMIT PREPARED: %q %v", got, err)
	}
	// Statements that cannot run in a transaction block are sent as they are.
	if got := r.query("VACUUM acct"); got != "CZ" {
		t.Fatalf("VACUUM: %q", got)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("peer calls %v", calls)
	}
}

// TestTransactionsInOneRequest: every write transaction of a request gets the dual commit, not
// only the first one.
func TestTransactionsInOneRequest(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	if got := r.query("BEGIN; INSERT INTO acct VALUES (1, 0); COMMIT; BEGIN; INSERT INTO acct VALUES (2, 0); COMMIT"); got != "CCCCCCZ" {
		t.Fatalf("two transactions in one query: %q", got)
	}
	checkDual(t, peer.take(), 2)
	for _, q := range []string{"BEGIN", "INSERT INTO acct VALUES (3, 0)", "COMMIT", "BEGIN", "INSERT INTO acct VALUES (4, 0)", "COMMIT"} {
		r.stmt(q)
	}
	if got, st := r.sync(); got != "12C12C12C12C12C12CZ" || st != 'I' {
		t.Fatalf("two transactions in one extended request: %q %c", got, st)
	}
	checkDual(t, peer.take(), 2)
	// A write transaction after a rolled-back one, and a read-only one after a write.
	if got := r.query("BEGIN; INSERT INTO acct VALUES (5, 0); ROLLBACK; BEGIN; INSERT INTO acct VALUES (6, 0); COMMIT; BEGIN; SELECT 1; COMMIT"); got != "CCCCCCCTDCCZ" {
		t.Fatalf("three transactions in one query: %q", got)
	}
	checkDual(t, peer.take(), 1)
	if st := s.Stats(); st.Unwrapped != 0 || rowCount(t, c, "true") != 5 {
		t.Fatalf("unwrapped %d, rows %d; want 0, 5", st.Unwrapped, rowCount(t, c, "true"))
	}
}

// TestRollbackAndChain: ROLLBACK AND CHAIN (ABORT AND CHAIN) leaves the client in a new
// transaction block, which the shim must neither commit nor wrap.
func TestRollbackAndChain(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	r.query("BEGIN")
	r.fe.Send(&pgproto3.Query{String: "ROLLBACK AND CHAIN; INSERT INTO acct VALUES (1, 0)"})
	r.fe.Flush()
	if got, st := r.ready(); got != "CCZ" || st != 'T' {
		t.Fatalf("ROLLBACK AND CHAIN; INSERT: %q %c, want CCZ T", got, st)
	}
	r.query("ROLLBACK")
	r.query("BEGIN")
	r.stmt("ABORT AND CHAIN")
	r.stmt("INSERT INTO acct VALUES (2, 0)")
	if got, st := r.sync(); got != "12C12CZ" || st != 'T' {
		t.Fatalf("extended ABORT AND CHAIN, INSERT: %q %c, want T", got, st)
	}
	r.query("ROLLBACK")
	if calls := peer.take(); len(calls) != 0 || rowCount(t, c, "true") != 0 {
		t.Fatalf("rows of rolled-back chained transactions committed: peer calls %v", calls)
	}
	// The chained transaction commits dual at the client's COMMIT.
	r.query("BEGIN")
	if got := r.query("ROLLBACK AND CHAIN; INSERT INTO acct VALUES (3, 0); COMMIT"); got != "CCCZ" {
		t.Fatalf("ROLLBACK AND CHAIN; INSERT; COMMIT: %q", got)
	}
	checkDual(t, peer.take(), 1)
}

// TestNamedStatementRecords: what the shim knows of a named prepared statement follows
// PostgreSQL's: a Parse that redefines one fails there, so it changes nothing; Close,
// DEALLOCATE and DISCARD ALL end it, unless PostgreSQL skipped them.
func TestNamedStatementRecords(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	id := 0
	parse := func(name, q string) string {
		t.Helper()
		r.fe.SendParse(&pgproto3.Parse{Name: name, Query: q})
		got, _ := r.sync()
		return got
	}
	insert := func() string { id++; return fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", id) }
	// run executes name and checks that it wrote its row with a dual commit.
	run := func(name string) {
		t.Helper()
		r.fe.SendBind(&pgproto3.Bind{PreparedStatement: name})
		r.fe.SendExecute(&pgproto3.Execute{})
		if got, st := r.sync(); got != "2CZ" || st != 'I' {
			t.Fatalf("execute %s: %q %c", name, got, st)
		}
		checkDual(t, peer.take(), 1)
	}

	// A failed redefinition.
	parse("s1", insert())
	if got := parse("s1", "SELECT 1"); got != "E(42P05)Z" {
		t.Fatalf("redefinition: %q", got)
	}
	run("s1")
	// Redefinitions after each way of ending a statement.
	for _, end := range []func(name string){
		func(name string) {
			r.fe.SendClose(&pgproto3.Close{ObjectType: 'S', Name: name})
			r.sync()
		},
		func(name string) { r.query("DEALLOCATE " + name) },
		func(name string) { r.query("DEALLOCATE PREPARE ALL") },
		func(name string) { r.query("DISCARD ALL") },
	} {
		parse("s2", "SELECT 1")
		end("s2")
		parse("s2", insert())
		run("s2")
		end("s2")
	}
	// A Close or DEALLOCATE that PostgreSQL skipped (an error before it in its request) leaves
	// the statement in place.
	parse("s3", insert())
	r.fe.SendParse(&pgproto3.Parse{Query: "SELECT 1/"})
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'S', Name: "s3"})
	if got, _ := r.sync(); got != "E(42601)Z" {
		t.Fatalf("Close after an error: %q", got)
	}
	parse("s3", "SELECT 1")
	run("s3")
	parse("s4", insert())
	r.query("SELECT 1/0; DEALLOCATE s4")
	parse("s4", "SELECT 1")
	run("s4")
	// A statement whose Parse failed, then made with SQL PREPARE.
	parse("s5", "SELECT 1 +")
	r.query("PREPARE s5 AS " + insert())
	run("s5")
	if rowCount(t, c, "true") != id {
		t.Fatalf("%d rows, want %d", rowCount(t, c, "true"), id)
	}
}

// TestRedefinedStmtTxControl: a named statement the shim had a record of that it could not be
// sure of (a Parse that may have failed, a Close that may have been skipped) and that the
// client parsed again as transaction control was taken for a write, the two records merged.
// Parsed as COMMIT and executed in the client's transaction, it ran plainly: the transaction
// committed on the local database only, the client told COMMIT. Parsed as BEGIN, the shim put
// its own BEGIN before it and committed the client's block at the Sync. A Bind in the Parse's
// own request now finds the new statement (had the Parse not run, PostgreSQL would skip the
// Bind); a Bind in a later request, where PostgreSQL may hold either, ends the session.
func TestRedefinedStmtTxControl(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	send := func(r *rawSession, msgs ...pgproto3.FrontendMessage) string {
		t.Helper()
		for _, m := range msgs {
			r.fe.Send(m)
		}
		r.fe.Send(&pgproto3.Sync{})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		return r.replies()
	}
	parseRun := func(name, q string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Name: name, Query: q}, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}}
	}
	for i, tc := range []struct {
		name  string
		setup []pgproto3.FrontendMessage // a request of its own, before the transaction
		end   []pgproto3.FrontendMessage // the request that ends it
	}{
		{name: "failed parse, then parse as COMMIT",
			setup: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s", Query: "SELECT * FROM nosuch"}},
			end:   parseRun("s", "COMMIT")},
		{name: "close not at the start of a request, then parse as COMMIT",
			setup: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s", Query: "SELECT 1"}},
			end:   append(append(pbeMsgs("", "SELECT 2"), &pgproto3.Close{ObjectType: 'S', Name: "s"}), parseRun("s", "COMMIT")...)},
	} {
		r := dialRaw(t, s)
		send(r, tc.setup...)
		r.query(fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 0)", i+1))
		peer.take()
		got := send(r, tc.end...)
		if !strings.HasSuffix(got, "C(COMMIT) Z(I)") {
			t.Errorf("%s: %s", tc.name, got)
		}
		if calls := peer.take(); len(calls) == 0 {
			t.Errorf("%s: the transaction committed on the local database only, no dual commit: %s", tc.name, got)
		} else {
			checkDual(t, calls, 1)
		}
		if n := rowCount(t, c, fmt.Sprintf("id = %d", i+1)); n != 1 {
			t.Errorf("%s: %d rows", tc.name, n)
		}
	}

	// BEGIN: as on PostgreSQL, the client's block stays open until its ROLLBACK.
	c.Exec(t, "DELETE FROM acct")
	run := func(r *rawSession) string {
		got := send(r, &pgproto3.Parse{Name: "b", Query: "SELECT * FROM nosuch"})
		got += " | " + send(r, append(parseRun("b", "BEGIN"), pbeMsgs("", "INSERT INTO acct VALUES (1, 0)")...)...)
		got += " | " + r.query("ROLLBACK")
		return got + fmt.Sprintf(" | %d rows", rowCount(t, c, "true"))
	}
	want := run(dialRawDSN(t, c.DSN(c.Database())))
	if got := run(dialRaw(t, s)); got != want {
		t.Errorf("parse as BEGIN through the shim:\n%s\nPostgreSQL:\n%s", got, want)
	}
	peer.take()

	// In a later request PostgreSQL holds the old statement or the new one: the session ends
	// and its transaction is rolled back. So after a failed SQL PREPARE of the name.
	for i, setup := range [][]pgproto3.FrontendMessage{
		{&pgproto3.Parse{Name: "s", Query: "SELECT * FROM nosuch"}, &pgproto3.Sync{}, &pgproto3.Parse{Name: "s", Query: "COMMIT"}},
		{&pgproto3.Parse{Name: "s", Query: "COMMIT"}, &pgproto3.Sync{}, &pgproto3.Query{String: "PREPARE s AS SELECT 1"}},
	} {
		r := dialRaw(t, s)
		for _, m := range setup {
			r.fe.Send(m)
		}
		if _, ok := setup[len(setup)-1].(*pgproto3.Query); !ok {
			r.fe.Send(&pgproto3.Sync{})
		}
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		r.ready()
		r.ready()
		r.query(fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 0)", 10+i))
		r.fe.Send(&pgproto3.Bind{PreparedStatement: "s"})
		r.fe.Send(&pgproto3.Execute{})
		r.fe.Send(&pgproto3.Sync{})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if got, err := r.until('Z'); err == nil || got != "E(08P01)" {
			t.Errorf("setup %d: Bind in a later request: %q %v, want the session ended (08P01)", i, got, err)
		}
		if calls, n := peer.take(), rowCount(t, c, fmt.Sprintf("id = %d", 10+i)); len(calls) != 0 || n != 0 {
			t.Errorf("setup %d: peer calls %v, %d rows: the transaction was not rolled back", i, calls, n)
		}
	}
}

// TestWriteAfterNoTxStepDualCommit: in an extended request, a statement that cannot run in a
// transaction block (VACUUM, DISCARD ALL) left every write of the request unwrapped. PostgreSQL
// commits such a statement at once and runs a write after it in a new implicit transaction,
// committed at the Sync: in dual mode that write committed on the local database only, with
// no dual commit, not counted as Unwrapped and its reply not held for the peer, so a failover
// right after lost a row the client saw committed (in a read-only mode, after DISCARD ALL, it
// committed too). It is now wrapped and dual-committed, or refused; a write before such a
// statement (PostgreSQL fails the statement after it) is still sent as it is, and the client
// gets PostgreSQL's replies in each case.
func TestWriteAfterNoTxStepDualCommit(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for _, tc := range []struct {
		name  string
		stmts []string
		dual  int // dual commits expected
	}{
		{"VACUUM, INSERT", []string{"VACUUM acct", insertOne}, 1},
		{"DISCARD ALL, INSERT, SELECT", []string{"DISCARD ALL", insertOne, "SELECT 1"}, 1},
		{"VACUUM, SELECT, INSERT, INSERT", []string{"VACUUM acct", "SELECT 1", insertOne, "INSERT INTO acct VALUES (2, 0)"}, 1},
		{"failed VACUUM, INSERT", []string{"VACUUM nosuch", insertOne}, 0},
		{"INSERT, VACUUM", []string{insertOne, "VACUUM acct"}, 0},
		{"VACUUM, INSERT, VACUUM", []string{"VACUUM acct", insertOne, "VACUUM acct"}, 0},
	} {
		run := func(r *rawSession) string {
			for _, q := range tc.stmts {
				r.stmt(q)
			}
			r.fe.Send(&pgproto3.Sync{})
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
			got := r.replies() + fmt.Sprintf(", rows %d", rowCount(t, c, "true"))
			c.Exec(t, "DELETE FROM acct")
			return got
		}
		want := run(dialRawDSN(t, c.DSN(c.Database())))
		peer.take()
		if got := run(dialRaw(t, s)); got != want {
			t.Errorf("%s through the shim:\n%s\nPostgreSQL:\n%s", tc.name, got, want)
		}
		if calls := peer.take(); len(calls) != 2*tc.dual {
			t.Errorf("%s: peer calls %v, want %d dual commits", tc.name, calls, tc.dual)
		}
	}
	if st := s.Stats(); st.Unwrapped != 0 || st.CommitsDual != 3 {
		t.Errorf("stats %+v, want 3 dual commits", st)
	}
	// In a read-only mode the write is refused: DISCARD ALL had turned the shim's
	// default_transaction_read_only off, and the write, unwrapped, committed.
	s.SetMode(ModeReadOnly, 1)
	r := dialRaw(t, s)
	r.stmt("DISCARD ALL")
	r.stmt(insertOne)
	if got, _ := r.sync(); !strings.HasSuffix(got, "E(25006)Z") || rowCount(t, c, "true") != 0 {
		t.Errorf("read-only mode, DISCARD ALL, INSERT: %q, %d rows", got, rowCount(t, c, "true"))
	}
	if n := preparedCount(t, c); n != 0 {
		t.Fatalf("%d transactions left prepared", n)
	}
}

func TestNamesOpOf(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", 70)
	for _, tc := range []struct {
		sql  string
		want namesOp
	}{
		{"DEALLOCATE s1", namesOp{'D', "s1"}},
		{" /* c */ deallocate PREPARE \"S 1\";", namesOp{'D', "S 1"}},
		{"DEALLOCATE prepare", namesOp{'D', "prepare"}},
		{"DEALLOCATE ALL", namesOp{op: 'A'}},
		{"DEALLOCATE PREPARE all", namesOp{op: 'A'}},
		{"DEALLOCATE \"ALL\"", namesOp{'D', "ALL"}},
		{"DEALLOCATE U&\"x\"", namesOp{op: 'A'}},
		{"DEALLOCATE " + long, namesOp{'D', long[:63]}},
		{"DISCARD ALL", namesOp{op: 'A'}},
		{"DISCARD PLANS", namesOp{}},
		{"PREPARE q (int) AS SELECT $1", namesOp{'P', "q"}},
		{"PREPARE Q AS INSERT INTO t VALUES (1)", namesOp{'P', "q"}},
		{"PREPARE TRANSACTION 'x'", namesOp{}},
		{"SELECT 1", namesOp{}},
	} {
		sts := splitStatements(tc.sql)
		if got := namesOpOf(tc.sql, sts[0]); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.sql, got, tc.want)
		}
	}
}

// TestExtendedSplits: one extended request holding a ROLLBACK then a write, and a COMMIT in the
// middle of a batch, each with its own Parse/Bind on the unnamed statement and portal.
func TestExtendedSplits(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	stmt := func(q string) {
		r.fe.SendParse(&pgproto3.Parse{Query: q})
		r.fe.SendBind(&pgproto3.Bind{})
		r.fe.SendExecute(&pgproto3.Execute{})
	}
	r.query("BEGIN")
	stmt("INSERT INTO acct VALUES (1, 0)")
	stmt("ROLLBACK")
	stmt("INSERT INTO acct VALUES (2, 0)")
	r.fe.SendSync(&pgproto3.Sync{})
	r.fe.Flush()
	if got, err := r.until('Z'); err != nil || got != "12C12C12CZ" {
		t.Fatalf("ROLLBACK then write: %q %v", got, err)
	}
	checkDual(t, peer.take(), 1)
	if rowCount(t, c, "id = 1") != 0 || rowCount(t, c, "id = 2") != 1 {
		t.Fatal("wrong rows after ROLLBACK then write")
	}
	stmt("BEGIN")
	stmt("INSERT INTO acct VALUES (3, 0)")
	stmt("COMMIT")
	stmt("INSERT INTO acct VALUES (4, 0)")
	r.fe.SendSync(&pgproto3.Sync{})
	r.fe.Flush()
	if got, err := r.until('Z'); err != nil || got != "12C12C12C12CZ" {
		t.Fatalf("BEGIN, write, COMMIT, write: %q %v", got, err)
	}
	checkDual(t, peer.take(), 2)
	if rowCount(t, c, "id IN (3, 4)") != 2 || preparedCount(t, c) != 0 {
		t.Fatal("rows missing")
	}
}

// TestInFlight: from before its local PREPARE until the session is done with it, a dual commit's
// gid is reported in flight (so a periodic resolver pass leaves it alone), and not after.
func TestInFlight(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	paused, resume := pauseAtLocalPrepare(s.Shim)()
	conn := s.connect(t)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), "INSERT INTO acct VALUES (7, 7)")
		done <- err
	}()
	select {
	case <-paused:
	case <-time.After(10 * time.Second):
		t.Fatal("the commit never reached its local PREPARE")
	}
	var gid string
	if err := c.Open(t, c.Database()).QueryRow("SELECT gid FROM pg_prepared_xacts").Scan(&gid); err != nil {
		t.Fatal(err)
	}
	inFlight := s.InFlight(gid)
	close(resume)
	if err := <-done; err != nil {
		t.Fatalf("commit: %v", err)
	}
	if !inFlight {
		t.Fatalf("%s prepared locally and waiting for the peer, but not in flight", gid)
	}
	if s.InFlight(gid) {
		t.Fatalf("%s still in flight after its commit", gid)
	}
	if s.InFlight("tandem_other_1_1") {
		t.Fatal("an unknown gid is in flight")
	}
}

// TestHoldCommits: a hold waits for the commit in flight, keeps new write commits from
// starting until it is released, and lets reads through (DESIGN §5.5 "new commits held").
func TestHoldCommits(t *testing.T) {
	t.Parallel()
	_, _, s := dualShim(t)
	paused, resume := pauseAtLocalPrepare(s.Shim)()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	inflight := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, "INSERT INTO acct VALUES (21, 1)")
		inflight <- err
	}()
	<-paused
	held := make(chan func(), 1)
	go func() {
		release, err := s.HoldCommits(ctx)
		if err != nil {
			t.Error(err)
			close(held)
			return
		}
		held <- release
	}()
	select {
	case <-held:
		t.Fatal("the hold was granted while a commit was in flight")
	case <-time.After(300 * time.Millisecond):
	}
	close(resume)
	if err := <-inflight; err != nil {
		t.Fatalf("the commit in flight: %v", err)
	}
	var release func()
	select {
	case release = <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("no hold 5 s after the commit in flight ended")
	}
	if release == nil {
		t.FailNow()
	}

	conn := s.connect(t)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil || n != 1 {
		t.Fatalf("a read under the hold: %d, %v", n, err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "INSERT INTO acct VALUES (22, 1)")
		blocked <- err
	}()
	select {
	case err := <-blocked:
		t.Fatalf("a write committed under the hold (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	release() // idempotent
	if err := <-blocked; err != nil {
		t.Fatalf("the held write after release: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after release: %d, %v", n, err)
	}
}

// TestHoldReleaseToDual: a solo write held at the gate by catch-up commits on both databases
// when the hold ends with the switch to dual — never alone after the peer was declared synced.
func TestHoldReleaseToDual(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeSolo, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release, err := s.HoldCommits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, "INSERT INTO acct VALUES (31, 1)")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a solo write committed under the hold (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	before := s.Stats()
	if !s.SwitchMode(ModeSolo, ModeDual, 1) {
		t.Fatal("SwitchMode solo → dual refused")
	}
	if s.SwitchMode(ModeSolo, ModeDual, 1) {
		t.Fatal("SwitchMode from a mode no longer current succeeded")
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the held write: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held write never committed after the hold ended")
	}
	if st := s.Stats(); st.CommitsDual != before.CommitsDual+1 || st.CommitsSolo != before.CommitsSolo {
		t.Fatalf("stats before %+v, after %+v: want the held write dual", before, st)
	}
}

// TestHoldSoloCommitInFlight: a hold asked for while a solo write commit is past the gate is
// granted once that commit is done. Before, the commit asked the gate a second time after its
// COMMIT's reply (the write mark had ended with the transaction) and waited there for the hold,
// which waited for it: every catch-up hold timed out while solo writes went on.
func TestHoldSoloCommitInFlight(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeSolo, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.connect(t)
	for i, q := range []string{
		"INSERT INTO acct VALUES (41, 1)",                // implicit
		"BEGIN; INSERT INTO acct VALUES (42, 1); COMMIT", // explicit, in one query
		"UPDATE acct SET bal = bal + 1 WHERE id = 41",    // implicit update
	} {
		paused, resume := pauseAt(s.Shim, "local-commit-gated")()
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, q)
			done <- err
		}()
		select {
		case <-paused:
		case err := <-done:
			t.Fatalf("%d: %q committed without passing the gate (%v)", i, q, err)
		}
		held := make(chan error, 1)
		go func() {
			hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
			defer hcancel()
			release, err := s.HoldCommits(hctx)
			if err == nil {
				release()
			}
			held <- err
		}()
		time.Sleep(100 * time.Millisecond) // the hold waits for the commit past the gate
		close(resume)
		if err := <-done; err != nil {
			t.Fatalf("%d: %q: %v", i, q, err)
		}
		if err := <-held; err != nil {
			t.Fatalf("%d: the hold asked for during %q: %v", i, q, err)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT sum(bal) FROM acct").Scan(&n); err != nil || n != 3 {
		t.Fatalf("sum of balances %d (%v), want 3", n, err)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls in solo mode: %v", calls)
	}
}

// TestStepDown is the shim's side of a handover (DESIGN §3): once the mode has no writes, Drain
// waits for the commit in flight, which still finishes on both sides; a commit that reaches the
// gate after the role was given up is refused; and one whose peer does not answer after the role
// was given up stays prepared, in doubt, for the resolver.
func TestStepDown(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pauseNext := pauseAtLocalPrepare(s.Shim)
	insert := func(id int) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := s.connect(t).Exec(ctx, fmt.Sprintf("INSERT INTO acct VALUES (%d, 1)", id))
			done <- err
		}()
		return done
	}
	rows := func() int {
		var n int
		if err := s.connect(t).QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A commit in flight finishes; Drain waits for it.
	paused, resume := pauseNext()
	inflight := insert(1)
	<-paused
	s.SetMode(ModeReadOnly, 1)
	drained := make(chan error, 1)
	go func() { drained <- s.Drain(ctx) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned with a commit in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(resume)
	if err := <-inflight; err != nil {
		t.Fatalf("the commit in flight at the step-down: %v", err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if calls := peer.take(); len(calls) != 2 || !strings.HasPrefix(calls[1], "commit ") {
		t.Errorf("peer calls for the commit in flight: %v, want prepare and commit", calls)
	}

	// A commit held at the gate across the step-down is refused when it comes through.
	s.SetMode(ModeDual, 2)
	release, err := s.HoldCommits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	late := insert(2)
	// At the gate: its INSERT ran (its backend idle in a transaction that wrote), its commit
	// held. A fixed 200 ms was too short for the session's start-up on a busy machine (the
	// package's parallel tests beside it): its INSERT ran after the step-down, refused by the
	// read-only session ("cannot execute INSERT in a read-only transaction").
	activity := c.Open(t, c.Database())
	waitFor(t, "the INSERT run, its commit at the gate", func() bool {
		return queryOne[int](t, activity, `SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' AND backend_xid IS NOT NULL`) == 1
	})
	s.SetMode(ModeReadOnly, 2)
	release()
	if err := <-late; err == nil || !strings.Contains(err.Error(), "no longer master of term 2") {
		t.Errorf("a commit through the gate after the step-down: %v, want refused", err)
	}

	// The peer's outcome unknown after the step-down: neither committed alone nor rolled back
	// (the peer may hold it prepared, and recovery may commit it there), but left prepared
	// for the resolver, and the client told the outcome is unknown.
	s.SetMode(ModeDual, 3)
	paused, resume = pauseNext()
	unanswered := insert(3)
	<-paused
	s.SetMode(ModeReadOnly, 3)
	peer.mu.Lock()
	peer.prepareErr = errors.New("read results from the peer: timeout")
	peer.mu.Unlock()
	close(resume)
	if err := <-unanswered; pgCode(err) != "08007" || !strings.Contains(err.Error(), "stopped being master of term 3") {
		t.Errorf("a commit whose peer did not answer after the step-down: %v, want 08007 (in doubt)", err)
	}
	if calls := peer.take(); len(calls) != 1 {
		t.Errorf("peer calls: %v, want the prepare alone", calls)
	}
	if mode, term := s.Mode(); mode != ModeReadOnly || term != 3 {
		t.Errorf("mode %v term %d after the unanswered commit, want read-only 3", mode, term)
	}
	if n := rows(); n != 1 {
		t.Errorf("%d rows, want 1 (only the commit in flight at the first step-down)", n)
	}
	db := c.Open(t, c.Database())
	var gid string
	if err := db.QueryRow("SELECT string_agg(gid, ',') FROM pg_prepared_xacts").Scan(&gid); err != nil || !strings.HasPrefix(gid, "tandem_") || strings.Contains(gid, ",") {
		t.Fatalf("prepared transactions %q (%v), want the one in doubt", gid, err)
	}
	if s.InFlight(gid) {
		t.Errorf("%s still in flight: the resolver would skip it", gid)
	}
	if _, err := db.Exec("ROLLBACK PREPARED '" + gid + "'"); err != nil {
		t.Fatal(err)
	}
}

// TestPeerDownBlock: with peer_down = "block" a commit whose peer does not answer is neither
// committed alone nor rolled back: it stays prepared for the resolver, the client hears 08007,
// and the shim stays dual (it never goes solo).
func TestPeerDownBlock(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t, prepareErr: errors.New("read results from the peer: timeout")}
	var downs, doubts atomic.Int64
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer, OnPeerDown: func() bool { downs.Add(1); return true }, OnInDoubt: func() { doubts.Add(1) }}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.connect(t)
	_, err := conn.Exec(ctx, "INSERT INTO acct VALUES (1, 1)")
	if pgCode(err) != "08007" || !strings.Contains(err.Error(), "peer_down = block") {
		t.Fatalf("commit with the peer not answering: %v, want 08007 naming peer_down = block", err)
	}
	if calls := peer.take(); len(calls) != 1 || !strings.HasPrefix(calls[0], "prepare ") {
		t.Errorf("peer calls %v, want the prepare alone", calls)
	}
	if m, _ := s.Mode(); m != ModeDual || downs.Load() != 0 || doubts.Load() != 1 || s.Stats().LeftInDoubt != 1 {
		t.Errorf("mode %v, OnPeerDown called %d times, OnInDoubt %d, stats %+v: want dual, never, once, one left in doubt",
			m, downs.Load(), doubts.Load(), s.Stats())
	}
	if n := preparedCount(t, c); n != 1 {
		t.Errorf("%d prepared transactions, want the one in doubt", n)
	}
	if n := rowCount(t, c, "id = 1"); n != 0 {
		t.Errorf("the row in doubt is visible (%d)", n)
	}
	// The session goes on.
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("the session after the in-doubt commit: %d, %v", one, err)
	}
	c.Exec(t, "ROLLBACK PREPARED '"+s.onlyPrepared(t)+"'")
}

// TestPeerDownRefused: when OnPeerDown says this site may not commit alone (going solo was not
// acknowledged), commits whose peer did not answer stay prepared for the resolver with 08007
// and the shim stays dual; sessions that waited for a refusing call share its answer rather
// than asking one after another; once OnPeerDown agrees, the next such commit goes solo.
func TestPeerDownRefused(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t, prepareErr: errors.New("read results from the peer: timeout")}
	var calls atomic.Int64
	var allow atomic.Bool
	s := startShim(t, c, Options{Peer: peer, OnPeerDown: func() bool {
		calls.Add(1)
		if allow.Load() {
			return true
		}
		time.Sleep(time.Second) // an announcement nobody acknowledges in time
		return false
	}}, ModeDual, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 4
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = s.connect(t)
	}
	errs := make(chan error, n)
	for i, conn := range conns {
		go func() {
			_, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO acct VALUES (%d, 1)", i+1))
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; pgCode(err) != "08007" || !strings.Contains(err.Error(), "not acknowledged") {
			t.Errorf("commit while going solo is refused: %v, want 08007 saying it was not acknowledged", err)
		}
	}
	if got := calls.Load(); got >= n {
		t.Errorf("OnPeerDown called %d times for %d concurrent commits: sessions waiting for a refusal did not share it", got, n)
	}
	if m, _ := s.Mode(); m != ModeDual || s.WentSolo(1) || s.Stats().LeftInDoubt != n {
		t.Errorf("mode %v, went solo %v, stats %+v: want dual, no, %d left in doubt", m, s.WentSolo(1), s.Stats(), n)
	}
	if got := preparedCount(t, c); got != n {
		t.Errorf("%d prepared transactions, want the %d in doubt", got, n)
	}
	if got := rowCount(t, c, "true"); got != 0 {
		t.Errorf("%d rows in doubt are visible", got)
	}

	allow.Store(true)
	if _, err := conns[0].Exec(ctx, "INSERT INTO acct VALUES (10, 1)"); err != nil {
		t.Fatalf("commit once going solo is acknowledged: %v", err)
	}
	if m, _ := s.Mode(); m != ModeSolo || !s.WentSolo(1) || rowCount(t, c, "id = 10") != 1 {
		t.Errorf("mode %v, went solo %v, row 10 there %v: want solo, yes, yes", m, s.WentSolo(1), rowCount(t, c, "id = 10") == 1)
	}
	rows, err := conns[0].Query(ctx, "SELECT gid FROM pg_prepared_xacts")
	if err != nil {
		t.Fatal(err)
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, gid := range gids {
		c.Exec(t, "ROLLBACK PREPARED '"+gid+"'")
	}
}

// TestPeerRefusals: what the client hears when the peer refuses the apply. A newer term held
// by the peer (another site is master) fences the commit: 25006, not called a divergence. A
// refusal for the moment (a deadlock, a cancel: the Shipper asked again all the commit's time
// long) is one the client may retry: class 40. Other refusals (the databases differ) are
// XX000. Each is rolled back on both.
func TestPeerRefusals(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.connect(t)
	for i, tc := range []struct {
		code, msg string
		want      string // SQLSTATE to the client
		says      string
	}{
		{sqlstateStaleTerm, "term 1 of site1 is older than the database's term 2 of site2", "25006", "fenced"},
		{"40P01", "deadlock detected", "40P01", "for the moment"},
		{"57014", "canceling statement due to user request", "40001", "for the moment"},
		{"23505", "duplicate key value violates unique constraint", "XX000", "rolled back on both"},
	} {
		peer.mu.Lock()
		peer.prepareErr = &PeerError{Step: "apply", Definite: true, Err: &pgconn.PgError{Code: tc.code, Message: tc.msg}}
		peer.mu.Unlock()
		_, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO acct VALUES (%d, 1)", i+1))
		if pgCode(err) != tc.want || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("commit refused by the peer with %s: %v, want %s saying %q", tc.code, err, tc.want, tc.says)
		}
		if calls := peer.take(); len(calls) != 2 || !strings.HasPrefix(calls[1], "rollback ") {
			t.Errorf("%s: peer calls %v, want prepare and rollback", tc.code, calls)
		}
		if n := preparedCount(t, c); n != 0 {
			t.Errorf("%s: %d prepared transactions left", tc.code, n)
		}
		if n := rowCount(t, c, fmt.Sprintf("id = %d", i+1)); n != 0 {
			t.Errorf("%s: the refused row is there (%d)", tc.code, n)
		}
	}
}

// onlyPrepared returns the gid of the one prepared transaction on the shim's database.
func (s *testShim) onlyPrepared(t *testing.T) string {
	t.Helper()
	db := s.c.Open(t, s.c.Database())
	var gid string
	if err := db.QueryRow("SELECT gid FROM pg_prepared_xacts").Scan(&gid); err != nil {
		t.Fatalf("the prepared transaction: %v", err)
	}
	return gid
}

// pauseAtLocalPrepare installs a failpoint in s; each call of next makes s's next dual commit
// stop right after its local PREPARE: paused is closed then, and the commit goes on once
// resume is closed.
func pauseAtLocalPrepare(s *Shim) (next func() (paused, resume chan struct{})) {
	return pauseAt(s, "after-local-prepare")
}

// pauseAt is pauseAtLocalPrepare for any failpoint step.
func pauseAt(s *Shim, at string) (next func() (paused, resume chan struct{})) {
	var pause atomic.Pointer[[2]chan struct{}]
	s.hooks.failpoint.set(func(step string) error {
		if p := pause.Load(); step == at && p != nil && pause.CompareAndSwap(p, nil) {
			close(p[0])
			<-p[1]
		}
		return nil
	})
	return func() (paused, resume chan struct{}) {
		p := &[2]chan struct{}{make(chan struct{}), make(chan struct{})}
		pause.Store(p)
		return p[0], p[1]
	}
}

// lostReply is a Peer whose prepare reaches the peer but whose answer is lost, while the site
// loses the master role (onPrepared runs between the two).
type lostReply struct {
	Peer
	onPrepared func()
}

func (p lostReply) Prepare(ctx context.Context, gid string) error {
	if err := p.Peer.Prepare(ctx, gid); err != nil {
		return err
	}
	p.onPrepared()
	return errors.New("read results from the peer: timeout")
}

// TestInDoubtAfterRoleLoss: the peer prepared a transaction but its answer was lost, and the site
// lost the role meanwhile. Recovery commits a peer copy when the gid's own database is out of
// reach (DESIGN §5.4), so the coordinator must not roll its own copy back: it leaves it
// prepared, and a resolver pass without the own database followed by one with both ends with
// the transaction committed on both, identical.
func TestInDoubtAfterRoleLoss(t *testing.T) {
	t.Parallel()
	p, sh := shippingAcct(t)
	logger := quietLogger()
	var shim *testShim
	peer := lostReply{Peer: sh, onPrepared: func() { shim.SetMode(ModeReadOnly, 1) }}
	shim = startShim(t, p.local, Options{Peer: peer, Site: "a", Logger: logger}, ModeDual, 1)
	ctx := capCtx(t, 60*time.Second)
	_, err := shim.connect(t).Exec(ctx, "INSERT INTO acct VALUES (1, 100)")
	if pgCode(err) != "08007" {
		t.Fatalf("commit with the peer's answer lost after the role change: %v, want 08007", err)
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`); n != 1 {
		t.Fatalf("%d prepared locally, want the one in doubt", n)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`); n != 1 {
		t.Fatalf("%d prepared on the peer, want its copy", n)
	}

	// The next master's pass while the gid's own database is out of reach: commit the copy.
	blind := NewResolver(ResolverConfig{Site: "a", LocalDSN: "postgres://postgres@127.0.0.1:1/app?sslmode=disable",
		PeerDSN: p.peer.DSN("app"), Logger: logger})
	if rep, err := blind.ResolveOnce(ctx); err != nil || len(rep.Committed) != 1 {
		t.Fatalf("pass without the own database: %+v, %v; want the peer copy committed", rep, err)
	}
	// Then a pass that sees both: the own copy follows.
	both := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: logger})
	if rep, err := both.ResolveOnce(ctx); err != nil || len(rep.Committed) != 1 {
		t.Fatalf("pass with both databases: %+v, %v; want the own copy committed", rep, err)
	}
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if n := queryOne[int](t, db, `SELECT count(*) FROM pg_prepared_xacts`); n != 0 {
			t.Errorf("%d prepared transactions left", n)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct`); n != 1 {
			t.Errorf("%d rows, want the transaction committed", n)
		}
	}
	requireSame(t, p)
}

// TestCommitFinishedByOtherResolver: during a dual commit a resolver that does not know it is
// in flight (the next master's at its promotion after this one was paused, or `tandem resolve`)
// finishes the gid: after the peer's PREPARE it finds it prepared on both databases and commits
// both (DESIGN §5.4: both voted yes); after the local PREPARE alone it rolls it back. The
// client must hear that outcome — COMMIT, or a rollback — not an error that says the
// transaction is in doubt (a committed one would be retried).
func TestCommitFinishedByOtherResolver(t *testing.T) {
	t.Parallel()
	p, sh := shippingAcct(t)
	logger := quietLogger()
	next := NewResolver(ResolverConfig{Site: "b", LocalDSN: p.peer.DSN("app"), PeerDSN: p.local.DSN("app"), Logger: logger})
	ctx := capCtx(t, 60*time.Second)
	var at atomic.Pointer[string]
	var rep Report
	var rerr error
	shim := startShim(t, p.local, Options{Peer: sh, Site: "a", Logger: logger}, ModeDual, 1)
	shim.hooks.failpoint.set(func(step string) error {
		if want := at.Load(); want != nil && *want == step && at.CompareAndSwap(want, nil) {
			rep, rerr = next.ResolveOnce(ctx)
		}
		return nil
	})
	conn := shim.connect(t)

	step := "after-peer-prepare"
	at.Store(&step)
	_, err := conn.Exec(ctx, "INSERT INTO acct VALUES (1, 100)")
	if rerr != nil || len(rep.Committed) != 1 {
		t.Fatalf("the other resolver's pass: %+v, %v; want the gid committed on both", rep, rerr)
	}
	if err != nil {
		t.Errorf("commit that the other resolver finished on both databases: %v (SQLSTATE %s), want COMMIT", err, pgCode(err))
	}
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 1`); n != 1 {
			t.Errorf("%d rows with id 1, want the committed one", n)
		}
	}

	step2 := "after-local-prepare"
	at.Store(&step2)
	_, err = conn.Exec(ctx, "INSERT INTO acct VALUES (2, 100)")
	if rerr != nil || len(rep.RolledBack) != 1 {
		t.Fatalf("the other resolver's pass: %+v, %v; want the gid rolled back", rep, rerr)
	}
	if code := pgCode(err); code != "40000" {
		t.Errorf("commit that the other resolver rolled back: %v, want SQLSTATE 40000", err)
	}
	waitForLong(t, "nothing prepared", 20*time.Second, func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`)+queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 2`); n != 0 {
			t.Errorf("%d rows with id 2, want none", n)
		}
	}
	requireSame(t, p)
}

// TestInDoubtKickSeesGID: OnInDoubt asks for a resolver pass at once, and the pass it asks for
// leaves alone what the shim still has in flight (InFlight). The commit left in doubt must not
// be in flight any more by then: otherwise a pass that runs at once skips it, and its row locks
// stay held until the next periodic pass.
func TestInDoubtKickSeesGID(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t, prepareErr: errors.New("read results from the peer: timeout")}
	db := c.Open(t, c.Database())
	var s *testShim
	type kick struct {
		gid      string
		inFlight bool
	}
	kicks := make(chan kick, 1)
	s = startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer, OnInDoubt: func() {
		var k kick
		if err := db.QueryRow(`SELECT gid FROM pg_prepared_xacts`).Scan(&k.gid); err != nil {
			t.Errorf("the gid in doubt: %v", err)
		}
		k.inFlight = s.InFlight(k.gid)
		kicks <- k
	}}, ModeDual, 1, func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock })
	ctx := capCtx(t, 30*time.Second)
	_, err := s.connect(t).Exec(ctx, "INSERT INTO acct VALUES (1, 1)")
	if pgCode(err) != "08007" {
		t.Fatalf("commit with the peer not answering: %v, want 08007", err)
	}
	select {
	case k := <-kicks:
		if k.inFlight {
			t.Errorf("%s is still in flight when OnInDoubt asks for a resolver pass", k.gid)
		}
	default:
		t.Fatal("OnInDoubt was not called")
	}
	c.Exec(t, "ROLLBACK PREPARED '"+s.onlyPrepared(t)+"'")
}

// TestKeptCommitCheck: the commit check is parsed once per session and kept prepared
// (sendKept), in dual mode and in solo mode (where it takes the term as parameters). A
// DEALLOCATE ALL or DISCARD ALL of the client's — even earlier in the very Query, or pipeline,
// that commits — makes the shim parse it again instead of failing the commit. One the shim
// cannot see (run by a function) fails that one commit: rolled back, with an error, nothing
// left prepared; the session's later commits parse the check every time.
func TestKeptCommitCheck(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	for i, mode := range []Mode{ModeDual, ModeSolo} {
		t.Run(mode.String(), func(t *testing.T) {
			peer := &fakePeer{c: c, t: t}
			s := startShim(t, c, Options{Peer: peer}, mode, 1)
			ctx := capCtx(t, 60*time.Second)
			pc := s.connect(t).PgConn()
			id := i + 1
			run := func(sql string) error {
				_, err := pc.Exec(ctx, strings.ReplaceAll(sql, "%d", strconv.Itoa(id))).ReadAll()
				return err
			}
			// The kept statements of this session and when the oldest was parsed.
			kept := func() (n int, at string) {
				t.Helper()
				rs, err := pc.Exec(ctx, "SELECT count(*), coalesce(min(prepare_time)::text, '') FROM pg_prepared_statements WHERE name LIKE 'tandem\\_shim\\_kept\\_%' AND statement NOT LIKE 'SHOW %' AND statement NOT LIKE 'SET %'").ReadAll() // the commit check, not idleOff's SHOW and SET
				if err != nil || len(rs) != 1 || len(rs[0].Rows) != 1 {
					t.Fatalf("read pg_prepared_statements: %v", err)
				}
				n, _ = strconv.Atoi(string(rs[0].Rows[0][0]))
				return n, string(rs[0].Rows[0][1])
			}
			balance := func() int {
				t.Helper()
				var b int
				if err := c.Open(t, c.Database()).QueryRow("SELECT bal FROM acct WHERE id = $1", id).Scan(&b); err != nil {
					t.Fatal(err)
				}
				return b
			}
			commits := 0
			commit := func(what, sql string) {
				t.Helper()
				if err := run(sql); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				commits++
				if b := balance(); b != 100+commits-1 {
					t.Fatalf("%s: balance %d, want %d", what, b, 100+commits-1)
				}
			}

			// The session's first commit follows, in one request, a statement that fails:
			// PostgreSQL skips the check's Parse with the rest of the request, unreported.
			if err := run("BEGIN; INSERT INTO acct VALUES (%d, 0)"); err != nil {
				t.Fatal(err)
			}
			b := pc.StartPipeline(ctx)
			b.SendQueryParams("INSERT INTO acct VALUES ($1, 0)", [][]byte{[]byte(strconv.Itoa(id))}, nil, nil, nil)
			b.SendQueryParams("COMMIT", nil, nil, nil, nil)
			if err := b.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := drainPipeline(b); err == nil || pgCode(err) != "23505" {
				t.Fatalf("a duplicate key pipelined before COMMIT: %v, want 23505", err)
			}
			if err := b.Close(); err != nil && pgCode(err) != "23505" {
				t.Fatal(err)
			}
			if st := pc.TxStatus(); st != 'I' {
				if err := run("ROLLBACK"); err != nil {
					t.Fatal(err)
				}
			}
			commit("first", "INSERT INTO acct VALUES (%d, 100)")
			n, first := kept()
			commit("implicit", "UPDATE acct SET bal = bal + 1 WHERE id = %d")
			commit("explicit", "BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = %d; COMMIT")
			if n2, at := kept(); n != 1 || n2 != 1 || at != first {
				t.Fatalf("kept checks %d (parsed %s), then %d (parsed %s): want one, parsed once", n, first, n2, at)
			}
			commit("DEALLOCATE ALL in the committing Query", "BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = %d; DEALLOCATE ALL; COMMIT")
			// Extended protocol: the DEALLOCATE's Parse comes in the same request as the COMMIT.
			if err := run("BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = %d"); err != nil {
				t.Fatal(err)
			}
			b = pc.StartPipeline(ctx)
			b.SendQueryParams("DEALLOCATE ALL", nil, nil, nil, nil)
			b.SendQueryParams("COMMIT", nil, nil, nil, nil)
			if err := b.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := drainPipeline(b); err != nil {
				t.Fatalf("DEALLOCATE ALL pipelined before COMMIT: %v", err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			commits++
			if got := balance(); got != 100+commits-1 {
				t.Fatalf("after the pipeline: balance %d, want %d", got, 100+commits-1)
			}
			if err := run("DISCARD ALL"); err != nil {
				t.Fatal(err)
			}
			commit("after DISCARD ALL", "UPDATE acct SET bal = bal + 1 WHERE id = %d")
			if n, _ := kept(); n != 1 {
				t.Fatalf("%d kept checks after DISCARD ALL and a commit, want 1", n)
			}

			// A DEALLOCATE the lexer cannot see fails the commit it precedes, and only that one.
			err := run(`BEGIN; UPDATE acct SET bal = bal + 1000 WHERE id = %d; DO $$BEGIN DEALLOCATE ALL; END$$; COMMIT`)
			if err == nil || !strings.Contains(err.Error(), "does not exist") {
				t.Fatalf("commit after a hidden DEALLOCATE ALL: %v, want the check's error", err)
			}
			if got := balance(); got != 100+commits-1 {
				t.Fatalf("a failed commit changed the balance to %d", got)
			}
			if st := pc.TxStatus(); st != 'I' {
				if err := run("ROLLBACK"); err != nil {
					t.Fatal(err)
				}
			}
			commit("after the failed one", "UPDATE acct SET bal = bal + 1 WHERE id = %d")
			// The session keeps its checks no more: the same hidden DEALLOCATE now commits.
			commit("hidden DEALLOCATE ALL again", `BEGIN; UPDATE acct SET bal = bal + 1 WHERE id = %d; DO $$BEGIN DEALLOCATE ALL; END$$; COMMIT`)
			if n, _ := kept(); n != 0 {
				t.Fatalf("%d kept checks after one vanished unseen, want none", n)
			}
			if n := preparedCount(t, c); n != 0 {
				t.Fatalf("%d prepared transactions left", n)
			}
			if mode == ModeDual {
				checkDual(t, peer.take(), commits)
			} else if calls := peer.take(); len(calls) != 0 {
				t.Fatalf("solo mode called the peer: %v", calls)
			}
		})
	}
}

// drainPipeline reads b's results up to its next PipelineSync and returns the first error.
func drainPipeline(b *pgconn.Pipeline) error {
	var first error
	for {
		res, err := b.GetResults()
		if err != nil {
			return cmp.Or(first, err)
		}
		switch r := res.(type) {
		case *pgconn.PipelineSync:
			return first
		case *pgconn.ResultReader:
			if _, err := r.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
}

// TestKeptCheckSkipped: a kept statement answered by neither a CommandComplete nor an error
// (PostgreSQL skipped it after an earlier error in its request) makes the session forget its
// kept statements — without taking it for one that vanished (keepOff).
func TestKeptCheckSkipped(t *testing.T) {
	t.Parallel()
	s := &session{bw: bufio.NewWriter(io.Discard), done: make(chan struct{}), log: quietLogger(),
		kept: map[string]string{"SELECT 1": keptPrefix + "1"}}
	p := &pending{kept: true, res: make(chan result, 1)}
	p.res <- result{status: 'E'}
	if _, err := s.wait(p); err != nil {
		t.Fatal(err)
	}
	if s.kept != nil || s.keepOff {
		t.Fatalf("after a skipped check: kept %v, keepOff %v; want forgotten, keeping on", s.kept, s.keepOff)
	}
}

// TestSetRoleCommit: clients that write under a role they set (SET ROLE, SET LOCAL ROLE). The
// commit check reads the term record under that role, which every role may since install
// grants it (before, every such write failed: permission denied for schema tandem). A
// prepared transaction belongs to that role, and only it or a superuser may finish it: with a
// local_dsn user that is not a superuser, its session's COMMIT PREPARED (a SET LOCAL ROLE
// gone by then) and the resolver were refused for good, the transaction prepared on both
// databases. Such a transaction now commits plainly (shipped from the stream), and nothing
// stays prepared.
func TestSetRoleCommit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, schemaSQL)
	c.Exec(t, `INSERT INTO tandem.state VALUES (1, 1, 'site1', true) ON CONFLICT DO NOTHING;
CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);
CREATE ROLE writer NOLOGIN;
GRANT INSERT, SELECT ON acct TO writer;
CREATE ROLE u1 LOGIN NOSUPERUSER IN ROLE writer`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, user, stmts string
		dual              bool
	}{
		{"superuser, SET ROLE", pgtest.Superuser, "SET ROLE writer; INSERT INTO acct VALUES (1, 1)", true},
		{"superuser, SET LOCAL ROLE", pgtest.Superuser, "BEGIN; SET LOCAL ROLE writer; INSERT INTO acct VALUES (2, 1); COMMIT", true},
		{"not a superuser, SET LOCAL ROLE", "u1", "BEGIN; SET LOCAL ROLE writer; INSERT INTO acct VALUES (3, 1); COMMIT", false},
		{"not a superuser, SET ROLE", "u1", "SET ROLE writer; INSERT INTO acct VALUES (4, 1)", false},
	} {
		peer := &fakePeer{c: c, t: t}
		dsn := strings.Replace(c.DSN(c.Database()), "://"+pgtest.Superuser+"@", "://"+tc.user+"@", 1)
		s := startShimDSN(t, c, dsn, Options{Peer: peer}, ModeDual, 1)
		conn := s.connect(t)
		if _, err := conn.Exec(ctx, tc.stmts); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		st := s.Stats()
		if tc.dual && st.CommitsDual != 1 || !tc.dual && st.Unwrapped != 1 {
			t.Errorf("%s: stats %+v, want one %s commit", tc.name, st, map[bool]string{true: "dual", false: "unwrapped"}[tc.dual])
		}
		if n := preparedCount(t, c); n != 0 {
			t.Fatalf("%s: %d transactions left prepared", tc.name, n)
		}
		conn.Close(ctx)
	}
	if n := rowCount(t, c, "true"); n != 4 {
		t.Errorf("%d rows committed, want 4", n)
	}
}

// TestCommitBehindLexerEdges: a COMMIT that PostgreSQL sees behind a -- comment ended by \r, or
// behind an E'…' string continued across a newline (its later part taking escapes too), is one
// the shim sees: the transaction commits on both databases. The lexer read past both, and the
// write committed locally only while the client was told COMMIT.
func TestCommitBehindLexerEdges(t *testing.T) {
	t.Parallel()
	_, peer, s := dualShim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.connect(t)
	for i, commit := range []string{"SELECT 1 --x\r; COMMIT", "SELECT E'x'\n'\\' ' ; COMMIT ; SELECT ' '"} {
		if _, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 0)", i+1)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, commit); err != nil {
			t.Fatalf("%q: %v", commit, err)
		}
	}
	checkDual(t, peer.take(), 2)
	if st := s.Stats(); st.CommitsDual != 2 {
		t.Errorf("stats %+v, want 2 dual commits", st)
	}
}

// TestKeptIdleOffDeallocatedAtPrepare: a deferred constraint trigger whose function runs
// DEALLOCATE ALL fires in PREPARE TRANSACTION — after the commit check ran, before idleOff's
// kept statement. The commit must still succeed, and later ones too (the
// session parses its kept statements on every commit from then on).
func TestKeptIdleOffDeallocatedAtPrepare(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE FUNCTION dealloc() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN EXECUTE 'DEALLOCATE ALL'; RETURN NULL; END$$;
CREATE CONSTRAINT TRIGGER dealloc AFTER UPDATE ON acct DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dealloc();
INSERT INTO acct VALUES (1, 100)`)
	c.Exec(t, `CREATE TABLE other (k int)`)
	ctx := capCtx(t, 60*time.Second)
	pc := s.connect(t).PgConn()
	if _, err := pc.Exec(ctx, "SET idle_session_timeout = '1h'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	// The session's first commit parses both kept statements, and fires no trigger.
	if _, err := pc.Exec(ctx, "INSERT INTO other VALUES (1)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := pc.Exec(ctx, "UPDATE acct SET bal = bal + 1 WHERE id = 1").ReadAll(); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		rs, err := pc.Exec(ctx, "SHOW idle_session_timeout").ReadAll()
		if err != nil {
			t.Fatalf("after commit %d: %v", i, err)
		}
		if got := string(rs[0].Rows[0][0]); got != "1h" {
			t.Errorf("idle_session_timeout after commit %d: %q, want 1h", i, got)
		}
	}
	var b int
	if err := c.Open(t, c.Database()).QueryRow("SELECT bal FROM acct WHERE id = 1").Scan(&b); err != nil {
		t.Fatal(err)
	}
	if b != 104 {
		t.Fatalf("balance %d, want 104", b)
	}
	if n := preparedCount(t, c); n != 0 {
		t.Fatalf("%d prepared left", n)
	}
	checkDual(t, peer.take(), 5)
}
