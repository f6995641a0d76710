package txshim

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// slowReader lets a client read at most rate bytes a second until slowUntil, then as fast as
// the connection gives.
type slowReader struct {
	r         io.Reader
	rate      int
	slowUntil time.Time
}

func (s *slowReader) Read(p []byte) (int, error) {
	if time.Now().Before(s.slowUntil) {
		const tick = 100 * time.Millisecond
		n := s.rate / int(time.Second/tick)
		time.Sleep(tick)
		p = p[:min(len(p), n)]
	}
	return s.r.Read(p)
}

// TestSlowReaderAfterBackendEnd: a client that reads a large result slowly but steadily gets
// all of it, as from PostgreSQL, whose kernel delivers what the backend sent before its end
// however slowly the client reads — here a backend that ended normally, after the client
// half-closed its socket behind its query. The shim's clientWriter took a write blocked for
// clientStall (a 64 KiB chunk not yet taken by the kernel, whose buffers a slow reader keeps
// full) for a client that reads nothing, and, its backend having ended, closed the session
// mid-result.
func TestSlowReaderAfterBackendEnd(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{clientStall: testStall}, ModeSolo, 0, func(cfg *config.TxShim) { cfg.MaxMessage = 0 })
	sock := filepath.Join(t.TempDir(), ".s.PGSQL.6432")
	startShimDSN(t, c, c.DSN(c.Database()), Options{clientStall: testStall}, ModeSolo, 0, func(cfg *config.TxShim) { cfg.MaxMessage, cfg.Listen = 0, sock })
	const size = 24 << 20
	for _, to := range []struct{ name, network, addr string }{
		{"postgres", "tcp", fmt.Sprintf("127.0.0.1:%d", c.Port())},
		{"shim", "tcp", s.Addr().String()},
		{"shimunix", "unix", sock},
	} {
		t.Run(to.name, func(t *testing.T) {
			t.Parallel()
			r, nc := dialRawNet(t, to.network, to.addr, c.Database(), 3*time.Minute)
			defer nc.Close()
			r.simple(fmt.Sprintf("SELECT repeat('x', %d)", size))
			// About 40 KB/s for 12 s (the tests' clientStall and clientTakes, and more), then
			// as fast as it comes.
			readsSlowly(t, nc, size, 40<<10, 12*time.Second)
		})
	}
}

// readsSlowly half-closes nc, on which a query returning one value of size bytes was sent,
// and reads its replies at rate bytes a second for slowFor, then as fast as they come: it
// must get them all, and then the end.
func readsSlowly(t *testing.T, nc net.Conn, size, rate int, slowFor time.Duration) {
	t.Helper()
	nc.(interface{ CloseWrite() error }).CloseWrite()
	fe := pgproto3.NewFrontend(&slowReader{r: nc, rate: rate, slowUntil: time.Now().Add(slowFor)}, nc)
	start := time.Now()
	var got []string
	for {
		m, err := fe.Receive()
		if err != nil {
			if strings.Contains(err.Error(), "EOF") {
				err = io.EOF // the end, between messages or not
			}
			got = append(got, fmt.Sprint(err))
			break
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			got = append(got, fmt.Sprintf("D(%d)", len(m.Values[0])))
		default:
			b, _ := m.Encode(nil)
			got = append(got, string(b[0]))
		}
	}
	want := fmt.Sprintf("T D(%d) C Z EOF", size)
	if g := strings.Join(got, " "); g != want {
		t.Errorf("slow reader after %v got %q, want %q", time.Since(start).Round(time.Second), g, want)
	}
}

// dialRawNet is dialRawTCP over network ("tcp" or "unix").
func dialRawNet(t *testing.T, network, addr, db string, timeout time.Duration) (*rawSession, net.Conn) {
	t.Helper()
	return dialRawParams(t, network, addr, timeout, map[string]string{"user": pgtest.Superuser, "database": db})
}

// dialRawParams is dialRawNet with the start-up parameters params.
func dialRawParams(t *testing.T, network, addr string, timeout time.Duration, params map[string]string) (*rawSession, net.Conn) {
	t.Helper()
	nc, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(timeout))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	fe.Flush()
	r := &rawSession{t: t, conn: nc, fe: fe}
	if got, err := r.until('Z'); err != nil {
		nc.Close()
		t.Fatalf("startup: %q %v", got, err)
	}
	return r, nc
}
