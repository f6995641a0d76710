package txshim

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestChainedPlainCommitWaits: a write that commits plainly in dual mode (it runs NOTIFY, so it
// cannot be prepared) and ends with COMMIT AND CHAIN was answered at once — the wait for the
// peer was skipped, as the chained transaction had begun and the stream mark would only be
// written at its end: a failover right after the reply lost what the client saw committed, and
// with peer_down = "block" a commit the peer never took was answered as committed. The shim
// now commits it plainly, waits, and begins the chained transaction itself with the same
// characteristics.
func TestChainedPlainCommitWaits(t *testing.T) {
	t.Parallel()
	t.Run("shipped", func(t *testing.T) {
		c := testCluster(t)
		c.Exec(t, installSQL)
		var waits atomic.Int32
		s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: shipCounter{&fakePeer{c: c, t: t}, &waits}, Logger: quietLogger()}, ModeDual, 1)
		conn := s.connect(t)
		ctx := capCtx(t, 30*time.Second)
		if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE; INSERT INTO acct VALUES (1, 1); NOTIFY tandem_test; COMMIT AND CHAIN"); err != nil {
			t.Fatal(err)
		}
		if n := waits.Load(); n != 1 {
			t.Errorf("the chained plain commit waited for the peer %d times, want 1", n)
		}
		var iso, ro string
		if err := conn.QueryRow(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&iso, &ro); err != nil {
			t.Fatal(err)
		}
		if iso != "serializable" || ro != "off" {
			t.Errorf("chained transaction: isolation %s, read only %s; want serializable, off", iso, ro)
		}
		if st := conn.PgConn().TxStatus(); st != 'T' {
			t.Errorf("after COMMIT AND CHAIN the session's status is %q, want in a transaction", st)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (2, 2); COMMIT"); err != nil {
			t.Fatal(err)
		}
		if n := queryOne[int](t, c.Open(t, c.Database()), `SELECT count(*) FROM acct WHERE id IN (1, 2)`); n != 2 {
			t.Errorf("%d of the 2 rows committed", n)
		}
	})
	t.Run("block", func(t *testing.T) {
		c := testCluster(t)
		c.Exec(t, installSQL)
		s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: notShipped{&fakePeer{c: c, t: t}}, Logger: quietLogger()}, ModeDual, 1,
			func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock; cfg.CommitTimeout = time.Second })
		_, err := s.connect(t).Exec(capCtx(t, 30*time.Second), "BEGIN; INSERT INTO acct VALUES (1, 1); NOTIFY tandem_test; COMMIT AND CHAIN")
		if pgCode(err) != "08007" {
			t.Fatalf("chained plain commit the peer did not take, peer_down = block: %v, want 08007", err)
		}
	})
}
