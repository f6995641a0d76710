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
	t.Parallel()
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

// TestSwitchoverToWitnessNamesIt: a switchover asked to the witness (`tandem switchover
// witness`) said "not ready: witness", as if the witness might become ready; it never takes
// control, and the refusal says so. Failure detection tolerates a loaded machine (steady), the
// set-up waits are generous: members starved of the CPU flapped, and no site became master.
func TestSwitchoverToWitnessNamesIt(t *testing.T) {
	t.Parallel()
	_, _, _, cfgA, cfgB, cfgW := witnessTrio(t)
	_, a, _ := startTrio(t, cfgW, cfgA, cfgB, trioStart{steady: true})
	waitFor(t, 15*time.Second, "site1 sees the witness", func() bool { return sees(a, cfgW.Site) })
	err := a.Switchover(cfgW.Site)
	if err == nil || !strings.Contains(err.Error(), "is the witness") || strings.Contains(err.Error(), "not ready") {
		t.Fatalf("Switchover to the witness: %v; want a refusal saying it is the witness", err)
	}
}

// TestColdWaitLogged: a site started alone waits at cold start, and says so in its log once
// (it said nothing: only its status's decision told why it took no role, and it looked hung).
func TestColdWaitLogged(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site1", 1, freeAddr(t), freeAddr(t))
	var logs logBuffer
	n := run(t, cfg, Options{Logger: logs.logger()})
	waitFor(t, coldWaitLogAfter+3*time.Second, "the cold-start wait logged", func() bool {
		return strings.Contains(logs.String(), "waiting at cold start")
	})
	if s := n.State(); s.Role != RoleStarting || !s.Cold {
		t.Errorf("alone: role %q cold %v, want starting and cold", s.Role, s.Cold)
	}
	time.Sleep(time.Second)
	if c := strings.Count(logs.String(), "waiting at cold start"); c != 1 {
		t.Errorf("the cold-start wait logged %d times, want once", c)
	}
}
