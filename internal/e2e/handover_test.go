package e2e

import (
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// load is the bank (explicit transactions) and the key-value operators (autocommit), both
// through both proxies.
type load struct {
	b  *bank
	kv *kvLoad
}

func startLoad(s1, s2 *site) *load {
	return &load{b: startBank([]string{s1.proxy, s2.proxy}, 3), kv: startKV([]string{s2.proxy, s1.proxy}, 2)}
}

func (l *load) stop() { l.b.stop(); l.kv.stop() }

// finalCheck stops the load, waits until m is master (dual, synced, the other its backup),
// checks that both databases hold every acknowledged write and agree (tandem verify), that
// no term had two masters, and that both proxies route to m.
func (l *load) finalCheck(t *testing.T, m, s1, s2 *site) {
	t.Helper()
	l.stop()
	sites := map[string]*site{"site1": s1, "site2": s2}
	settledMaster(t, m, sites)
	l.b.settledCheck(t, s1, s2, func(s *site) { l.kv.check(t, s) })
	onePerTerm(t, s1, s2)
	for _, s := range []*site{s1, s2} {
		servedBy(t, s.proxy, m.name, 10*time.Second)
	}
}

// onePerTerm checks the on_promote logs: no term promoted two sites.
func onePerTerm(t *testing.T, sites ...*site) {
	t.Helper()
	terms := map[string]string{}
	for _, s := range sites {
		b, err := os.ReadFile(s.hookLog)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			if other, ok := terms[f[2]]; ok && other != s.name {
				t.Errorf("term %s promoted both %s and %s", f[2], other, s.name)
			}
			terms[f[2]] = s.name
		}
	}
	t.Logf("terms: %v", terms)
}

// neverMaster fails if s reports master at any point during d.
func neverMaster(t *testing.T, s *site, why string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if httpStatus(s.admin, "/master") == 200 {
			t.Fatalf("%s took control %s", s.name, why)
		}
	}
}

func switchover(t *testing.T, from *site, to string) {
	t.Helper()
	if out, err := exec.Command(bins.tandem, "switchover", "-config", from.cfg, to).CombinedOutput(); err != nil {
		t.Fatalf("tandem switchover %s: %v\n%s", to, err, out)
	}
}

type roleStatus struct {
	Role   string `json:"role"`
	Term   uint64 `json:"term"`
	Record struct {
		Term       uint64 `json:"term"`
		Master     string `json:"master"`
		PeerSynced bool   `json:"peer_synced"`
	} `json:"record"`
	Decision string `json:"decision"`
}

func roleOf(s *site) (roleStatus, bool) {
	var st roleStatus
	resp, err := httpClient.Get("http://" + s.admin + "/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// TestSigtermWhileSolo: site1, master, goes on alone while site2's database is down, then is
// stopped with SIGTERM. Its release says peer_synced = false: site2 must not take control —
// neither while its database is down nor once it is back — since its database lacks site1's
// solo commits. site1 restarted takes control again, catches site2's database up, and every
// acknowledged write ends on both.
func TestSigtermWhileSolo(t *testing.T) {
	for _, witness := range []bool{false, true} {
		t.Run(map[bool]string{false: "nowitness", true: "witness"}[witness], func(t *testing.T) {
			t.Parallel()
			s1, s2 := cluster(t, clusterOpts{db: true, witness: witness, failbackDelay: "1s"})
			waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })
			l := startLoad(s1, s2)
			defer l.stop()
			l.b.progress(t, "before any fault", 20)
			s2.pg.Kill()
			l.b.progress(t, "peer database down (site1 alone)", 50)
			s1.tandem.signal(t, syscall.SIGTERM)
			if !s1.tandem.exited(60 * time.Second) {
				t.Fatal("site1's tandem did not exit after SIGTERM")
			}
			neverMaster(t, s2, "while its database is down and lacks site1's solo commits", 4*time.Second)
			if err := s2.pg.Restart(); err != nil {
				t.Fatal(err)
			}
			neverMaster(t, s2, "once its database is back, still lacking site1's solo commits", 6*time.Second)
			if st, ok := roleOf(s2); ok {
				t.Logf("site2 waits: %+v", st)
			}
			s1.tandem.restart(t)
			l.b.progress(t, "site1 back", 20)
			ackedOnMaster(t, l.b, "site1 back", s1, s2)
			l.finalCheck(t, s1, s1, s2)
		})
	}
}

// TestBackupKilledDuringHandover: a switchover to site2 under load, and site2's tandem killed -9
// between site1's release and site2's promotion (and around it): right at the release, frozen
// before it could promote, in the middle of a promotion held by a lock on a table whose
// sequence the promotion moves, and at fixed delays. Someone must take control again — site1,
// since site2 is gone — without losing an acknowledged write, and control ends with site1 once
// site2 is back.
func TestBackupKilledDuringHandover(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, witness: true, failbackDelay: "1s"})
	waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })
	shim, err := sql.Open("postgres", s1.shimDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer shim.Close()
	if _, err := shim.Exec(`CREATE TABLE seqt (id serial PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := shim.Exec(`INSERT INTO seqt (v) VALUES ('a')`); err != nil {
		t.Fatal(err)
	}
	l := startLoad(s1, s2)
	defer l.stop()
	sites := map[string]*site{"site1": s1, "site2": s2}
	l.b.progress(t, "before any fault", 20)
	const (
		atRelease = -1
		frozen    = -2
		locked    = -3
	)
	for i, delay := range []time.Duration{frozen, locked, atRelease, 0, 100 * time.Millisecond, 300 * time.Millisecond} {
		st0, _ := roleOf(s1)
		released := func() bool {
			st, ok := roleOf(s1)
			return ok && (st.Role != "master" || st.Term != st0.Term)
		}
		switch delay {
		case frozen:
			// Stopped before the switchover, not stopping: else it may promote (sigstop).
			sigstop(t, s2.tandem.cmd.Process.Pid)
			switchover(t, s1, "site2")
			waitFor(t, 10*time.Second, "site1's release", released)
		case locked:
			db2 := s2.pg.Open(t, s2.pg.Database())
			tx, err := db2.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`SET TRANSACTION READ WRITE`); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`LOCK TABLE seqt IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			switchover(t, s1, "site2")
			waitFor(t, 10*time.Second, "site1's release", released)
			time.Sleep(time.Second)
			s2.tandem.kill(syscall.SIGKILL)
			_ = tx.Rollback()
		case atRelease:
			switchover(t, s1, "site2")
			waitFor(t, 10*time.Second, "site1's release", released)
		default:
			switchover(t, s1, "site2")
			time.Sleep(delay)
		}
		s2.tandem.kill(syscall.SIGKILL)
		st1, _ := roleOf(s1)
		t.Logf("round %d: site2 killed (%v) after the switchover; site1 %+v", i, delay, st1)
		waitFor(t, 30*time.Second, "a master with site2's tandem dead", func() bool { return httpStatus(s1.admin, "/master") == 200 })
		l.b.progress(t, "site1 master again, site2's tandem dead", 20)
		ackedOnMaster(t, l.b, "site1 after site2's kill", s1, s2)
		if _, err := shim.Exec(`INSERT INTO seqt (v) VALUES ('b')`); err != nil {
			t.Errorf("insert into seqt on site1 after the kill: %v", err)
		}
		s2.tandem.restart(t)
		settledMaster(t, s1, sites)
		l.b.progress(t, "site2 back", 20)
	}
	l.finalCheck(t, s1, s1, s2)
}

// TestSwitchoverToStaleBackup: a switchover to site2 asked the moment site2's database freezes
// or dies (before site1 has noticed: site2 still looks ready), and asked again and again while
// site1 catches site2's database up after that outage. The release cannot say peer_synced =
// true: site2 must not take control over commits its database lacks, and site1 must serve
// again — alone, as a master does through an outage of its peer's database — rather than the
// cluster staying without a master that can write.
func TestSwitchoverToStaleBackup(t *testing.T) {
	t.Parallel()
	for _, freeze := range []bool{false, true} {
		t.Run(map[bool]string{true: "frozen", false: "killed"}[freeze], func(t *testing.T) {
			t.Parallel()
			switchoverToStaleBackup(t, freeze)
		})
	}
}

func switchoverToStaleBackup(t *testing.T, freeze bool) {
	s1, s2 := cluster(t, clusterOpts{db: true, witness: true, failbackDelay: "1s"})
	// Before the processes' cleanups, which read both databases when the test failed.
	t.Cleanup(func() { _ = s2.pg.Resume() })
	waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })
	l := startLoad(s1, s2)
	defer l.stop()
	sites := map[string]*site{"site1": s1, "site2": s2}
	l.b.progress(t, "before any fault", 20)
	if freeze {
		if err := s2.pg.Pause(); err != nil {
			t.Fatal(err)
		}
	} else {
		s2.pg.Kill()
	}
	out, err := exec.Command(bins.tandem, "switchover", "-config", s1.cfg, "site2").CombinedOutput()
	t.Logf("switchover with site2's database just down: %v %s", err, out)
	waitFor(t, 30*time.Second, "site1 master (site2's database down)", func() bool { return httpStatus(s1.admin, "/master") == 200 })
	l.b.progress(t, "site1 master, site2's database down", 30)
	ackedOnMaster(t, l.b, "site2's database down", s1, s2)
	if freeze {
		if err := s2.pg.Resume(); err != nil {
			t.Fatal(err)
		}
	} else if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	// During catch-up: ask for the switchover until it is accepted.
	accepted := false
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end) && !accepted; time.Sleep(10 * time.Millisecond) {
		accepted = exec.Command(bins.tandem, "switchover", "-config", s1.cfg, "site2").Run() == nil
	}
	t.Logf("switchover during catch-up accepted: %v", accepted)
	waitFor(t, 30*time.Second, "a master", func() bool {
		return httpStatus(s1.admin, "/master") == 200 || httpStatus(s2.admin, "/master") == 200
	})
	l.b.progress(t, "after the switchover during catch-up", 30)
	ackedOnMaster(t, l.b, "after the switchover during catch-up", s1, s2)
	settledMaster(t, s1, sites)
	l.finalCheck(t, s1, s1, s2)
}
