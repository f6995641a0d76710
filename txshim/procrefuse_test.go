package txshim

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestRefuseAfterProc: a statement the shim refuses after a CALL in the same request (a row of
// tandem.ddl, a client's COMMIT PREPARED) rolls back the implicit transaction the procedure's
// goes on in, as PostgreSQL does for an error at that statement: the shim sent the steps before
// it with a terminator of its own and then raised the error, so a write between the CALL and the
// refused statement was committed, plainly and unwaited, while the client got an error. What the
// procedure committed itself stays committed, and the reply waits until the peer has it.
func TestRefuseAfterProc(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, "CREATE PROCEDURE noop() LANGUAGE sql AS $$ SELECT 1 $$")
	c.Exec(t, "CREATE PROCEDURE ins(n int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (n, 0); COMMIT; END $$")
	rows := func() string { return presentIDs(t, c, "1", "3") }
	type send struct {
		name string
		f    func(*rawSession, ...string)
	}
	sends := []send{{"extended", (*rawSession).pipeline}, {"simple", (*rawSession).simple}}
	refused := []struct{ stmt, code string }{
		{"INSERT INTO tandem.ddl (stmt) VALUES ('x')", "42501"},
		{"COMMIT PREPARED 'x'", "0A000"},
	}

	var shipped atomic.Int32
	peer := shipCounter{&fakePeer{c: c, t: t}, &shipped}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	d := dialRawDSN(t, c.DSN(c.Database()))
	for _, proc := range []string{"CALL noop()", "CALL ins(3)"} {
		for _, sd := range sends {
			for _, ref := range refused {
				// Plain PostgreSQL, the refused statement replaced by one that fails there as
				// the shim's refusal does.
				sd.f(d, proc, "INSERT INTO acct VALUES (1, 0)", "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '"+ref.code+"'; END$$")
				want := d.replies()
				wantRows := rows()
				c.Exec(t, "TRUNCATE acct")
				shipped.Store(0)
				r := dialRaw(t, s)
				sd.f(r, proc, "INSERT INTO acct VALUES (1, 0)", ref.stmt)
				got := r.replies()
				name := sd.name + " " + proc + "; INSERT; " + ref.stmt
				if got != want {
					t.Errorf("%s: %s, want %s as PostgreSQL", name, got, want)
				}
				if gotRows := rows(); gotRows != wantRows {
					t.Errorf("%s: rows [%s] committed, want [%s] as PostgreSQL", name, gotRows, wantRows)
				}
				if wantRows != "" && shipped.Load() == 0 {
					t.Errorf("%s: rows [%s] committed, and the reply did not wait for the peer", name, wantRows)
				}
				if calls := peer.take(); len(calls) != 0 {
					t.Errorf("%s: peer calls %v, want none", name, calls)
				}
				c.Exec(t, "TRUNCATE acct")
			}
		}
	}

	// The peer never takes a plain commit and the site may not go on alone: what the procedure
	// committed is not answered as if the peer had it.
	blocked := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: notShipped{&fakePeer{c: c, t: t}}, Logger: quietLogger()}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock; cfg.CommitTimeout = time.Second })
	r := dialRaw(t, blocked)
	r.pipeline("CALL ins(3)", "INSERT INTO acct VALUES (1, 0)", refused[0].stmt)
	if got := r.replies(); !strings.Contains(got, "E(08007)") {
		t.Errorf("refusal after CALL, the peer not taking the procedure's commit: %s, want 08007", got)
	}
	if got := rows(); got != "3" {
		t.Errorf("refusal after CALL, the peer not taking the procedure's commit: rows [%s], want [3]", got)
	}
}

// TestBlockAfterProc: a transaction block after a CALL in the same extended request (no
// implicit block there, so the procedure's COMMIT runs; PostgreSQL's BEGIN then makes the
// procedure's last transaction the block) ended as any block's, never waiting for the peer to
// have what the procedure committed itself, and the CALL did not pass the commit gate: it
// committed under a hold (catch-up, handover). The CALL now goes through the gate with the
// steps up to the BEGIN, and the reply waits until the peer has what it committed.
func TestBlockAfterProc(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, "CREATE PROCEDURE ins(n int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (n, 0); COMMIT; END $$")
	rows := func() string { return presentIDs(t, c, "1", "3") }
	requests := []struct {
		stmts []string
		dual  int
	}{
		{[]string{"CALL ins(3)", "BEGIN", "SELECT 1", "COMMIT"}, 0},
		{[]string{"CALL ins(3)", "BEGIN", "INSERT INTO acct VALUES (1, 0)", "COMMIT"}, 1},
		{[]string{"CALL ins(3)", "BEGIN", "INSERT INTO acct VALUES (1, 0)", "ROLLBACK"}, 0},
	}

	var shipped atomic.Int32
	peer := shipCounter{&fakePeer{c: c, t: t}, &shipped}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	d := dialRawDSN(t, c.DSN(c.Database()))
	for _, req := range requests {
		name := strings.Join(req.stmts, "; ")
		d.pipeline(req.stmts...)
		want := d.replies()
		wantRows := rows()
		c.Exec(t, "TRUNCATE acct")
		shipped.Store(0)
		r := dialRaw(t, s)
		r.pipeline(req.stmts...)
		if got := r.replies(); got != want {
			t.Errorf("%s: %s, want %s as PostgreSQL", name, got, want)
		}
		if gotRows := rows(); gotRows != wantRows {
			t.Errorf("%s: rows [%s] committed, want [%s] as PostgreSQL", name, gotRows, wantRows)
		}
		if shipped.Load() == 0 {
			t.Errorf("%s: rows [%s] committed, and the reply did not wait for the peer to have the procedure's", name, wantRows)
		}
		if calls := peer.take(); len(calls) != 2*req.dual {
			t.Errorf("%s: peer calls %v, want %d prepare/commit pairs", name, calls, req.dual)
		}
		c.Exec(t, "TRUNCATE acct")
	}

	// The peer never takes a plain commit and the site may not go on alone.
	blocked := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: notShipped{&fakePeer{c: c, t: t}}, Logger: quietLogger()}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock; cfg.CommitTimeout = time.Second })
	r := dialRaw(t, blocked)
	r.pipeline(requests[0].stmts...)
	if got := r.replies(); !strings.Contains(got, "E(08007)") {
		t.Errorf("block after CALL, the peer not taking the procedure's commit: %s, want 08007", got)
	}
	c.Exec(t, "TRUNCATE acct")

	// Under a hold of the commits the procedure does not run.
	ctx := capCtx(t, 30*time.Second)
	release, err := s.HoldCommits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r = dialRaw(t, s)
	r.pipeline(requests[0].stmts...)
	time.Sleep(500 * time.Millisecond)
	held := rows()
	release()
	if held != "" {
		t.Errorf("block after CALL: rows [%s] committed under a hold of the commits, want none", held)
	}
	if got := r.replies(); strings.Contains(got, "E(") {
		t.Errorf("block after CALL, after the hold: %s", got)
	}
}

// presentIDs lists, comma-separated, those of ids that acct holds on c.
func presentIDs(t *testing.T, c *pgtest.Cluster, ids ...string) string {
	t.Helper()
	var have []string
	for _, id := range ids {
		if rowCount(t, c, "id = "+id) == 1 {
			have = append(have, id)
		}
	}
	return strings.Join(have, ",")
}
