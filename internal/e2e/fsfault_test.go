package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPeerSyncedWordAfterDataDirFault: the master went solo while the peer's database was
// down; when it came back, the catch-up finished with site1's data_dir refusing its state file
// for a moment (a full or read-only disk), so the word peer_synced = true could not be saved,
// and was not published — rightly. But the shim was dual by then and the Shipper in step, so
// no catch-up ran again: the word was never tried again, and the record said for good that
// the peer lacked commits it had. site2 then never took over from a lost site1 ("not current:
// master site1 has not reported peer_synced"), though its database had everything. The word
// is tried again once data_dir takes it, and site2 takes over.
func TestPeerSyncedWordAfterDataDirFault(t *testing.T) {
	t.Parallel()
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
	set("alone", "2") // solo: peer_synced = false recorded and published
	type status struct {
		Decision string `json:"decision"`
		Record   struct {
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
	if st := statusOf(s1); st.Record.PeerSynced {
		t.Fatalf("site1's record after a solo commit: %+v, want peer_synced false", st.Record)
	}

	// site1's state file cannot be replaced: a directory that is not empty stands in its place.
	state := filepath.Join(filepath.Dir(s1.cfg), "site1", "state.json")
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(state, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s2.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "catch-up: site1's shim dual, in step", func() bool {
		st := shimStatusOf(t, s1)
		return st.Mode == "dual" && st.PeerSynced && st.Backlog == 0
	})
	waitFor(t, 10*time.Second, "site1 failing to save peer_synced = true", func() bool {
		return strings.Contains(s1.tandem.out.String(), "cannot publish peer_synced")
	})
	// The disk takes the file again.
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "site1's record saying peer_synced = true", func() bool { return statusOf(s1).Record.PeerSynced })
	waitFor(t, 5*time.Second, "site2 holding it", func() bool { return statusOf(s2).Record.PeerSynced })

	// What it is for: site1 lost, site2 takes over, its database having everything.
	s1.tandem.kill(syscall.SIGKILL)
	s1.server.kill(syscall.SIGKILL)
	waitFor(t, 20*time.Second, "site2 master", func() bool { return httpStatus(s2.admin, "/master") == 200 })
	if v := kvValue(t, s2, "alone"); v != "2" {
		t.Errorf("site2's database: alone = %q, want 2", v)
	}
}
