package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-ha/tandem/config"
)

// TestHoldCursorWriteReadOnly: a WITH HOLD cursor not read to its end is run to its end by
// PostgreSQL at COMMIT (to keep its rows past the transaction): a function its query calls
// writes then, after the shim's check before the COMMIT found no transaction id. On a read-only
// site, in a transaction the client made read-write, that write was committed.
func TestHoldCursorWriteReadOnly(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE FUNCTION ins_acct(i int) RETURNS int LANGUAGE sql AS $$INSERT INTO acct VALUES (i, 1) RETURNING id$$`)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer, Logger: quietLogger(), FuncRefresh: time.Hour}, ModeReadOnly, 1)
	conn := s.connect(t)
	ctx := capCtx(t, 30*time.Second)
	for i, q := range []string{
		"BEGIN READ WRITE; DECLARE c CURSOR WITH HOLD FOR SELECT ins_acct(1); COMMIT",
		"BEGIN READ WRITE; DECLARE c2 CURSOR WITH HOLD FOR SELECT lo_create(0); COMMIT",
	} {
		_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if pgCode(err) != "25006" {
			t.Errorf("%d: %s in read-only mode: %v, want 25006", i, q, err)
		}
		if conn.PgConn().TxStatus() != 'I' {
			conn.Exec(ctx, "ROLLBACK")
		}
	}
	// A writing function the shim does not know of (made behind its back since it read the
	// lists): PostgreSQL's own read-only check refuses its write at COMMIT.
	c.Exec(t, `CREATE FUNCTION ins_new(i int) RETURNS int LANGUAGE sql AS $$INSERT INTO acct VALUES (i, 1) RETURNING id$$`)
	if _, err := conn.Exec(ctx, "BEGIN READ WRITE; DECLARE c3 CURSOR WITH HOLD FOR SELECT ins_new(3); COMMIT", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "25006" {
		t.Errorf("hold cursor over a function the shim does not know writes, in read-only mode: %v, want 25006", err)
	}
	if n := rowCount(t, c, "true"); n != 0 {
		t.Errorf("%d rows written on a read-only site", n)
	}
	var lo int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM pg_largeobject_metadata").Scan(&lo); err != nil || lo != 0 {
		t.Errorf("%d large objects made on a read-only site (%v)", lo, err)
	}
}

// TestHoldCursorWriteReadOnlyAutocommit: the same without the client's READ WRITE: PostgreSQL
// 15 runs lo_create in a read-only transaction.
func TestHoldCursorWriteReadOnlyAutocommit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer, Logger: quietLogger()}, ModeReadOnly, 1)
	conn := s.connect(t)
	ctx := capCtx(t, 30*time.Second)
	for i, q := range []string{
		"DECLARE c CURSOR WITH HOLD FOR SELECT lo_create(0)",
		"BEGIN; DECLARE c3 CURSOR WITH HOLD FOR SELECT lo_create(0); COMMIT",
	} {
		_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if pgCode(err) != "25006" {
			t.Errorf("%d: %s in read-only mode: %v, want 25006", i, q, err)
		}
		if conn.PgConn().TxStatus() != 'I' {
			conn.Exec(ctx, "ROLLBACK")
		}
	}
	var lo int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM pg_largeobject_metadata").Scan(&lo); err != nil || lo != 0 {
		t.Errorf("%d large objects made on a read-only site (%v)", lo, err)
	}
}

// TestHoldCursorWriteDualAwaits: in dual mode the write a WITH HOLD cursor's query makes at
// COMMIT commits plainly (the transaction cannot be prepared) — its reply must wait until the
// peer has it, as for any plain commit of a write. The check before the COMMIT found no
// transaction id, and the reply went out at once. Here the peer never takes it, with peer_down
// = block: the client must hear 08007, not a commit only this site has.
func TestHoldCursorWriteDualAwaits(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE FUNCTION ins_acct(i int) RETURNS int LANGUAGE sql AS $$INSERT INTO acct VALUES (i, 1) RETURNING id$$`)
	peer := notShipped{&fakePeer{c: c, t: t}}
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer, Logger: quietLogger()}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock; cfg.CommitTimeout = time.Second })
	conn := s.connect(t)
	ctx := capCtx(t, 30*time.Second)
	for i, q := range []string{
		"DECLARE c1 CURSOR WITH HOLD FOR SELECT ins_acct(1)",
		"BEGIN; DECLARE c2 CURSOR WITH HOLD FOR SELECT ins_acct(2); COMMIT",
	} {
		_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if pgCode(err) != "08007" {
			t.Errorf("%d: %s, the peer not taking it: %v, want 08007", i, q, err)
		}
	}
	// Extended protocol.
	if _, err := conn.Exec(ctx, "DECLARE c3 CURSOR WITH HOLD FOR SELECT ins_acct($1)", 3); pgCode(err) != "08007" {
		t.Errorf("extended DECLARE … WITH HOLD, the peer not taking it: %v, want 08007", err)
	}
	if n := rowCount(t, c, "true"); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
}
