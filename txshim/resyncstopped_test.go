package txshim

import (
	"errors"
	"testing"
	"time"
)

// TestResyncLostSlotStoppedBeforeStream: a resync made the lost slot anew and the process
// stopped (a crash, SIGTERM, a failed resync) before the slot's first stream. The slot was made
// without TWO_PHASE, to become two-phase at the decoder's first stream, and install refuses a
// pgoutput slot that is not two-phase ("drop it"): tandem install, run again after the stop,
// failed and sent the operator to drop the slot by hand. The slot is now two-phase from its
// making; install takes it, and a restarted Shipper refuses catch-up (the peer is owed a copy)
// until a resync copies the tables, after which both databases hold the same rows, those
// committed in no slot and those committed while the process was down among them.
func TestResyncLostSlotStoppedBeforeStream(t *testing.T) {
	t.Parallel()
	p, sh, stop := shippingKV(t)
	ctx := capCtx(t, 120*time.Second)
	dropSlot(t, p)
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'in no slot')`)
	waitFor(t, "the Shipper to see the slot gone", func() bool { return sh.Err() != nil })

	// The process stops right after the slot is made anew, before anything streams it.
	goOn, resynced, err := resyncHeldAtSlotRemade(t, ctx, sh)
	stop()
	goOn()
	if <-resynced; *err == nil {
		t.Fatal("Resync succeeded with its Shipper stopped")
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'while the process was down')`)

	// The operator runs install again (it is idempotent), then starts the process.
	if err := Install(ctx, "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Fatalf("install after a stop right after the resync made the slot anew: %v", err)
	}
	sh = pairShipper(p, 1, 2*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(ctx, nil); !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp after the stop = %v, want ErrNeedsResync: the peer lacks row 2 (%d rows on the peer, %d on the local database)",
			err, queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`), queryOne[int](t, p.ldb, `SELECT count(*) FROM kv`))
	}
	if err := sh.Resync(ctx, nil); err != nil {
		t.Fatalf("Resync after the restart: %v", err)
	}
	requireShippedAfterResync(t, p, sh)
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k IN (2, 3)`); got != 2 {
		t.Fatalf("the peer holds %d of rows 2 and 3, want both", got)
	}
	if !queryOne[bool](t, p.ldb, `SELECT two_phase FROM pg_replication_slots WHERE slot_name = $1`, SlotName("a")) {
		t.Fatal("the slot is not two-phase")
	}
}
