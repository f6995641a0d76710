package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/tandem-ha/tandem/config"
)

// headerBufSize holds a whole v1 header (v1MaxLen), which go-proxyproto
// needs to find in a single read (fillV1Line); v2 headers are read through it in pieces.
const headerBufSize = 256

var (
	errUntrusted = errors.New("PROXY header from a source outside proxy.trusted_cidrs")
	errNoHeader  = errors.New("no PROXY header (accept_proxy = required)")
)

// acceptHeader applies a listener's accept_proxy rule to a new connection.
// It returns the header (nil when there was none) and the bytes the client
// sent after it, which must reach the server before anything else.
func (s *Server) acceptHeader(c *net.TCPConn, mode string) (*proxyproto.Header, []byte, error) {
	if mode == config.ProxyOff {
		return nil, nil, nil
	}
	trusted := s.trusted(c.RemoteAddr())
	if mode == config.ProxyRequired && !trusted {
		return nil, nil, errUntrusted
	}
	if err := c.SetReadDeadline(time.Now().Add(s.headerTimeout)); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(c, headerBufSize)
	present, err := sniffHeader(br)
	var hdr *proxyproto.Header
	switch {
	case err != nil && !isTimeout(err) && !errors.Is(err, io.EOF):
		return nil, nil, fmt.Errorf("read PROXY header: %w", err)
	case errors.Is(err, io.EOF) && br.Buffered() == 0:
		// Closed without a byte (a load balancer's health check, a client that gave
		// up): there is nobody to dial the server for (as clientWatch decides too).
		return nil, nil, fmt.Errorf("%w: %w", errClientLeft, err)
	case err != nil || !present:
		// Nothing, or something that is not a PROXY header, arrived.
		if mode == config.ProxyRequired {
			return nil, nil, errNoHeader
		}
	case !trusted:
		return nil, nil, errUntrusted
	default:
		if err := fillV1Line(br); err != nil {
			return nil, nil, fmt.Errorf("read PROXY header: %w", err)
		}
		hdr, err = proxyproto.Read(br)
		if err != nil {
			return nil, nil, fmt.Errorf("read PROXY header: %w", err)
		}
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, nil, err
	}
	var pending []byte
	if n := br.Buffered(); n > 0 {
		pending = make([]byte, n)
		_, _ = io.ReadFull(br, pending) // only buffered bytes: cannot fail
	}
	return hdr, pending, nil
}

// sniffHeader reports whether the stream starts with a PROXY v1 or v2
// signature, reading only as many bytes as it takes to tell: a client whose
// first bytes cannot begin a signature is answered at once, without waiting
// for five or twelve bytes it may never send.
func sniffHeader(br *bufio.Reader) (bool, error) {
	want := 1
	for {
		b, err := br.Peek(want)
		if err != nil {
			return false, err
		}
		b, _ = br.Peek(br.Buffered())
		v1 := bytes.HasPrefix(proxyproto.SIGV1, b[:min(len(b), len(proxyproto.SIGV1))])
		v2 := bytes.HasPrefix(proxyproto.SIGV2, b[:min(len(b), len(proxyproto.SIGV2))])
		switch {
		case v1 && len(b) >= len(proxyproto.SIGV1), v2 && len(b) >= len(proxyproto.SIGV2):
			return true, nil
		case !v1 && !v2:
			return false, nil
		}
		want = len(b) + 1
	}
}

// v1MaxLen is the longest v1 header, CRLF included (the PROXY protocol's spec).
const v1MaxLen = 107

// fillV1Line reads on, for a v1 header, until its line end or its longest length is buffered:
// go-proxyproto parses a v1 header from what one read gave, and refused one a sender split
// across segments (a v2 header it reads in pieces). A v2 header is left as it is.
func fillV1Line(br *bufio.Reader) error {
	for {
		b, _ := br.Peek(br.Buffered())
		if !bytes.HasPrefix(b, proxyproto.SIGV1) || bytes.IndexByte(b, '\n') >= 0 || len(b) >= v1MaxLen {
			return nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			return err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// trusted reports whether addr may send a PROXY header.
func (s *Server) trusted(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// operatorAddrs returns the operator's address and the address it connected
// to: from the PROXY header when it carried TCP addresses, else the socket's.
func operatorAddrs(c *net.TCPConn, hdr *proxyproto.Header) (src, dst net.Addr) {
	if hdr != nil && hdr.Command.IsProxy() {
		if s, d, ok := hdr.TCPAddrs(); ok {
			return s, d
		}
	}
	return c.RemoteAddr(), c.LocalAddr()
}

// outgoingHeader renders the PROXY header a listener's send_proxy asks for;
// nil for "off".
func outgoingHeader(mode string, src, dst net.Addr) ([]byte, error) {
	var v byte
	switch mode {
	case config.ProxyV1:
		v = 1
	case config.ProxyV2:
		v = 2
	default:
		return nil, nil
	}
	b, err := proxyproto.HeaderProxyFromAddrs(v, src, dst).Format()
	if err != nil {
		return nil, fmt.Errorf("format PROXY v%d header for %s: %w", v, src, err)
	}
	return b, nil
}
