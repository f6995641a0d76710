package gossip

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs up to six tests at once unless -test.parallel says otherwise: most
// tests here wait on memberlist's timers (probes, suspicion, fence and failback delays) rather
// than use the CPU, and one at a time per CPU they took over three minutes of a CI run.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", "6"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
