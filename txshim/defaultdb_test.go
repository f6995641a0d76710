package txshim

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestLocalDSNWithoutDatabase: a local_dsn that names no database reaches the database named
// as its user, as PostgreSQL's clients do (the configuration takes it so too). A client that
// names that database — libpq sends the user's name when it is given none — is the shim's
// own database, not another one to refuse.
func TestLocalDSNWithoutDatabase(t *testing.T) {
	t.Setenv("PGDATABASE", "") // the DSN alone decides, as the sidecar's environment may not
	c := testCluster(t)
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=%s sslmode=disable", c.Port(), pgtest.Superuser)
	s := startShimDSN(t, c, dsn, Options{}, ModeReadOnly, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port := s.Addr().(*net.TCPAddr).Port
	for _, db := range []string{"", pgtest.Superuser} { // none sent; the user's name, as libpq sends
		url := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgtest.Superuser, port, db)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("database %q through a shim whose local_dsn names none (so %q): %v", db, pgtest.Superuser, err)
			continue
		}
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&got); err != nil || got != pgtest.Superuser {
			t.Errorf("database %q: current_database() = %q, %v; want %q", db, got, err, pgtest.Superuser)
		}
		conn.Close(ctx)
	}
}
