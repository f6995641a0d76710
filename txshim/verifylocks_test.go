package txshim

import (
	"context"
	"testing"
	"time"
)

// TestVerifyReleasesCompared: a verification holds each table's lock while it reads it (so
// that a rewrite of the table, TRUNCATE or ALTER TABLE, is told from rows that read empty to its
// snapshot), and held it until the whole comparison ended — a full read of both databases,
// minutes or hours, after every catch-up too (verify_after_catchup). Meanwhile DDL on a table it
// had long compared waited, on the master for every session that touched the table after it
// (queued behind the DDL's lock), on the peer in the apply that runs the shipped DDL, and every
// shipped transaction behind it. A table's lock goes once it is compared.
func TestVerifyReleasesCompared(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE TABLE z (id int)`, /* no index: the schema read calls no function on it */
		`INSERT INTO a VALUES (1)`, `INSERT INTO z VALUES (1)`)
	ctx := capCtx(t, 60*time.Second)
	// The verification stops at z on the peer (compared after a, by name), z locked there.
	holder, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `BEGIN; LOCK TABLE z IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		diffs []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
		done <- result{diffs, err}
	}()
	waitForLong(t, "the verification to wait for z on the peer", 20*time.Second, func() bool {
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%count(*)%FROM ONLY public.z%'`).Scan(&n) == nil && n == 1
	})
	// a is compared: DDL on it goes ahead on either database.
	for _, db := range []struct {
		side string
		run  func(context.Context, string) error
	}{{"local", func(ctx context.Context, q string) error { _, err := p.ldb.ExecContext(ctx, q); return err }},
		{"peer", func(ctx context.Context, q string) error { _, err := p.pdb.ExecContext(ctx, q); return err }}} {
		if err := db.run(ctx, `SET lock_timeout = '2s'; ALTER TABLE a ADD COLUMN c int; RESET lock_timeout`); err != nil {
			t.Errorf("DDL on the %s database on a table the verification compared already: %v", db.side, err)
		}
	}
	if _, err := holder.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || len(r.diffs) != 0 {
		t.Fatalf("Verify = %q, %v; want identical", r.diffs, r.err)
	}
}
