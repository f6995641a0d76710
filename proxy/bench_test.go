package proxy

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// sink reads everything, then answers one byte so the writer knows all
// bytes arrived.
func sink(c net.Conn) {
	if _, err := io.Copy(io.Discard, c); err == nil {
		_, _ = c.Write([]byte{1})
	}
}

// BenchmarkProxyThroughput pushes 64 KiB writes through one connection,
// directly and through the proxy, to compare the two in one run:
//
//	go test -run - -bench ProxyThroughput ./proxy
func BenchmarkProxyThroughput(b *testing.B) {
	srv := startBackend(b, "", sink)
	_, addrs := startProxy(b, testConfig(ops("off", "off")), func(s *Server) {
		s.SetMaster(master("site1", srv.addr))
	})
	chunk := make([]byte, 64<<10)
	for _, bc := range []struct{ name, addr string }{{"direct", srv.addr}, {"proxy", addrs[0]}} {
		b.Run(bc.name, func(b *testing.B) {
			c := dial(b, bc.addr)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.CloseWrite(); err != nil {
				b.Fatal(err)
			}
			if _, err := c.br.ReadByte(); err != nil {
				b.Fatalf("sink did not confirm: %v", err)
			}
		})
	}
}

// memInUse is the Go memory that idle connections hold: heap and stacks.
func memInUse() uint64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// TestIdleConnMemory measures what one idle proxied connection costs the
// proxy: Go memory with n connections through the proxy minus the same n
// connections made directly (both include the test's clients and backend).
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("memory figure: not in -short or -race runs")
	}
	const n = 1000
	// The backend reads the byte each client sends, then parks in another
	// 1-byte read: small stacks. The byte makes each connection carry data
	// once, as an operator's idle connection has, before it idles.
	srv := startBackend(t, "", func(c net.Conn) {
		b := make([]byte, 1)
		if _, err := c.Read(b); err == nil {
			_, _ = c.Read(b)
		}
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", srv.addr))

	open := func(addr string) []net.Conn {
		cs := make([]net.Conn, 0, n)
		for range n {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatalf("dial %s: %v", addr, err)
			}
			if _, err := c.Write([]byte{1}); err != nil {
				t.Fatalf("write %s: %v", addr, err)
			}
			cs = append(cs, c)
		}
		eventually(t, 10*time.Second, "backend to accept all", func() bool { return srv.activeCount() >= n })
		return cs
	}
	closeAll := func(cs []net.Conn) {
		for _, c := range cs {
			c.Close()
		}
		eventually(t, 10*time.Second, "backend to drop all", func() bool { return srv.activeCount() == 0 })
	}

	base := memInUse()
	direct := open(srv.addr)
	directCost := memInUse() - base
	closeAll(direct)

	base = memInUse()
	proxied := open(addrs[0])
	eventually(t, 10*time.Second, "proxy to copy all", func() bool { return s.Stats().Active == n })
	time.Sleep(100 * time.Millisecond) // let every copy goroutine forward its byte and park in splice
	proxiedCost := memInUse() - base
	t.Cleanup(func() { closeAll(proxied) })

	per := (int64(proxiedCost) - int64(directCost)) / n
	t.Logf("idle proxied connection: %d bytes of Go memory in the proxy (direct %d B/conn, proxied %d B/conn including clients and backend)",
		per, directCost/n, proxiedCost/n)
	if per > 20<<10 {
		t.Errorf("%d bytes per idle connection, want at most 20 KiB", per)
	}
}
