package txshim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// ackWriters commit through the shim until halted, each transaction an insert of a row with an
// id of its own and an update of a shared counter; they reconnect after an error (a database
// restart) and keep the ids whose COMMIT they saw acknowledged.
type ackWriters struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	mu   sync.Mutex
	ack  []int64
	errs int
}

func startAckWriters(t *testing.T, shim *testShim, n int) *ackWriters {
	t.Helper()
	w := &ackWriters{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(context.Background())
				}
			}()
			for seq := int64(1); ; seq++ {
				select {
				case <-w.stop:
					return
				default:
				}
				id := int64(i+1)*10_000_000 + seq
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				err := func() error {
					if conn == nil {
						c, err := pgx.Connect(ctx, shim.dsn(pgtest.Superuser))
						if err != nil {
							return err
						}
						conn = c
					}
					tx, err := conn.Begin(ctx)
					if err != nil {
						return err
					}
					defer tx.Rollback(ctx)
					if _, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO acked (id, w) VALUES (%d, %d)", id, i)); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, fmt.Sprintf("UPDATE ctr SET n = n + 1 WHERE k = %d", rand.IntN(4)+1)); err != nil {
						return err
					}
					return tx.Commit(ctx)
				}()
				cancel()
				if err != nil {
					w.mu.Lock()
					w.errs++
					w.mu.Unlock()
					if conn != nil {
						conn.Close(context.Background())
						conn = nil
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				w.mu.Lock()
				w.ack = append(w.ack, id)
				w.mu.Unlock()
				time.Sleep(3 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

func (w *ackWriters) halt() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *ackWriters) acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ack)
}

// requireAcked checks that every acknowledged id is on both databases.
func (w *ackWriters) requireAcked(t *testing.T, p *capPair) {
	t.Helper()
	w.mu.Lock()
	ack := append([]int64(nil), w.ack...)
	w.mu.Unlock()
	for name, db := range map[string]*capPair{"local": p, "peer": p} {
		h := p.ldb
		if name == "peer" {
			h = db.pdb
		}
		rows, err := h.Query(`SELECT id FROM acked`)
		if err != nil {
			t.Fatal(err)
		}
		have := map[int64]bool{}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			have[id] = true
		}
		rows.Close()
		var missing []int64
		for _, id := range ack {
			if !have[id] {
				missing = append(missing, id)
			}
		}
		sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
		if len(missing) > 0 {
			t.Errorf("%s lacks %d acknowledged commits, e.g. %v", name, len(missing), missing[:min(5, len(missing))])
		}
	}
}

// catchUpUnderFault runs the solo → catch-up → dual transition with writers through the shim
// and fault, called by the catch-up after it shipped some of the backlog; catch-up is tried
// again until it makes the shim dual. Then both databases must be identical, nothing left
// prepared, every acknowledged commit on both.
func catchUpUnderFault(t *testing.T, solo int, fault func(p *capPair)) {
	catchUpFault(t, solo, fault, nil)
}

// catchUpFault is catchUpUnderFault with atHold, when not nil, called once in the first hold
// (commits held, the tail to ship).
func catchUpFault(t *testing.T, solo int, fault, atHold func(p *capPair)) {
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE acked (id bigint PRIMARY KEY, w int)`,
		`CREATE TABLE ctr (k int PRIMARY KEY, n int NOT NULL)`,
		`INSERT INTO ctr SELECT g, 0 FROM generate_series(1, 4) g`)
	catchUpToDual(t, sh, shim)
	// The hold: commits stopped; at its release, a peer called synced must hold every row the
	// local database does (nothing commits meanwhile), and the shim turns dual.
	var holdMu sync.Mutex
	var longest time.Duration
	var syncedShort []string
	hold := func(ctx context.Context) (func(), error) {
		release, err := shim.HoldCommits(ctx)
		if err != nil {
			return nil, err
		}
		from := time.Now()
		if atHold != nil {
			atHold(p)
			atHold = nil
		}
		return func() {
			if sh.PeerSynced() {
				l := queryOne[int](t, p.ldb, `SELECT count(*) FROM acked`)
				r := queryOne[int](t, p.pdb, `SELECT count(*) FROM acked`)
				if l != r {
					holdMu.Lock()
					syncedShort = append(syncedShort, fmt.Sprintf("local %d rows, peer %d", l, r))
					holdMu.Unlock()
				}
				_, term := shim.Mode()
				shim.SwitchMode(ModeSolo, ModeDual, term)
			}
			holdMu.Lock()
			longest = max(longest, time.Since(from))
			holdMu.Unlock()
			release()
		}, nil
	}
	w := startAckWriters(t, shim, 3)
	waitForLong(t, "dual commits", 20*time.Second, func() bool { return shim.Stats().CommitsDual >= 20 })

	p.peer.Kill()
	waitForLong(t, "the shim to go solo", 20*time.Second, func() bool { m, _ := shim.Mode(); return m == ModeSolo })
	// DDL committed alone, then rows that need it.
	ddl := shim.connect(t)
	if _, err := ddl.Exec(capCtx(t, 10*time.Second), `ALTER TABLE acked ADD COLUMN extra int DEFAULT 7`); err != nil {
		t.Fatal(err)
	}
	if _, err := ddl.Exec(capCtx(t, 10*time.Second), `INSERT INTO acked (id, w, extra) VALUES (1, -1, 42)`); err != nil {
		t.Fatal(err)
	}
	solo0 := shim.Stats().CommitsSolo
	// 3000 solo commits (TestCatchUpLargeBacklog) by three writers took past 30 s on a machine
	// loaded with other test runs: a bound for a stuck shim, not a rate.
	waitForLong(t, "solo commits", 90*time.Second, func() bool { return shim.Stats().CommitsSolo >= solo0+int64(solo) })
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}

	if fault != nil {
		var once sync.Once
		sh.hooks.catchUp.set(func(n int) error {
			if n == 50 {
				once.Do(func() { fault(p) })
			}
			return nil
		})
	}
	deadline := time.Now().Add(40 * time.Second)
	for try := 1; ; try++ {
		err := sh.CatchUp(capCtx(t, 30*time.Second), hold)
		if m, _ := shim.Mode(); err == nil && m == ModeDual {
			t.Logf("dual after %d catch-ups", try)
			break
		}
		t.Logf("catch-up %d: %v", try, err)
		if time.Now().After(deadline) {
			t.Fatalf("no dual mode after 40 s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sh.hooks.catchUp.clear()
	dual0 := shim.Stats().CommitsDual
	waitForLong(t, "dual commits after catch-up", 20*time.Second, func() bool { return shim.Stats().CommitsDual >= dual0+20 })
	w.halt()
	waitForLong(t, "nothing left for the peer", 20*time.Second, func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
			queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
			queryOne[int](t, p.ldb, `SELECT count(*) FROM acked`) == queryOne[int](t, p.pdb, `SELECT count(*) FROM acked`)
	})
	requireSame(t, p)
	w.requireAcked(t, p)
	t.Logf("%d acknowledged commits, %d client errors, longest hold %v", w.acked(), w.errs, longest)
	if len(syncedShort) > 0 {
		t.Errorf("the peer was called synced without every commit: %v", syncedShort)
	}
	if longest > catchUpTailMax+2*time.Second {
		t.Errorf("commits held for %v, bound %v", longest, catchUpTailMax)
	}
}

// TestCatchUpPeerRestartMidway: the peer database restarts while catch-up ships the backlog.
func TestCatchUpPeerRestartMidway(t *testing.T) {
	t.Parallel()
	catchUpUnderFault(t, 400, func(p *capPair) {
		if err := p.peer.Restart(); err != nil {
			t.Error(err)
		}
	})
}

// TestCatchUpPeerKilledMidway: the peer database is killed while catch-up ships the backlog and
// comes back a few seconds later, after the catch-up gave up: the next one finishes.
func TestCatchUpPeerKilledMidway(t *testing.T) {
	t.Parallel()
	catchUpUnderFault(t, 400, func(p *capPair) {
		p.peer.Kill()
		back := make(chan struct{})
		t.Cleanup(func() { <-back }) // the restart ends before the test does (t.Error, the cluster's Close)
		go func() {
			defer close(back)
			time.Sleep(4 * time.Second)
			if err := p.peer.Restart(); err != nil {
				t.Error(err)
			}
		}()
	})
}

// TestCatchUpLocalRestartMidway: the local database restarts while catch-up ships the backlog:
// the decoder's slot reconnects and streams from its confirmed position.
func TestCatchUpLocalRestartMidway(t *testing.T) {
	t.Parallel()
	catchUpUnderFault(t, 400, func(p *capPair) {
		if err := p.local.Restart(); err != nil {
			t.Error(err)
		}
	})
}

// TestCatchUpLargeBacklog: thousands of solo commits, the writers going on through the
// catch-up: it converges and holds commits for a bounded time only.
func TestCatchUpLargeBacklog(t *testing.T) {
	t.Parallel()
	catchUpUnderFault(t, 3000, nil)
}

// TestCatchUpInDoubtAtSwitch: a transaction prepared on the local database alone (its peer
// outcome unknown when the peer died) is still in doubt when catch-up switches the shim to
// dual; committed there afterwards (the resolver, tandem resolve), it must reach the peer, and
// one rolled back must not.
func TestCatchUpInDoubtAtSwitch(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE acked (id bigint PRIMARY KEY, w int)`,
		`CREATE TABLE ctr (k int PRIMARY KEY, n int NOT NULL)`,
		`INSERT INTO ctr SELECT g, 0 FROM generate_series(1, 4) g`)
	hold := catchUpToDual(t, sh, shim)
	w := startAckWriters(t, shim, 2)
	waitForLong(t, "dual commits", 20*time.Second, func() bool { return shim.Stats().CommitsDual >= 20 })
	p.peer.Kill()
	waitForLong(t, "the shim to go solo", 20*time.Second, func() bool { m, _ := shim.Mode(); return m == ModeSolo })

	ctx := capCtx(t, 50*time.Second)
	prepare := func(id int) string {
		tx, err := p.ldb.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var xid string
		if err := tx.QueryRow(fmt.Sprintf(`INSERT INTO acked VALUES (%d, -2) RETURNING pg_current_xact_id()::text`, id)).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		gid := "tandem_a_1_" + xid
		if _, err := tx.Exec(`PREPARE TRANSACTION '` + gid + `'`); err != nil {
			t.Fatal(err)
		}
		return gid
	}
	commitGID, rollbackGID := prepare(2), prepare(3)
	solo0 := shim.Stats().CommitsSolo
	waitForLong(t, "solo commits", 30*time.Second, func() bool { return shim.Stats().CommitsSolo >= solo0+200 })
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(capCtx(t, 30*time.Second), hold); err != nil {
		t.Fatalf("CatchUp with transactions in doubt: %v", err)
	}
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after CatchUp: mode %v, synced %v", m, sh.PeerSynced())
	}
	p.local.Exec(t, `COMMIT PREPARED '`+commitGID+`'`)
	p.local.Exec(t, `ROLLBACK PREPARED '`+rollbackGID+`'`)
	dual0 := shim.Stats().CommitsDual
	waitForLong(t, "dual commits after catch-up", 20*time.Second, func() bool { return shim.Stats().CommitsDual >= dual0+20 })
	w.halt()
	waitForLong(t, "nothing left for the peer", 20*time.Second, func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
			queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
			queryOne[int](t, p.ldb, `SELECT count(*) FROM acked`) == queryOne[int](t, p.pdb, `SELECT count(*) FROM acked`)
	})
	requireSame(t, p)
	w.requireAcked(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM acked WHERE id IN (2, 3)`); n != 1 {
		t.Errorf("the peer holds %d of the in-doubt rows, want the committed one", n)
	}
}

// TestCatchUpLocalRestartInHold: the local database restarts while catch-up holds commits for
// the tail.
func TestCatchUpLocalRestartInHold(t *testing.T) {
	t.Parallel()
	catchUpFault(t, 400, nil, func(p *capPair) {
		if err := p.local.Restart(); err != nil {
			t.Error(err)
		}
	})
}

// TestCatchUpPeerRestartInHold: the peer database restarts while catch-up holds commits for
// the tail.
func TestCatchUpPeerRestartInHold(t *testing.T) {
	t.Parallel()
	catchUpFault(t, 400, nil, func(p *capPair) {
		if err := p.peer.Restart(); err != nil {
			t.Error(err)
		}
	})
}
