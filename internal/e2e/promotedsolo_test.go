package e2e

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPromotedSoloSurvivesSiteLoss: site1's database goes down, site1 gives up the role, and
// site2 takes over with site1's database not in step: its first commit goes solo once site1's
// sidecar holds site2's term record unsynced (DESIGN §3 "going solo is announced first"; gossip
// Adopt takes a newer unsynced record from a member that is master of it). Then site2's whole
// site is lost, and site1's sidecar is restarted (its view of site2 gone with it): site1 holds
// the record it acknowledged, so it does not take control without site2's solo commit — neither
// by itself nor by -force — until an operator accepts the loss (tandem promote -accept-loss).
func TestPromotedSoloSurvivesSiteLoss(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, failback: "manual"})
	set := func(s *site, k, v string) { t.Helper(); setThrough(t, s, k, v) }
	set(s1, "synced", "1")
	waitFor(t, 10*time.Second, "the dual commit on site2's database", func() bool { return kvValue(t, s2, "synced") == "1" })
	s1.pg.Kill()
	waitFor(t, 30*time.Second, "site2 master", func() bool { return httpStatus(s2.admin, "/master") == 200 })
	set(s2, "alone", "2")
	if st := shimStatusOf(t, s2); st.CommitsSolo == 0 {
		t.Fatalf("site2's shim after its first commit: %+v, want a solo commit", st)
	}
	s2.tandem.kill(syscall.SIGKILL)
	s2.server.kill(syscall.SIGKILL)
	s2.pg.Kill()
	s1.tandem.kill(syscall.SIGKILL)
	if err := s1.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	s1.tandem.restart(t)

	var st struct {
		Role     string `json:"role"`
		Decision string `json:"decision"`
		Record   struct {
			Term   uint64 `json:"term"`
			Master string `json:"master"`
		} `json:"record"`
	}
	promote := func(args ...string) (string, error) {
		out, err := exec.Command(bins.tandem, append([]string{"promote"}, append(args, "-admin", s1.admin)...)...).CombinedOutput()
		return string(out), err
	}
	// Cold, it waits for the other site; -force ends that wait, not the lack of site2's term.
	waitFor(t, 20*time.Second, "site1 up", func() bool { return httpStatus(s1.admin, "/status") == 200 })
	promote("-force")
	waitFor(t, 20*time.Second, "site1 waiting, not current", func() bool {
		if err := json.Unmarshal([]byte(httpBody(t, s1.admin, "/status")), &st); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(st.Decision, "not current")
	})
	if st.Record.Master != "site2" {
		t.Fatalf("site1's record after its restart: %+v; want site2's term, which it acknowledged", st.Record)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if httpStatus(s1.admin, "/master") == 200 {
			t.Fatal("site1 took control without site2's solo commit, and without an operator's word")
		}
	}
	if out, err := promote("-accept-loss", strconv.FormatUint(st.Record.Term, 10)); err != nil {
		t.Fatalf("promote -accept-loss %d: %v %q", st.Record.Term, err, out)
	}
	waitFor(t, 20*time.Second, "site1 master", func() bool { return httpStatus(s1.admin, "/master") == 200 })
	set(s1, "after", "3")
	if v := kvValue(t, s1, "alone"); !strings.Contains(v, "no rows") {
		t.Errorf("site1's database: alone = %q; want it lost with site2 (as the operator accepted)", v)
	}
}

// TestPromotedSoloBothRestart: as TestPromotedSoloSurvivesSiteLoss, but then both sidecars are
// killed and started again (no witness), site1's database back: site2, master of the newest
// term, takes control again and catches site1's database up; site1, which holds site2's term
// unsynced, does not take it, though it has the better priority, until its database has
// site2's solo commit.
func TestPromotedSoloBothRestart(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, failbackDelay: "1s"})
	set := func(s *site, k, v string) { t.Helper(); setThrough(t, s, k, v) }
	set(s1, "synced", "1")
	s1.pg.Kill()
	waitFor(t, 30*time.Second, "site2 master", func() bool { return httpStatus(s2.admin, "/master") == 200 })
	set(s2, "alone", "2")
	s1.tandem.kill(syscall.SIGKILL)
	s2.tandem.kill(syscall.SIGKILL)
	if err := s1.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	s1.tandem.restart(t)
	s2.tandem.restart(t)
	waitFor(t, 30*time.Second, "a master", func() bool {
		return httpStatus(s1.admin, "/master") == 200 || httpStatus(s2.admin, "/master") == 200
	})
	if httpStatus(s1.admin, "/master") == 200 && kvValue(t, s1, "alone") != "2" {
		t.Fatal("site1 took control without site2's solo commit")
	}
	// Failback to site1 (better priority) once its database has it.
	waitFor(t, 60*time.Second, "site1 master again, with site2's solo commit", func() bool {
		return httpStatus(s1.admin, "/master") == 200
	})
	if v := kvValue(t, s1, "alone"); v != "2" {
		t.Fatalf("site1's database: alone = %q after failback; want 2", v)
	}
	set(s1, "after", "3")
}
