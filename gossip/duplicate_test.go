package gossip

import (
	"strings"
	"testing"
	"time"
)

// TestNodeDuplicateSite: a second process with a running site's name (its file copied with only
// the bind changed) joins the other site. memberlist keeps the member it knew first under that
// name and ignores the other, so the newcomer sees site2 but not the master that holds its
// name, and site2 never sees the newcomer: it adopted the term record naming "site1" master from
// site2 and took the next term as the best qualifying site — two masters. It takes no role
// while the first answers, and may once that one is gone.
func TestNodeDuplicateSite(t *testing.T) {
	t.Parallel()
	// Failure detection that tolerates a loaded machine (steady): the newcomer's probe of the
	// first that misses its 100 ms timeout a few times in a row under load takes it for gone,
	// as the other site's probes take a starved peer for dead — and it may take a role then.
	addrA, addrB, addrC := freeAddr(t), freeAddr(t), freeAddr(t)
	a := runSteady(t, siteConfig(t, "site1", 1, addrA, addrB), Options{})
	b := runSteady(t, siteConfig(t, "site2", 2, addrB, addrA), Options{})
	waitFor(t, 30*time.Second, "site1 master", master(a, b))
	term := a.State().Term

	c := runSteady(t, siteConfig(t, "site1", 1, addrC, addrB), Options{})
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := c.State(); s.Role == RoleMaster {
			t.Fatalf("second site1 is master of term %d beside the first (%s of term %d): %s",
				s.Term, a.State().Role, a.State().Term, s.Reason)
		}
	}
	if s := a.State(); s.Role != RoleMaster || s.Term != term {
		t.Fatalf("first site1 is %s of term %d, want master of %d", s.Role, s.Term, term)
	}

	a.kill()
	waitFor(t, 30*time.Second, "the remaining site1 takes over", master(c, b))
}

// TestNodeRestartAtNewAddressNotHeld: site1, master, killed and started again at another
// address at once, while site2 still holds the dead process alive or suspect: the new process
// hears of the old one's address under its own name (a name conflict), but the old one does not
// answer, so it is no duplicate, and the new process takes control as usual — without site2
// failing over in between.
func TestNodeRestartAtNewAddressNotHeld(t *testing.T) {
	t.Parallel()
	addrA, addrA2, addrB := freeAddr(t), freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA, addrA2)
	a := run(t, cfgA, Options{})
	b := run(t, cfgB, Options{})
	waitFor(t, 5*time.Second, "site1 master", master(a, b))
	term := a.State().Term

	a.kill()
	cfgA.Gossip.Bind = addrA2
	a2 := run(t, cfgA, Options{})
	waitFor(t, 10*time.Second, "the restarted site1 master", master(a2, b))
	if s := b.State(); s.Term != term {
		for _, m := range s.Members {
			t.Logf("site2 sees %+v", m)
		}
	}
	if s := a2.State(); s.Term != term+1 {
		t.Errorf("restarted site1 is master of term %d, want %d (site2 took a term in between?)", s.Term, term+1)
	}
}

// TestDecideDuplicateTakesNoRole: a member held by a live duplicate of its site takes no role
// (View.Duplicate is set only for a member that is not master; Decide honours it for those).
func TestDecideDuplicateTakesNoRole(t *testing.T) {
	t.Parallel()
	v := view("a", mem("a", 1, record(3, "a", true)), mem("b", 2, record(3, "a", true)))
	if a := Decide(v); a.Kind != Promote {
		t.Fatalf("without a duplicate: %v %q, want promote", a.Kind, a.Reason)
	}
	v.Duplicate = "127.0.0.1:7946"
	if a := Decide(v); a.Kind != None || !strings.Contains(a.Reason, "another process answers as site a") {
		t.Fatalf("with a live duplicate: %v %q, want none, naming it", a.Kind, a.Reason)
	}
}
