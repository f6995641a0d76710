package main

import (
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// faultCutEnv names a file listing gossip addresses (host:port, one per line) whose links to
// this member are cut: fault injection for end-to-end tests that partition real processes
// (gossip.Options.Cut). The file is read again every 20 ms; missing or empty cuts nothing.
const faultCutEnv = "TANDEM_FAULT_CUT"

// cutFromFile returns the gossip.Options.Cut that reads path.
func cutFromFile(path string, log *slog.Logger) func(addr string) bool {
	log.Warn("fault injection on: gossip links to the addresses listed in the file are cut (for tests only)", "env", faultCutEnv, "file", path)
	var (
		mu   sync.Mutex
		read time.Time
		cut  []string
	)
	return func(addr string) bool {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(read) > 20*time.Millisecond {
			read = now
			b, _ := os.ReadFile(path) // missing: nothing cut
			next := strings.Fields(string(b))
			slices.Sort(next)
			if !slices.Equal(next, cut) {
				log.Warn("fault injection: gossip links cut", "addrs", next)
			}
			cut = next
		}
		_, found := slices.BinarySearch(cut, addr)
		return found
	}
}
