package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStateSurvivesFailover runs the whole product: each server stores its
// state through its own site's txshim; what an operator wrote on site1 is
// served by site2 after site1's server dies, what site2 then writes reaches
// site1's database, and both databases end identical.
func TestStateSurvivesFailover(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{db: true, failbackDelay: "2s"})
	waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })

	o, err := dialOperator(s2.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range [][2]string{{"SET color blue", "OK site1"}, {"SET shape round", "OK site1"}, {"DEL shape", "OK site1"}} {
		if got, err := o.do(step[0], 5*time.Second); got != step[1] {
			t.Fatalf("%q -> %q, %v; want %q", step[0], got, err, step[1])
		}
	}
	o.close()
	// The master's shim has read which functions may write (txshim/funcs.go).
	if c := shimStatusOf(t, s1).Catalog; c.ReadAt == nil || c.Error != "" {
		t.Errorf("site1 status: catalog %+v, want it read without error", c)
	}
	// The peer's COMMIT PREPARED may complete just after the reply (DESIGN §5.3).
	for _, s := range []*site{s1, s2} {
		waitFor(t, 5*time.Second, s.name+"'s database to hold color=blue", func() bool { return kvValue(t, s, "color") == "blue" })
	}

	s1.server.kill(syscall.SIGKILL)
	servedBy(t, s2.proxy, "site2", 10*time.Second)
	o, err = dialOperator(s2.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if got, err := o.do("GET color", 5*time.Second); got != "VALUE site2 blue" {
		t.Errorf("after failover GET color -> %q, %v", got, err)
	}
	if got, err := o.do("SET color green", 5*time.Second); got != "OK site2" {
		t.Fatalf("after failover SET -> %q, %v", got, err)
	}
	waitFor(t, 5*time.Second, "site1's database to hold site2's commit", func() bool { return kvValue(t, s1, "color") == "green" })
	out, err := exec.Command(bins.tandem, "verify", "-config", s2.cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "identical") {
		t.Errorf("tandem verify: %v\n%s", err, out)
	}
	for _, s := range []*site{s1, s2} {
		if n := preparedCount(t, s); n != 0 {
			t.Errorf("%s: %d prepared transactions left", s.name, n)
		}
	}
}

// kvValue reads k from s's database ("(error)" when it cannot); tests poll it, so each call
// closes its connection.
func kvValue(t *testing.T, s *site, k string) string {
	t.Helper()
	var v string
	if err := queryRow(s, func(db *sql.DB) error {
		return db.QueryRow(`SELECT v FROM wire_kv WHERE k = $1`, k).Scan(&v)
	}); err != nil {
		return "(" + err.Error() + ")"
	}
	return v
}

// preparedCount is the number of prepared transactions on s's database (-1 when unreadable).
func preparedCount(t *testing.T, s *site) int {
	t.Helper()
	n := -1
	if err := queryRow(s, func(db *sql.DB) error {
		return db.QueryRow(`SELECT count(*) FROM pg_prepared_xacts`).Scan(&n)
	}); err != nil {
		t.Logf("%s: count prepared transactions: %v", s.name, err)
		return -1
	}
	return n
}

// queryRow runs f on a connection to s's database that it closes afterwards.
func queryRow(s *site, f func(*sql.DB) error) error {
	db, err := sql.Open("postgres", s.pg.DSN(s.pg.Database()))
	if err != nil {
		return err
	}
	defer db.Close()
	return f(db)
}

// setThrough sets k to v through s's proxy and server, which must answer that s stored it.
func setThrough(t *testing.T, s *site, k, v string) {
	t.Helper()
	o := operatorOf(t, s)
	defer o.close()
	if got, err := o.do("SET "+k+" "+v, 15*time.Second); got != "OK "+s.name {
		t.Fatalf("SET %s through %s -> %q, %v", k, s.name, got, err)
	}
}

// operatorOf waits until s serves through its own proxy and returns an operator session
// there, closed at the end of the test.
func operatorOf(t *testing.T, s *site) *operator {
	t.Helper()
	waitFor(t, 10*time.Second, s.name+" serving", func() bool { return ping(s.proxy, time.Second) == s.name })
	o, err := dialOperator(s.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.close)
	return o
}

// shimStatus is the txshim part of a member's GET /status.
type shimStatus struct {
	Mode        string      `json:"mode"`
	PeerSynced  bool        `json:"peer_synced"`
	Backlog     int         `json:"backlog"`
	CommitsSolo int         `json:"commits_solo"`
	NeedsResync string      `json:"needs_resync"`
	SlotStatus  string      `json:"slot_wal_status"`
	SlotHeld    int64       `json:"slot_retained_bytes"`
	Verify      *shimVerify `json:"verify"`
	Catalog     struct {
		ReadAt *time.Time `json:"read_at"`
		Error  string     `json:"error"`
	} `json:"catalog"`
}

// shimVerify is the comparison of both databases after the last catch-up, in GET /status.
type shimVerify struct {
	At          time.Time `json:"at"`
	Identical   bool      `json:"identical"`
	Differences []string  `json:"differences"`
	Error       string    `json:"error"`
}

func shimStatusOf(t *testing.T, s *site) shimStatus {
	t.Helper()
	var st struct {
		TxShim shimStatus `json:"txshim"`
	}
	if err := json.Unmarshal([]byte(httpBody(t, s.admin, "/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st.TxShim
}

// TestPeerDatabaseOutage: the master goes on alone while the peer's database
// is down (nothing a client saw committed is lost), and catches the peer up
// when it returns.
func TestPeerDatabaseOutage(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{db: true})
	o := operatorOf(t, s1)
	set := func(k, v string) {
		t.Helper()
		if got, err := o.do("SET "+k+" "+v, 10*time.Second); got != "OK site1" {
			t.Fatalf("SET %s -> %q, %v", k, got, err)
		}
	}
	set("before", "1")

	s2.pg.Kill()
	begin := time.Now()
	set("during1", "2") // the peer is found gone within commit_timeout: solo
	t.Logf("first commit with the peer database down took %v", time.Since(begin))
	for i := 0; i < 20; i++ {
		set(fmt.Sprintf("solo%d", i), "x")
	}
	// Going solo was announced first (DESIGN §3): site2's sidecar, whose database is down,
	// still took and acknowledged the record saying its database lacks commits.
	if out := s1.tandem.out.String(); !strings.Contains(out, "peer_synced = false acknowledged") {
		t.Errorf("site1 went solo without site2's acknowledgement")
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(s2.cfg), "site2", "state.json")); err != nil ||
		!strings.Contains(string(b), `"master":"site1","peer_synced":false`) {
		t.Errorf("site2's state file: %s (%v), want site1's record with peer_synced false", b, err)
	}
	// Status and metrics say so (DESIGN §6). The backlog counts what the decoder has read: the
	// last commit may reach it a moment after the client's reply.
	var st shimStatus
	deadline := time.Now().Add(5 * time.Second)
	for st = shimStatusOf(t, s1); st.Backlog < 21 && time.Now().Before(deadline); st = shimStatusOf(t, s1) {
		time.Sleep(20 * time.Millisecond)
	}
	if st.Mode != "solo" || st.PeerSynced || st.CommitsSolo < 21 || st.Backlog < 21 {
		t.Errorf("site1's status during the outage: %+v, want solo, not synced, ≥ 21 solo commits in the backlog", st)
	}
	if m := httpBody(t, s1.admin, "/metrics"); !strings.Contains(m, `tandem_txshim_mode{mode="solo"} 1`) ||
		!strings.Contains(m, "tandem_txshim_left_in_doubt_total 0") {
		t.Errorf("metrics during the outage lack the solo mode, or count commits left in doubt (a master goes on alone):\n%s", m)
	}
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "catch-up: both databases identical", func() bool {
		return exec.Command(bins.tandem, "verify", "-config", s1.cfg).Run() == nil
	})
	waitFor(t, 10*time.Second, "site1's status: dual, synced, no backlog", func() bool {
		st := shimStatusOf(t, s1)
		return st.Mode == "dual" && st.PeerSynced && st.Backlog == 0
	})
	// Both databases were compared as they stood when catch-up held commits (DESIGN §5.5).
	var v *shimVerify
	waitFor(t, 10*time.Second, "site1's status: the verification after catch-up", func() bool {
		v = shimStatusOf(t, s1).Verify
		return v != nil
	})
	if !v.Identical || v.At.Before(begin) {
		t.Errorf("verification after catch-up: %+v, want identical, after the outage began", *v)
	}
	if m := httpBody(t, s1.admin, "/metrics"); !strings.Contains(m, "\ntandem_txshim_verify_differences 0\n") {
		t.Errorf("metrics lack tandem_txshim_verify_differences 0")
	}
	set("after", "3")
	waitFor(t, 5*time.Second, "a dual commit after catch-up", func() bool { return kvValue(t, s2, "after") == "3" })
	if v := kvValue(t, s2, "solo19"); v != "x" {
		t.Errorf("peer lacks a solo commit: %q", v)
	}
}

// TestPeerDatabaseOutageBlock: with peer_down = "block" the master commits nothing alone while
// the peer's database is down (the client hears an error), and once it is back the master
// catches it up and commits dual again — though its shim never left dual mode, which is where
// catch-up used to wait for (solo) in vain: every write failed until the sidecar restarted.
func TestPeerDatabaseOutageBlock(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, peerDown: "block"})
	o := operatorOf(t, s1)
	if got, err := o.do("SET before 1", 10*time.Second); got != "OK site1" {
		t.Fatalf("SET before -> %q, %v", got, err)
	}
	s2.pg.Kill()
	got, err := o.do("SET during 2", 15*time.Second)
	if err != nil || got == "OK site1" {
		t.Fatalf("SET with the peer database down and peer_down = block -> %q, %v: want an error reply", got, err)
	}
	if st := shimStatusOf(t, s1); st.Mode != "dual" || st.CommitsSolo != 0 {
		t.Fatalf("site1's shim during the outage: %+v, want dual and no solo commit", st)
	}
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	var last string
	defer func() { t.Logf("the last write after the outage answered %q", last) }()
	waitFor(t, 30*time.Second, "a write through site1 once the peer database is back", func() bool {
		last, _ = o.do("SET after 3", 10*time.Second)
		return last == "OK site1"
	})
	waitFor(t, 30*time.Second, "both databases identical", func() bool {
		return exec.Command(bins.tandem, "verify", "-config", s1.cfg).Run() == nil
	})
	if v := kvValue(t, s2, "after"); v != "3" {
		t.Errorf("the peer holds %q for the write after the outage, want 3", v)
	}
}

// TestPausedMasterIsFenced: site1's tandem (which holds its shim) is paused with SIGSTOP while
// its server sends a write; site2 takes over and writes its term into site1's database; when
// site1 resumes, the write it was holding cannot commit (DESIGN §3 fencing in the databases):
// the server answers an error, neither database holds the write, site1 steps down, and the two
// databases end identical.
func TestPausedMasterIsFenced(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, failback: "manual"})
	waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })
	o, err := dialOperator(s1.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := o.do("SET before 1", 5*time.Second); got != "OK site1" {
		t.Fatalf("SET before -> %q, %v", got, err)
	}
	o.close()
	// A connection straight to site1's server, opened (and its database session made) first.
	direct, err := dialOperator(s1.srv, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.close()
	if got, err := direct.do("GET before", 5*time.Second); got != "VALUE site1 1" {
		t.Fatalf("GET before -> %q, %v", got, err)
	}

	// The write is sent once every thread has stopped (sigstop): sent as soon as kill returned,
	// it was prepared on both databases before the stop took hold (ci213), and so rightly
	// committed by site2's resolver.
	pid := s1.tandem.cmd.Process.Pid
	sigstop(t, pid)
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	reply := make(chan string, 1)
	go func() {
		got, err := direct.do("SET paused 1", 60*time.Second)
		if err != nil {
			got += " (" + err.Error() + ")"
		}
		reply <- got
	}()

	servedBy(t, s2.proxy, "site2", 15*time.Second)
	db1 := s1.pg.Open(t, s1.pg.Database())
	waitFor(t, 10*time.Second, "site2's term in site1's database", func() bool {
		var term int
		return db1.QueryRow(`SELECT term FROM tandem.state`).Scan(&term) == nil && term >= 2
	})
	select {
	case got := <-reply:
		t.Fatalf("the write through the paused shim answered before site1 resumed: %q", got)
	default:
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	select {
	case got := <-reply:
		if strings.HasPrefix(got, "OK") {
			t.Fatalf("the paused master committed after its successor took over: %q", got)
		}
		t.Logf("the held write, once site1 resumed: %q", got)
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to the held write 30 s after site1 resumed")
	}
	for _, s := range []*site{s1, s2} {
		if v := kvValue(t, s, "paused"); !strings.Contains(v, "no rows") {
			t.Errorf("%s's database holds the fenced write: %q", s.name, v)
		}
	}
	waitFor(t, 15*time.Second, "site1 steps down to backup", func() bool { return httpStatus(s1.admin, "/backup") == 200 })
	if code := httpStatus(s2.admin, "/master"); code != 200 {
		t.Errorf("site2 /master: %d after site1 resumed", code)
	}
	waitFor(t, 30*time.Second, "both databases identical", func() bool {
		return exec.Command(bins.tandem, "verify", "-config", s2.cfg).Run() == nil
	})
	for _, s := range []*site{s1, s2} {
		waitFor(t, 15*time.Second, s.name+": no prepared transaction left", func() bool { return preparedCount(t, s) == 0 })
	}
}

// TestResync: the peer's database diverges (a row deleted behind Tandem's back), so catch-up
// after an outage finds a change it cannot apply and stops (status needs_resync); `tandem
// resync` on the master copies the application tables over, and dual commit resumes with both
// databases identical.
func TestResync(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true})
	o := operatorOf(t, s1)
	set := func(k, v, want string) {
		t.Helper()
		if got, err := o.do("SET "+k+" "+v, 15*time.Second); got != want {
			t.Fatalf("SET %s %s -> %q, %v; want %q", k, v, got, err, want)
		}
	}
	set("a", "1", "OK site1")
	waitFor(t, 5*time.Second, "a on site2's database", func() bool { return kvValue(t, s2, "a") == "1" })
	if _, err := s2.pg.Open(t, s2.pg.Database()).Exec(`DELETE FROM wire_kv WHERE k = 'a'`); err != nil {
		t.Fatal(err)
	}
	s2.pg.Kill()
	set("a", "2", "OK site1") // solo: an UPDATE the peer cannot apply
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "catch-up to find the divergence", func() bool { return shimStatusOf(t, s1).NeedsResync != "" })
	// The backup reported the write that bypassed Tandem on its database (once it asked the
	// master's database whether that has it: about a second), and did not ship it.
	waitFor(t, 10*time.Second, "site2 to report the write that bypassed it", func() bool {
		return strings.Contains(s2.tandem.out.String(), "bypassed Tandem on this backup's database")
	})
	if v := kvValue(t, s1, "a"); v != "2" {
		t.Errorf("site1's a = %q: the backup's stray DELETE reached the master", v)
	}
	set("c", "3", "OK site1") // the master goes on alone meanwhile

	resyncPeer(t, s1)
	set("d", "4", "OK site1")
	waitFor(t, 5*time.Second, "a dual commit after resync", func() bool { return kvValue(t, s2, "d") == "4" })
	if v := kvValue(t, s2, "a"); v != "2" {
		t.Errorf("site2's a = %q after resync, want 2", v)
	}
}

// TestSlotLost: while site2's database is down, site1 goes on alone and its slot holds back
// the WAL site2 lacks (status and metrics show how much). Past max_slot_wal_keep_size
// PostgreSQL invalidates the slot: status says needs_resync and names the slot, catch-up
// cannot bring the returning peer in step and says so, and `tandem resync` makes the slot anew,
// copies the tables and resumes dual commit (DESIGN §5.2 "the slot is the journal").
func TestSlotLost(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true})
	o := operatorOf(t, s1)
	set := func(k, v string) {
		t.Helper()
		if got, err := o.do("SET "+k+" "+v, 15*time.Second); got != "OK site1" {
			t.Fatalf("SET %s %s -> %q, %v", k, v, got, err)
		}
	}
	set("a", "1")
	s2.pg.Kill()
	set("b", "2") // solo
	waitFor(t, 5*time.Second, "site1's status to show the WAL its slot holds back", func() bool {
		st := shimStatusOf(t, s1)
		return st.SlotHeld > 0 && st.SlotStatus != ""
	})
	if m := httpBody(t, s1.admin, "/metrics"); !strings.Contains(m, "\ntandem_txshim_slot_retained_bytes ") {
		t.Errorf("metrics lack the slot's retained WAL:\n%s", m)
	}
	s1.pg.Exec(t, `ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`)
	s1.pg.Exec(t, `SELECT pg_reload_conf()`)
	for i := 0; i < 4; i++ { // four WAL segments written and switched, then removed
		set(fmt.Sprintf("fill%d", i), "x")
		s1.pg.Exec(t, `SELECT pg_switch_wal()`)
	}
	s1.pg.Exec(t, `CHECKPOINT`)
	waitFor(t, 15*time.Second, "site1's status: needs_resync, the slot invalidated", func() bool {
		return strings.Contains(shimStatusOf(t, s1).NeedsResync, "invalidated")
	})
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "catch-up to say the peer needs resync", func() bool {
		return strings.Contains(s1.tandem.out.String(), "the peer database needs resync")
	})
	if st := shimStatusOf(t, s1); st.Mode != "solo" || st.PeerSynced {
		t.Fatalf("site1's status with the slot lost and the peer back: %+v, want solo, not synced", st)
	}
	set("c", "3") // the master goes on alone meanwhile

	begin := time.Now()
	resyncPeer(t, s1)
	set("d", "4")
	waitFor(t, 5*time.Second, "a dual commit after resync", func() bool { return kvValue(t, s2, "d") == "4" })
	// The resync's catch-up compared both databases, after the operator's request had ended.
	waitFor(t, 10*time.Second, "the verification after the resync", func() bool {
		v := shimStatusOf(t, s1).Verify
		return v != nil && v.At.After(begin)
	})
	if v := shimStatusOf(t, s1).Verify; !v.Identical {
		t.Errorf("verification after the resync: %+v, want identical", *v)
	}
	waitFor(t, 5*time.Second, "the new slot in status", func() bool {
		st := shimStatusOf(t, s1)
		return st.SlotStatus != "" && st.SlotStatus != "lost"
	})
}

// resyncPeer runs `tandem resync` against master s and checks that s is dual again with its
// peer synced and that `tandem verify` finds both databases identical.
func resyncPeer(t *testing.T, s *site) {
	t.Helper()
	out, err := exec.Command(bins.tandem, "resync", "-config", s.cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dual commit resumed") {
		t.Fatalf("tandem resync: %v\n%s", err, out)
	}
	if st := shimStatusOf(t, s); st.NeedsResync != "" || st.Mode != "dual" || !st.PeerSynced {
		t.Fatalf("status after resync: %+v", st)
	}
	if out, err := exec.Command(bins.tandem, "verify", "-config", s.cfg).CombinedOutput(); err != nil {
		t.Fatalf("tandem verify after resync: %v\n%s", err, out)
	}
}

// TestSoloBacklogSurvivesRestart: a master that went on alone keeps what its peer lacks in its
// slot (DESIGN §5.2) across a restart of its sidecar — which starts as a backup until it is
// master again — and catches the peer up once the peer's database is back.
func TestSoloBacklogSurvivesRestart(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true})
	set := func(k, v string) { t.Helper(); setThrough(t, s1, k, v) }
	set("a", "1")
	s2.pg.Kill()
	set("b", "2") // alone
	set("c", "3")
	s1.tandem.kill(syscall.SIGKILL)
	s1.tandem.restart(t)
	waitFor(t, 20*time.Second, "site1 master again", func() bool { return httpStatus(s1.admin, "/master") == 200 })
	set("d", "4")
	if httpStatus(s2.admin, "/master") == 200 {
		t.Fatal("site2 took over although its database lacks site1's solo commits")
	}
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "catch-up: both databases identical", func() bool {
		return exec.Command(bins.tandem, "verify", "-config", s1.cfg).Run() == nil
	})
	for k, want := range map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"} {
		if v := kvValue(t, s2, k); v != want {
			t.Errorf("site2's database: %s = %q, want %q", k, v, want)
		}
	}
}

// TestFunctionWritesSurviveFailover: rows a client wrote by calling a function with SELECT — a
// statement the shim must take for a write (txshim/funcs.go) — and saw committed are on the
// backup's database when the master's site dies right after: its sidecar and its database are
// killed together, and site2 takes over with every acknowledged row.
func TestFunctionWritesSurviveFailover(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{db: true, failback: "manual"})
	waitFor(t, 10*time.Second, "site1 master", func() bool { return httpStatus(s1.admin, "/master") == 200 })
	db, err := sql.Open("postgres", s1.shimDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE fn_acked (id int PRIMARY KEY);
CREATE FUNCTION ack_row(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO fn_acked VALUES (i) RETURNING i $$`); err != nil {
		t.Fatal(err)
	}
	acked := 0
	for i := 1; i <= 100; i++ {
		var got int
		if err := db.QueryRow(`SELECT ack_row($1)`, i).Scan(&got); err != nil || got != i {
			t.Fatalf("SELECT ack_row(%d): %d, %v", i, got, err)
		}
		acked = i
	}
	s1.tandem.kill(syscall.SIGKILL)
	s1.pg.Kill()
	waitFor(t, 30*time.Second, "site2 master", func() bool { return httpStatus(s2.admin, "/master") == 200 })
	var n int
	waitFor(t, 30*time.Second, "site2's database to hold every acknowledged row, none prepared", func() bool {
		err := queryRow(s2, func(db *sql.DB) error {
			return db.QueryRow(`SELECT count(*) FROM fn_acked WHERE id <= $1`, acked).Scan(&n)
		})
		return err == nil && n == acked && preparedCount(t, s2) == 0
	})
}

// TestAcceptLossAfterMasterSiteLost: site1, master, commits alone while site2's database is
// down, then its whole site is lost (sidecar, server and database killed). site2, whose
// database lacks that commit, must not take control by itself (DESIGN §3 rule 2), and -force
// does not make it; an operator who knows site1 is gone for good runs `tandem promote
// -accept-loss TERM` (a wrong term is refused), and site2 serves operators, with everything
// but site1's solo commit. Then site1 comes back after all, and finds itself in split brain.
func TestAcceptLossAfterMasterSiteLost(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true})
	set := func(s *site, k, v string) { t.Helper(); setThrough(t, s, k, v) }
	set(s1, "synced", "1")
	waitFor(t, 10*time.Second, "the dual commit on site2's database", func() bool { return kvValue(t, s2, "synced") == "1" })
	s2.pg.Kill()
	set(s1, "alone", "2")
	var aloneEnd string // past site1's solo commit
	if err := queryRow(s1, func(db *sql.DB) error { return db.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&aloneEnd) }); err != nil {
		t.Fatal(err)
	}
	s1.tandem.kill(syscall.SIGKILL)
	s1.server.kill(syscall.SIGKILL)
	s1.pg.Kill()
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}

	var st struct {
		Role     string `json:"role"`
		Decision string `json:"decision"`
		Record   struct {
			Term uint64 `json:"term"`
		} `json:"record"`
		Members []struct {
			Site  string `json:"site"`
			Alive bool   `json:"alive"`
		} `json:"members"`
	}
	// site2 is not current from the moment it learns of site1's solo commit, which may be before
	// its gossip has found site1's killed sidecar dead: accept-loss is refused while that master
	// is alive (CI's clean-clone run of stop 39 promoted within that window).
	waitFor(t, 20*time.Second, "site2 waiting, not current, site1 seen dead", func() bool {
		if err := json.Unmarshal([]byte(httpBody(t, s2.admin, "/status")), &st); err != nil {
			t.Fatal(err)
		}
		for _, m := range st.Members {
			if m.Site == "site1" && m.Alive {
				return false
			}
		}
		return strings.Contains(st.Decision, "not current")
	})
	promote := func(args ...string) (string, error) {
		out, err := exec.Command(bins.tandem, append([]string{"promote"}, append(args, "-admin", s2.admin)...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := promote("-force"); err == nil || !strings.Contains(out, "-accept-loss") {
		t.Errorf("promote -force on a site that is not current: %v %q; want refused, naming -accept-loss", err, out)
	}
	if out, err := promote("-accept-loss", strconv.FormatUint(st.Record.Term+1, 10)); err == nil || !strings.Contains(out, "not the newest term") {
		t.Errorf("promote -accept-loss of a term that is not the newest: %v %q; want refused", err, out)
	}
	if httpStatus(s2.admin, "/master") == 200 {
		t.Fatal("site2 took control without its database having site1's solo commit, and without an operator's word")
	}
	if out, err := promote("-accept-loss", strconv.FormatUint(st.Record.Term, 10)); err != nil {
		t.Fatalf("promote -accept-loss %d: %v %q", st.Record.Term, err, out)
	}
	waitFor(t, 20*time.Second, "site2 master", func() bool { return httpStatus(s2.admin, "/master") == 200 })
	set(s2, "after", "3")
	for k, want := range map[string]string{"synced": "1", "after": "3"} {
		if v := kvValue(t, s2, k); v != want {
			t.Errorf("site2's database: %s = %q, want %q", k, v, want)
		}
	}
	if v := kvValue(t, s2, "alone"); !strings.Contains(v, "no rows") {
		t.Errorf("site2's database: alone = %q; want it lost with site1 (as the operator accepted)", v)
	}

	// site1 was not lost for good after all: it comes back, finds that it committed alone in a
	// term site2 superseded (split brain), and stays a backup although it has the better
	// priority; its solo commit is never shipped, and site2's writes reach its database.
	if err := s1.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	s1.tandem.restart(t)
	s1.server.restart(t)
	var back struct {
		Role       string `json:"role"`
		SplitBrain uint64 `json:"split_brain"`
	}
	waitFor(t, 30*time.Second, "site1 back as a backup in split brain", func() bool {
		if httpStatus(s1.admin, "/backup") != 200 {
			return false
		}
		if err := json.Unmarshal([]byte(httpBody(t, s1.admin, "/status")), &back); err != nil {
			t.Fatal(err)
		}
		return back.Role == "backup" && back.SplitBrain != 0
	})
	if back.SplitBrain != st.Record.Term {
		t.Errorf("site1's split brain names term %d; want %d, the term it committed alone in", back.SplitBrain, st.Record.Term)
	}
	waitFor(t, 30*time.Second, "site2 master and dual (site1's database caught up)", func() bool {
		return httpStatus(s2.admin, "/master") == 200 && shimStatusOf(t, s2).Mode == "dual"
	})
	time.Sleep(3 * time.Second) // failback_delay is 1 s
	if httpStatus(s2.admin, "/master") != 200 || httpStatus(s1.admin, "/backup") != 200 {
		t.Fatal("control went back to site1 although it is in split brain")
	}
	set(s2, "later", "4")
	// A dual commit's COMMIT PREPARED on the peer may come after the client's reply.
	waitFor(t, 10*time.Second, "the dual commit on site1's database", func() bool { return kvValue(t, s1, "later") == "4" })
	for k, want := range map[string]string{"synced": "1", "alone": "2", "after": "3"} {
		if v := kvValue(t, s1, k); v != want {
			t.Errorf("site1's database: %s = %q, want %q", k, v, want)
		}
	}
	if v := kvValue(t, s2, "alone"); !strings.Contains(v, "no rows") {
		t.Errorf("site2's database: alone = %q; site1's solo commit was shipped after the loss was accepted", v)
	}
	if out, err := exec.Command(bins.tandem, "verify", "-config", s2.cfg).CombinedOutput(); err == nil || !strings.Contains(string(out), "wire_kv") {
		t.Errorf("tandem verify with site1's solo commit: %v, want exit 1 naming wire_kv\n%s", err, out)
	}
	// Given up for good, the solo commit is not kept in site1's slot either, though site1's
	// sidecar was killed -9 and started again (the split-brain mark outlives it): the slot
	// must not hold WAL for it until site1 is master again, which it may never be.
	waitFor(t, 20*time.Second, "site1's slot past its solo commit", func() bool {
		var past bool
		err := queryRow(s1, func(db *sql.DB) error {
			return db.QueryRow(`SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2`,
				aloneEnd, "tandem_"+s1.name).Scan(&past)
		})
		return err == nil && past
	})
}

// TestFailoverAfterDatabaseRestored: the backup's database is restored from a backup taken
// before the current term while its sidecar runs (here, as far as the term record goes: a
// backup taken before term 1, or a database re-initialised and installed again, holds no row),
// and the operator does what the README says — tandem install there, tandem resync on the
// master. Both databases are then identical, but nothing wrote the master's term into the
// restored database again: the backup's sidecar, which had seen that database hold the term,
// took it for a database that lost it and refused its own term when the master failed — no
// site took control.
func TestFailoverAfterDatabaseRestored(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true})
	waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })
	o, err := dialOperator(s2.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := o.do("SET color blue", 5*time.Second); got != "OK site1" {
		t.Fatalf("SET -> %q, %v", got, err)
	}
	o.close()
	waitFor(t, 5*time.Second, "site2's database to hold color=blue", func() bool { return kvValue(t, s2, "color") == "blue" })
	waitFor(t, 10*time.Second, "site2's database to hold site1's term", func() bool {
		var n int
		return queryRow(s2, func(db *sql.DB) error {
			return db.QueryRow(`SELECT count(*) FROM tandem.state WHERE master = 'site1'`).Scan(&n)
		}) == nil && n == 1
	})
	time.Sleep(time.Second) // the adopted record's copy, if any, is in
	if err := queryRow(s2, func(db *sql.DB) error {
		_, err := db.Exec(`DELETE FROM tandem.state`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bins.tandem, "install", "-config", s2.cfg).CombinedOutput(); err != nil {
		t.Fatalf("tandem install site2: %v\n%s", err, out)
	}
	resyncPeer(t, s1)

	s1.server.kill(syscall.SIGKILL)
	servedBy(t, s2.proxy, "site2", 15*time.Second)
}
