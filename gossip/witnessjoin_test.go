package gossip

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects a node's log lines for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestNodeWitnessWithoutJoinNoStray: a witness needs no gossip.join (the sites join it). Its
// voters were counted as for a lone site, one plus the witness: two. When both sites had
// joined it knew three members, more than two, and logged the error of a stray second
// witness or third site, which there was not.
func TestNodeWitnessWithoutJoinNoStray(t *testing.T) {
	_, _, _, cfgA, cfgB, cfgW := witnessTrio(t)
	cfgW.Gossip.Join = nil
	var logs logBuffer
	w := run(t, cfgW, Options{Logger: logs.logger()})
	run(t, cfgA, Options{})
	run(t, cfgB, Options{})
	waitFor(t, 6*time.Second, "the witness sees both sites", func() bool { return sees(w, "site1") && sees(w, "site2") })
	if s := logs.String(); strings.Contains(s, "more members than configured voters") {
		t.Fatalf("the witness, with the two sites and itself, reports a stray member:\n%s", s)
	}
}
