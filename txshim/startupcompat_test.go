package txshim

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestNegotiatedVersionAsPostgres: the version NegotiateProtocolVersion names is a whole
// protocol version (major << 16 | minor), as PostgreSQL sends it (PG_PROTOCOL_LATEST) and
// libpq reads it: libpq 18 refuses a value below PG_PROTOCOL(3, 0) as "server requested
// downgrade to pre-3.0 protocol version", so a client asking for 3.2 (max_protocol_version)
// could not connect through the shim, which sent a bare minor, 0.
func TestNegotiatedVersionAsPostgres(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	negotiated := func(addr string) uint32 {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fe := pgproto3.NewFrontend(conn, conn)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: 3<<16 | 2, Parameters: map[string]string{
			"user": pgtest.Superuser, "database": c.Database(), "_pq_.test_protocol_negotiation": "1"}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("%s: %v", addr, err)
			}
			switch m := m.(type) {
			case *pgproto3.NegotiateProtocolVersion:
				return m.NewestMinorProtocol
			case *pgproto3.ErrorResponse, *pgproto3.ReadyForQuery:
				t.Fatalf("%s: no NegotiateProtocolVersion before %T", addr, m)
			}
		}
	}
	want := negotiated(net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port())))
	if got := negotiated(s.Addr().String()); got != want {
		t.Fatalf("the shim's NegotiateProtocolVersion names version %#x; PostgreSQL's names %#x", got, want)
	}
}

// TestStartupTooLongForBackend: the shim takes a startup packet up to PostgreSQL's limit
// (MAX_STARTUP_PACKET_LENGTH), then adds local_dsn's user and database and tandem.client to
// the packet it sends the local database, which may then be past the limit: PostgreSQL closes
// such a connection without a word, and the client was told "local database unreachable"
// (08006) — and the log warned of it — as if the database were down. The client is told its
// startup packet is too long instead.
func TestStartupTooLongForBackend(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The client's packet: 4 + "user\0postgres\0" + "database\0…\0" + "application_name\0…\0" +
	// "\0", under the limit; the backend's gets "tandem.client\0on\0" more.
	long := strings.Repeat("x", maxStartupLen-4-len("user")-len(pgtest.Superuser)-len("database")-len(c.Database())-len("application_name")-6-1-10)
	_, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser)+"&application_name="+long)
	if pgCode(err) != "08P01" || !strings.Contains(err.Error(), "startup packet") {
		t.Fatalf("want 08P01 naming the startup packet, got %v", err)
	}
	// Just under the limit with the shim's additions: served.
	conn, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser)+"&application_name="+long[:len(long)-len("tandem.client")-4])
	if err != nil {
		t.Fatalf("a startup packet that fits: %v", err)
	}
	conn.Close(ctx)
}
