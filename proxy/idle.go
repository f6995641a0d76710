package proxy

import (
	"context"
	"time"
)

// sweepIdle closes connections that moved no byte either way for
// idle_timeout. The copy loop itself carries no timer or deadline, so it stays
// on splice: the kernel keeps each socket's time since data was last sent and
// received (TCP_INFO), and this one goroutine reads it a few times per
// timeout period.
func (s *Server) sweepIdle(ctx context.Context) {
	defer s.wg.Done()
	limit := s.cfg.IdleTimeout
	period := min(max(limit/4, 20*time.Millisecond), 2*time.Second)
	tick := time.NewTicker(period)
	defer tick.Stop()
	var batch []*conn
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		batch = batch[:0]
		s.mu.Lock()
		for c := range s.conns {
			// From the dial on, the first write too: it may wait for a server that does not read.
			if c.to != (route{}) {
				batch = append(batch, c)
			}
		}
		s.mu.Unlock()

		closed := 0
		for _, c := range batch {
			if !s.idleFor(c, limit) {
				continue
			}
			s.mu.Lock()
			mark := !c.cut && !c.idle
			c.idle = mark
			s.mu.Unlock()
			if mark {
				c.abort()
				closed++
			}
		}
		if closed > 0 {
			s.log.Info("closed idle connections", "count", closed, "idle_timeout", limit)
		}
		clear(batch) // drop references to finished conns
	}
}

// idleFor reports whether both sockets of c have been without data, sent or
// received, for at least limit. A socket whose state cannot be read counts as
// active: only a positive measurement closes a connection.
func (s *Server) idleFor(c *conn, limit time.Duration) bool {
	if time.Since(c.start) < limit {
		return false
	}
	up := c.upstreamConn()
	if up == nil {
		return false
	}
	a, ok := sinceData(c.client)
	if !ok || a < limit {
		return false
	}
	b, ok := sinceData(up)
	return ok && b >= limit
}
