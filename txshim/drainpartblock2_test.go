package txshim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/tandem-ha/tandem/config"
)

// TestDrainPartPipelinedSeveral: TestDrainPartPipelinedBlock with several Sync-ended requests
// pipelined before the part (a read, an error, a COMMIT, a COPY): the status it runs in is the
// last one's (coverage only).
func TestDrainPartPipelinedSeveral(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		firsts []string
		block  bool
	}{
		{name: "begin-read", firsts: []string{"BEGIN", "SELECT 1"}, block: true},
		{name: "begin-error", firsts: []string{"BEGIN", "SELECT 1/0"}, block: true},
		{name: "begin-commit", firsts: []string{"BEGIN", "COMMIT"}},
		{name: "read-begin", firsts: []string{"SELECT 1", "BEGIN"}, block: true},
		{name: "begin-copyout", firsts: []string{"BEGIN", "COPY (SELECT 1) TO STDOUT"}, block: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var announced atomic.Int32
			s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
			ctx := capCtx(t, 60*time.Second)
			r := dialRaw(t, s)
			r.conn.SetDeadline(time.Now().Add(20 * time.Second))
			for _, q := range tc.firsts {
				r.stmt(q)
				r.fe.SendSync(&pgproto3.Sync{})
			}
			r.stmt("SELECT w(40)")
			r.fe.Send(&pgproto3.Flush{})
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
			var got string
			var err error
			for range tc.firsts {
				var more string
				more, err = r.until('Z')
				got += more
				if err != nil {
					break
				}
			}
			if err == nil {
				var more string
				want := byte('C')
				if tc.name == "begin-error" {
					want = 'E'
				}
				more, err = r.until(want)
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
				t.Errorf("Drain with a read in a transaction block: %v after %v", err, took.Round(time.Millisecond))
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
