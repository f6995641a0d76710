package e2e

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUnacknowledgedSoloNotOverridden: site2's database dies and the gossip between the sites
// is cut (the database links stay up), so site1, seeing no one to acknowledge, goes solo
// unacknowledged (no witness) and an operator sees a write committed. Then site2's database
// comes back, site1's sidecar dies, and the gossip heals: site2 never heard that site1 went
// solo. site1's database is up and its term record says peer_synced = false: site2, whose
// database lacks the solo commit, must not take control over it (DESIGN §3 rule 2). site1's
// sidecar back takes control again and catches site2's database up.
func TestUnacknowledgedSoloNotOverridden(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, failback: "manual", links: true})
	set := func(k, v string) { t.Helper(); setThrough(t, s1, k, v) }
	set("synced", "1")
	waitFor(t, 5*time.Second, "the dual commit on site2's database", func() bool { return kvValue(t, s2, "synced") == "1" })
	s2.pg.Kill()
	cutGossip(t, s1.cutFile, s2.gossip)
	cutGossip(t, s2.cutFile, s1.gossip)
	time.Sleep(4 * time.Second) // each site's gossip calls the other dead
	set("alone", "2")
	// The log line may reach the test's copy of site1's output after the client has its reply.
	waitFor(t, 5*time.Second, "site1 going solo unacknowledged", func() bool {
		return strings.Contains(s1.tandem.out.String(), "going solo unacknowledged")
	})
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	s1.tandem.kill(syscall.SIGKILL)
	cutGossip(t, s1.cutFile)
	cutGossip(t, s2.cutFile)
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if httpStatus(s2.admin, "/master") == 200 {
			t.Fatalf("site2 took control though site1's database, reachable, says site1 went on alone; site2's alone = %q (site1's %q)",
				kvValue(t, s2, "alone"), kvValue(t, s1, "alone"))
		}
	}
	s1.tandem.restart(t)
	settledMaster(t, s1, map[string]*site{"site1": s1, "site2": s2})
	set("after", "3")
	waitFor(t, 10*time.Second, "site2's database to hold every acknowledged write", func() bool {
		return kvValue(t, s2, "alone") == "2" && kvValue(t, s2, "after") == "3"
	})
	waitFor(t, 10*time.Second, "tandem verify: identical", func() bool {
		return exec.Command(bins.tandem, "verify", "-config", s1.cfg).Run() == nil
	})
}
