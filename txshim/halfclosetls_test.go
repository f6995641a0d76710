package txshim

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestHalfClosedTLSClientGetsReplies: a TLS client that ends its sending side (close_notify,
// tls.Conn.CloseWrite) after its request gets the replies, and the session ends.
func TestHalfClosedTLSClientGetsReplies(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{TLS: selfSignedTLS(t)}, ModeSolo, 0)
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 80877103)
	nc.Write(req)
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest: %q %v", b, err)
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	fe := pgproto3.NewFrontend(tc, tc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": pgtest.Superuser, "database": c.Database()}})
	fe.Flush()
	r := &rawSession{t: t, conn: nc, fe: fe}
	if got, err := r.until('Z'); err != nil {
		t.Fatalf("startup: %q %v", got, err)
	}
	r.simple("SELECT pg_sleep(0.3), 42")
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := r.until('Z')
	_, err2 := r.until('Z')
	if got != "TDCZ" || err != nil || err2 == nil {
		t.Fatalf("half-closed TLS client got %q %v, then %v; want TDCZ and the end", got, err, err2)
	}
	time.Sleep(200 * time.Millisecond)
	if n := s.Stats().SessionsActive; n != 0 {
		t.Fatalf("%d sessions active", n)
	}
}
