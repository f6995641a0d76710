package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"time"
)

// Target says who is master now; the role controller pushes it with
// SetMaster.
type Target struct {
	Term      uint64
	Site      string            // "": no master (election or handover in progress)
	Endpoints map[string]string // the master's server endpoints by name (host:port)
	// Draining, with no master (Site ""), is a master handing over (DESIGN §3 handover) whose
	// drain is under way: the connections made to its server stay, for the requests they are
	// being served to finish, and are cut once it is "" again; no new one goes there.
	Draining string
}

// addr returns the master's address for the named endpoint.
func (t Target) addr(endpoint string) (string, bool) {
	if t.Site == "" {
		return "", false
	}
	a, ok := t.Endpoints[endpoint]
	return a, ok && a != ""
}

// route is where a connection goes: a master's address for an endpoint. The
// site counts as well as the address: both sites may give the same address (a
// service address that on_promote moves, a DNS name that follows the master),
// and a connection made to one master must not outlive its role.
type route struct{ site, addr string }

// route returns where connections to endpoint go now.
func (t Target) route(endpoint string) (route, bool) {
	a, ok := t.addr(endpoint)
	return route{t.Site, a}, ok
}

func (t Target) equal(o Target) bool {
	return t.Term == o.Term && t.Site == o.Site && t.Draining == o.Draining && maps.Equal(t.Endpoints, o.Endpoints)
}

// keeps tells whether a connection made to r stays under t: t routes its endpoint to r (a
// new term of the same master), or r is the server of a master whose handover drains.
func (t Target) keeps(endpoint string, r route) bool {
	if cur, ok := t.route(endpoint); ok {
		return cur == r
	}
	return t.Site == "" && t.Draining != "" && r.site == t.Draining
}

// retry pauses between failed dials to the master's address: its server may
// be restarting while the role changes.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 500 * time.Millisecond
)

// errNoMaster is why a connection is refused after connect_timeout.
var errNoMaster = errors.New("no master")

// errSelfDial refuses a dial to one of the proxy's own listeners. A master
// endpoint that is this proxy's listen address (two processes given the same
// port, say) would otherwise have each accepted connection dial the next
// until the process runs out of file descriptors.
var errSelfDial = errors.New("the master's address is this proxy's own listener")

// ownAddress tells whether address (the resolved ip:port a dial is about to
// connect to) reaches one of s's listeners: the same address, or the same
// port on a wildcard listener and an address of this host.
func (s *Server) ownAddress(address string) bool {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	switch { // a connect to 0.0.0.0 or :: reaches the loopback address
	case ip.IsUnspecified() && ip.Is4():
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case ip.IsUnspecified():
		ip = netip.IPv6Loopback()
	}
	for _, l := range s.own {
		if l.Port() != ap.Port() {
			continue
		}
		lip := l.Addr().Unmap()
		if lip == ip || lip.IsUnspecified() && localIP(ip) {
			return true
		}
	}
	return false
}

// localIP tells whether ip is an address of this host.
func localIP(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(p.IP); ok && x.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// SetMaster records the current master. Connections made while another site
// was master, or to an address that is no longer the master's for their
// endpoint, are closed at once, both ways, so their clients reconnect and land
// on the new master (DESIGN.md §4), even where both sites give the same
// address; those to the same master at the same address are kept (a new term
// of the same master), and so are those to a master handing over while its
// drain lasts (Target.Draining), until a target without it: those then take no
// more of the operator's bytes, pass on what the server wrote, and are reset once
// the operator has it, within drainEndBound (conn.endDrain). Connections
// waiting for a master are woken. Safe from any goroutine; repeating the
// current target costs a map comparison.
func (s *Server) SetMaster(t Target) {
	t.Endpoints = maps.Clone(t.Endpoints)
	s.mu.Lock()
	if s.target.equal(t) {
		s.mu.Unlock()
		return
	}
	old := s.target
	s.target = t
	s.selfDialWarned = ""
	close(s.changed)
	s.changed = make(chan struct{})
	var victims, drained []*conn
	for c := range s.conns {
		r, ok := t.route(c.ln.cfg.Endpoint)
		if c.dialCancel != nil && (!ok || r != c.dialing) {
			// Cleared as well: connect drops what this dial makes even if it had
			// connected already and the master is back where it dialled by the time
			// it looks (A, B, A) — B's turn cut every other connection to A.
			c.dialCancel()
			c.dialing, c.dialCancel = route{}, nil
		}
		if c.to == (route{}) || c.cut || c.idle || c.stalled {
			continue // not connected, or closed already and on its way out
		}
		if t.keeps(c.ln.cfg.Endpoint, c.to) {
			continue
		}
		c.cut = true
		if old.keeps(c.ln.cfg.Endpoint, c.to) && old.Site == "" {
			c.endBy = time.Now().Add(drainEndBound)
			drained = append(drained, c) // kept by the drain that just ended
			continue
		}
		victims = append(victims, c)
	}
	s.mu.Unlock()

	for _, c := range victims {
		c.abort()
	}
	for _, c := range drained {
		c.endDrain()
	}
	if len(victims)+len(drained) > 0 {
		s.log.Info("master changed; cut connections to the old master",
			"cut", len(victims)+len(drained), "drain_ended", len(drained), "old_master", old.Site, "old_term", old.Term, "master", t.Site, "term", t.Term, "draining", t.Draining)
	} else {
		s.log.Debug("master changed", "master", t.Site, "term", t.Term)
	}
}

// connect waits up to connect_timeout for a master with an address for c's
// endpoint and dials it, retrying failed dials until then. The returned
// connection is registered in c, so cuts and shutdown reach it. While it
// waits, it watches the client (clientWatch) and gives up when the client
// leaves. pending is what the client sent after its PROXY header; sent adds
// what it sent meanwhile.
func (s *Server) connect(ctx context.Context, c *conn, pending []byte) (up *net.TCPConn, addr string, sent []byte, err error) {
	ctx, watch := watchClient(ctx, c.client, pending)
	defer func() { sent = watch.stop() }()
	waiting := watch.start // before each wait; a slow dial starts it by itself
	ep := c.ln.cfg.Endpoint
	deadline := time.Now().Add(s.cfg.ConnectTimeout)
	timer := time.NewTimer(s.cfg.ConnectTimeout)
	defer timer.Stop()
	pause := retryMin
	var lastErr error = errNoMaster
	for {
		s.mu.Lock()
		r, ok := s.target.route(ep)
		addr := r.addr
		changed := s.changed
		var dctx context.Context
		var cancel context.CancelFunc
		if ok {
			dctx, cancel = context.WithDeadline(ctx, deadline)
			c.dialing, c.dialCancel = r, cancel
		}
		s.mu.Unlock()

		if ok {
			nc, err := s.dialer.DialContext(dctx, "tcp", addr)
			cancel()
			s.mu.Lock()
			moved := c.dialCancel == nil // SetMaster moved the master away from r meanwhile
			c.dialing, c.dialCancel = route{}, nil
			cur, curOK := s.target.route(ep)
			if err == nil {
				if !moved && curOK && cur == r && !s.closed {
					up := nc.(*net.TCPConn)
					c.up.Store(up)
					c.to = r
					s.mu.Unlock()
					return up, addr, pending, nil
				}
				err = fmt.Errorf("master moved away from %s while dialing", addr)
			}
			s.mu.Unlock()
			if nc != nil {
				nc.Close()
			}
			lastErr = fmt.Errorf("dial master's %s at %s: %w", ep, addr, err)
			if ctx.Err() != nil {
				return nil, "", nil, context.Cause(ctx)
			}
			if !time.Now().Before(deadline) {
				return nil, "", nil, fmt.Errorf("after %v: %w", s.cfg.ConnectTimeout, lastErr)
			}
			if curOK && cur != r {
				continue // a new master already: try it at once
			}
			if errors.Is(err, errSelfDial) {
				s.warnSelfDial(ep, addr)
				waiting()
				// Dialling again cannot help: wait for another master.
				select {
				case <-changed:
				case <-timer.C:
					return nil, "", nil, fmt.Errorf("after %v: %w", s.cfg.ConnectTimeout, lastErr)
				case <-ctx.Done():
					return nil, "", nil, context.Cause(ctx)
				}
				continue
			}
			waiting()
			retry := time.NewTimer(pause)
			pause = min(2*pause, retryMax)
			select {
			case <-retry.C:
			case <-changed:
				retry.Stop()
			case <-timer.C:
				retry.Stop()
				return nil, "", nil, fmt.Errorf("after %v: %w", s.cfg.ConnectTimeout, lastErr)
			case <-ctx.Done():
				retry.Stop()
				return nil, "", nil, context.Cause(ctx)
			}
			continue
		}

		waiting()
		select {
		case <-changed:
		case <-timer.C:
			return nil, "", nil, fmt.Errorf("no master for endpoint %s within %v: %w", ep, s.cfg.ConnectTimeout, lastErr)
		case <-ctx.Done():
			return nil, "", nil, context.Cause(ctx)
		}
	}
}

// warnSelfDial logs, once per address and master, that the master's endpoint is this
// proxy's own listener: a configuration clash an operator must mend.
func (s *Server) warnSelfDial(ep, addr string) {
	s.mu.Lock()
	seen := s.selfDialWarned == addr
	s.selfDialWarned = addr
	site := s.target.Site
	s.mu.Unlock()
	if !seen {
		s.log.Error("the master's endpoint is this proxy's own listen address: not dialling it; operators wait for another master",
			"endpoint", ep, "address", addr, "master", site)
	}
}
