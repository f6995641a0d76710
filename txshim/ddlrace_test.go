package txshim

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// TestDDLWaitSkipsReadStartedBefore: the statement that finds the lists due after DDL waits for
// them to be read again; when a read was in progress already — begun before the DDL, so blind
// to what it made — the statement waited for that read and went on with its lists, and the
// DDL counted as seen: the next statements too kept lists without the trigger the DDL made,
// until FuncRefresh. A read begun before the DDL now leaves another due, which they wait for.
func TestDDLWaitSkipsReadStartedBefore(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	trigger := false // committed DDL: jobs has a trigger that notifies
	f := newWriterFuncs(nil, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.load = func(context.Context) (*catalogInfo, error) {
		mu.Lock()
		seen := trigger // the read's snapshot
		mu.Unlock()
		time.Sleep(3 * ddlReread)
		cat := &catalogInfo{funcs: map[string]bool{}, writeViews: map[string]struct{}{}, notifyRels: map[string]struct{}{}}
		if seen {
			cat.notifyRels["jobs"] = struct{}{}
		}
		return cat, nil
	}
	defer f.stop()
	f.mu.Lock()
	first := f.refreshLocked()
	f.mu.Unlock()
	<-first
	f.mu.Lock()
	f.refreshLocked() // a read in progress (FuncRefresh), before the DDL
	f.mu.Unlock()
	time.Sleep(10 * time.Millisecond)
	mu.Lock()
	trigger = true
	mu.Unlock()
	f.noteDDL(&statement{Kind: kindDDL}, "CREATE TRIGGER jobs_t AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_n()")
	time.Sleep(ddlReread + 10*time.Millisecond)
	for i := 0; i < 2; i++ {
		st := statement{Kind: kindWrite, Names: []string{"jobs"}}
		f.check(&st)
		if !st.Unpreparable {
			t.Errorf("write %d to jobs after the DDL: not marked as one that cannot be prepared", i)
		}
	}
}
