package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSplitBrain: without a witness, a cut link between the sites (gossip and the database
// links, every process running) makes both sites master and both commit alone — DESIGN §3's
// split brain, which two members cannot avoid. When the link is back it is detected: the site
// that committed alone in the older term steps down and says so, automatic failback to it
// stops, and `tandem verify` names the difference. The operator's way out: keep the master's
// data (`tandem resync` there), then `tandem clear-split-brain` on the other site, which gets
// control back by failback, with both databases identical — also when its sidecar restarted
// in between (it reads its slot again).
func TestSplitBrain(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true, links: true, failbackDelay: "1s"})
	set := func(s *site, k, v string) {
		t.Helper()
		o, err := dialOperator(s.proxy, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer o.close()
		if got, err := o.do("SET "+k+" "+v, 15*time.Second); got != "OK "+s.name {
			t.Fatalf("SET %s through %s's proxy: %q, %v; want OK %s", k, s.name, got, err, s.name)
		}
	}
	waitFor(t, 10*time.Second, "site1 serving", func() bool { return ping(s1.proxy, time.Second) == "site1" })
	set(s1, "before", "1")

	isolate(t, s1, s2, true)
	waitFor(t, 20*time.Second, "site2 master of its own, cut off", func() bool { return httpStatus(s2.admin, "/master") == 200 })
	if httpStatus(s1.admin, "/master") != 200 {
		t.Fatal("site1 gave up the role: without a witness it cannot tell a cut link from a dead peer")
	}
	set(s1, "left", "1")  // alone on site1's database, once the peer's commit_timeout has passed
	set(s2, "right", "2") // alone on site2's
	if st := shimStatusOf(t, s1); st.Mode != "solo" {
		t.Fatalf("site1's shim while cut off: %+v, want solo", st)
	}

	isolate(t, s1, s2, false)
	var st struct {
		Role       string `json:"role"`
		SplitBrain uint64 `json:"split_brain"`
	}
	waitFor(t, 20*time.Second, "site1 reports split brain and steps down", func() bool {
		if err := json.Unmarshal([]byte(httpBody(t, s1.admin, "/status")), &st); err != nil {
			t.Fatal(err)
		}
		return st.SplitBrain != 0 && st.Role == "backup"
	})
	if m, want := httpBody(t, s1.admin, "/metrics"), fmt.Sprintf("\ntandem_split_brain %d\n", st.SplitBrain); !strings.Contains(m, want) {
		t.Errorf("site1's /metrics lacks %q (the term of the split brain its status names):\n%s", strings.TrimSpace(want), m)
	}
	// The log line may reach the test's copy of site1's output after the status shows it.
	waitFor(t, 5*time.Second, "site1 logging the split brain", func() bool {
		return strings.Contains(s1.tandem.out.String(), "split brain")
	})
	// Failback stops: site1 has the better priority and failback_delay is 1 s.
	waitFor(t, 30*time.Second, "site2 master and dual (its peer caught up)", func() bool {
		return httpStatus(s2.admin, "/master") == 200 && shimStatusOf(t, s2).Mode == "dual"
	})
	time.Sleep(3 * time.Second)
	if httpStatus(s2.admin, "/master") != 200 || httpStatus(s1.admin, "/backup") != 200 {
		t.Fatal("control went back to site1 although it is in split brain")
	}
	out, err := exec.Command(bins.tandem, "verify", "-config", s2.cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "wire_kv") {
		t.Fatalf("tandem verify after split brain: %v, want exit 1 naming wire_kv\n%s", err, out)
	}

	// site1's sidecar restarts meanwhile: it reads its slot again, and what it committed alone
	// must still not be shipped once it is master again.
	s1.tandem.kill(syscall.SIGKILL)
	s1.tandem.restart(t)
	waitFor(t, 20*time.Second, "site1 back as a backup, still in split brain", func() bool {
		if httpStatus(s1.admin, "/backup") != 200 {
			return false
		}
		if err := json.Unmarshal([]byte(httpBody(t, s1.admin, "/status")), &st); err != nil {
			t.Fatal(err)
		}
		return st.SplitBrain != 0
	})

	// The operator keeps site2's data: "left" is given up (a real operator would first copy
	// what matters from site1's database).
	if out, err := exec.Command(bins.tandem, "resync", "-config", s2.cfg).CombinedOutput(); err != nil {
		t.Fatalf("tandem resync on site2: %v\n%s", err, out)
	}
	if out, err := exec.Command(bins.tandem, "clear-split-brain", "-config", s1.cfg).CombinedOutput(); err != nil {
		t.Fatalf("tandem clear-split-brain on site1: %v\n%s", err, out)
	}
	waitFor(t, 30*time.Second, "site1 master again, dual and synced", func() bool {
		if httpStatus(s1.admin, "/master") != 200 {
			return false
		}
		sh := shimStatusOf(t, s1)
		return sh.Mode == "dual" && sh.PeerSynced && sh.Backlog == 0
	})
	set(s1, "after", "3")
	time.Sleep(2 * time.Second)
	if out, err := exec.Command(bins.tandem, "verify", "-config", s1.cfg).CombinedOutput(); err != nil {
		t.Errorf("tandem verify at the end: %v\n%s", err, out)
	}
	for _, s := range []*site{s1, s2} {
		for k, want := range map[string]string{"before": "1", "right": "2", "after": "3"} {
			if v := kvValue(t, s, k); v != want {
				t.Errorf("%s's database: %s = %q, want %q", s.name, k, v, want)
			}
		}
		if v := kvValue(t, s, "left"); !strings.Contains(v, "no rows") {
			t.Errorf("%s's database: left = %q, want it gone with the resync", s.name, v)
		}
	}
}
