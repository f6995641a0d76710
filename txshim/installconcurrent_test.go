package txshim

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestInstallBothSitesAtOnce: the two sites' installs run at the same time (configuration
// management runs `tandem install` on both hosts at once), each setting up both databases:
// both succeed, and a third install after them finds everything in place.
func TestInstallBothSitesAtOnce(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE accounts (id int PRIMARY KEY, balance bigint)`, `CREATE TABLE notes (body text)`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Go(func() { errs[0] = Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil) })
		wg.Go(func() { errs[1] = Install(ctx, "site2", p.peer.DSN("app"), p.local.DSN("app"), nil) })
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: site%d's install, run beside the other site's: %v", round, i+1, err)
			}
		}
	}
}
