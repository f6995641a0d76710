package txshim

import (
	"os"
	"testing"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// defaultParallel is how many of the package's parallel tests run at once when go test is not
// given -parallel (whose default, GOMAXPROCS, is 2 on a small CI machine). The tests mostly
// wait — on their PostgreSQL clusters' start and I/O, on commit timeouts, on polls — rather than
// compute, so more of them at once than there are CPUs shortens the run. At 3, a run of the
// package took 710 s of CPU (434 s user, 276 s system) and, alone on such a machine, 615 s of
// wall time: under 60 % of its two CPUs.
const defaultParallel = 4

// TestMain: the package's clusters are copies of one template data directory (pgtest.RunTests),
// and, unless -parallel says otherwise, defaultParallel parallel tests run at once.
//
// The tests that set package variables the code under test reads (catchUpTailMax, the bump
// timeouts), that read process-wide counters (goroutines, memory statistics, allocations, CPU
// time), or that set the environment do not call t.Parallel, nor do the few that keep a CPU busy
// for many seconds or assert a tight bound on a latency (most say why): go test runs them one
// after another, alone, before every parallel test. The test hooks (hooks.go) are not package variables: each Shim
// and Shipper has its own, and a test that sets them may run beside others.
func TestMain(m *testing.M) {
	pgtest.DefaultParallel(defaultParallel)
	os.Exit(pgtest.RunTests(m))
}
