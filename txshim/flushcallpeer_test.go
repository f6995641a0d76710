package txshim

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestFlushedCallWaitsPeer: in dual mode a procedure's request's ReadyForQuery waits until the
// peer has what it committed (lastPartProc). One run in a part sent before the Sync, with a
// Flush, must not have its Sync answered before either.
func TestFlushedCallWaitsPeer(t *testing.T) {
	t.Parallel()
	for _, flush := range []bool{false, true} {
		var announced atomic.Int32
		s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
		if _, err := db.Exec(`CREATE PROCEDURE fc(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`); err != nil {
			t.Fatal(err)
		}
		r := dialRaw(t, s)
		r.stmt("CALL fc(51)")
		if flush {
			t.Logf("flushed: %s", r.flush('C'))
		}
		start := time.Now()
		r.pipeline()
		r.conn.SetDeadline(time.Now().Add(15 * time.Second))
		got, err := r.until('Z')
		t.Logf("flush %v: %s %v after %v, peer down announced %d times", flush, got, err, time.Since(start).Round(time.Millisecond), announced.Load())
		if announced.Load() == 0 {
			t.Errorf("flush %v: the procedure's request was answered without the peer having its commit, and the shim did not go solo", flush)
		}
	}
}
