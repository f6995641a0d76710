package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// drvLog is a transcript of what a client saw, compared between PostgreSQL and the shim.
type drvLog struct{ b strings.Builder }

func (l *drvLog) f(format string, args ...any) { fmt.Fprintf(&l.b, format+"\n", args...) }

func (l *drvLog) err(what string, err error) {
	if err == nil {
		l.f("%s: ok", what)
		return
	}
	var pe *pgconn.PgError
	var qe *pq.Error
	switch {
	case errors.As(err, &pe):
		l.f("%s: %s %s", what, pe.Code, pe.Message)
	case errors.As(err, &qe):
		l.f("%s: %s %s", what, qe.Code, qe.Message)
	default:
		l.f("%s: %v", what, err)
	}
}

var drvCacheName = regexp.MustCompile(`stmtcache_[0-9a-f]+`)

// drvCompare runs scenario against PostgreSQL itself and through the shim, each with its own
// table-name prefix, and compares the transcripts.
func drvCompare(t *testing.T, c *pgtest.Cluster, s *testShim, scenario func(t *testing.T, dsn, p string, l *drvLog)) {
	t.Helper()
	var direct, shim drvLog
	scenario(t, c.DSN(c.Database()), "d_", &direct)
	scenario(t, s.dsn(pgtest.Superuser), "s_", &shim)
	norm := func(l *drvLog, p string) string {
		out := strings.ReplaceAll(l.b.String(), p, "X_")
		return drvCacheName.ReplaceAllString(out, "stmtcache_H")
	}
	if d, sh := norm(&direct, "d_"), norm(&shim, "s_"); d != sh {
		t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", sh, d)
	} else {
		t.Logf("transcript:\n%s", sh)
	}
}

func drvConnect(t *testing.T, dsn string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestDriversCompare(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)

	t.Run("stmtcache_after_ddl", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec} {
			drvCompare(t, c, s, func(t *testing.T, dsn, p string, l *drvLog) {
				ctx := capCtx(t, 30*time.Second)
				p = fmt.Sprintf("%sm%d_", p, mode)
				conn := drvConnect(t, dsn, mode)
				other := drvConnect(t, dsn, mode)
				tb := p + "sc"
				_, err := conn.Exec(ctx, "CREATE TABLE "+tb+" (id int PRIMARY KEY, v text)")
				l.err("create", err)
				sel := func(what string) {
					rows, err := conn.Query(ctx, "SELECT * FROM "+tb+" WHERE id > $1 ORDER BY id", 0)
					if err != nil {
						l.err(what, err)
						return
					}
					vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
					l.err(what, err)
					l.f("%s rows %v fields %d", what, vals, len(rows.FieldDescriptions()))
				}
				ins := func(what string, id int) {
					rows, err := conn.Query(ctx, "INSERT INTO "+tb+" (id, v) VALUES ($1, 'x') RETURNING *", id)
					if err != nil {
						l.err(what, err)
						return
					}
					vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
					l.err(what, err)
					l.f("%s rows %v", what, vals)
				}
				ins("ins1", 1)
				sel("sel1")
				_, err = other.Exec(ctx, "ALTER TABLE "+tb+" ADD COLUMN w int DEFAULT 7")
				l.err("alter", err)
				sel("sel2")
				sel("sel3")
				ins("ins2", 2)
				ins("ins3", 3)
				// In a transaction.
				tx, err := conn.Begin(ctx)
				l.err("begin", err)
				_, err = other.Exec(ctx, "ALTER TABLE "+tb+" ADD COLUMN z int DEFAULT 9")
				l.err("alter2", err)
				ins("txins", 4)
				l.err("commit", tx.Commit(ctx))
				ins("ins5", 5)
				sel("sel4")
				l.f("status %c", conn.PgConn().TxStatus())
			})
		}
	})

	t.Run("serializable_ro_deferrable", func(t *testing.T) {
		drvCompare(t, c, s, func(t *testing.T, dsn, p string, l *drvLog) {
			ctx := capCtx(t, 30*time.Second)
			conn := drvConnect(t, dsn, pgx.QueryExecModeCacheStatement)
			conn2 := drvConnect(t, dsn, pgx.QueryExecModeCacheStatement)
			tb := p + "ser"
			_, err := conn.Exec(ctx, "CREATE TABLE "+tb+" (id int PRIMARY KEY, on_call bool)")
			l.err("create", err)
			_, err = conn.Exec(ctx, "INSERT INTO "+tb+" VALUES (1, true), (2, true)")
			l.err("insert", err)
			tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly, DeferrableMode: pgx.Deferrable})
			l.err("begin ro", err)
			var n int
			err = tx.QueryRow(ctx, "SELECT count(*) FROM "+tb+" WHERE on_call AND id > $1", 0).Scan(&n)
			l.err(fmt.Sprintf("count %d", n), err)
			_, err = tx.Exec(ctx, "UPDATE "+tb+" SET on_call = false WHERE id = $1", 1)
			l.err("write in ro", err)
			l.err("commit ro", tx.Commit(ctx))
			// Write skew: both read, both write, second commit fails with 40001.
			t1, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
			l.err("begin t1", err)
			t2, err := conn2.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
			l.err("begin t2", err)
			for i, tx := range []pgx.Tx{t1, t2} {
				err = tx.QueryRow(ctx, "SELECT count(*) FROM "+tb+" WHERE on_call AND id > $1", 0).Scan(&n)
				l.err(fmt.Sprintf("t%d count %d", i+1, n), err)
			}
			_, err = t1.Exec(ctx, "UPDATE "+tb+" SET on_call = false WHERE id = $1", 1)
			l.err("t1 update", err)
			_, err = t2.Exec(ctx, "UPDATE "+tb+" SET on_call = false WHERE id = $1", 2)
			l.err("t2 update", err)
			l.err("t1 commit", t1.Commit(ctx))
			l.err("t2 commit", t2.Commit(ctx))
			err = conn.QueryRow(ctx, "SELECT count(*) FROM "+tb+" WHERE on_call AND id > $1", 0).Scan(&n)
			l.err(fmt.Sprintf("after count %d", n), err)
			l.f("status %c %c", conn.PgConn().TxStatus(), conn2.PgConn().TxStatus())
		})
	})

	t.Run("batch_mixed", func(t *testing.T) {
		drvCompare(t, c, s, func(t *testing.T, dsn, p string, l *drvLog) {
			ctx := capCtx(t, 30*time.Second)
			conn := drvConnect(t, dsn, pgx.QueryExecModeCacheStatement)
			tb := p + "bm"
			_, err := conn.Exec(ctx, "CREATE TABLE "+tb+" (id int PRIMARY KEY, v int)")
			l.err("create", err)
			for _, withTx := range []bool{false, true} {
				b := &pgx.Batch{}
				if withTx {
					b.Queue("BEGIN")
				}
				b.Queue("SELECT count(*) FROM " + tb)
				b.Queue("INSERT INTO "+tb+" VALUES ($1, 1)", 10)
				b.Queue("SELECT count(*) FROM " + tb)
				b.Queue("INSERT INTO "+tb+" VALUES ($1, 1)", 10)
				b.Queue("INSERT INTO "+tb+" VALUES ($1, 1)", 11)
				if withTx {
					b.Queue("COMMIT")
				}
				br := conn.SendBatch(ctx, b)
				for i := 0; i < b.Len(); i++ {
					tag, err := br.Exec()
					l.err(fmt.Sprintf("tx=%v item %d %s", withTx, i, tag), err)
				}
				l.err("close", br.Close())
				var n int
				err = conn.QueryRow(ctx, "SELECT count(*) FROM "+tb).Scan(&n)
				l.err(fmt.Sprintf("count %d", n), err)
				l.f("status %c", conn.PgConn().TxStatus())
				if conn.PgConn().TxStatus() != 'I' {
					conn.Exec(ctx, "ROLLBACK")
				}
			}
		})
	})

	t.Run("libpq_copyin", func(t *testing.T) {
		drvCompare(t, c, s, func(t *testing.T, dsn, p string, l *drvLog) {
			ctx := capCtx(t, 30*time.Second)
			db, err := sql.Open("postgres", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			tb := p + "ci"
			_, err = db.ExecContext(ctx, "CREATE TABLE "+tb+" (id int PRIMARY KEY, v text)")
			l.err("create", err)
			// In a transaction.
			tx, err := db.BeginTx(ctx, nil)
			l.err("begin", err)
			st, err := tx.Prepare(pq.CopyIn(tb, "id", "v"))
			l.err("prepare", err)
			for i := 1; i <= 100; i++ {
				if _, err := st.Exec(i, fmt.Sprint("v", i)); err != nil {
					l.err("exec", err)
					break
				}
			}
			_, err = st.Exec()
			l.err("flush", err)
			l.err("close", st.Close())
			l.err("commit", tx.Commit())
			// Autocommit.
			st, err = db.Prepare(pq.CopyIn(tb, "id", "v"))
			l.err("prepare ac", err)
			if err == nil {
				for i := 101; i <= 200; i++ {
					if _, err := st.Exec(i, fmt.Sprint("v", i)); err != nil {
						l.err("exec ac", err)
						break
					}
				}
				_, err = st.Exec()
				l.err("flush ac", err)
				l.err("close ac", st.Close())
			}
			// A failing COPY in a transaction (duplicate key), then reuse of the pool.
			tx, err = db.BeginTx(ctx, nil)
			l.err("begin dup", err)
			st, err = tx.Prepare(pq.CopyIn(tb, "id", "v"))
			l.err("prepare dup", err)
			for i := 199; i <= 210; i++ {
				if _, err := st.Exec(i, "dup"); err != nil {
					l.err("exec dup", err)
					break
				}
			}
			_, err = st.Exec()
			l.err("flush dup", err)
			st.Close()
			l.err("commit dup", tx.Commit())
			var n int
			err = db.QueryRowContext(ctx, "SELECT count(*) FROM "+tb).Scan(&n)
			l.err(fmt.Sprintf("count %d", n), err)
			// Pool reuse after a failed transaction.
			tx, err = db.BeginTx(ctx, nil)
			l.err("begin fail", err)
			_, err = tx.ExecContext(ctx, "INSERT INTO "+tb+" VALUES ($1, 'x')", 1)
			l.err("dup insert", err)
			_, err = tx.ExecContext(ctx, "INSERT INTO "+tb+" VALUES ($1, 'x')", 1000)
			l.err("insert in failed", err)
			l.err("rollback", tx.Rollback())
			_, err = db.ExecContext(ctx, "INSERT INTO "+tb+" VALUES ($1, 'x')", 1001)
			l.err("insert after", err)
			err = db.QueryRowContext(ctx, "SELECT count(*) FROM "+tb).Scan(&n)
			l.err(fmt.Sprintf("count %d", n), err)
		})
	})

	// What pgxpool does with an AfterRelease hook that resets the connection: the reset runs
	// after each use, and pgx's statement cache outlives it (as against PostgreSQL itself).
	t.Run("pool_reset_after_release", func(t *testing.T) {
		drvCompare(t, c, s, func(t *testing.T, dsn, p string, l *drvLog) {
			ctx := capCtx(t, 30*time.Second)
			for _, reset := range []string{"DISCARD ALL", "RESET ALL", "DEALLOCATE ALL"} {
				conn := drvConnect(t, dsn, pgx.QueryExecModeCacheStatement)
				release := func() {
					if _, err := conn.Exec(context.Background(), reset); err != nil {
						l.err("after release", err)
					}
				}
				tb := p + "pool" + strings.ReplaceAll(strings.ToLower(reset), " ", "_")
				_, err := conn.Exec(ctx, "CREATE TABLE "+tb+" (id int PRIMARY KEY, v text)")
				l.err("create", err)
				release()
				for i := 1; i <= 5; i++ {
					_, err = conn.Exec(ctx, "SET application_name = 'x'")
					l.err("set", err)
					release()
					_, err = conn.Exec(ctx, "INSERT INTO "+tb+" VALUES ($1, 'x')", i)
					l.err(fmt.Sprintf("%s insert %d", reset, i), err)
					release()
					var n int
					err = conn.QueryRow(ctx, "SELECT count(*) FROM "+tb+" WHERE id <= $1", i).Scan(&n)
					l.err(fmt.Sprintf("%s count %d", reset, n), err)
					release()
					tx, err := conn.Begin(ctx)
					l.err("begin", err)
					_, err = tx.Exec(ctx, "UPDATE "+tb+" SET v = $1 WHERE id = $2", "y", i)
					l.err("update", err)
					l.err("commit", tx.Commit(ctx))
					release()
				}
			}
		})
	})

	t.Run("hold_cursor", func(t *testing.T) {
		drvCompare(t, c, s, func(t *testing.T, dsn, p string, l *drvLog) {
			ctx := capCtx(t, 30*time.Second)
			conn := drvConnect(t, dsn, pgx.QueryExecModeCacheStatement)
			tb := p + "hc"
			_, err := conn.Exec(ctx, "CREATE TABLE "+tb+" (id int PRIMARY KEY)")
			l.err("create", err)
			_, err = conn.Exec(ctx, "INSERT INTO "+tb+" SELECT generate_series(1, 100)")
			l.err("insert", err)
			tx, err := conn.Begin(ctx)
			l.err("begin", err)
			_, err = tx.Exec(ctx, "INSERT INTO "+tb+" VALUES (101)")
			l.err("insert in tx", err)
			_, err = tx.Exec(ctx, "DECLARE cur CURSOR WITH HOLD FOR SELECT id FROM "+tb+" ORDER BY id")
			l.err("declare", err)
			l.err("commit", tx.Commit(ctx))
			for i := 0; i < 3; i++ {
				tx, err := conn.Begin(ctx)
				l.err("begin", err)
				rows, err := tx.Query(ctx, "FETCH 40 FROM cur")
				if err == nil {
					ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
					l.err(fmt.Sprintf("fetch %d rows", len(ids)), err)
				} else {
					l.err("fetch", err)
				}
				_, err = tx.Exec(ctx, "UPDATE "+tb+" SET id = id + 1000 WHERE id = $1", i+1)
				l.err("update", err)
				l.err("commit", tx.Commit(ctx))
			}
			// Autocommit FETCH.
			rows, err := conn.Query(ctx, "FETCH ABSOLUTE 1 FROM cur")
			if err == nil {
				ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
				l.err(fmt.Sprintf("fetch abs %v", ids), err)
			}
			_, err = conn.Exec(ctx, "CLOSE cur")
			l.err("close", err)
		})
	})

	t.Run("cancel_copy_from", func(t *testing.T) {
		drvCompare(t, c, s, func(t *testing.T, dsn, p string, l *drvLog) {
			ctx := capCtx(t, 30*time.Second)
			conn := drvConnect(t, dsn, pgx.QueryExecModeCacheStatement)
			tb := p + "cc"
			_, err := conn.Exec(ctx, "CREATE TABLE "+tb+" (id int PRIMARY KEY, v text)")
			l.err("create", err)
			for _, inTx := range []bool{false, true} {
				if inTx {
					_, err = conn.Exec(ctx, "BEGIN; INSERT INTO "+tb+" VALUES (0, 'before')")
					l.err("begin", err)
				}
				pr, pw := io.Pipe()
				go func() {
					for i := 1; i <= 1000; i++ {
						fmt.Fprintf(pw, "%d\tv%d\n", i+10000*btoi(inTx), i)
					}
					time.Sleep(500 * time.Millisecond)
					cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if err := conn.PgConn().CancelRequest(cctx); err != nil {
						t.Errorf("cancel request: %v", err)
					}
					time.Sleep(500 * time.Millisecond)
					for i := 1001; i <= 1010; i++ {
						fmt.Fprintf(pw, "%d\tv%d\n", i+10000*btoi(inTx), i)
					}
					pw.Close()
				}()
				tag, err := conn.PgConn().CopyFrom(ctx, pr, "COPY "+tb+" FROM STDIN")
				pr.Close()
				l.err(fmt.Sprintf("copy tx=%v %s", inTx, tag), err)
				l.f("status %c", conn.PgConn().TxStatus())
				if inTx {
					_, err = conn.Exec(ctx, "COMMIT")
					l.err("commit", err)
				}
				var n int
				err = conn.QueryRow(ctx, "SELECT count(*) FROM "+tb).Scan(&n)
				l.err(fmt.Sprintf("count %d", n), err)
			}
		})
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
