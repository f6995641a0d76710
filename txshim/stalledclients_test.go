package txshim

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestStalledClientsBackendTerminated: TestStalledClientBackendTerminated for a client over
// TLS, where clientWriter writes through the TLS connection and looks at the socket under it,
// and for one on the shim's Unix socket, whose progress it reads by SIOCOUTQ: a client that
// stops reading loses its session once its backend is terminated.
func TestStalledClientsBackendTerminated(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	db := c.Open(t, c.Database())
	for _, shape := range []string{"tls", "unixclient"} {
		t.Run(shape, func(t *testing.T) {
			t.Parallel()
			var s *testShim
			var nc net.Conn
			var err error
			if shape == "tls" {
				s = startShim(t, c, Options{TLS: selfSignedTLS(t), clientStall: testStall}, ModeSolo, 0)
				nc, err = net.Dial("tcp", s.Addr().String())
				if err == nil {
					nc.(*net.TCPConn).SetReadBuffer(4 << 10)
				}
			} else {
				sock := filepath.Join(t.TempDir(), ".s.PGSQL.6432")
				s = startShimDSN(t, c, c.DSN(c.Database()), Options{clientStall: testStall}, ModeSolo, 0, func(cfg *config.TxShim) { cfg.Listen = sock })
				nc, err = net.Dial("unix", sock)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			var rw io.ReadWriter = nc
			if shape == "tls" {
				nc.Write(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 80877103))
				var b [1]byte
				if _, err := io.ReadFull(nc, b[:]); err != nil || b[0] != 'S' {
					t.Fatalf("SSLRequest: %q %v", b, err)
				}
				tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				rw = tc
			}
			fe := pgproto3.NewFrontend(rw, rw)
			fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": pgtest.Superuser, "database": c.Database()}})
			fe.Flush()
			r := &rawSession{t: t, conn: nc, fe: fe}
			if got, err := r.until('Z'); err != nil {
				t.Fatalf("startup: %q %v", got, err)
			}
			mark := "stalled_" + shape
			r.simple(fmt.Sprintf("SELECT repeat('x', 1000) AS %s FROM generate_series(1, 10000000)", mark))
			var pid int
			deadline := time.Now().Add(20 * time.Second)
			for {
				err := db.QueryRow(`SELECT pid FROM pg_stat_activity WHERE query LIKE '%' || $1 || '%' AND wait_event = 'ClientWrite' AND pid <> pg_backend_pid()`, mark).Scan(&pid)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("backend blocked on the stalled client: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			terminatedSessionEnds(t, s, db, pid)
		})
	}
}
