package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestFailedConcurrentIndexDropped: a CREATE INDEX CONCURRENTLY that fails once it has made
// its index (a unique one over duplicates) leaves that index, invalid, on the local database
// (PostgreSQL's behaviour), and it was recorded nowhere for the peer: the sites differed, and
// the DROP INDEX that clears such a leftover was refused as a divergence, the peer having no
// such index. The shim drops the leftover, recording DROP INDEX IF EXISTS for the peer.
func TestFailedConcurrentIndexDropped(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE SCHEMA s2`,
		`CREATE TABLE s2.items (id int PRIMARY KEY, v text)`,
		`INSERT INTO s2.items SELECT g, 'x' FROM generate_series(1, 5) g`)
	if err := exec(`CREATE UNIQUE INDEX CONCURRENTLY u ON s2.items (v)`); pgCode(err) != "23505" {
		t.Fatalf("CREATE UNIQUE INDEX CONCURRENTLY over duplicates: %v, want 23505", err)
	}
	shipped()
	if err := exec(`UPDATE s2.items SET v = id::text`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`CREATE UNIQUE INDEX CONCURRENTLY u ON s2.items (v)`); err != nil {
		t.Fatalf("the index made again, once the rows allow it: %v", err)
	}
	shipped()
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('s2.u') AND indisvalid`); n != 1 {
		t.Errorf("peer has %d valid s2.u, want 1", n)
	}
}

// TestFailedConcurrentIndexKeepsOthers: after a failed CREATE INDEX CONCURRENTLY the shim
// dropped any invalid index made while it ran that no session was building — also one that
// is not the statement's leftover at all: here the statement failed (lock_timeout) before it
// made anything, and another session's CREATE INDEX … ON ONLY of a partitioned table (an
// invalid index by design, until its partitions' indexes are attached) was dropped on both
// sites. Only the statement's own index, on its table, is dropped now.
func TestFailedConcurrentIndexKeepsOthers(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY, v text)`,
		`CREATE TABLE parts (id int, v int, PRIMARY KEY (id)) PARTITION BY RANGE (id)`,
		`CREATE TABLE parts1 PARTITION OF parts FOR VALUES FROM (0) TO (100)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	a, b := shim.connect(t), shim.connect(t)
	// The table locked, so that the CREATE INDEX CONCURRENTLY waits before it makes anything.
	tx, err := p.ldb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `LOCK TABLE items IN SHARE UPDATE EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, `SET lock_timeout = '3s'`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Exec(ctx, `CREATE INDEX CONCURRENTLY items_v ON items (v)`, pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	waitFor(t, "the CREATE INDEX CONCURRENTLY to wait for its lock", func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE INDEX CONCURRENTLY%'`) == 1
	})
	if _, err := b.Exec(ctx, `CREATE INDEX parts_v ON ONLY parts (v)`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if err := <-done; pgCode(err) != "55P03" {
		t.Fatalf("CREATE INDEX CONCURRENTLY on a locked table: %v, want 55P03", err)
	}
	_ = tx.Rollback()
	waitFor(t, "the peer to have every commit", func() bool { return sh.Backlog() == 0 })
	q := `SELECT count(*) FROM pg_class WHERE oid = to_regclass('parts_v')`
	if l, pr := queryOne[int](t, p.ldb, q), queryOne[int](t, p.pdb, q); l != 1 || pr != 1 {
		t.Errorf("another session's index parts_v: %d here, %d on the peer; want 1 and 1", l, pr)
	}
}

// TestCICTarget: the index name and the table read from a CREATE INDEX statement.
func TestCICTarget(t *testing.T) {
	for _, c := range []struct {
		text        string
		name, table string
		ok          bool
	}{
		{`CREATE UNIQUE INDEX  u ON s2.items (v)`, "u", "s2.items", true},
		{`create index if not exists "Big" on only "S"."T" using btree (v)`, "Big", `"S"."T"`, true},
		{`CREATE INDEX /* c */ ON Items(v)`, "", "Items", true},
		{`CREATE INDEX  IX ON t (v)`, "ix", "t", true},
		{`CREATE INDEX  U&"d\0061" ON t (v)`, "", "", false},
		{`CREATE TABLE t (v int)`, "", "", false},
		{`CREATE INDEX  a b ON t (v)`, "", "", false},
	} {
		got, ok := cicTarget(c.text)
		if ok != c.ok || (ok && (got.name != c.name || got.table != c.table)) {
			t.Errorf("cicTarget(%q) = %+v, %v; want {%s %s}, %v", c.text, got, ok, c.name, c.table, c.ok)
		}
	}
}

// TestFailedConcurrentIndexDropNoWait: the shim's DROP INDEX of a failed CREATE INDEX
// CONCURRENTLY's leftover waited, with no lock_timeout of the client's, for its lock on the
// table behind a transaction that read it: the client's reply (its error already sent) never
// came, and every statement on the table queued behind the DROP's lock. The drop waits briefly
// now, and the leftover stays (logged) when the table is busy.
func TestFailedConcurrentIndexDropNoWait(t *testing.T) {
	t.Parallel()
	p, _, exec, _ := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, v text)`,
		`INSERT INTO items SELECT g, 'x' FROM generate_series(1, 5) g`)
	ctx := capCtx(t, 60*time.Second)
	tx, err := p.ldb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT count(*) FROM items`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- exec(`CREATE UNIQUE INDEX CONCURRENTLY u ON items (v)`) }()
	select {
	case err := <-done:
		if pgCode(err) != "23505" {
			t.Fatalf("CREATE UNIQUE INDEX CONCURRENTLY over duplicates: %v, want 23505", err)
		}
	case <-time.After(15 * time.Second):
		_ = tx.Rollback()
		<-done
		t.Fatal("the failed CREATE INDEX CONCURRENTLY's reply waited for the shim's DROP INDEX behind a reader of the table")
	}
}
