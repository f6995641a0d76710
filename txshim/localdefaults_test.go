package txshim

import (
	"context"
	"database/sql"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// deferrableDefaults are a reporting database's defaults (ALTER DATABASE … SET): under them a
// query outside a transaction block waits for a safe snapshot for as long as a serializable
// read-write transaction is open.
var deferrableDefaults = []string{`default_transaction_isolation = serializable`, `default_transaction_deferrable = on`, `default_transaction_read_only = on`}

// openSerializableWriter opens, on a connection of db's defaults, a serializable read-write
// transaction with its snapshot taken, and returns the connection and its backend's pid.
func openSerializableWriter(t *testing.T, ctx context.Context, db *sql.DB) (*sql.Conn, string) {
	t.Helper()
	w, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	var pid string
	if err := w.QueryRowContext(ctx, "SELECT pg_backend_pid()::text").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE", "SELECT 1"} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return w, pid
}

// TestLocalDeferrableDefaultsOwnConnections: the shim's own connections to the local database —
// fitting the session cap to it (fitSessions), asking whether a stalled session's backend
// lives (backendEnded), marking the stream (markApart: a handover's barrier, a block's),
// watching and terminating backends left in flight (aliveAt, terminate: a handover's drain)
// and reading the catalog (funcs) — ran their queries in transactions of the local database's
// defaults: under SERIALIZABLE, READ ONLY and DEFERRABLE ones (ALTER DATABASE … SET, a
// reporting database's) each waited for a safe snapshot for as long as a serializable
// read-write transaction was open, and failed at its bound — the drain's terminate waiting
// for the very session it was to end. They run READ COMMITTED, writable, without the
// database's timeouts, as the apply's and the watchdog's sessions do on the peer.
func TestLocalDeferrableDefaultsOwnConnections(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.WithSetting("max_connections", "20"))
	for _, set := range deferrableDefaults {
		c.Exec(t, `ALTER DATABASE `+sqlIdent(c.Database())+` SET `+set)
	}
	ctx := capCtx(t, 60*time.Second)
	_, writerPID := openSerializableWriter(t, ctx, c.Open(t, c.Database()))
	s, err := New(config.TxShim{Listen: "127.0.0.1:0", LocalDSN: c.DSN(c.Database()), CommitTimeout: 2 * time.Second},
		Options{Site: "a", Logger: quietLogger(), StartupTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bound := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 3*time.Second) }

	if !s.fitSessions(ctx) {
		t.Error("fitSessions: the local database did not answer")
	} else if n := s.slots.limit(); n != 20-3-ownConnections {
		t.Errorf("fitSessions: sessions capped at %d, want %d (max_connections 20)", n, 20-3-ownConnections)
	}

	mctx, cancel := bound()
	if _, err := s.markApart(mctx); err != nil {
		t.Errorf("markApart: %v", err)
	}
	cancel()

	raw, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(c.Port())) // stands for a session's backend connection
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if !s.backendEnded(ctx, raw, 1) { // no backend has pid 1
		t.Error("backendEnded: a backend that does not exist taken for alive")
	}

	conns := map[backendAddr]*pgconn.PgConn{}
	defer func() {
		for _, conn := range conns {
			conn.Close(context.Background())
		}
	}()
	if alive, err := s.aliveAt(conns, backendAddr{}, []string{"1"}); err != nil || len(alive) != 0 {
		t.Errorf("aliveAt: %v, %v; want none alive", alive, err)
	}

	lctx, cancel := bound()
	if _, err := s.funcs.load(lctx); err != nil {
		t.Errorf("catalog read: %v", err)
	}
	cancel()

	// Last: it ends the writer.
	tctx, cancel := bound()
	if err := s.terminate(tctx, backendAddr{}, []string{writerPID}); err != nil {
		t.Errorf("terminate: %v", err)
	}
	cancel()
}

// TestLocalDefaultsClientSessionsKept: the shim's own connections take their settings in place
// of the local database's defaults (TestLocalDeferrableDefaultsOwnConnections); the clients'
// sessions it relays do not: they get the database's defaults, as PostgreSQL's own clients do.
func TestLocalDefaultsClientSessionsKept(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	sets := append([]string{`statement_timeout = '7s'`, `idle_in_transaction_session_timeout = '8s'`}, deferrableDefaults...)
	for _, set := range sets {
		c.Exec(t, `ALTER DATABASE `+sqlIdent(c.Database())+` SET `+set)
	}
	s := startShim(t, c, Options{Logger: quietLogger()}, ModeSolo, 1)
	ctx := capCtx(t, 30*time.Second)
	conn := s.connect(t)
	for name, want := range map[string]string{"default_transaction_isolation": "serializable", "default_transaction_deferrable": "on",
		"default_transaction_read_only": "on", "statement_timeout": "7s", "idle_in_transaction_session_timeout": "8s"} {
		var got string
		if err := conn.QueryRow(ctx, "SHOW "+name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("a client's session through the shim has %s = %s, want the database's %s", name, got, want)
		}
	}
}
