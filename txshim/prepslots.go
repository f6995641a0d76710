package txshim

import (
	"context"
	"sync"
)

// prepSlots bounds the dual commits that hold a prepared transaction on the local database at
// once — from their PREPARE TRANSACTION to their COMMIT (or ROLLBACK) PREPARED, the peer's
// prepare in between — to the database's max_prepared_transactions, as each commit's check
// reads it (0: not read yet, no bound). Past it a PREPARE fails (53200, "maximum number of
// prepared transactions reached") and the client's transaction is lost with it: a commit
// waits for one instead (TestLocalPreparedSlots). Prepared transactions that are not the
// sessions' (left in doubt for the resolver, another database's) are not counted; PREPARE
// still fails for those.
type prepSlots struct {
	mu   sync.Mutex
	held int
	max  int
	free chan struct{} // closed and replaced when one is given back or the bound rises
}

// setMax sets the bound.
func (p *prepSlots) setMax(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > p.max {
		p.wakeLocked()
	}
	p.max = n
}

func (p *prepSlots) wakeLocked() {
	if p.free != nil {
		close(p.free)
		p.free = nil
	}
}

// tryTake takes one unless they are all held.
func (p *prepSlots) tryTake() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.max > 0 && p.held >= p.max {
		return false
	}
	p.held++
	return true
}

// take takes one, waiting while they are all held until ctx ends.
func (p *prepSlots) take(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.max <= 0 || p.held < p.max {
			p.held++
			p.mu.Unlock()
			return nil
		}
		if p.free == nil {
			p.free = make(chan struct{})
		}
		free := p.free
		p.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives one back.
func (p *prepSlots) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held--
	p.wakeLocked()
}

// limit is the bound (0: none).
func (p *prepSlots) limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}
