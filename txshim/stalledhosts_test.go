package txshim

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestStalledClientOtherHost: local_dsn lists two hosts, and a session's backend is on the
// second (the first was full when it started, as PostgreSQL's clients fall back). A client
// that pauses, its backend alive, keeps its session: clientWriter's question whether the
// backend lives goes to the server the backend is on, not to the first host of local_dsn that
// takes a connection then, which has no process of that id (as forwardCancel sends a cancel
// request where the session's backend is).
func TestStalledClientOtherHost(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	other := pgtest.Start(t, pgtest.WithSetting("max_connections", "3"), pgtest.WithSetting("superuser_reserved_connections", "0"))
	ctx := capCtx(t, 2*time.Minute)
	full := fillConnections(t, ctx, other, 3)
	defer func() {
		for _, pc := range full {
			pc.Close(context.Background())
		}
	}()
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable", pgtest.Superuser, other.Port(), c.Port(), c.Database())
	s := startShimDSN(t, c, dsn, Options{clientStall: testStall}, ModeSolo, 0)
	db := c.Open(t, c.Database())

	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(time.Minute))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": pgtest.Superuser, "database": c.Database()}})
	fe.Flush()
	r := &rawSession{t: t, conn: nc, fe: fe}
	if got, err := r.until('Z'); err != nil {
		t.Fatalf("startup: %q %v", got, err)
	}
	r.simple("SELECT repeat('x', 1000) AS stalled_hosts FROM generate_series(1, 10000000)")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pid int
		err := db.QueryRow(`SELECT pid FROM pg_stat_activity WHERE query LIKE '%stalled_hosts%' AND wait_event = 'ClientWrite' AND pid <> pg_backend_pid()`).Scan(&pid)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend blocked on the stalled client: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The first host takes connections again.
	for _, pc := range full {
		pc.Close(ctx)
	}
	full = nil
	time.Sleep(testStall + 2*(testStall/2) + 2*time.Second)
	if n := s.Stats().SessionsActive; n != 1 {
		t.Fatalf("%d sessions active after the paused client's wait, its backend alive; want its own", n)
	}
	readsRowsAgain(t, nc, fe)
}

// fillConnections opens n sessions on c's database, as many as c (of max_connections n, none
// reserved) takes. The sessions of the cluster's start-up are closed, but a backend's slot is
// free only once its process has exited, which on a loaded machine may come later: "too many
// clients already" is tried again (bounded).
func fillConnections(t *testing.T, ctx context.Context, c *pgtest.Cluster, n int) []*pgconn.PgConn {
	t.Helper()
	var full []*pgconn.PgConn
	for range n {
		for deadline := time.Now().Add(20 * time.Second); ; {
			pc, err := pgconn.Connect(ctx, c.DSN(c.Database()))
			if err == nil {
				full = append(full, pc)
				break
			}
			if pgErrCode(err) != "53300" || time.Now().After(deadline) {
				for _, pc := range full {
					pc.Close(context.Background())
				}
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return full
}
