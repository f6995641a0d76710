package txshim

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestCallBeginWaitsPeer: in dual mode a procedure that commits, run outside a transaction
// block before a BEGIN of the same request, has its request's ReadyForQuery wait until the peer
// has what it committed (or the shim go solo) also when the request ends inside the block the
// BEGIN opened, or in that block failed.
func TestCallBeginWaitsPeer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		flushed bool
		tail    string
	}{{false, "SELECT 1"}, {false, "SELECT 1/0"}, {true, "SELECT 1"}, {true, "SELECT 1/0"}} {
		var announced atomic.Int32
		s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
		if _, err := db.Exec(`CREATE PROCEDURE cb(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`); err != nil {
			t.Fatal(err)
		}
		r := dialRaw(t, s)
		defer r.conn.Close()
		r.conn.SetDeadline(time.Now().Add(15 * time.Second))
		start := time.Now()
		r.stmt("CALL cb(52)")
		if c.flushed {
			r.flush('C')
		}
		r.pipeline("BEGIN", c.tail)
		got, err := r.until('Z')
		t.Logf("flushed %v, %s: %s %v after %v, peer down announced %d times", c.flushed, c.tail, got, err, time.Since(start).Round(time.Millisecond), announced.Load())
		if announced.Load() == 0 {
			t.Errorf("flushed %v, %s: the procedure's request was answered without the peer having its commit, and the shim did not go solo", c.flushed, c.tail)
		}
	}
}

// TestCallBeginShipped: with a real Shipper, the reply to a request whose procedure committed
// before a BEGIN of the request comes once the peer has the procedure's row, the shim still
// dual — the mark written apart (awaitShippedInBlock) is one the Shipper reaches. Also for a
// procedure sent in a part before the Sync, the BEGIN in the last part.
func TestCallBeginShipped(t *testing.T) {
	t.Parallel()
	local, peerDB := testCluster(t), testCluster(t)
	for _, c := range []*pgtest.Cluster{local, peerDB} {
		c.Exec(t, `CREATE TABLE cbs (id int PRIMARY KEY)`)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := quietLogger()
	if err := Install(ctx, "site1", local.DSN(local.Database()), peerDB.DSN(peerDB.Database()), logger); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pgtest.Cluster{local, peerDB} {
		if err := WriteTermRecord(ctx, c.Open(t, c.Database()), 1, "site1", true); err != nil {
			t.Fatal(err)
		}
	}
	local.Exec(t, `CREATE PROCEDURE cbp(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO cbs VALUES (i); COMMIT; END $$`)
	sh := NewShipper(ShipperConfig{Site: "site1", LocalDSN: local.DSN(local.Database()), PeerDSN: peerDB.DSN(peerDB.Database()), Logger: logger})
	sh.SetTerm(1)
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	s := startShimDSN(t, local, local.DSN(local.Database()), Options{Peer: sh, Logger: logger}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.CommitTimeout = 10 * time.Second })
	pdb := peerDB.Open(t, peerDB.Database())
	for i, flushed := range []bool{false, true} {
		r := dialRaw(t, s)
		r.conn.SetDeadline(time.Now().Add(30 * time.Second))
		id := 70 + i
		r.stmt(fmt.Sprintf("CALL cbp(%d)", id))
		if flushed {
			r.flush('C')
		}
		r.pipeline("BEGIN", "SELECT 1")
		got, st := r.ready()
		n := queryOne[int](t, pdb, fmt.Sprintf(`SELECT count(*) FROM cbs WHERE id = %d`, id))
		t.Logf("flushed %v: %s %c; peer has %d rows; stats %+v", flushed, got, st, n, s.Stats())
		if n != 1 || st != 'T' || s.Stats().PeerErrors != 0 {
			t.Errorf("flushed %v: the reply came before the peer had the procedure's row, or the shim did not stay dual", flushed)
		}
		r.conn.Close()
	}
}

// TestCallBeginIdleInTx: the wait for the peer in the block a BEGIN after the procedure opened
// (awaitShippedInBlock) leaves the backend idle in that transaction: the client's
// idle_in_transaction_session_timeout, shorter than the wait, must not end the session there,
// and is the client's again after.
func TestCallBeginIdleInTx(t *testing.T) {
	t.Parallel()
	var announced atomic.Int32
	s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
	if _, err := db.Exec(`CREATE PROCEDURE ci(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`); err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, s)
	defer r.conn.Close()
	r.conn.SetDeadline(time.Now().Add(15 * time.Second))
	r.query("SET idle_in_transaction_session_timeout = '300ms'")
	r.pipeline("CALL ci(53)", "BEGIN", "SELECT 1")
	got, err := r.until('Z')
	r.simple("SELECT 1/(current_setting('idle_in_transaction_session_timeout') = '300ms')::int")
	got2, err2 := r.until('Z')
	t.Logf("%s %v; then %s %v; peer down announced %d times", got, err, got2, err2, announced.Load())
	if err != nil || err2 != nil || got2 != "TDCZ" {
		t.Error("the session ended while its reply waited for the peer in the transaction block")
	}
}

// TestCallBeginIdleInTxLocal: the in-block wait's turning off of the client's
// idle_in_transaction_session_timeout (awaitShippedInBlock) leaves the client's setting as
// PostgreSQL would once the block ends — also when the client set it with SET LOCAL in the
// block: the SET LOCAL ends with the block, the session's value is back.
func TestCallBeginIdleInTxLocal(t *testing.T) {
	t.Parallel()
	for _, local := range []string{"5s", "0"} {
		var announced atomic.Int32
		s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
		if _, err := db.Exec(`CREATE PROCEDURE cl(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`); err != nil {
			t.Fatal(err)
		}
		r := dialRaw(t, s)
		r.conn.SetDeadline(time.Now().Add(15 * time.Second))
		r.query("SET idle_in_transaction_session_timeout = '10s'")
		r.pipeline("CALL cl(55)", "BEGIN", "SET LOCAL idle_in_transaction_session_timeout = '"+local+"'")
		got, err := r.until('Z')
		r.query("COMMIT")
		r.simple("SELECT 1/(current_setting('idle_in_transaction_session_timeout') = '10s')::int")
		got2, err2 := r.until('Z')
		t.Logf("SET LOCAL %s: %s %v; after COMMIT: %s %v; peer down announced %d times", local, got, err, got2, err2, announced.Load())
		if err != nil || err2 != nil || got2 != "TDCZ" {
			t.Errorf("SET LOCAL %s: the session's idle_in_transaction_session_timeout is not the client's after the block", local)
		}
		r.conn.Close()
	}
}
