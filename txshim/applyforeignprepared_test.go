package txshim

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestApplyPeerForeignPrepared: a transaction prepared on the peer's database under a gid that
// is not Tandem's holds its rows' locks; the apply of a change to one of them waits for it until
// the op timeout, and catch-up tries again for ever: the watchdog spares prepared transactions
// and the resolver settles only tandem_ ones. Tandem must not settle it, but the operator is
// told which transaction blocks the apply: the log names its gid.
func TestApplyPeerForeignPrepared(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	var logs logBuffer
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	prepareLocal(t, p.pdb, "app_x", `UPDATE kv SET v = 'peer' WHERE k = 1`)
	settled := false
	t.Cleanup(func() {
		if !settled {
			p.peer.Exec(t, `ROLLBACK PREPARED 'app_x'`)
		}
	})
	p.local.Exec(t, `UPDATE kv SET v = 'master' WHERE k = 1`)
	start := time.Now()
	for !strings.Contains(logs.String(), "app_x") {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("after %v the log does not name app_x, the transaction prepared on the peer outside Tandem that blocks the apply (backlog %d, synced %v):\n%s",
				time.Since(start).Round(time.Millisecond), sh.Backlog(), sh.PeerSynced(), logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "app_x") {
			line = l
			break
		}
	}
	t.Logf("%s", line)
	if !strings.Contains(line, "database=app") || !strings.Contains(line, "outside Tandem") {
		t.Errorf("the line naming app_x does not tell it a transaction prepared outside Tandem on database app: %s", line)
	}
	// Catch-up, once the apply gave up, meets it again, and says so again.
	waitFor(t, "the peer out of step", func() bool { return !sh.PeerSynced() })
	told := strings.Count(logs.String(), "'app_x'")
	if err := sh.CatchUp(capCtx(t, 8*time.Second), nil); err == nil {
		t.Fatalf("catch-up finished with app_x holding the row on the peer (backlog %d, synced %v, peer row %q):\n%s", sh.Backlog(), sh.PeerSynced(), queryOne[string](t, p.pdb, `SELECT v FROM kv WHERE k = 1`), logs.String())
	}
	if n := strings.Count(logs.String(), "'app_x'"); n <= told {
		t.Errorf("a catch-up blocked by app_x did not name it:\n%s", logs.String())
	}
	if !preparedOn(t, p.pdb, "app_x") {
		t.Fatalf("app_x, prepared outside Tandem, was settled by Tandem")
	}
	// Once the operator settles it, catch-up brings the peer in step.
	p.peer.Exec(t, `ROLLBACK PREPARED 'app_x'`)
	settled = true
	if err := sh.CatchUp(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("catch-up once app_x is settled: %v", err)
	}
	requireSame(t, p)
}
