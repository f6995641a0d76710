package txshim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/tandem-ha/tandem/config"
)

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
			var announced atomic.Int32
			s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
			ctx := capCtx(t, 60*time.Second)
			r := dialRaw(t, s)
			r.conn.SetDeadline(time.Now().Add(20 * time.Second))
			r.stmt(tc.first)
			r.fe.SendSync(&pgproto3.Sync{})
			r.stmt("SELECT w(40)")
			r.fe.Send(&pgproto3.Flush{})
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
			got, err := r.until('Z')
			if err == nil {
				var more string
				more, err = r.until('C')
				got += more
			}
			t.Logf("before the Sync: %s %v", got, err)
			s.SetMode(ModeReadOnly, 1)
			dctx, cancel := context.WithTimeout(ctx, 4*time.Second)
			defer cancel()
			start := time.Now()
			err = s.Drain(dctx)
			took := time.Since(start)
			t.Logf("Drain: %v after %v", err, took.Round(time.Millisecond))
			if tc.block && (err != nil || took > time.Second) {
				t.Errorf("Drain with a read in a transaction block, nothing that commits past the gate: %v after %v", err, took.Round(time.Millisecond))
			}
			r.fe.SendSync(&pgproto3.Sync{})
			r.fe.Flush()
			got, err = r.until('Z')
			t.Logf("the Sync: %s %v", got, err)
			if tc.block && err != nil {
				t.Errorf("the session in its transaction block was ended by the drain: %s %v", got, err)
			}
			if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 40`); n != 0 {
				t.Errorf("a write executed before its Sync, in flight at the handover, committed on the local database after Drain returned")
			}
		})
	}
}
