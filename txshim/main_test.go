package txshim

import (
	"os"
	"testing"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestMain: the package's clusters are copies of one template data directory (pgtest.RunTests).
func TestMain(m *testing.M) { os.Exit(pgtest.RunTests(m)) }
