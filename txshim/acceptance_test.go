package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// The acceptance tests run real clients — psql, pgbench, lib/pq, pgx — through the shim in dual
// mode with the real Shipper, against two real clusters, and end each case with Verify finding
// the two databases identical and no tandem_ transaction left prepared on either (DESIGN §5).
// The clusters are installed once while they hold no application table; every table is then
// made through the shim, so its DDL reaches the peer only through tandem.ddl (DESIGN §5.2).

// accEnv is the pair of databases, the Shipper and the shim the acceptance cases share.
type accEnv struct {
	local, peer       *pgtest.Cluster
	localDSN, peerDSN string
	localDB, peerDB   *sql.DB
	ship              *Shipper
	shim              *testShim
}

func startAccEnv(t *testing.T) *accEnv {
	t.Helper()
	return startAccEnvWith(t, nil, nil)
}

// startAccEnvWith is startAccEnv with options for the local and the peer cluster.
func startAccEnvWith(t *testing.T, local, peer []pgtest.Option) *accEnv {
	t.Helper()
	e := &accEnv{local: pgtest.Start(t, local...), peer: pgtest.Start(t, peer...)}
	e.localDSN, e.peerDSN = e.local.DSN(e.local.Database()), e.peer.DSN(e.peer.Database())
	e.localDB, e.peerDB = e.local.Open(t, e.local.Database()), e.peer.Open(t, e.peer.Database())
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := Install(ctx, "site1", e.localDSN, e.peerDSN, logger); err != nil {
		cancel()
		t.Fatal(err)
	}
	for _, db := range []*sql.DB{e.localDB, e.peerDB} {
		if err := WriteTermRecord(ctx, db, 1, "site1", true); err != nil {
			cancel()
			t.Fatal(err)
		}
	}
	e.ship = NewShipper(ShipperConfig{Site: "site1", LocalDSN: e.localDSN, PeerDSN: e.peerDSN, Logger: logger})
	e.ship.SetTerm(1)
	done := make(chan error, 1)
	go func() { done <- e.ship.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Shipper.Run: %v", err)
		}
	})
	e.shim = startShim(t, e.local, Options{Peer: e.ship, Logger: logger}, ModeDual, 1)
	return e
}

// dsn is the shim's address as a connection URL.
func (e *accEnv) dsn() string { return e.shim.dsn(pgtest.Superuser) }

// connect opens a pgx connection through the shim, closed when t ends.
func (e *accEnv) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.dsn())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	return c
}

// settle waits (up to 10 s: the peer's COMMIT PREPARED may land after the client's reply,
// DESIGN §5.3) until Verify reports no difference and neither database holds a tandem_
// prepared transaction, and checks that no commit since before went solo or failed on the peer.
func (e *accEnv) settle(t *testing.T, before Stats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		diffs, err := Verify(ctx, e.localDSN, e.peerDSN)
		var left []string
		for i, db := range []*sql.DB{e.localDB, e.peerDB} {
			gids, qerr := queryStrings(ctx, db, `SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tandem\_%' ORDER BY gid`)
			if qerr != nil {
				err = errors.Join(err, qerr)
			}
			for _, g := range gids {
				left = append(left, sideName(i)+": "+g)
			}
		}
		if err == nil && len(diffs) == 0 && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: verify error %v\ndifferences:\n  %s\nprepared transactions left: %v",
				err, strings.Join(diffs, "\n  "), left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := e.ship.Err(); err != nil {
		t.Fatalf("shipping stopped: %v", err)
	}
	st := e.shim.Stats()
	if m, _ := e.shim.Mode(); m != ModeDual || st.CommitsSolo != before.CommitsSolo || st.PeerErrors != before.PeerErrors {
		t.Fatalf("the shim left dual mode or a peer prepare failed: mode %v, stats before %+v, after %+v", m, before, st)
	}
}

// peerString reads one value from the peer database.
func (e *accEnv) peerString(t *testing.T, q string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := e.peerDB.QueryRow(q, args...).Scan(&s); err != nil {
		t.Fatalf("peer: %s: %v", q, err)
	}
	return s.String
}

// accRun runs a client program and returns its standard output; standard error must show no
// warning or error (a stray "there is already a transaction in progress" would be the shim's).
func accRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	needTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10", "PGOPTIONS=")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.String(), stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "WARNING") || strings.Contains(s, "ERROR") {
		t.Fatalf("%s %v wrote to standard error:\n%s", name, args, s)
	}
	return stdout.String()
}

// TestAcceptance runs real clients (psql, pgbench, libpq, pgx) through the shim in dual mode.
//
// Not parallel: pgbench -i's 100 000-row COPY must be decoded and reach the peer within the
// shim's 5 s commit timeout, which other tests running beside it on a loaded 2-CPU machine made
// it miss (the shim went solo and settle failed).
func TestAcceptance(t *testing.T) {
	if testing.Short() {
		t.Skip("two clusters, psql and pgbench")
	}
	e := startAccEnv(t)
	// pgbench last: each case's settle compares the whole databases (Verify), and pgbench's
	// 100 000 accounts made every comparison after it read them again.
	t.Run("psql", func(t *testing.T) { accPsql(t, e) })
	t.Run("libpq", func(t *testing.T) { accLibpq(t, e) })
	t.Run("pgx", func(t *testing.T) { accPgx(t, e) })
	t.Run("serial", func(t *testing.T) { accSerial(t, e) })
	t.Run("ddl_in_transaction", func(t *testing.T) { accDDLInTx(t, e) })
	t.Run("pgbench", func(t *testing.T) { accPgbench(t, e) })
}

// accPsqlScript exercises what a psql script sends: DDL, statements split by psql and statements
// sent together in one Query (\;), explicit transactions, savepoints, and COPY with inline data.
const accPsqlScript = `-- DDL through the shim: recorded in tandem.ddl and run on the peer
CREATE TABLE acc_items (id int PRIMARY KEY, name text NOT NULL);
ALTER TABLE acc_items ADD COLUMN qty int NOT NULL DEFAULT 0;
CREATE INDEX acc_items_name ON acc_items (name);
-- one Query message with three statements
INSERT INTO acc_items VALUES (1, 'one', 1)\; INSERT INTO acc_items VALUES (2, 'two', 2)\; UPDATE acc_items SET qty = qty + 10 WHERE id = 1;
-- one line, two Query messages
INSERT INTO acc_items VALUES (3, 'three', 3); DELETE FROM acc_items WHERE id = 2;
BEGIN;
INSERT INTO acc_items VALUES (4, 'four', 4);
SAVEPOINT sp;
INSERT INTO acc_items VALUES (5, 'rolled back', 5);
UPDATE acc_items SET name = 'rolled back' WHERE id = 1;
DELETE FROM acc_items WHERE id = 3;
ROLLBACK TO SAVEPOINT sp;
INSERT INTO acc_items VALUES (6, 'six', 6);
SAVEPOINT sp2;
UPDATE acc_items SET qty = 66 WHERE id = 6;
RELEASE SAVEPOINT sp2;
COMMIT;
-- a whole transaction in one Query message
BEGIN\; INSERT INTO acc_items VALUES (7, 'seven', 7)\; UPDATE acc_items SET qty = 77 WHERE id = 7\; COMMIT;
COPY acc_items (id, name, qty) FROM STDIN;
100	hundred	100
101	tab\there	101
102	it's	102
\.
-- DDL in a transaction opened in the same Query message
BEGIN\; CREATE TABLE acc_tags (id int PRIMARY KEY, label text NOT NULL)\; INSERT INTO acc_tags VALUES (1, 'first')\; COMMIT;
-- DDL and a write in one autocommit Query message
ALTER TABLE acc_tags ADD COLUMN weight int\; INSERT INTO acc_tags VALUES (2, 'second', 2);
BEGIN;
INSERT INTO acc_items VALUES (8, 'never', 8);
UPDATE acc_tags SET label = 'never';
ROLLBACK;
SELECT count(*) AS items FROM acc_items;
`

func accPsql(t *testing.T, e *accEnv) {
	before := e.shim.Stats()
	script := filepath.Join(t.TempDir(), "script.sql")
	if err := os.WriteFile(script, []byte(accPsqlScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out := accRun(t, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", script, e.dsn())
	if !strings.Contains(out, "\n     8\n") {
		t.Fatalf("psql: want 8 items, output:\n%s", out)
	}
	e.settle(t, before)
	if st := e.shim.Stats(); st.CommitsDual-before.CommitsDual < 10 {
		t.Fatalf("expected the script's writes to commit dual: before %+v, after %+v", before, st)
	}
	// Verify compares contents and columns; these name what must (not) be on the peer.
	checks := []struct{ q, want string }{
		{`SELECT string_agg(id::text, ',' ORDER BY id) FROM acc_items`, "1,3,4,6,7,100,101,102"},
		{`SELECT name || '/' || qty FROM acc_items WHERE id = 1`, "one/11"},
		{`SELECT name || '/' || qty FROM acc_items WHERE id = 6`, "six/66"},
		{`SELECT name FROM acc_items WHERE id = 101`, "tab\there"},
		{`SELECT string_agg(id || ':' || label || ':' || coalesce(weight, 0), ',' ORDER BY id) FROM acc_tags`, "1:first:0,2:second:2"},
		{`SELECT count(*)::text FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'acc_items_name'`, "1"},
		{`SELECT count(*)::text FROM information_schema.columns WHERE table_name = 'acc_items' AND column_name = 'qty'`, "1"},
	}
	for _, c := range checks {
		if got := e.peerString(t, c.q); got != c.want {
			t.Errorf("peer: %s = %q, want %q", c.q, got, c.want)
		}
	}
}

func accPgbench(t *testing.T, e *accEnv) {
	before := e.shim.Stats()
	// Initialisation through the shim: DROP/CREATE TABLE, a transaction with TRUNCATE, INSERTs
	// and a 100 000-row COPY, VACUUM (sent as it is), and ALTER TABLE … ADD PRIMARY KEY.
	start := time.Now()
	accRun(t, "pgbench", "-i", "-s", "1", "-q", e.dsn())
	t.Logf("pgbench -i -s 1 through the shim in %v", time.Since(start))
	e.settle(t, before)
	if got := e.peerString(t, `SELECT count(*)::text FROM pgbench_accounts`); got != "100000" {
		t.Fatalf("peer holds %s pgbench_accounts rows, want 100000", got)
	}
	if got := e.peerString(t, `SELECT count(*)::text FROM pg_constraint WHERE contype = 'p' AND conrelid::regclass::text LIKE 'pgbench_%'`); got != "3" {
		t.Fatalf("peer has %s pgbench primary keys, want 3 (the DDL did not arrive)", got)
	}
	// 4 clients x 25 transactions a mode: each client's session sends its statements a few
	// dozen times over (the prepared mode's statements prepared once, executed 25 times).
	for _, mode := range []string{"simple", "extended", "prepared"} {
		before := e.shim.Stats()
		start := time.Now()
		out := accRun(t, "pgbench", "-n", "-c", "4", "-j", "2", "-t", "25", "-M", mode, e.dsn())
		if !strings.Contains(out, "processed: 100/100") {
			t.Fatalf("pgbench -M %s:\n%s", mode, out)
		}
		if st := e.shim.Stats(); st.CommitsDual-before.CommitsDual != 100 {
			t.Fatalf("pgbench -M %s: %d dual commits, want 100 (stats %+v)", mode, st.CommitsDual-before.CommitsDual, st)
		}
		t.Logf("pgbench -M %s: 100 dual transactions in %v", mode, time.Since(start))
		e.settle(t, before)
	}
	if got := e.peerString(t, `SELECT count(*)::text FROM pgbench_history`); got != "300" {
		t.Fatalf("peer holds %s pgbench_history rows, want 300", got)
	}
}

func accLibpq(t *testing.T, e *accEnv) {
	before := e.shim.Stats()
	db, err := sql.Open("postgres", e.dsn())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(q string, args ...any) int64 {
		t.Helper()
		res, err := db.ExecContext(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			t.Fatalf("%s: rows affected: %v", q, err)
		}
		return n
	}
	// Without arguments lib/pq sends a simple Query; with arguments, Parse/Bind/Execute/Sync.
	run(`CREATE TABLE acc_pq (id int PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0)`)
	run(`INSERT INTO acc_pq (id, v) VALUES (1, 'simple'), (2, 'simple')`)
	if n := run(`INSERT INTO acc_pq (id, v) VALUES ($1, $2)`, 3, "with arguments"); n != 1 {
		t.Fatalf("insert with arguments affected %d rows", n)
	}
	ins, err := db.PrepareContext(ctx, `INSERT INTO acc_pq (id, v) VALUES ($1, $2)`)
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	upd, err := db.PrepareContext(ctx, `UPDATE acc_pq SET n = n + $1 WHERE id = $2`)
	if err != nil {
		t.Fatal(err)
	}
	defer upd.Close()
	for i := 10; i < 30; i++ {
		if _, err := ins.ExecContext(ctx, i, fmt.Sprintf("prepared %d", i)); err != nil {
			t.Fatalf("prepared insert %d: %v", i, err)
		}
	}
	if _, err := upd.ExecContext(ctx, 7, 10); err != nil {
		t.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO acc_pq (id, v) VALUES ($1, 'committed')`, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.StmtContext(ctx, upd).ExecContext(ctx, 5, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM acc_pq WHERE id = 11`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO acc_pq (id, v) VALUES (50, 'rolled back')`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE acc_pq SET v = 'rolled back' WHERE id = $1`, 1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback: %v", err)
	}

	// A transaction that fails (duplicate key) and is rolled back leaves nothing behind.
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO acc_pq (id, v) VALUES (60, 'failed transaction')`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO acc_pq (id, v) VALUES ($1, 'duplicate')`, 1); err == nil {
		t.Fatal("duplicate key accepted")
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("commit of a failed transaction reported success")
	}
	// An autocommit statement that fails leaves nothing either.
	if _, err := db.ExecContext(ctx, `INSERT INTO acc_pq (id, v) VALUES (61, 'x'), (1, 'duplicate')`); err == nil {
		t.Fatal("duplicate key accepted")
	}

	e.settle(t, before)
	checks := []struct{ q, want string }{
		{`SELECT string_agg(id::text, ',' ORDER BY id) FROM acc_pq WHERE id < 10 OR id >= 30`, "1,2,3,40"},
		{`SELECT count(*)::text FROM acc_pq WHERE id BETWEEN 10 AND 29`, "19"},
		{`SELECT v || '/' || n FROM acc_pq WHERE id = 1`, "simple/0"},
		{`SELECT v || '/' || n FROM acc_pq WHERE id = 10`, "prepared 10/7"},
		{`SELECT v || '/' || n FROM acc_pq WHERE id = 40`, "committed/5"},
	}
	for _, c := range checks {
		if got := e.peerString(t, c.q); got != c.want {
			t.Errorf("peer: %s = %q, want %q", c.q, got, c.want)
		}
	}
}

func accPgx(t *testing.T, e *accEnv) {
	before := e.shim.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := e.shim.connect(t)
	// DDL over the extended protocol (pgx's Exec without arguments would use a simple Query).
	if _, err := conn.PgConn().ExecParams(ctx, `CREATE TABLE acc_pgx (id int PRIMARY KEY, v text NOT NULL, n bigint NOT NULL)`,
		nil, nil, nil, nil).Close(); err != nil {
		t.Fatalf("create table: %v", err)
	}

	// A pipelined batch: one implicit transaction, one Sync.
	b := &pgx.Batch{}
	for i := 1; i <= 20; i++ {
		b.Queue(`INSERT INTO acc_pgx (id, v, n) VALUES ($1, $2, $3)`, i, "batch", i)
	}
	b.Queue(`UPDATE acc_pgx SET n = n * 10 WHERE id <= $1`, 5)
	b.Queue(`SELECT count(*) FROM acc_pgx`)
	b.Queue(`DELETE FROM acc_pgx WHERE id = $1`, 20)
	br := conn.SendBatch(ctx, b)
	for i := 1; i <= 20; i++ {
		if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("batch insert %d: %v, %v", i, tag, err)
		}
	}
	if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 5 {
		t.Fatalf("batch update: %v, %v", tag, err)
	}
	var n int
	if err := br.QueryRow().Scan(&n); err != nil || n != 20 {
		t.Fatalf("batch count: %d, %v", n, err)
	}
	if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("batch delete: %v, %v", tag, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// A batch that fails half-way is rolled back as a whole, on both databases.
	b = &pgx.Batch{}
	b.Queue(`INSERT INTO acc_pgx (id, v, n) VALUES ($1, 'failed batch', 0)`, 500)
	b.Queue(`UPDATE acc_pgx SET v = 'failed batch' WHERE id = $1`, 1)
	b.Queue(`INSERT INTO acc_pgx (id, v, n) VALUES ($1, 'duplicate', 0)`, 2)
	b.Queue(`INSERT INTO acc_pgx (id, v, n) VALUES ($1, 'after the error', 0)`, 501)
	if err := conn.SendBatch(ctx, b).Close(); pgCode(err) != "23505" {
		t.Fatalf("failing batch: want a unique violation, got %v", err)
	}

	rows := make([][]any, 1000)
	for i := range rows {
		rows[i] = []any{1000 + i, fmt.Sprintf("copied %d", i), int64(i) * 1_000_000_007}
	}
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{"acc_pgx"}, []string{"id", "v", "n"}, pgx.CopyFromRows(rows))
	if err != nil || copied != 1000 {
		t.Fatalf("CopyFrom: %d rows, %v", copied, err)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tag, err := tx.Exec(ctx, `UPDATE acc_pgx SET v = 'in a transaction' WHERE id BETWEEN $1 AND $2`, 1000, 1099); err != nil || tag.RowsAffected() != 100 {
		t.Fatalf("update: %v, %v", tag, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM acc_pgx WHERE id = $1`, 1999); err != nil {
		t.Fatal(err)
	}
	tb := &pgx.Batch{}
	tb.Queue(`INSERT INTO acc_pgx (id, v, n) VALUES ($1, 'batch in a transaction', 0)`, 30)
	tb.Queue(`UPDATE acc_pgx SET n = -1 WHERE id = $1`, 30)
	if err := tx.SendBatch(ctx, tb).Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	tx, err = conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM acc_pgx WHERE id < $1`, 1500); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}

	e.settle(t, before)
	checks := []struct{ q, want string }{
		{`SELECT count(*)::text FROM acc_pgx`, "1019"},
		{`SELECT count(*)::text FROM acc_pgx WHERE id IN (20, 500, 501, 1999)`, "0"},
		{`SELECT v || '/' || n FROM acc_pgx WHERE id = 1`, "batch/10"},
		{`SELECT v || '/' || n FROM acc_pgx WHERE id = 30`, "batch in a transaction/-1"},
		{`SELECT v || '/' || n FROM acc_pgx WHERE id = 1998`, "copied 998/998000006986"},
		{`SELECT count(*)::text FROM acc_pgx WHERE v = 'in a transaction'`, "100"},
	}
	for _, c := range checks {
		if got := e.peerString(t, c.q); got != c.want {
			t.Errorf("peer: %s = %q, want %q", c.q, got, c.want)
		}
	}
}

// accSerial: concurrent inserts take their ids, timestamps, random values and uuids from
// defaults evaluated on the local database only; the peer must hold the very same values
// (DESIGN §5: row changes are shipped, not statements).
func accSerial(t *testing.T, e *accEnv) { accSerialN(t, e, 50) }

// accSerialN is accSerial with perWorker inserts by each of its 8 workers.
func accSerialN(t *testing.T, e *accEnv, perWorker int) {
	const workers = 8
	before := e.shim.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conns := make([]*pgx.Conn, workers)
	for i := range conns {
		conns[i] = e.shim.connect(t)
	}
	if _, err := conns[0].Exec(ctx, `CREATE TABLE acc_serial (
  id serial PRIMARY KEY,
  worker int NOT NULL,
  seq int NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  r float8 NOT NULL DEFAULT random(),
  u uuid NOT NULL DEFAULT gen_random_uuid())`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				if _, err := c.Exec(ctx, `INSERT INTO acc_serial (worker, seq) VALUES ($1, $2)`, w, i); err != nil {
					errs <- fmt.Errorf("worker %d insert %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if st := e.shim.Stats(); st.CommitsDual-before.CommitsDual != int64(workers*perWorker+1) {
		t.Fatalf("%d dual commits, want %d (stats %+v)", st.CommitsDual-before.CommitsDual, workers*perWorker+1, st)
	}
	e.settle(t, before)

	const summary = `SELECT count(*) || '/' || count(DISTINCT id) || '/' || count(DISTINCT u) || '/' ||
  count(DISTINCT (worker, seq)) || '/' || min(id) || '/' || max(id) || '/' ||
  md5(string_agg(id || ' ' || worker || ' ' || seq || ' ' || at || ' ' || r || ' ' || u, E'\n' ORDER BY id))
FROM acc_serial`
	var local string
	if err := e.localDB.QueryRow(summary).Scan(&local); err != nil {
		t.Fatal(err)
	}
	n := workers * perWorker
	if want := fmt.Sprintf("%d/%d/%d/%d/1/%d/", n, n, n, n, n); !strings.HasPrefix(local, want) {
		t.Fatalf("local summary %s, want prefix %s", local, want)
	}
	if peer := e.peerString(t, summary); peer != local {
		t.Fatalf("ids, timestamps, random values or uuids differ: local %s, peer %s", local, peer)
	}

	// The peer's sequence was not advanced by the shipped inserts (explicit ids); after
	// BumpSequences (what a takeover runs) it must not hand out an id a row holds.
	t.Logf("peer sequence before BumpSequences: %s",
		e.peerString(t, `SELECT last_value || ' called=' || is_called FROM acc_serial_id_seq`))
	if err := BumpSequences(ctx, e.peerDSN); err != nil {
		t.Fatal(err)
	}
	var next, maxID int64
	if err := e.peerDB.QueryRow(`SELECT nextval('acc_serial_id_seq'), (SELECT max(id) FROM acc_serial)`).Scan(&next, &maxID); err != nil {
		t.Fatal(err)
	}
	if next <= maxID {
		t.Fatalf("peer nextval %d after BumpSequences, but max(id) is %d", next, maxID)
	}
}

// accDDLInTxScript has DDL inside explicit transaction blocks, each statement its own Query
// message (as psql sends them): the shape of most migration tools.
const accDDLInTxScript = `CREATE TABLE acc_txddl (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO acc_txddl VALUES (1, 'a'), (2, 'b');
BEGIN;
CREATE TABLE acc_txddl_notes (id serial PRIMARY KEY, item int NOT NULL REFERENCES acc_txddl, note text);
INSERT INTO acc_txddl_notes (item, note) VALUES (1, 'made with its table');
ALTER TABLE acc_txddl ADD COLUMN tag text;
UPDATE acc_txddl SET tag = 'tagged' WHERE id = 2;
CREATE INDEX acc_txddl_tag ON acc_txddl (tag);
COPY acc_txddl_notes (item, note) FROM STDIN;
2	copied in a transaction
\.
COMMIT;
BEGIN;
ALTER TABLE acc_txddl ADD COLUMN never int;
INSERT INTO acc_txddl VALUES (3, 'never', 'x', 1);
ROLLBACK;
BEGIN;
ALTER TABLE acc_txddl ADD COLUMN later int;
COMMIT;
`

// accDDLInTx: DDL sent inside an explicit transaction block, alone in its request, must reach
// the peer through tandem.ddl like autocommit DDL (DESIGN §5.2).
func accDDLInTx(t *testing.T, e *accEnv) {
	before := e.shim.Stats()
	script := filepath.Join(t.TempDir(), "script.sql")
	if err := os.WriteFile(script, []byte(accDDLInTxScript), 0o644); err != nil {
		t.Fatal(err)
	}
	accRun(t, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", script, e.dsn())
	// The same over the extended protocol.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := e.shim.connect(t)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.PgConn().ExecParams(ctx, `ALTER TABLE acc_txddl ADD COLUMN ext int`, nil, nil, nil, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE acc_txddl SET ext = id * 10`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	e.settle(t, before)
	checks := []struct{ q, want string }{
		{`SELECT string_agg(item || ':' || note, ',' ORDER BY id) FROM acc_txddl_notes`, "1:made with its table,2:copied in a transaction"},
		{`SELECT string_agg(id || ':' || coalesce(tag, '-') || ':' || ext, ',' ORDER BY id) FROM acc_txddl`, "1:-:10,2:tagged:20"},
		{`SELECT count(*)::text FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'acc_txddl_tag'`, "1"},
		{`SELECT string_agg(column_name::text, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'acc_txddl'`, "ext,id,later,tag,v"},
	}
	for _, c := range checks {
		if got := e.peerString(t, c.q); got != c.want {
			t.Errorf("peer: %s = %q, want %q", c.q, got, c.want)
		}
	}
}
