package gossip

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// cutTransport is memberlist's network transport with links that can be cut, for tests that
// partition the network between real processes (Options.Cut): packets to and from a cut
// address are dropped and dials to it time out, as a link that drops everything would. A
// stream cannot be told by its source (its port is an ephemeral one), so a test cuts a link
// on both of its ends.
//
// It implements memberlist.Transport only, not NodeAwareTransport, whose extra methods would
// reach the network without the filter; memberlist wraps it.
type cutTransport struct {
	nt      *memberlist.NetTransport
	cut     func(addr string) bool
	packets chan *memberlist.Packet
	done    chan struct{} // closed when Shutdown starts: packets are dropped from then
	stopped chan struct{} // closed when the NetTransport is down: filter returns
	once    sync.Once
}

func newCutTransport(c *memberlist.Config, cut func(string) bool) (*cutTransport, error) {
	nt, err := bindNetTransport(c)
	if err != nil {
		return nil, err
	}
	t := &cutTransport{nt: nt, cut: cut, packets: make(chan *memberlist.Packet), done: make(chan struct{}), stopped: make(chan struct{})}
	go t.filter()
	return t, nil
}

// filter passes on the packets that did not come from a cut address. It reads the
// NetTransport until that is down: its listeners wait for each packet to be taken, and its
// Shutdown waits for them.
func (t *cutTransport) filter() {
	for {
		select {
		case p := <-t.nt.PacketCh():
			if t.cut(p.From.String()) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.done: // shutting down: dropped
			}
		case <-t.stopped:
			return
		}
	}
}

func (t *cutTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.nt.FinalAdvertiseAddr(ip, port)
}

func (t *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.cut(addr) {
		return time.Now(), nil // sent, and lost on the way
	}
	return t.nt.WriteTo(b, addr)
}

func (t *cutTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.cut(addr) {
		select {
		case <-time.After(timeout):
		case <-t.done:
		}
		return nil, fmt.Errorf("dial tcp %s: i/o timeout (link cut)", addr)
	}
	return t.nt.DialTimeout(addr, timeout)
}

func (t *cutTransport) StreamCh() <-chan net.Conn { return t.nt.StreamCh() }

func (t *cutTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.done)
		err = t.nt.Shutdown()
		close(t.stopped)
	})
	return err
}
