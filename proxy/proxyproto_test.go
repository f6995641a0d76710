package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// seen is what a PROXY-aware backend received on one connection.
type seen struct {
	raw  []byte // the header bytes exactly
	hdr  *proxyproto.Header
	err  error
	rest string // the first line after the header
}

// headerBackend parses a PROXY header, reports it, then echoes lines.
func headerBackend(t *testing.T) (*backend, chan seen) {
	got := make(chan seen, 4)
	b := startBackend(t, "", func(c net.Conn) {
		rec := &recorder{r: c}
		br := bufio.NewReader(rec)
		hdr, err := proxyproto.Read(br)
		var sn seen
		sn.hdr, sn.err = hdr, err
		if err == nil {
			sn.raw = rec.buf[:len(rec.buf)-br.Buffered()]
			line, _ := br.ReadString('\n')
			sn.rest = strings.TrimSuffix(line, "\n")
		}
		got <- sn
		if err == nil {
			_, _ = io.WriteString(c, sn.rest+"\n")
			_, _ = io.Copy(c, br)
		}
	})
	return b, got
}

type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

func wait(t *testing.T, ch chan seen) seen {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("backend saw no connection")
	}
	return seen{}
}

func TestSendProxy(t *testing.T) {
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			b, got := headerBackend(t)
			s, addrs := startProxy(t, testConfig(ops("off", v)), nil)
			s.SetMaster(master("site1", b.addr))
			c := dial(t, addrs[0])
			c.roundTrip(t, "ping")

			sn := wait(t, got)
			if sn.err != nil {
				t.Fatalf("backend could not read a PROXY header: %v", sn.err)
			}
			cl := c.LocalAddr().(*net.TCPAddr)  // the operator
			px := c.RemoteAddr().(*net.TCPAddr) // what it connected to
			var want []byte
			if v == "v1" {
				want = fmt.Appendf(nil, "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n", cl.Port, px.Port)
			} else {
				want = append([]byte{}, proxyproto.SIGV2...)
				want = append(want, 0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 1,
					byte(cl.Port>>8), byte(cl.Port), byte(px.Port>>8), byte(px.Port))
			}
			if string(sn.raw) != string(want) {
				t.Fatalf("header bytes\n got %q\nwant %q", sn.raw, want)
			}
			if sn.hdr.SourceAddr.String() != cl.String() {
				t.Fatalf("source %v, want the client %v", sn.hdr.SourceAddr, cl)
			}
			if sn.rest != "ping" {
				t.Fatalf("data after header %q, want ping", sn.rest)
			}
		})
	}
}

func TestAcceptProxyTrustedForwarded(t *testing.T) {
	for _, mode := range []string{"optional", "required"} {
		t.Run(mode, func(t *testing.T) {
			b, got := headerBackend(t)
			s, addrs := startProxy(t, testConfig(ops(mode, "v2")), nil)
			s.SetMaster(master("site1", b.addr))
			c := dial(t, addrs[0])
			// Header and first data in one segment: the data buffered past
			// the header must reach the server too.
			if _, err := io.WriteString(c, "PROXY TCP4 203.0.113.7 192.0.2.1 4242 7100\r\nping\n"); err != nil {
				t.Fatal(err)
			}
			if got := c.line(t); got != "ping" {
				t.Fatalf("echo %q", got)
			}
			c.roundTrip(t, "more")
			sn := wait(t, got)
			if sn.err != nil {
				t.Fatal(sn.err)
			}
			if sn.hdr.SourceAddr.String() != "203.0.113.7:4242" || sn.hdr.DestinationAddr.String() != "192.0.2.1:7100" {
				t.Fatalf("forwarded %v -> %v, want the operator's 203.0.113.7:4242 -> 192.0.2.1:7100",
					sn.hdr.SourceAddr, sn.hdr.DestinationAddr)
			}
		})
	}
}

// TestAcceptProxyV1Split: a v1 header that arrives in two segments was refused as malformed
// (go-proxyproto parses a v1 line from what one read gave); it is read to its end first now.
func TestAcceptProxyV1Split(t *testing.T) {
	b, got := headerBackend(t)
	s, addrs := startProxy(t, testConfig(ops("required", "v2")), nil)
	s.SetMaster(master("site1", b.addr))
	c := dial(t, addrs[0])
	if _, err := io.WriteString(c, "PROXY TCP4 203."); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the proxy reads the first part alone
	if _, err := io.WriteString(c, "0.113.7 192.0.2.1 4242 7100\r\nping\n"); err != nil {
		t.Fatal(err)
	}
	if got := c.line(t); got != "ping" {
		t.Fatalf("echo %q", got)
	}
	if sn := wait(t, got); sn.err != nil || sn.hdr.SourceAddr.String() != "203.0.113.7:4242" {
		t.Fatalf("forwarded header %+v (%v), want the operator's 203.0.113.7:4242", sn.hdr, sn.err)
	}
}

func TestAcceptProxyV2In(t *testing.T) {
	b, got := headerBackend(t)
	s, addrs := startProxy(t, testConfig(ops("required", "v1")), nil)
	s.SetMaster(master("site1", b.addr))
	c := dial(t, addrs[0])
	in := proxyproto.HeaderProxyFromAddrs(2,
		&net.TCPAddr{IP: net.ParseIP("198.51.100.9"), Port: 5555},
		&net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 7100})
	if _, err := in.WriteTo(c); err != nil {
		t.Fatal(err)
	}
	c.roundTrip(t, "v2 in")
	sn := wait(t, got)
	if string(sn.raw) != "PROXY TCP4 198.51.100.9 198.51.100.1 5555 7100\r\n" {
		t.Fatalf("forwarded header %q", sn.raw)
	}
}

func TestAcceptProxyRefusals(t *testing.T) {
	untrusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		name    string
		mode    string
		trusted []netip.Prefix
		send    string // "" sends nothing
		within  time.Duration
	}{
		{"optional header from untrusted", "optional", untrusted, "PROXY TCP4 203.0.113.7 192.0.2.1 4242 7100\r\nping\n", time.Second},
		{"required from untrusted", "required", untrusted, "ping\n", time.Second},
		// Refused at accept, without waiting for the header timeout (300ms).
		{"required from untrusted, silent", "required", untrusted, "", 150 * time.Millisecond},
		{"required without header", "required", nil, "ping\n", time.Second},
		{"required silent client", "required", nil, "", 2 * time.Second},
		{"required malformed header", "required", nil, "PROXY TCP4 nonsense\r\n", time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBackend(t, "", greetEcho("A"))
			cfg := testConfig(ops(tc.mode, "off"))
			if tc.trusted != nil {
				cfg.TrustedCIDRs = tc.trusted
			}
			s, addrs := startProxy(t, cfg, func(s *Server) { s.headerTimeout = 300 * time.Millisecond })
			s.SetMaster(master("site1", b.addr))
			c := dial(t, addrs[0])
			if tc.send != "" {
				if _, err := io.WriteString(c, tc.send); err != nil {
					t.Fatal(err)
				}
			}
			c.closedWithin(t, tc.within)
			eventually(t, time.Second, "refused count", func() bool { return s.Stats().Refused == 1 })
			if b.accepted() != 0 {
				t.Fatal("a refused connection reached the server")
			}
		})
	}
}

func TestAcceptProxyOptionalWithoutHeader(t *testing.T) {
	for _, msg := range []string{"hello", "P", "\r\n"} { // the last two start like a signature
		t.Run(fmt.Sprintf("%q", msg), func(t *testing.T) {
			b := startBackend(t, "", func(c net.Conn) { _, _ = io.Copy(c, c) })
			s, addrs := startProxy(t, testConfig(ops("optional", "off")), func(s *Server) { s.headerTimeout = 300 * time.Millisecond })
			s.SetMaster(master("site1", b.addr))
			c := dial(t, addrs[0])
			start := time.Now()
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != msg {
				t.Fatalf("echo %q, %v; want %q", buf, err, msg)
			}
			// Bytes that cannot start a signature go through at once; a
			// signature prefix waits for more or for the header timeout.
			if msg == "hello" && time.Since(start) > 200*time.Millisecond {
				t.Fatalf("took %v: a plain client must not wait for the header timeout", time.Since(start))
			}
		})
	}
}

// With accept_proxy = "optional", a client that closes before sending anything (a load
// balancer's TCP health check, say) is seen to leave while the proxy looks for a header: the
// server is not dialled for it.
func TestAcceptProxyOptionalClientLeft(t *testing.T) {
	b := startBackend(t, "", greetEcho("A"))
	s, addrs := startProxy(t, testConfig(ops("optional", "v1")), nil)
	s.SetMaster(master("site1", b.addr))
	c := dial(t, addrs[0])
	c.Close()
	eventually(t, 2*time.Second, "refused count", func() bool {
		st := s.Stats()
		return st.Active == 0 && st.Refused == 1
	})
	time.Sleep(100 * time.Millisecond)
	if n := b.accepted(); n != 0 {
		t.Fatalf("the server got %d connections for a client that had left", n)
	}
}
