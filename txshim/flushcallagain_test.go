package txshim

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestFlushedCallAfterWaitWaitsPeer: a request's procedure sent before its Sync, and a COMMIT
// after it in the same part, whose reply waited for the peer (procPart); a second procedure in
// a later part sent before the Sync commits by itself too, and the Sync's ReadyForQuery must
// wait until the peer has what it committed, as for the first.
func TestFlushedCallAfterWaitWaitsPeer(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, "CREATE PROCEDURE ins(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); COMMIT; END $$")
	var shipped atomic.Int32
	peer := shipCounter{&fakePeer{c: c, t: t}, &shipped}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	r := dialRaw(t, s)
	defer r.conn.Close()
	r.conn.SetDeadline(time.Now().Add(20 * time.Second))
	r.stmt("CALL ins(1)")
	r.stmt("COMMIT")
	first := r.flush('C')
	first += r.flush('C')
	n0 := shipped.Load()
	r.stmt("CALL ins(2)")
	second := r.flush('C')
	n1 := shipped.Load()
	got, st := r.sync()
	n2 := shipped.Load()
	t.Logf("first part %s (%d waits for the peer), second %s (%d), Sync %s %c (%d)", first, n0, second, n1, got, st, n2)
	if rows := rowCount(t, c, "true"); rows != 2 {
		t.Fatalf("%d rows, want 2", rows)
	}
	if n2 == n1 {
		t.Error("the Sync was answered without waiting until the peer had what the second procedure committed")
	}
}
