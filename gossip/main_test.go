package gossip

import (
	"os"
	"testing"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestMain runs up to six tests at once unless -parallel says otherwise: most tests here wait
// on memberlist's timers (probes, suspicion, fence and failback delays) rather than use the
// CPU, and one at a time per CPU they took over three minutes of a CI run.
func TestMain(m *testing.M) {
	pgtest.DefaultParallel(6)
	os.Exit(m.Run())
}
