package gossip

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestMetaRoomForRoleChanges: a site whose metadata fits memberlist's limit at start but not
// once it holds a term and the master role must be refused at start (New, and so
// check-config), naming the limit: started, it took the role and published nothing more —
// every later update (master, fenced, released) failed to encode and was dropped, and the
// other site never saw it as master.
func TestMetaRoomForRoleChanges(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	// Grow site1's endpoint list until its metadata at start is just under the limit.
	base := len(cfgA.Server.Endpoints)
	for i := 0; ; i++ {
		eps := append([]config.Endpoint(nil), cfgA.Server.Endpoints[:base]...)
		eps = append(eps, config.Endpoint{Name: "x", Address: "10.0.0.1:" + strings.Repeat("1", i)})
		m := Meta{Site: "site1", Priority: 1, DBReachable: true, Admin: cfgA.Admin.Listen, Cold: true, Endpoints: map[string]string{}}
		for _, e := range eps {
			m.Endpoints[e.Name] = e.Address
		}
		b, err := EncodeMeta(m)
		if err != nil || len(b) > 500 {
			break
		}
		cfgA.Server.Endpoints = eps
	}
	_, err := New(cfgA, Options{Logger: testLogger(t)})
	if err != nil {
		if !errors.Is(err, ErrMetaTooLarge) || !strings.Contains(err.Error(), "512") {
			t.Fatalf("New refused the file, but not for its metadata's size: %v", err)
		}
		t.Logf("refused at start: %v", err)
		return
	}
	a := run(t, cfgA, Options{})
	b := run(t, cfgB, Options{})
	waitFor(t, 5*time.Second, "site1 master, as site2 sees it", master(a, b))
}

// TestLongestMetaCoversDrain: the metadata a master publishes while it drains a handover
// (Draining and DrainKeeps, with Released, ReleasedTo and Claim empty, as release leaves them)
// is no longer than longestMeta, which New and check-config measure; and longestMeta grew by
// nothing for DrainKeeps, which counted on top of Released took 10 bytes no metadata uses
// (a file that fitted before was refused: TestAdminAnyPortMetadataRoom).
func TestLongestMetaCoversDrain(t *testing.T) {
	m := Meta{Site: strings.Repeat("s", 32), Priority: 1, Admin: "127.0.0.1:0",
		Endpoints: map[string]string{"pg": "10.0.0.1:5432", "http": "10.0.0.1:8080"}}
	longest := longestMeta(m)
	lb, err := EncodeMeta(longest)
	if err != nil {
		t.Fatal(err)
	}
	drain := longest
	drain.Draining, drain.DrainKeeps = true, true
	drain.Released, drain.ReleasedTo, drain.Claim = 0, "", 0
	drain.Record.Master = m.Site
	db, err := EncodeMeta(drain)
	if err != nil {
		t.Fatal(err)
	}
	if len(db) > len(lb) {
		t.Fatalf("a draining master publishes %d bytes, longestMeta measures %d:\n%s\n%s", len(db), len(lb), db, lb)
	}
	without := longest
	without.DrainKeeps = false
	wb, err := EncodeMeta(without)
	if err != nil {
		t.Fatal(err)
	}
	if len(lb) != len(wb) {
		t.Fatalf("longestMeta counts DrainKeeps on top of Released (%d bytes, %d without): a draining master has no Released", len(lb), len(wb))
	}
}
