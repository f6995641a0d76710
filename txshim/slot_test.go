package txshim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// invalidateSlot makes PostgreSQL invalidate the site's slot on p's local database, as a
// long absence of the peer would under max_slot_wal_keep_size: the bound is set to 1 MB,
// four WAL segments are filled (a write of keys key…key+3, then a switch each) and a checkpoint removes them.
func invalidateSlot(t *testing.T, p *capPair, table string, key int) {
	t.Helper()
	read := func() SlotInfo {
		t.Helper()
		info, err := ReadSlot(capCtx(t, 5*time.Second), p.ldb, SlotName("a"))
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	if info := read(); !info.Exists || info.Bounded || info.Lost() {
		t.Fatalf("slot before the bound: %+v; want it there, unbounded", info)
	}
	p.local.Exec(t, `ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`)
	p.local.Exec(t, `SELECT pg_reload_conf()`)
	for i := 0; i < 4; i++ {
		p.local.Exec(t, fmt.Sprintf(`INSERT INTO %s VALUES (%d, 'filler')`, table, key+i))
		p.local.Exec(t, `SELECT pg_switch_wal()`)
	}
	// Past the bound, not yet invalidated: the WAL held back exceeds what is still safe.
	if info := read(); !info.Bounded || info.Lost() || info.Retained < 3<<20 || info.Safe >= info.Retained {
		t.Fatalf("slot past the bound before the checkpoint: %+v", info)
	}
	p.local.Exec(t, `CHECKPOINT`)
	info, err := ReadSlot(capCtx(t, 5*time.Second), p.ldb, SlotName("a"))
	if err != nil || !info.Lost() {
		t.Fatalf("slot after the checkpoint: %+v, %v; want it lost", info, err)
	}
	p.local.Exec(t, `ALTER SYSTEM RESET max_slot_wal_keep_size`)
	p.local.Exec(t, `SELECT pg_reload_conf()`)
}

// shippingKV starts a pair with table kv installed and a master's Shipper (site a, term 1) in
// step, row 1 shipped; stop stops the Shipper.
func shippingKV(t *testing.T) (*capPair, *Shipper, func()) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	sh := pairShipper(p, 1, 2*time.Second)
	sh.SetTerm(1)
	stop := runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (1, 'one')`)
	waitFor(t, "the first commit on the peer", func() bool {
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM kv`).Scan(&n) == nil && n == 1 && sh.Backlog() == 0
	})
	return p, sh, stop
}

// TestSlotInvalidated: the peer is away while the master commits alone, and PostgreSQL
// invalidates the slot (max_slot_wal_keep_size; DESIGN §5.2 "past it the peer needs
// resync"). The Shipper says so (Err wraps ErrNeedsResync and names the slot) rather than
// retrying a stream that can never start; catch-up refuses; Resync makes the slot anew, copies
// the tables, and shipping goes on from there. Then a backup whose slot was invalidated while
// its sidecar was down, and which holds nothing to ship, gets a new slot by itself and still
// reports writes that bypass Tandem.
func TestSlotInvalidated(t *testing.T) {
	t.Parallel()
	p, sh, stop := shippingKV(t)

	p.peer.Kill()
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'while the peer is away')`)
	waitFor(t, "shipping to stop", func() bool { return sh.linkState() == linkDown })
	if err := sh.Err(); err != nil {
		t.Fatalf("Err before the slot is lost = %v", err)
	}
	invalidateSlot(t, p, "kv", 1000)
	waitFor(t, "the Shipper to see the slot lost", func() bool { return sh.Err() != nil })
	if err := sh.Err(); !errors.Is(err, ErrNeedsResync) || !strings.Contains(err.Error(), "invalidated") {
		t.Fatalf("Err = %v, want ErrNeedsResync naming the invalidated slot", err)
	}
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp with the slot lost = %v, want ErrNeedsResync", err)
	}
	if sh.PeerSynced() {
		t.Fatal("peer synced with the slot lost")
	}

	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'before the resync')`)
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if info, err := ReadSlot(capCtx(t, 5*time.Second), p.ldb, SlotName("a")); err != nil || info.Lost() || !info.Exists {
		t.Fatalf("slot after Resync: %+v, %v", info, err)
	}
	if sh.Err() != nil || !sh.PeerSynced() {
		t.Fatalf("after Resync: err %v, synced %v", sh.Err(), sh.PeerSynced())
	}
	requireSame(t, p)
	// Shipping goes on from the new slot: later commits reach the peer once.
	p.local.Exec(t, `UPDATE kv SET v = 'after the resync' WHERE k = 3`)
	p.local.Exec(t, `INSERT INTO kv VALUES (4, 'after the resync')`)
	waitFor(t, "later commits on the peer", func() bool {
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE v = 'after the resync'`).Scan(&n) == nil && n == 2 && sh.Backlog() == 0
	})
	requireSame(t, p)
	stop()

	// A backup's sidecar was down; its slot was invalidated meanwhile.
	invalidateSlot(t, p, "kv", 2000)
	backupRenewsSlot(t, p, nil)
}

// backupRenewsSlot runs a backup's Shipper (backup since start: its own transactions all
// bypass Tandem) whose slot is lost, or lost by lose once it runs: the slot is made anew by
// itself, a later write is reported as a bypass, and nothing needs resync.
func backupRenewsSlot(t *testing.T, p *capPair, lose func()) {
	t.Helper()
	bk := pairShipper(p, 1, 2*time.Second)
	bk.SetBackup(true)
	bk.SetBypassFrom(0)
	runShipper(t, bk)
	if lose != nil {
		lose()
	}
	waitForLong(t, "the backup's slot made anew", 20*time.Second, func() bool {
		info, err := ReadSlot(context.Background(), p.ldb, SlotName("a"))
		return err == nil && info.Exists && !info.Lost()
	})
	p.local.Exec(t, `INSERT INTO kv VALUES (5, 'bypass')`)
	waitForLong(t, "the bypass reported", 20*time.Second, func() bool { return bk.Stats().Bypassed == 1 })
	if err := bk.Err(); err != nil {
		t.Fatalf("backup Err = %v, want nil: its slot held nothing to ship", err)
	}
}

// TestBackupSlotDroppedWhileSettling: a backup's slot is dropped while its journal holds a
// suspect — one of its own transactions, a write that bypassed Tandem unless the peer has it,
// which settle cannot decide while the peer is unreachable. A suspect is never shipped, so
// the slot is made anew all the same. (Before, the suspect counted as something to ship: the
// backup reported that the peer needs resync — seen as a flake of TestSlotDropped, whose
// backup met the master's last commit, not yet confirmed in the slot, as such a suspect.)
func TestBackupSlotDroppedWhileSettling(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	dead, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	bk := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"),
		PeerDSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/app?sslmode=disable&connect_timeout=1", dead), Conns: 1,
		OpTimeout: 2 * time.Second, SequenceInterval: -1, Logger: quietLogger()})
	bk.SetBackup(true)
	bk.SetBypassFrom(0)
	runShipper(t, bk)
	p.local.Exec(t, `INSERT INTO kv VALUES (1, 'suspect')`)
	waitForLong(t, "the suspect in the journal", 20*time.Second, func() bool { return bk.Backlog() == 1 })
	dropSlot(t, p)
	waitForLong(t, "the backup's slot made anew", 20*time.Second, func() bool {
		info, err := ReadSlot(context.Background(), p.ldb, SlotName("a"))
		return err == nil && info.Exists && !info.Lost()
	})
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'later')`)
	waitForLong(t, "the later write in the journal", 20*time.Second, func() bool { return bk.Backlog() == 2 })
	if err := bk.Err(); err != nil {
		t.Fatalf("backup Err = %v, want nil: its slot held nothing to ship", err)
	}
}

// dropSlot drops the site's slot on p's local database by hand, ending the walsender that
// streams it (the Shipper streams it again within moments, so this retries until it wins).
func dropSlot(t *testing.T, p *capPair) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := p.ldb.Exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, SlotName("a"))
		if err == nil {
			_, err = p.ldb.Exec(`SELECT pg_drop_replication_slot($1)`, SlotName("a"))
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("drop the slot: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlotDropped: the master's slot is dropped by hand; what is committed after that is kept by
// no slot, and the peer may lack it. The Shipper says so (Err wraps ErrNeedsResync naming the
// missing slot) rather than retrying a stream that cannot start; catch-up refuses; Resync makes
// the slot, copies the tables, and shipping goes on. A backup whose slot is dropped, holding
// nothing to ship, makes it anew by itself. Before this check the stream was retried for ever,
// with a warning each time, and catch-up waited on it.
func TestSlotDropped(t *testing.T) {
	t.Parallel()
	p, sh, stop := shippingKV(t)

	dropSlot(t, p)
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'in no slot')`)
	waitFor(t, "the Shipper to see the slot gone", func() bool { return sh.Err() != nil })
	if err := sh.Err(); !errors.Is(err, ErrNeedsResync) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Err = %v, want ErrNeedsResync naming the missing slot", err)
	}
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp with the slot gone = %v, want ErrNeedsResync", err)
	}
	if sh.PeerSynced() {
		t.Fatal("peer synced with the slot gone")
	}
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if info, err := ReadSlot(capCtx(t, 5*time.Second), p.ldb, SlotName("a")); err != nil || !info.Exists || info.Lost() {
		t.Fatalf("slot after Resync: %+v, %v", info, err)
	}
	if sh.Err() != nil || !sh.PeerSynced() {
		t.Fatalf("after Resync: err %v, synced %v", sh.Err(), sh.PeerSynced())
	}
	requireSame(t, p) // row 2 reached the peer by the copy
	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'after the resync')`)
	waitFor(t, "a later commit on the peer", func() bool {
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k = 3`).Scan(&n) == nil && n == 1 && sh.Backlog() == 0
	})
	requireSame(t, p)
	stop()

	backupRenewsSlot(t, p, func() { dropSlot(t, p) })
}
