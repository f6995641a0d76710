package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDoubleFaults runs operators through sequences of faults that hit two parts at once, or
// one part while the system still recovers from another: the master's sidecar killed while it
// is alone (the peer's database down); the new master's own database killed while the old
// master's sidecar is still dead; the new master's sidecar killed while it catches the old
// master's database up before failback; SIGTERM handovers both ways. Operators run transfers (explicit transactions) and
// SETs of their own keys (autocommit) throughout. After each phase every transfer an operator
// saw acknowledged is in the master's database; at the end both databases hold them all and
// every key's last acknowledged value (or a later one sent), agree, and no term had two masters.
func TestDoubleFaults(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, failbackDelay: "1s"})
	waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })
	b := startBank([]string{s1.proxy, s2.proxy}, 3)
	defer b.stop()
	kv := startKV([]string{s2.proxy, s1.proxy}, 2)
	defer kv.stop()
	sites := map[string]*site{"site1": s1, "site2": s2}
	settled := func(m *site) { t.Helper(); settledMaster(t, m, sites) }
	ackedOn := func(phase string) { t.Helper(); ackedOnMaster(t, b, phase, s1, s2) }
	notMaster := func(s *site, why string, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if httpStatus(s.admin, "/master") == 200 {
				t.Fatalf("%s took control %s", s.name, why)
			}
		}
	}
	b.progress(t, "before any fault", 20)

	// 1. The peer's database down (site1 alone), then site1's sidecar killed: site2, whose
	// database lacks site1's solo commits, must not take control; site1's comes back as
	// master, still alone.
	s2.pg.Kill()
	b.progress(t, "peer database down (site1 alone)", 30)
	s1.tandem.kill(syscall.SIGKILL)
	notMaster(s2, "while its database lacks site1's solo commits", 3*time.Second)
	s1.tandem.restart(t)
	b.progress(t, "site1's tandem back, peer database still down", 20)
	ackedOn("site1 alone after its restart")

	// The peer's database back (kills during that catch-up: TestKillDuringCatchUp).
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	settled(s1)
	b.progress(t, "peer database back", 20)

	// 2. site1's sidecar killed (site2 master), then site2's own database killed while site1's
	// sidecar is still dead: no master; site1's comes back and takes control alone (its
	// database holds site2's term, synced), and catches site2's up once it returns.
	s1.tandem.kill(syscall.SIGKILL)
	b.progress(t, "site1's tandem killed (site2 master)", 20)
	ackedOn("site2 master")
	s2.pg.Kill()
	time.Sleep(2 * time.Second)
	s1.tandem.restart(t)
	b.progress(t, "site1 master alone, site2's database down", 20)
	ackedOn("site1 alone after site2's database died")
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	settled(s1)
	b.progress(t, "site2's database back", 20)
	ackedOn("site2's database back")

	// 3. site1's sidecar and then its database killed: site2 master alone. site1's database
	// comes back and site2 catches it up before failback — and site2's sidecar is killed then.
	s1.tandem.kill(syscall.SIGKILL)
	b.progress(t, "site1's tandem killed again (site2 master)", 10)
	s1.pg.Kill()
	b.progress(t, "site1's database killed too (site2 alone)", 30)
	s1.tandem.restart(t)
	if err := s1.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	s2.tandem.kill(syscall.SIGKILL)
	time.Sleep(2 * time.Second)
	s2.tandem.restart(t)
	settled(s1)
	b.progress(t, "site1 master again after site2's kill during catch-up", 20)
	ackedOn("after site2's kill during catch-up")

	// 4. SIGTERM handovers back and forth.
	s1.tandem.signal(t, syscall.SIGTERM)
	if !s1.tandem.exited(30 * time.Second) {
		t.Fatal("site1's tandem did not exit after SIGTERM")
	}
	b.progress(t, "site1's tandem stopped (site2 master)", 20)
	ackedOn("site2 master after SIGTERM")
	s1.tandem.restart(t)
	settled(s1)
	b.progress(t, "site1 back after SIGTERM", 20)
	s2.tandem.signal(t, syscall.SIGTERM)
	if !s2.tandem.exited(30 * time.Second) {
		t.Fatal("site2's tandem did not exit after SIGTERM")
	}
	b.progress(t, "site2's tandem stopped (site1 alone)", 20)
	s2.tandem.restart(t)
	settled(s1)
	b.progress(t, "site2 back", 20)

	b.stop()
	kv.stop()
	settled(s1)
	b.settledCheck(t, s1, s2, func(s *site) { kv.check(t, s) })
	// One master per term: every on_promote names its site and term.
	terms := map[string]string{}
	for name, s := range sites {
		b, err := os.ReadFile(s.hookLog)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			if other, ok := terms[f[2]]; ok && other != name {
				t.Errorf("term %s promoted both %s and %s", f[2], other, name)
			}
			terms[f[2]] = name
		}
	}
	t.Logf("terms: %v", terms)
}

// settledMaster waits until m is master, dual and synced, with the other site its backup.
func settledMaster(t *testing.T, m *site, sites map[string]*site) {
	t.Helper()
	other := sites["site2"]
	if m == other {
		other = sites["site1"]
	}
	waitFor(t, 60*time.Second, m.name+" master, dual and synced", func() bool {
		if httpStatus(m.admin, "/master") != 200 || httpStatus(other.admin, "/backup") != 200 {
			return false
		}
		var st struct {
			Master string `json:"master"`
			Record struct {
				Master     string `json:"master"`
				PeerSynced bool   `json:"peer_synced"`
			} `json:"record"`
		}
		if err := json.Unmarshal([]byte(httpBody(t, other.admin, "/status")), &st); err != nil ||
			st.Master != m.name || st.Record.Master != m.name || !st.Record.PeerSynced {
			return false
		}
		sh := shimStatusOf(t, m)
		return sh.Mode == "dual" && sh.PeerSynced && sh.Backlog == 0
	})
}

// ledgerIDs reads the ids of s's wire_ledger.
func ledgerIDs(s *site) (map[string]bool, error) {
	have := map[string]bool{}
	err := queryRow(s, func(db *sql.DB) error {
		rows, err := db.Query(`SELECT id FROM wire_ledger`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			have[id] = true
		}
		return rows.Err()
	})
	return have, err
}

// ackedOnMaster checks that every transfer b saw acknowledged so far is in the master's
// database.
func ackedOnMaster(t *testing.T, b *bank, phase string, sites ...*site) {
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
	b.mu.Lock()
	acked := make([]string, 0, len(b.acked))
	for id := range b.acked {
		acked = append(acked, id)
	}
	b.mu.Unlock()
	have, err := ledgerIDs(m)
	if err != nil {
		t.Fatalf("%s: read %s's ledger: %v", phase, m.name, err)
	}
	missing := 0
	for _, id := range acked {
		if !have[id] {
			if missing++; missing <= 5 {
				t.Errorf("%s: acknowledged transfer %s missing on the master %s", phase, id, m.name)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%s: %d of %d acknowledged transfers missing on the master %s", phase, missing, len(acked), m.name)
	}
	t.Logf("%s: %s holds all %d acknowledged transfers", phase, m.name, len(acked))
}

// TestKillDuringCatchUp: site1 commits alone while site2's database is down, then catches it
// up when it returns; while that catch-up ships, site1's sidecar is killed -9 (at its start,
// and later on, near its hold and the switch to dual), or the peer's database dies again.
// Whoever is master afterwards holds every acknowledged transfer, and once settled both
// databases agree.
func TestKillDuringCatchUp(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, failbackDelay: "1s"})
	waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })
	b := startBank([]string{s1.proxy, s2.proxy}, 4)
	defer b.stop()
	sites := map[string]*site{"site1": s1, "site2": s2}
	b.progress(t, "before any fault", 20)
	for i, delay := range []time.Duration{0, 250 * time.Millisecond, 700 * time.Millisecond, -1} {
		s2.pg.Kill()
		b.progress(t, "peer database down (site1 alone)", 400)
		if err := s2.pg.Restart(); err != nil {
			t.Fatal(err)
		}
		before, err := ledgerIDs(s2)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "catch-up to ship", func() bool {
			now, err := ledgerIDs(s2)
			return err == nil && len(now) > len(before)
		})
		if delay < 0 {
			// The peer's database dies again in the middle of catch-up.
			s2.pg.Kill()
			b.progress(t, fmt.Sprintf("round %d: peer database down again during catch-up", i), 50)
			if err := s2.pg.Restart(); err != nil {
				t.Fatal(err)
			}
		} else {
			time.Sleep(delay)
			s1.tandem.kill(syscall.SIGKILL)
			time.Sleep(2 * time.Second)
			if httpStatus(s2.admin, "/master") == 200 {
				t.Logf("round %d: site2 took over after site1's kill %v into catch-up", i, delay)
				ackedOnMaster(t, b, fmt.Sprintf("round %d: site2 master", i), s1, s2)
			}
			s1.tandem.restart(t)
		}
		settledMaster(t, s1, sites)
		b.progress(t, fmt.Sprintf("round %d: settled", i), 20)
		ackedOnMaster(t, b, fmt.Sprintf("round %d", i), s1, s2)
	}
	b.stop()
	settledMaster(t, s1, sites)
	b.settledCheck(t, s1, s2)
}

// kvLoad runs operators that each SET their own key to 1, 2, 3, … (autocommit writes, where
// the bank's are explicit transactions), through one proxy after the other, and remembers the
// last value acknowledged and the last sent for each key.
type kvLoad struct {
	halt  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked map[string]int
	sent  map[string]int
}

func startKV(proxies []string, workers int) *kvLoad {
	l := &kvLoad{halt: make(chan struct{}), acked: map[string]int{}, sent: map[string]int{}}
	for w := range workers {
		l.wg.Go(func() {
			key := fmt.Sprintf("kv%d", w)
			var n int
			operatorLoop(l.halt, proxies, w, func(i int) string {
				n = i
				l.mu.Lock()
				l.sent[key] = i
				l.mu.Unlock()
				return fmt.Sprintf("SET %s %d", key, i)
			}, func(acked bool) {
				if acked {
					l.mu.Lock()
					l.acked[key] = n
					l.mu.Unlock()
				}
			})
		})
	}
	return l
}

func (l *kvLoad) stop() {
	select {
	case <-l.halt:
	default:
		close(l.halt)
	}
	l.wg.Wait()
}

// check: s's database holds, for every key, a value between the last acknowledged and the
// last sent.
func (l *kvLoad) check(t *testing.T, s *site) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, a := range l.acked {
		v, err := strconv.Atoi(kvValue(t, s, k))
		if err != nil || v < a || v > l.sent[k] {
			t.Errorf("%s: %s = %q, want between the last acknowledged %d and the last sent %d", s.name, k, kvValue(t, s, k), a, l.sent[k])
		}
	}
}
