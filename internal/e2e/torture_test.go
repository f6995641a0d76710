package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
)

// TestTortureNumberedRows: a client writes numbered rows straight through the shims (autocommit
// INSERTs and explicit transactions, on whichever site's shim takes writes) into a table
// without a primary key — so that a transaction applied twice shows as a duplicate row —
// while faults hit the stack one after the other: the master's sidecar killed -9; the peer's
// database killed and restarted (solo, then catch-up); the master's database killed (site2
// alone) and restarted (catch-up, then failback while writes go on); the master's sidecar
// frozen for longer than suspicion; the peer's database killed, restarted, and killed again
// during catch-up; the master's database killed while the peer is still behind; the peer's
// database frozen (SIGSTOP: open, silent connections) during catch-up; the master's sidecar
// frozen while the peer's database is behind (down, then back). After each
// step every row the client saw committed is on the master's database, none twice, none never
// sent; once settled both databases agree (tandem verify) and hold no prepared transaction;
// and no write waited much longer than the configured timeouts.
func TestTortureNumberedRows(t *testing.T) {
	if testing.Short() || os.Getenv("TANDEM_TORTURE") == "" {
		t.Skip("set TANDEM_TORTURE=1 to run (about two minutes)")
	}
	s1, s2 := cluster(t, clusterOpts{db: true, failbackDelay: "1s"})
	sites := map[string]*site{"site1": s1, "site2": s2}
	setupTorture(t, s1, s2)
	w := startWriter(t, s1, s2)
	defer w.stop()
	settled := func(m *site) { t.Helper(); settledMaster(t, m, sites) }
	check := func(phase string) { t.Helper(); w.ackedOnMaster(t, phase, s1, s2) }
	notMaster := func(s *site, why string, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if httpStatus(s.admin, "/master") == 200 {
				t.Fatalf("%s took control %s", s.name, why)
			}
		}
	}
	w.progress(t, "before any fault", 30)

	// 1. The master's sidecar killed: site2 takes over.
	s1.tandem.kill(syscall.SIGKILL)
	w.progress(t, "site1's tandem killed (site2 master)", 30)
	check("site2 master after site1's tandem died")
	s1.tandem.restart(t)
	settled(s1)
	w.progress(t, "site1 back", 20)
	check("site1 back")
	w.settledCheck(t, s1, s2, "after step 1")

	// 2. The peer's database killed: solo; back: catch-up.
	s2.pg.Kill()
	w.progress(t, "peer database down (solo)", 50)
	check("solo")
	must(t, s2.pg.Restart())
	settled(s1)
	w.progress(t, "peer database back", 20)
	w.settledCheck(t, s1, s2, "after step 2")

	// 3. The master's database killed: site2 alone; back: failback while writes go on.
	s1.pg.Kill()
	w.progress(t, "site1's database killed (site2 alone)", 50)
	check("site2 alone")
	must(t, s1.pg.Restart())
	settled(s1)
	w.progress(t, "site1's database back (failback)", 20)
	check("failback")
	w.settledCheck(t, s1, s2, "after step 3")

	// 4. The master's sidecar frozen for longer than suspicion.
	// A write sent to the frozen sidecar's shim waits for it (writeWait): the only hangs allowed.
	hungBefore := w.hungCount()
	pid := s1.tandem.cmd.Process.Pid
	sigstop(t, pid)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	w.progress(t, "site1's tandem frozen (site2 master)", 30)
	check("site2 master, site1 frozen")
	must(t, syscall.Kill(pid, syscall.SIGCONT))
	settled(s1)
	w.progress(t, "site1's tandem thawed", 20)
	check("site1 thawed")
	hungFrozen := w.hungCount() - hungBefore
	w.settledCheck(t, s1, s2, "after step 4")

	// 5. The peer's database restarted during catch-up.
	s2.pg.Kill()
	w.progress(t, "peer database down again (solo)", 200)
	must(t, s2.pg.Restart())
	w.waitShipped(t, s2)
	s2.pg.Kill()
	w.progress(t, "peer database killed during catch-up", 20)
	must(t, s2.pg.Restart())
	settled(s1)
	w.progress(t, "peer database back after its kill during catch-up", 20)
	w.settledCheck(t, s1, s2, "after step 5")

	// 6. The master's database killed while the peer is behind: site2 must not take control.
	s2.pg.Kill()
	w.progress(t, "peer database down (solo) before the master's database dies", 100)
	must(t, s2.pg.Restart())
	w.waitShipped(t, s2)
	s1.pg.Kill()
	if st := shimStatusOf(t, s1); !st.PeerSynced {
		notMaster(s2, "while its database lacked site1's solo commits", 3*time.Second)
	}
	must(t, s1.pg.Restart())
	settled(s1)
	w.progress(t, "site1's database back after dying during catch-up", 20)
	check("site1's database back after dying during catch-up")

	// 7. The peer's database frozen during catch-up: shipping's connections stay open and
	// silent rather than closed. Writes go on alone, none waiting past the timeouts (not even
	// for a hold of commits for the tail); once the database thaws the catch-up finishes.
	s2.pg.Kill()
	w.progress(t, "peer database down (solo) before it freezes during catch-up", 3000)
	must(t, s2.pg.Restart())
	w.waitShipped(t, s2)
	must(t, s2.pg.Pause())
	st := shimStatusOf(t, s1)
	t.Logf("peer database frozen: site1's shim %s, peer synced %v, backlog %d", st.Mode, st.PeerSynced, st.Backlog)
	w.progress(t, "peer database frozen during catch-up", 50)
	time.Sleep(15 * time.Second) // past commit_timeout and the bound of a hold (catchUpTailMax)
	w.progress(t, "peer database frozen for 15s", 50)
	check("peer database frozen during catch-up")
	must(t, s2.pg.Resume())
	settled(s1)
	w.progress(t, "peer database thawed", 20)
	w.settledCheck(t, s1, s2, "after step 7")

	// 8. The master's sidecar frozen while the peer's database is behind (down, then back while
	// the master cannot catch it up): site2 must not take control, lacking site1's solo
	// commits; site1 thaws as master, still alone, and catches the peer up.
	s2.pg.Kill()
	w.progress(t, "peer database down (solo) before the master's sidecar freezes", 100)
	hungBefore = w.hungCount()
	pid = s1.tandem.cmd.Process.Pid
	sigstop(t, pid)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	notMaster(s2, "while its database lacked site1's solo commits (site1's sidecar frozen)", 3*time.Second)
	must(t, s2.pg.Restart())
	notMaster(s2, "while its database, back, lacked site1's solo commits (site1's sidecar frozen)", 3*time.Second)
	must(t, syscall.Kill(pid, syscall.SIGCONT))
	settled(s1)
	w.progress(t, "site1's tandem thawed, peer database back", 20)
	check("site1's tandem thawed, peer database back")
	hungFrozen += w.hungCount() - hungBefore
	w.settledCheck(t, s1, s2, "after step 8")

	w.stop()
	settled(s1)
	w.settledCheck(t, s1, s2, "at the end")
	onePerTerm(t, s1, s2)
	if n := w.hungCount() - hungFrozen; n > 0 {
		t.Errorf("%d writes got no answer within %v while no process was frozen", n, writeWait)
	}
}

// setupTorture makes the writer's table, through site1's shim (dual: on both databases).
func setupTorture(t *testing.T, s1, s2 *site) {
	t.Helper()
	setup, err := sql.Open("postgres", s1.shimDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	if _, err := setup.Exec(`CREATE TABLE torture (n bigint NOT NULL, note text)`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the table on site2's database", func() bool {
		return queryRow(s2, func(db *sql.DB) error { _, err := db.Exec(`SELECT 1 FROM torture LIMIT 1`); return err }) == nil
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writer inserts numbered rows through the shims.
type writer struct {
	halt    chan struct{}
	gate    sync.RWMutex // held by each write; pause takes it whole
	once    sync.Once
	wg      sync.WaitGroup
	mu      sync.Mutex
	acked   map[int64]bool
	sent    map[int64]bool
	failed  int
	slow    time.Duration
	slowAt  int64
	slowErr error
	hung    int // writes that waited writeWait for an answer
}

func (w *writer) hungCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hung
}

func startWriter(t *testing.T, sites ...*site) *writer {
	w := &writer{halt: make(chan struct{}), acked: map[int64]bool{}, sent: map[int64]bool{}}
	dbs := make([]*sql.DB, len(sites))
	for i, s := range sites {
		dsn := s.shimDSN + "&connect_timeout=2"
		if !strings.HasPrefix(dsn, "postgres://") {
			dsn = s.shimDSN + " connect_timeout=2"
		}
		// Every read and write has a deadline: a context's end makes lib/pq send a cancel
		// request only, which a frozen shim never answers.
		cn, err := pq.NewConnector(dsn)
		if err != nil {
			t.Fatal(err)
		}
		cn.Dialer(deadlineDialer{})
		db := sql.OpenDB(cn)
		db.SetMaxIdleConns(1)
		dbs[i] = db
		t.Cleanup(func() { db.Close() })
	}
	const workers = 2
	for k := range workers {
		w.wg.Go(func() {
			next := 0
			for i := int64(k); ; i += workers {
				select {
				case <-w.halt:
					return
				default:
				}
				n := i + 1
				w.gate.RLock()
				w.mu.Lock()
				w.sent[n] = true
				w.mu.Unlock()
				begin := time.Now()
				err := insertRow(dbs[next%len(dbs)], n, k)
				d := time.Since(begin)
				w.gate.RUnlock()
				w.mu.Lock()
				if d > w.slow {
					w.slow, w.slowAt, w.slowErr = d, n, err
				}
				if err == nil {
					w.acked[n] = true
				} else {
					w.failed++
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					w.hung++
				}
				w.mu.Unlock()
				if err != nil {
					next++
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	return w
}

// insertRow writes n: autocommit for even n, an explicit transaction for odd.
func insertRow(db *sql.DB, n int64, worker int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	note := fmt.Sprintf("w%d", worker)
	if n%2 == 0 {
		_, err := db.ExecContext(ctx, `INSERT INTO torture (n, note) VALUES ($1, $2)`, n, note)
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO torture (n, note) VALUES ($1, $2)`, n, note); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// pause waits for the writes in flight and holds back the next ones until resume; stop must
// not be called in between.
func (w *writer) pause() { w.gate.Lock() }

func (w *writer) resume() { w.gate.Unlock() }

func (w *writer) stop() {
	w.once.Do(func() { close(w.halt) })
	w.wg.Wait()
}

func (w *writer) progress(t *testing.T, phase string, n int) {
	t.Helper()
	w.mu.Lock()
	want := len(w.acked) + n
	w.mu.Unlock()
	begin := time.Now()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d more acknowledged rows (%s)", n, phase), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.acked) >= want
	})
	w.mu.Lock()
	t.Logf("%s: %d more acknowledged in %v (%d failed so far, slowest %v at %d: %v)", phase, n,
		time.Since(begin).Round(time.Millisecond), w.failed, w.slow.Round(time.Millisecond), w.slowAt, w.slowErr)
	w.mu.Unlock()
}

// waitShipped waits until s's database gained a row: catch-up is shipping.
func (w *writer) waitShipped(t *testing.T, s *site) {
	t.Helper()
	before, _ := rowCounts(s)
	waitFor(t, 20*time.Second, "catch-up to ship to "+s.name, func() bool {
		now, err := rowCounts(s)
		return err == nil && len(now) > len(before)
	})
}

// rowCounts reads how often each n is in s's torture table.
func rowCounts(s *site) (map[int64]int, error) {
	have := map[int64]int{}
	err := queryRow(s, func(db *sql.DB) error {
		rows, err := db.Query(`SELECT n FROM torture`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var n int64
			if err := rows.Scan(&n); err != nil {
				return err
			}
			have[n]++
		}
		return rows.Err()
	})
	return have, err
}

// checkRows checks s's rows against what the client saw: every acknowledged row, none twice,
// none never sent.
func (w *writer) checkRows(t *testing.T, s *site, phase string, acked []int64) {
	t.Helper()
	if acked == nil {
		acked = w.ackedNow()
	}
	have, err := rowCounts(s)
	if err != nil {
		t.Fatalf("%s: read %s's rows: %v", phase, s.name, err)
	}
	w.mu.Lock() // after the read: a row sent meanwhile may be in it
	sent := make(map[int64]bool, len(w.sent))
	for n := range w.sent {
		sent[n] = true
	}
	w.mu.Unlock()
	var missing, dup, unsent []int64
	for _, n := range acked {
		if have[n] == 0 {
			missing = append(missing, n)
		}
	}
	for n, c := range have {
		if c > 1 {
			dup = append(dup, n)
		}
		if !sent[n] {
			unsent = append(unsent, n)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: %s lacks %d of %d acknowledged rows: %v", phase, s.name, len(missing), len(acked), head(missing))
	}
	if len(dup) > 0 {
		t.Errorf("%s: %s holds %d rows more than once: %v", phase, s.name, len(dup), head(dup))
	}
	if len(unsent) > 0 {
		t.Errorf("%s: %s holds %d rows never sent: %v", phase, s.name, len(unsent), head(unsent))
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%s: %s holds all %d acknowledged rows (%d rows)", phase, s.name, len(acked), len(have))
}

func (w *writer) ackedNow() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	acked := make([]int64, 0, len(w.acked))
	for n := range w.acked {
		acked = append(acked, n)
	}
	return acked
}

func head(ns []int64) []int64 {
	sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
	if len(ns) > 10 {
		return ns[:10]
	}
	return ns
}

func (w *writer) ackedOnMaster(t *testing.T, phase string, sites ...*site) {
	t.Helper()
	var m *site
	waitFor(t, 30*time.Second, "a master ("+phase+")", func() bool {
		for _, s := range sites {
			if httpStatus(s.admin, "/master") == 200 {
				m = s
				return true
			}
		}
		return false
	})
	w.checkRows(t, m, phase, nil)
}

// settledCheck: both databases hold every acknowledged row, no prepared transaction, and agree.
// The writer is paused meanwhile: verify takes one database's snapshot after the other, and a
// commit that lands between them shows as a difference (txshim.Verify).
func (w *writer) settledCheck(t *testing.T, s1, s2 *site, phase string) {
	t.Helper()
	w.pause()
	defer w.resume()
	for _, s := range []*site{s1, s2} {
		waitFor(t, 10*time.Second, s.name+": no prepared transaction ("+phase+")", func() bool { return preparedCount(t, s) == 0 })
	}
	var out []byte
	defer func() {
		if t.Failed() {
			t.Logf("%s: tandem verify: %s", phase, out)
		}
	}()
	waitFor(t, 10*time.Second, "tandem verify: identical ("+phase+")", func() bool {
		var err error
		out, err = exec.Command(bins.tandem, "verify", "-config", s1.cfg).CombinedOutput()
		return err == nil
	})
	t.Logf("%s: tandem verify: %s", phase, out)
	for _, s := range []*site{s1, s2} {
		w.checkRows(t, s, phase, nil)
	}
}

// writeWait bounds each of the writer's reads and writes: past it, the write counts as hung.
const writeWait = 10 * time.Second

type deadlineDialer struct{}

func (deadlineDialer) Dial(network, address string) (net.Conn, error) {
	return deadlineDialer{}.DialTimeout(network, address, 5*time.Second)
}

func (deadlineDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	return deadlineConn{c}, nil
}

type deadlineConn struct{ net.Conn }

func (c deadlineConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(writeWait))
	return c.Conn.Read(p)
}

func (c deadlineConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(writeWait))
	return c.Conn.Write(p)
}
