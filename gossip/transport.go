package gossip

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// stoppableTransport is memberlist's network transport whose stream dials end when the node
// stops. memberlist's own dial cannot be cancelled: a Join to a peer whose host drops packets
// (a site cut off, its address blackholed) lasts the profile's TCPTimeout, 10 s with lan and
// 30 s with wan, and Run, which waits for the re-join loop, waited for it after SIGTERM, with
// the handover done but Leave and the exit held back.
type stoppableTransport struct {
	*memberlist.NetTransport // everything else, NodeAwareTransport's other methods included
	ctx                      context.Context
}

// newStoppableTransport binds memberlist's NetTransport (bindNetTransport) with dials that
// end with ctx.
func newStoppableTransport(ctx context.Context, c *memberlist.Config) (*stoppableTransport, error) {
	nt, err := bindNetTransport(c)
	if err != nil {
		return nil, err
	}
	return &stoppableTransport{NetTransport: nt, ctx: ctx}, nil
}

// bindNetTransport binds memberlist's NetTransport as memberlist.Create would (a few tries for
// port 0, whose TCP port may be taken for UDP) and sets c's ports from it.
func bindNetTransport(c *memberlist.Config) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{c.BindAddr}, BindPort: c.BindPort, Logger: c.Logger}
	tries := 1
	if c.BindPort == 0 {
		tries = 10
	}
	var nt *memberlist.NetTransport
	var err error
	for range tries {
		if nt, err = memberlist.NewNetTransport(nc); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		// Named by its key and address: a port another process holds (a second sidecar on
		// this host, another member's) is the usual cause, and memberlist's own words name
		// neither the file's key nor, for a host name, what was configured.
		return nil, fmt.Errorf("gossip.bind %s: cannot listen for gossip: %w", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)), err)
	}
	if c.BindPort == 0 {
		c.BindPort = nt.GetAutoBindPort()
		if c.AdvertisePort == 0 {
			c.AdvertisePort = c.BindPort
		}
	}
	return nt, nil
}

func (t *stoppableTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(t.ctx, "tcp", a.Addr)
}

func (t *stoppableTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}
