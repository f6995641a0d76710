package gossip

import (
	"testing"
	"time"
)

// TestNodeDuplicateSite: a second process claiming a site's name (its file copied with only the
// bind changed, or a replacement host started before the old one stopped) joins the other site.
// memberlist keeps the member it knew first under that name and ignores the other, so the
// newcomer sees site2 but not the master that holds its name, and site2 never sees it. It took
// the next term as "best qualifying site": two masters. It must take no role while the other
// answers, and may take over once that one is gone.
func TestNodeDuplicateSite(t *testing.T) {
	addrA, addrB, addrC := freeAddr(t), freeAddr(t), freeAddr(t)
	a := run(t, siteConfig(t, "site1", 1, addrA, addrB), Options{})
	b := run(t, siteConfig(t, "site2", 2, addrB, addrA), Options{})
	waitFor(t, 5*time.Second, "site1 master", master(a, b))
	term := a.State().Term

	cfgC := siteConfig(t, "site1", 1, addrC, addrB)
	if err := NewFileStore(cfgC.DataDir).Save(TermRecord{Term: term, Master: "site1", PeerSynced: true}); err != nil {
		t.Fatal(err)
	}
	c := run(t, cfgC, Options{})
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := c.State(); s.Role == RoleMaster {
			t.Fatalf("second site1 is master of term %d beside the first (%s, term %d): %s",
				s.Term, a.State().Role, a.State().Term, s.Reason)
		}
	}
	if s := a.State(); s.Role != RoleMaster || s.Term != term {
		t.Fatalf("first site1 is %s of term %d, want master of %d", s.Role, s.Term, term)
	}

	a.kill()
	waitFor(t, 10*time.Second, "the remaining site1 takes over", master(c, b))
}
