package txshim

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCopyApply: a long run of inserts streams into one COPY on the peer. A row the peer refuses
// halfway makes the whole transaction's apply a definite refusal that names the run, and
// nothing of it stays on the peer; a connection lost halfway is an unknown outcome, reported
// well within the commit's time (the apply does not wait on the COPY's goroutine for ever);
// afterwards the same load, with values that need escaping and a change after the run, applies
// whole and both databases agree.
//
// Not parallel: decoding and applying its 100 000-row transaction takes most of a CPU for
// seconds, within deadlines (the Prepare's 60 s, the apply's 10 s to notice its connection
// ended); other tests beside it on a loaded 2-CPU machine would eat into them.
func TestCopyApply(t *testing.T) {
	p := startCapPair(t)
	p.both(t, `CREATE TABLE bulk (id int PRIMARY KEY, v text, n numeric)`, `CREATE TABLE tally (k int PRIMARY KEY, c int)`,
		`INSERT INTO tally VALUES (1, 0)`)
	installPair(t, p)
	s := startShipper(t, p)
	load := []string{
		`INSERT INTO bulk SELECT g, CASE g % 4 WHEN 0 THEN E'tab\there' WHEN 1 THEN E'line\nbreak\\back' WHEN 2 THEN NULL ELSE 'plain ' || g END,
  g / 7.0 FROM generate_series(1, 20000) g`,
		`UPDATE tally SET c = 20000 WHERE k = 1`,
	}
	copied0 := s.Stats().Copied

	p.pdb.Exec(`INSERT INTO bulk VALUES (15000, 'already here', 0)`)
	gid := gidFor("a", 1, 100)
	prepareLocal(t, p.ldb, gid, load...)
	err := s.Prepare(capCtx(t, 30*time.Second), gid)
	var pe *PeerError
	if !errors.As(err, &pe) || !pe.Definite || !strings.Contains(err.Error(), `copy into "public"."bulk"`) || !strings.Contains(err.Error(), "23505") {
		t.Fatalf("Prepare with a conflicting row on the peer = %v, want a definite refusal of the COPY", err)
	}
	if preparedOn(t, p.pdb, gid) || queryOne[int](t, p.pdb, `SELECT count(*) FROM bulk`) != 1 {
		t.Fatal("a refused COPY left rows or a prepared transaction on the peer")
	}
	p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(gid))
	s.Rollback(gid)
	p.pdb.Exec(`DELETE FROM bulk`)

	// The peer's apply session is ended while its COPY runs: a transaction of the peer's holds
	// row 1000's key, so the COPY waits there — the rows before it sent, the rest (20 MB) still
	// to come — however fast or slow the machine. A prepared one: the apply's watchdog ends a
	// session that blocks it (after blockerGrace), and a watcher slowed that long by a loaded
	// machine saw the COPY go through and Prepare succeed; it spares prepared transactions.
	const blockerGID = "test_copy_blocker"
	if _, err := p.pdb.Exec(`BEGIN; INSERT INTO bulk VALUES (1000, 'holds the key', 0); PREPARE TRANSACTION '` + blockerGID + `'`); err != nil {
		t.Fatal(err)
	}
	blocking := true
	defer func() {
		if blocking {
			p.pdb.Exec(`ROLLBACK PREPARED '` + blockerGID + `'`)
		}
	}()
	gid = gidFor("a", 1, 101)
	prepareLocal(t, p.ldb, gid, `INSERT INTO bulk SELECT g, repeat('x', 200), g FROM generate_series(1, 100000) g`)
	// Watched until Prepare returns: on a loaded machine decoding the transaction alone may
	// take many seconds before its COPY starts.
	killed, done := make(chan time.Time, 1), make(chan struct{})
	go func() {
		for {
			var n int
			if p.pdb.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE starts_with(application_name, $1) AND query LIKE 'COPY%' AND state = 'active' AND wait_event_type = 'Lock'`, applyAppName).Scan(&n) == nil && n > 0 {
				killed <- time.Now()
				return
			}
			select {
			case <-done:
				killed <- time.Time{}
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	err = s.Prepare(capCtx(t, 60*time.Second), gid)
	returned := time.Now()
	close(done)
	at := <-killed
	if at.IsZero() {
		t.Fatalf("no COPY of the apply was seen on the peer (Prepare = %v)", err)
	}
	if !errors.As(err, &pe) || pe.Definite {
		t.Fatalf("Prepare with its COPY's connection ended = %v, want an unknown outcome", err)
	}
	took := returned.Sub(at)
	t.Logf("apply with its connection ended mid-COPY returned %v after: %v", took, err)
	if took > 10*time.Second {
		t.Errorf("the apply took %v to notice its connection ended", took)
	}
	p.peer.Exec(t, `ROLLBACK PREPARED '`+blockerGID+`'`)
	blocking = false
	p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(gid))
	if err := s.CatchUp(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM bulk`); n != 0 || preparedOn(t, p.pdb, gid) {
		t.Fatalf("the peer holds %d rows (prepared: %v) of an apply whose connection ended", n, preparedOn(t, p.pdb, gid))
	}

	dualCommit(t, p, s, gidFor("a", 1, 102), load...)
	requireSame(t, p)
	if got := s.Stats().Copied - copied0; got < 20000 {
		t.Errorf("%d rows went through COPY, want the load's 20000", got)
	}
}
