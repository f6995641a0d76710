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
