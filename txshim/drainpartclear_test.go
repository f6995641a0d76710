package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestDrainPartAnswered: a part of an extended request sent before its Sync (after a Flush)
// marks the session as writing until the Sync (partWrite); once the request ended — its Sync
// answered, whatever the part did (failed, read, copied out or in, was followed by a part the
// shim refused) — nothing of it is in flight: a handover's Drain returns nil at once, and the
// session lives on.
func TestDrainPartAnswered(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, r *rawSession)
	}{
		{"failed", func(t *testing.T, r *rawSession) {
			r.stmt("SELECT 1/0")
			t.Logf("part: %s", r.flush('E'))
			t.Logf("sync: %s", must(r.sync()))
		}},
		{"read", func(t *testing.T, r *rawSession) {
			r.stmt("SELECT w(30)")
			t.Logf("part: %s", r.flush('C'))
			t.Logf("sync: %s", must(r.sync()))
		}},
		{"copyout", func(t *testing.T, r *rawSession) {
			r.stmt("COPY acct TO STDOUT")
			t.Logf("part: %s", r.flush('C'))
			t.Logf("sync: %s", must(r.sync()))
		}},
		{"copyin", func(t *testing.T, r *rawSession) {
			r.stmt("SELECT w(31)")
			t.Logf("part: %s", r.flush('C'))
			r.stmt("COPY acct FROM STDIN")
			t.Logf("copy: %s", r.flush('G'))
			r.fe.Send(&pgproto3.CopyData{Data: []byte("32\t1\n")})
			r.fe.Send(&pgproto3.CopyDone{})
			t.Logf("sync: %s", must(r.sync()))
		}},
		{"refused", func(t *testing.T, r *rawSession) {
			r.stmt("SELECT w(33)")
			t.Logf("part: %s", r.flush('C'))
			r.stmt("LOCK TABLE tandem.state")
			t.Logf("sync: %s", must(r.sync()))
		}},
		{"twoparts", func(t *testing.T, r *rawSession) {
			r.stmt("SELECT w(34)")
			t.Logf("part: %s", r.flush('C'))
			r.stmt("SELECT 1")
			t.Logf("part: %s", r.flush('C'))
			r.stmt("CALL fw_proc(35)")
			t.Logf("sync: %s", must(r.sync()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _, ctx, _ := unseenShim(t, `CREATE PROCEDURE fw_proc(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); END $$`)
			r := dialRaw(t, s)
			r.conn.SetDeadline(time.Now().Add(20 * time.Second))
			tc.run(t, r)
			took, err := readOnlyDrain(t, ctx, s, 4*time.Second)
			if err != nil || took > time.Second {
				t.Errorf("Drain with nothing in flight (the request ended): %v after %v", err, took.Round(time.Millisecond))
			}
			if got := r.query("SELECT 1"); got == "" {
				t.Errorf("the session after the drain: %q", got)
			} else {
				t.Logf("after the drain: %s", got)
			}
		})
	}
}

func must(s string, _ byte) string { return s }
