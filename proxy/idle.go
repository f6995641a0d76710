package proxy

import (
	"context"
	"time"
)

// sweep closes connections that moved no byte either way for idle_timeout, and those
// with a side that left what was sent to it without any ACK for stallTimeout (a peer
// gone in the middle of a reply, which keepalive does not probe). The copy loop itself
// carries no timer or deadline, so it stays on splice: the kernel keeps each socket's
// time since data was last sent and received and since it last got an ACK (TCP_INFO),
// and this one goroutine reads them a few times per timeout period.
func (s *Server) sweep(ctx context.Context) {
	defer s.wg.Done()
	limit := s.cfg.IdleTimeout
	period := stallTimeout / 6
	if limit > 0 {
		period = min(period, max(limit/4, 20*time.Millisecond), 2*time.Second)
	}
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

		idle, stalls := 0, 0
		for _, c := range batch {
			isIdle := limit > 0 && s.idleFor(c, limit)
			// Stalled at two looks in a row: a live peer answers a retransmission or a window
			// probe within its round trip, one caught in flight at one look is answered by the
			// next.
			seen := c.stallSeen
			c.stallSeen = !isIdle && stalledConn(c)
			isStalled := seen && c.stallSeen
			if !isIdle && !isStalled {
				continue
			}
			s.mu.Lock()
			mark := !c.cut && !c.idle && !c.stalled
			if mark {
				c.idle, c.stalled = isIdle, !isIdle
			}
			s.mu.Unlock()
			if !mark {
				continue
			}
			c.abort()
			if isIdle {
				idle++
			} else {
				stalls++
			}
		}
		if idle > 0 {
			s.log.Info("closed idle connections", "count", idle, "idle_timeout", limit)
		}
		if stalls > 0 {
			s.log.Info("closed connections a side of which left sent data unacknowledged (peer gone)", "count", stalls, "after", stallTimeout)
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

// stalledConn reports whether a side of c has left what was sent to it without any ACK
// for stallTimeout (stalled).
func stalledConn(c *conn) bool {
	if stalled(c.client, stallTimeout) {
		return true
	}
	up := c.upstreamConn()
	return up != nil && stalled(up, stallTimeout)
}
