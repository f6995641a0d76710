package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// drainPipelinedPart pipelines the Sync-ended requests firsts, then the part "SELECT w(40)" with
// a Flush, reads the firsts' replies and the part's up to part (its CommandComplete, or its
// ErrorResponse), drains a read-only shim, then sends the Sync. In a transaction block (block)
// the drain must return nil at once and leave the session; in any case, the part's write must
// not commit on the local database after the drain.
func drainPipelinedPart(t *testing.T, firsts []string, part byte, block bool) {
	t.Helper()
	s, db, ctx, _ := unseenShim(t)
	r := dialRaw(t, s)
	r.conn.SetDeadline(time.Now().Add(20 * time.Second))
	for _, q := range firsts {
		r.stmt(q)
		r.fe.SendSync(&pgproto3.Sync{})
	}
	r.stmt("SELECT w(40)")
	r.sendFlush()
	var got string
	var err error
	for range firsts {
		var more string
		more, err = r.until('Z')
		got += more
		if err != nil {
			break
		}
	}
	if err == nil {
		var more string
		more, err = r.until(part)
		got += more
	}
	t.Logf("before the Sync: %s %v", got, err)
	took, err := readOnlyDrain(t, ctx, s, 4*time.Second)
	if block && (err != nil || took > time.Second) {
		t.Errorf("Drain with a read in a transaction block, nothing that commits past the gate: %v after %v", err, took.Round(time.Millisecond))
	}
	r.fe.SendSync(&pgproto3.Sync{})
	r.fe.Flush()
	got, err = r.until('Z')
	t.Logf("the Sync: %s %v", got, err)
	if block && err != nil {
		t.Errorf("the session in its transaction block was ended by the drain: %s %v", got, err)
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 40`); n != 0 {
		t.Errorf("a write executed before its Sync, in flight at the handover, committed on the local database after Drain returned")
	}
}

// TestDrainPartPipelinedBlock: a part of an extended request sent before its Sync (after a
// Flush) marks the session until its Sync (partWrite) unless it runs in a transaction block,
// whose commit comes through the gate. Sent right behind a request whose reply had not come
// yet (pipelined: a BEGIN with its Sync, then a read with a Flush), the status it runs in was
// not known when it was sent: it was marked all the same, for good, and a handover's Drain
// waited out its bound and terminated the session — a reader in its transaction block, which
// the same part sent after the BEGIN's reply leaves alone. The status is learnt from the reply
// to the request before the part. Behind a request that leaves no block ("implicit"), the part's
// write is still waited for and ended.
func TestDrainPartPipelinedBlock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, first string
		block       bool
	}{
		{name: "block", first: "BEGIN", block: true},
		{name: "implicit", first: "SELECT 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			drainPipelinedPart(t, []string{tc.first}, 'C', tc.block)
		})
	}
}
