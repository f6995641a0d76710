package txshim

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSlotMadeAnewWhileStreaming: the master's slot is dropped and made anew by hand (or by
// tandem install) while the Shipper runs, with a commit in between that no slot holds. The
// new slot streams from its making on: the commit is never shipped. The Shipper is to say
// the peer needs resync, as for a slot that is gone, not go on shipping what follows and call
// the peer in step; Resync then brings the peer in step. (When the Shipper looks for the slot
// between the drop and the making, it finds it gone, which was told before: tried again.)
func TestSlotMadeAnewWhileStreaming(t *testing.T) {
	t.Parallel()
	p, sh, _ := shippingKV(t)
	conn, err := p.ldb.Conn(capCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for try := 0; ; try++ {
		ctx := capCtx(t, 20*time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := conn.ExecContext(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, SlotName("a"))
			if err == nil {
				_, err = conn.ExecContext(ctx, `SELECT pg_drop_replication_slot($1)`, SlotName("a"))
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("drop the slot: %v", err)
			}
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO kv VALUES ($1, 'in no slot')`, 10+try); err != nil {
			t.Fatal(err)
		}
		if err := createSlot(ctx, p.ldb, SlotName("a")); err != nil {
			t.Fatal(err)
		}
		p.local.Exec(t, `INSERT INTO kv VALUES ($1, 'in the new slot')`, 100+try)
		waitForLong(t, "the Shipper to ship the later commit or stop", 20*time.Second, func() bool {
			var n int
			return sh.Err() != nil || (p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k = $1`, 100+try).Scan(&n) == nil && n == 1)
		})
		err := sh.Err()
		if err == nil || !strings.Contains(err.Error(), "does not exist") || try == 5 {
			break
		}
		t.Logf("try %d: the Shipper found the slot gone before it was made anew; again", try)
		if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
			t.Fatalf("Resync: %v", err)
		}
	}
	if err := sh.Err(); err == nil {
		t.Fatalf("the peer has the commit streamed from the slot made anew, not the one in between (in no slot), and the Shipper says nothing (Err nil, backlog %d, synced %v)",
			sh.Backlog(), sh.PeerSynced())
	} else if !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("Err = %v, want ErrNeedsResync", err)
	}
	if sh.PeerSynced() {
		t.Fatal("peer synced with the slot made anew")
	}
	// Resync copies what no slot holds; shipping goes on from the slot there is.
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (1000, 'after the resync')`)
	waitForLong(t, "a later commit on the peer", 20*time.Second, func() bool {
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k = 1000`).Scan(&n) == nil && n == 1 && sh.Backlog() == 0
	})
	if sh.Err() != nil || !sh.PeerSynced() {
		t.Fatalf("after Resync: err %v, synced %v", sh.Err(), sh.PeerSynced())
	}
	requireSame(t, p)
}

// TestInstallRemadeMasterSlot: the master's slot is dropped while its sidecar is stopped, with
// a commit after it that no slot holds, and tandem install, run again, makes the slot anew. A
// restarted Shipper knows nothing of the old slot: its catch-up streamed the new one and called
// the peer synced without the commit in between (install only warned). Install now records on
// the peer that it is owed a copy of the tables, as a resync does before it makes a lost slot
// anew, so catch-up refuses (ErrNeedsResync) until Resync copies them.
func TestInstallRemadeMasterSlot(t *testing.T) {
	t.Parallel()
	p, _, stop := shippingKV(t)
	stop()
	dropSlot(t, p)
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'in no slot')`)
	installPair(t, p) // makes the slot anew; the term record still names site a master
	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'in the new slot')`)

	sh := pairShipper(p, 1, 2*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)
	err := sh.CatchUp(capCtx(t, 20*time.Second), nil)
	if err == nil {
		var two int
		if qerr := p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k = 2`).Scan(&two); qerr != nil {
			t.Fatal(qerr)
		}
		t.Fatalf("CatchUp after install made the master's dropped slot anew = nil (synced %v); the peer has row 2 %d times", sh.PeerSynced(), two)
	}
	if !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp = %v, want ErrNeedsResync", err)
	}
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	if sh.Err() != nil || !sh.PeerSynced() {
		t.Fatalf("after Resync: err %v, synced %v", sh.Err(), sh.PeerSynced())
	}
	requireSame(t, p)
}
