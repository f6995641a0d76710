package txshim

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// verifyingShipperConfig is a Shipper of site a over p (one peer connection) that compares
// both databases after each catch-up.
func verifyingShipperConfig(p *capPair) ShipperConfig {
	return ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, VerifyCatchUp: true, Logger: quietLogger()}
}

// noHold is a catch-up's hold that holds nothing (no shim).
func noHold(context.Context) (func(), error) { return func() {}, nil }

// pgBin is the path of a PostgreSQL client program beside the server's.
func pgBin(t *testing.T, name string) string {
	t.Helper()
	p, err := pgtest.Bin(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dumpDB writes db of c, Tandem's objects included, to a custom-format dump file.
func dumpDB(t *testing.T, c *pgtest.Cluster, db string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), db+".dump")
	if out, err := exec.Command(pgBin(t, "pg_dump"), "-Fc", "-f", file, "-d", c.DSN(db)).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	return file
}

// restoreDB replaces db of c by the dump: every session of it is ended, the database dropped,
// made anew and restored, as an operator restoring it from an earlier backup would.
func restoreDB(t *testing.T, c *pgtest.Cluster, db, file string) {
	t.Helper()
	admin := c.Open(t, "postgres")
	if _, err := admin.Exec(`DROP DATABASE ` + sqlIdent(db) + ` WITH (FORCE)`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE DATABASE ` + sqlIdent(db)); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pgBin(t, "pg_restore"), "--exit-on-error", "-d", c.DSN(db), file).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
}

// TestPeerRestoredFromOlderDump: while the master runs dual, the peer database is replaced by
// a dump taken before some of the dual commits (tandem objects included: its decision rows and
// term record are the dump's). The master goes solo on the lost connections, and the next
// catch-up must not call that peer synced: it lacks transactions the slot was confirmed past
// (their decision rows are gone with them), so only the solo backlog would reach it, and the
// two databases would stay different while dual commits go on (inserts succeed; the dump's
// rows take updates of their own). It needs resync — also when the peer holds an old decision
// row of this site without lsn (an earlier version's, not pruned), which once made the check
// say it could not tell.
func TestPeerRestoredFromOlderDump(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup string // run on the peer before the dump
	}{
		{"dump", ""},
		{"old row without lsn", `INSERT INTO tandem.decisions (gid, at) VALUES ('` + plainGID("a", 7) + `', now() - interval '30 days')`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := startDualAcct(t, Options{OnPeerDown: func() bool { return true }}, 3)
			p, sh, shim, hold, ctx, conn := d.p, d.sh, d.shim, d.hold, d.ctx, d.conn
			if tc.setup != "" {
				p.peer.Exec(t, tc.setup)
			}
			waitFor(t, "the first commit on the peer", func() bool {
				return queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 1`) == 99
			})
			dump := dumpDB(t, p.peer, "app")
			// Dual commits the dump lacks.
			for _, q := range []string{
				`INSERT INTO acct VALUES (10, 1000)`,
				`UPDATE acct SET balance = balance + 5 WHERE id = 2`,
			} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
				t.Fatalf("mode %v, synced %v before the restore: want dual, synced", m, sh.PeerSynced())
			}
			waitForLong(t, "the dual commits on the peer", 20*time.Second, func() bool {
				return sh.Backlog() == 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
			})
			requireSame(t, p)

			restoreDB(t, p.peer, "app", dump)

			// The next commit finds the peer's connections gone: committed alone.
			if _, err := conn.Exec(ctx, `INSERT INTO acct VALUES (11, 1100)`); err != nil {
				t.Fatalf("commit after the restore: %v", err)
			}
			waitFor(t, "solo mode", func() bool { m, _ := shim.Mode(); return m == ModeSolo })

			err := sh.CatchUp(capCtx(t, 30*time.Second), hold)
			synced := sh.PeerSynced()
			diffs, verr := Verify(capCtx(t, 10*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
			if verr != nil {
				t.Fatal(verr)
			}
			t.Logf("CatchUp: %v; synced %v; Err %v; differences after it: %v", err, synced, sh.Err(), diffs)
			if synced || !errors.Is(err, ErrNeedsResync) || sh.Err() == nil {
				t.Errorf("catch-up onto the restored peer: err %v, synced %v, Err %v; want ErrNeedsResync, not synced (databases differ: %v)",
					err, synced, sh.Err(), diffs)
			}
			if m, _ := shim.Mode(); m == ModeDual {
				t.Errorf("the shim went dual onto a peer lacking earlier commits")
			}
		})
	}
}

// TestPeerRecreatedAndInstalled: while the master runs, the peer database is dropped, made
// anew with the application schema and set up by tandem install — empty. The catch-up after
// the lost connections must ask for resync rather than ship only the solo backlog onto it.
func TestPeerRecreatedAndInstalled(t *testing.T) {
	t.Parallel()
	d := startDualAcct(t, Options{OnPeerDown: func() bool { return true }}, 3)
	p, sh, shim, hold, ctx, conn := d.p, d.sh, d.shim, d.hold, d.ctx, d.conn
	waitForLong(t, "the first commit on the peer", 20*time.Second, func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	admin := p.peer.Open(t, "postgres")
	for _, q := range []string{`DROP DATABASE app WITH (FORCE)`, `CREATE DATABASE app`} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	p.peer.Exec(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`)
	if err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO acct VALUES (11, 1100)`); err != nil {
		t.Fatalf("commit after the peer was made anew: %v", err)
	}
	if m, _ := shim.Mode(); m == ModeDual {
		t.Fatalf("the commit went dual onto the empty peer made anew (synced %v, Err %v): its client was told committed on both", sh.PeerSynced(), sh.Err())
	}
	err := sh.CatchUp(capCtx(t, 30*time.Second), hold)
	if sh.PeerSynced() || !errors.Is(err, ErrNeedsResync) {
		t.Errorf("catch-up onto the empty peer made anew: err %v, synced %v; want ErrNeedsResync, not synced", err, sh.PeerSynced())
	}
	// Resync brings it back (asked again once: its first try may meet a pooled connection to
	// the dropped database).
	err = sh.Resync(capCtx(t, 30*time.Second), hold)
	if err != nil {
		t.Logf("Resync: %v; again", err)
		err = sh.Resync(capCtx(t, 30*time.Second), hold)
	}
	if err != nil || !sh.PeerSynced() {
		t.Fatalf("Resync: %v (synced %v)", err, sh.PeerSynced())
	}
	requireSame(t, p)
}

// TestPeerRestoredWhileStopped: the peer database is restored from an earlier dump while the
// master's sidecar is stopped; the restarted one knows nothing of what the peer held, and its
// first catch-up ships only the slot's backlog. The verification after it finds the databases
// different and says so (status, metrics, an error in the log). It only reports: a difference
// may also be a write that bypassed the shim on its way to the peer
// (TestVerifyAfterCatchUpUnheldWriteNoResync), which must not stop shipping.
func TestPeerRestoredWhileStopped(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	cfg := verifyingShipperConfig(p)
	sh1 := NewShipper(cfg)
	sh1.SetTerm(1)
	stop := runShipper(t, sh1)
	if err := sh1.CatchUp(capCtx(t, 30*time.Second), noHold); err != nil {
		t.Fatal(err)
	}
	dump := dumpDB(t, p.peer, "app")
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'two')`)
	p.local.Exec(t, `UPDATE kv SET v = 'uno' WHERE k = 1`)
	waitForLong(t, "the commits on the peer", 20*time.Second, func() bool {
		return sh1.Backlog() == 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`) == 2 &&
			queryOne[string](t, p.pdb, `SELECT v FROM kv WHERE k = 1`) == "uno"
	})
	after := queryOne[string](t, p.ldb, `SELECT pg_current_wal_lsn()::text`)
	p.local.Exec(t, `SELECT pg_logical_emit_message(true, 'test', '')`)
	waitForLong(t, "the slot confirmed past them", 30*time.Second, func() bool {
		return queryOne[bool](t, p.ldb, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'tandem_a'`, after)
	})
	stop()
	restoreDB(t, p.peer, "app", dump)
	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'three')`)

	sh2 := NewShipper(cfg)
	sh2.SetTerm(1)
	runShipper(t, sh2)
	err := sh2.CatchUp(capCtx(t, 30*time.Second), noHold)
	t.Logf("CatchUp after the restart: %v (synced %v)", err, sh2.PeerSynced())
	waitForLong(t, "the verification after catch-up", 20*time.Second, func() bool { _, ok := sh2.LastVerify(); return ok || err != nil })
	r, _ := sh2.LastVerify()
	t.Logf("verify: %+v", r)
	if r.Err != nil || len(r.Diffs) != 1 || !strings.Contains(r.Diffs[0], "public.kv") {
		t.Errorf("the verification after a catch-up onto the restored peer: %q, %v; want kv named", r.Diffs, r.Err)
	}
}

// TestVerifyAfterCatchUpViewOnly: a materialized view over a query that is not immutable
// differs between the databases whatever is shipped (each computes its rows): the comparison
// after a catch-up reports it, but does not stop shipping as it does for a table that differs.
func TestVerifyAfterCatchUpViewOnly(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`,
		`CREATE MATERIALIZED VIEW mv AS SELECT k, random() AS r FROM kv`)
	installPair(t, p)
	cfg := verifyingShipperConfig(p)
	sh := NewShipper(cfg)
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 30*time.Second), noHold); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the verification after catch-up", 20*time.Second, func() bool { _, ok := sh.LastVerify(); return ok })
	r, _ := sh.LastVerify()
	if len(r.Diffs) != 1 || !strings.Contains(r.Diffs[0], "materialized view public.mv") {
		t.Errorf("verify after catch-up: %q, want the materialized view named", r.Diffs)
	}
	if !sh.PeerSynced() || sh.Err() != nil {
		t.Errorf("a materialized view alone differing stopped shipping: synced %v, Err %v", sh.PeerSynced(), sh.Err())
	}
}
