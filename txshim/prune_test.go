package txshim

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestPruneDecisions: decision rows go once nobody needs them — past the source slot's
// restart_lsn, prepared nowhere, older than the retention — on both databases, and only the
// rows of the site whose slot the other database holds. Rows still needed stay, and a new
// stream from the slot after pruning ships nothing twice.
func TestPruneDecisions(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `CREATE TABLE nokey (x int, y text)`)
	installPair(t, p)
	cfg := ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, DecisionRetention: time.Hour, Logger: quietLogger()}
	sh := NewShipper(cfg)
	sh.SetTerm(1)
	stop := runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		dualCommit(t, p, sh, fmt.Sprintf("tandem_a_1_%d", 500+i), fmt.Sprintf(`INSERT INTO kv VALUES (%d, 'dual')`, i))
		p.local.Exec(t, fmt.Sprintf(`INSERT INTO nokey VALUES (%d, 'plain')`, i))
	}
	waitFor(t, "the plain commits on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM nokey`) == 5 && sh.Backlog() == 0
	})
	shipped := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE lsn IS NOT NULL`)
	if shipped != 10 {
		t.Fatalf("%d decision rows with their lsn on the peer, want 10", shipped)
	}

	// Rows made by hand around them, a day old unless said otherwise.
	old := func(gid, lsn string) string {
		if lsn == "" {
			return fmt.Sprintf(`INSERT INTO tandem.decisions (gid, at) VALUES ('%s', now() - interval '1 day')`, gid)
		}
		return fmt.Sprintf(`INSERT INTO tandem.decisions (gid, lsn, at) VALUES ('%s', '%s', now() - interval '1 day')`, gid, lsn)
	}
	for _, q := range []string{
		old("tandem_a_1_900", "0/1"),     // goes
		old("tandem_a_plain_901", "0/1"), // goes
		old("tandem_a_1_902", ""),        // no lsn, applied more than an hour before 908: goes
		`INSERT INTO tandem.decisions (gid, lsn, at) VALUES ('tandem_a_1_908', '0/1', now() - interval '2 hours')`, // goes
		old("tandem_a_1_903", "FFFFFFFF/0"),                                        // not past the slot: stays
		old("tandem_a_b_1_904", "0/1"),                                             // site a_b, whose slot no database holds: stays
		old("tandem_a_1_905", "0/1"),                                               // prepared on the peer: stays
		old("tandem_a_1_906", "0/1"),                                               // prepared on the local database: stays
		`INSERT INTO tandem.decisions (gid, lsn) VALUES ('tandem_a_1_907', '0/1')`, // too young for an hour: stays
	} {
		if _, err := p.pdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The other direction: rows on the local database of site b, whose slot the peer holds.
	p.peer.Exec(t, `SELECT pg_create_logical_replication_slot('tandem_b', 'pgoutput', false, true)`)
	// b_2_12 has no lsn and no row past the slot was applied an hour after it: stays.
	for _, q := range []string{old("tandem_b_2_10", "0/1"), old("tandem_b_2_11", "FFFFFFFF/0"), old("tandem_b_2_12", "")} {
		if _, err := p.ldb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Held prepared: 905 on the peer, 906 on the local database.
	if _, err := p.pdb.Exec(`BEGIN; INSERT INTO nokey VALUES (-1, 'held'); PREPARE TRANSACTION 'tandem_a_1_905'`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ldb.Exec(`BEGIN; INSERT INTO kv VALUES (-6, 'held'); PREPARE TRANSACTION 'tandem_a_1_906'`); err != nil {
		t.Fatal(err)
	}
	release := func() {
		p.pdb.Exec(`ROLLBACK PREPARED 'tandem_a_1_905'`)
		p.ldb.Exec(`ROLLBACK PREPARED 'tandem_a_1_906'`)
	}
	t.Cleanup(release)

	gids := func(t *testing.T, side string) []string {
		t.Helper()
		db := p.pdb
		if side == "local" {
			db = p.ldb
		}
		out, err := queryStrings(capCtx(t, 5*time.Second), db, `SELECT gid FROM tandem.decisions ORDER BY gid`)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	n, err := sh.PruneDecisions(capCtx(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("pruned %d rows, want 5 (four on the peer, one on the local database)", n)
	}
	for _, gone := range []string{"tandem_a_1_900", "tandem_a_plain_901", "tandem_a_1_902", "tandem_a_1_908"} {
		if slices.Contains(gids(t, "peer"), gone) {
			t.Errorf("%s is still on the peer", gone)
		}
	}
	for _, kept := range []string{"tandem_a_1_903", "tandem_a_b_1_904", "tandem_a_1_905", "tandem_a_1_906", "tandem_a_1_907"} {
		if !slices.Contains(gids(t, "peer"), kept) {
			t.Errorf("%s was pruned from the peer", kept)
		}
	}
	if got := gids(t, "local"); !slices.Equal(got, []string{"tandem_b_2_11", "tandem_b_2_12"}) {
		t.Errorf("local decision rows %v, want [tandem_b_2_11 tandem_b_2_12]", got)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid ~ '^tandem_a_(1_50[0-4]|plain_[0-9]+)$'`); got != shipped {
		t.Errorf("%d rows of shipped transactions left after an hour's retention, want all %d", got, shipped)
	}

	// With no retention, the shipped transactions' rows go once the slot's restart_lsn is past
	// them (a checkpoint logs the running transactions it moves on). It cannot pass the start of
	// a transaction still prepared locally.
	release()
	waitFor(t, "the rolled back transaction settled", func() bool { return sh.Backlog() == 0 })
	short := cfg
	short.DecisionRetention = time.Nanosecond
	pr := NewShipper(short)
	waitForLong(t, "the shipped transactions' rows pruned", 30*time.Second, func() bool {
		p.local.Exec(t, `CHECKPOINT`)
		if _, err := pr.PruneDecisions(context.Background()); err != nil {
			t.Fatal(err)
		}
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid ~ '^tandem_a_(1_50[0-4]|plain_[0-9]+)$'`) == 0
	})

	// A new stream from the slot resends nothing whose row is gone: the peer gets nothing twice.
	// It prunes by itself, while master and in step.
	stop()
	cfg.DecisionRetention, cfg.PruneInterval = time.Nanosecond, 100*time.Millisecond
	p.peer.Exec(t, `INSERT INTO tandem.decisions (gid, lsn) VALUES ('tandem_a_1_908', '0/1')`)
	again := NewShipper(cfg)
	again.SetTerm(1)
	runShipper(t, again)
	if err := again.CatchUp(capCtx(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	p.local.Exec(t, `INSERT INTO nokey VALUES (100, 'after pruning')`)
	waitFor(t, "a commit after pruning on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM nokey WHERE x = 100`) == 1 && again.Backlog() == 0
	})
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM nokey WHERE x >= 0`); got != 6 {
		t.Errorf("%d rows in nokey on the peer, want 6: something was applied twice", got)
	}
	if st := again.Stats(); st.Shipped != 1 {
		t.Errorf("the new stream shipped %d transactions, want 1", st.Shipped)
	}
	waitFor(t, "the master's periodic pruning", func() bool {
		return again.Stats().Pruned > 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = 'tandem_a_1_908'`) == 0
	})

	// A peer installed by an earlier version (no lsn column) still takes transactions, on
	// connections made after the change; their rows have no lsn.
	p.peer.Exec(t, `ALTER TABLE tandem.decisions DROP COLUMN lsn`)
	again.pool.closeIdle(context.Background())
	p.local.Exec(t, `INSERT INTO nokey VALUES (101, 'to an older schema')`)
	waitFor(t, "a commit on the peer without the lsn column", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM nokey WHERE x = 101`) == 1 && again.Backlog() == 0
	})
	requireSame(t, p)
}
