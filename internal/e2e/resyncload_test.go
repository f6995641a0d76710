package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestResyncUnderLoadSaysPeerSynced: `tandem resync` on a master that takes writes while the
// tables are copied. Those commits find the peer not in step, go solo (peer_synced = false
// recorded, the peer-down count moves), and the resync's catch-up ships them and turns the shim
// dual again, in step. The resync's peer_synced = true must then be said: the peer has every
// commit. Otherwise the record says for good that it lacks some — catchUp returns at once
// every round with the shim dual and in step — and the other site never takes over from a
// lost master.
func TestResyncUnderLoadSaysPeerSynced(t *testing.T) {
	t.Parallel()
	s1, s2 := cluster(t, clusterOpts{db: true})
	o := operatorOf(t, s1)
	if got, err := o.do("SET before 1", 10*time.Second); got != "OK site1" {
		t.Fatalf("SET before -> %q, %v", got, err)
	}
	for i := 0; i < 200; i++ { // some rows for the copy to take a moment over
		if got, err := o.do(fmt.Sprintf("SET fill%d %d", i, i), 10*time.Second); got != "OK site1" {
			t.Fatalf("SET fill%d -> %q, %v", i, got, err)
		}
	}
	type status struct {
		Record struct {
			Term       uint64 `json:"term"`
			Master     string `json:"master"`
			PeerSynced bool   `json:"peer_synced"`
		} `json:"record"`
	}
	statusOf := func(s *site) status {
		var st status
		if err := json.Unmarshal([]byte(httpBody(t, s.admin, "/status")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitFor(t, 10*time.Second, "site1's record saying peer_synced = true", func() bool { return statusOf(s1).Record.PeerSynced })

	// Writes all along the resync.
	w := operatorOf(t, s1)
	var stop atomic.Bool
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; !stop.Load(); i++ {
			if got, _ := w.do(fmt.Sprintf("SET load%d %d", i, i), 10*time.Second); got == "OK site1" {
				n.Add(1)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	out, err := exec.Command(bins.tandem, "resync", "-config", s1.cfg).CombinedOutput()
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	<-done
	if err != nil {
		t.Fatalf("tandem resync: %v\n%s", err, out)
	}
	t.Logf("%d writes during the resync; site1 logged going solo: %v, refused peer_synced: %v", n.Load(),
		strings.Contains(s1.tandem.out.String(), "going solo"),
		strings.Contains(s1.tandem.out.String(), "not publishing peer_synced"))
	waitFor(t, 30*time.Second, "site1 dual, in step", func() bool {
		st := shimStatusOf(t, s1)
		return st.Mode == "dual" && st.PeerSynced && st.Backlog == 0
	})
	waitFor(t, 20*time.Second, "site1's record saying peer_synced = true after the resync", func() bool { return statusOf(s1).Record.PeerSynced })
	waitFor(t, 5*time.Second, "site2 holding it", func() bool { return statusOf(s2).Record.PeerSynced })
}
