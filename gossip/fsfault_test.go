package gossip

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdoptSaveFailureLoggedOnce: a backup whose data_dir cannot take the master's term record
// (a full or read-only disk) does not adopt it, rightly (it is not current then), and tries
// again every round; it logged "cannot keep newer term record" at error level every round too,
// 20 times a second with the fast profile, 4 with lan, for as long as the disk failed — into
// a log that may well be on that full disk. As a vote that cannot be kept is, it is logged
// once, and once more when the record is kept again.
func TestAdoptSaveFailureLoggedOnce(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	var logs logBuffer
	b := run(t, cfgB, Options{Logger: logs.logger()})
	// state.json cannot be replaced: a directory that is not empty stands in its place.
	block := filepath.Join(cfgB.DataDir, StateFile, "x")
	if err := os.MkdirAll(block, 0o700); err != nil {
		t.Fatal(err)
	}
	a := run(t, cfgA, Options{})
	waitFor(t, 8*time.Second, "site1 master", func() bool { return a.State().Role == RoleMaster })
	waitFor(t, 5*time.Second, "site2 fails to keep the record", func() bool {
		return strings.Contains(logs.String(), "cannot keep newer term record")
	})
	time.Sleep(time.Second) // 20 rounds of the fast profile
	if n := strings.Count(logs.String(), "cannot keep newer term record"); n != 1 {
		t.Fatalf("a second of rounds failing to keep the term record logged it %d times, want 1", n)
	}
	if b.State().Term != 0 {
		t.Fatalf("site2 holds term %d, which it could not save", b.State().Term)
	}
	if err := os.RemoveAll(filepath.Join(cfgB.DataDir, StateFile)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "site2 adopts the term record", func() bool { return b.State().Term == a.State().Term })
	if !strings.Contains(logs.String(), "term record kept again") {
		t.Errorf("the record kept again after failures is not logged:\n%s", logs.String())
	}
}
