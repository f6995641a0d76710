package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestResyncLostSlotPreparedLocally: with the slot lost and a tandem_ transaction prepared on the
// local database (in doubt while the peer was away, as is likely then), resync is to refuse at
// once, naming it (settle it first), as it does with the slot in place. It made the slot anew
// first, and PostgreSQL's slot creation waits for every transaction in progress, a prepared one
// too: the resync hung until its caller gave up (tandem resync, without end) and said only that
// the slot's creation timed out.
func TestResyncLostSlotPreparedLocally(t *testing.T) {
	t.Parallel()
	p, sh, _ := shippingKV(t)
	dropSlot(t, p)
	waitFor(t, "the Shipper to see the slot gone", func() bool { return sh.Err() != nil })
	prepareLocal(t, p.ldb, "tandem_a_1_77", `INSERT INTO kv VALUES (77, 'in doubt')`)
	defer p.local.Exec(t, `ROLLBACK PREPARED 'tandem_a_1_77'`)
	if err := sh.Resync(capCtx(t, 15*time.Second), nil); err == nil || !strings.Contains(err.Error(), "prepared on the local database") {
		t.Fatalf("Resync with a transaction prepared locally = %v, want a refusal naming it", err)
	}
}

// TestResyncLostSlotPreparedElsewhere: PostgreSQL's creation of a slot waits for every
// transaction in progress on the server — a prepared one of any name, in any database. Resync
// refused, before making the lost slot anew, only tandem_ transactions prepared in the local
// database: one of the application's own (or of another database on the same server) hung it
// until its caller gave up, as before.
func TestResyncLostSlotPreparedElsewhere(t *testing.T) {
	t.Parallel()
	p, sh, _ := shippingKV(t)
	p.local.Exec(t, `CREATE TABLE other (id int)`)
	dropSlot(t, p)
	waitFor(t, "the Shipper to see the slot gone", func() bool { return sh.Err() != nil })
	p.local.Exec(t, `BEGIN; INSERT INTO other VALUES (1); PREPARE TRANSACTION 'app_xa_1'`)
	defer p.local.Exec(t, `ROLLBACK PREPARED 'app_xa_1'`)
	start := time.Now()
	err := sh.Resync(capCtx(t, 15*time.Second), nil)
	if err == nil || !strings.Contains(err.Error(), "prepared") || time.Since(start) > 10*time.Second {
		t.Fatalf("Resync with a transaction app_xa_1 prepared on the local server = %v after %v, want a refusal naming it at once", err, time.Since(start).Round(time.Second))
	}
}
