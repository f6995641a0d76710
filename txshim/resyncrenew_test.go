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
