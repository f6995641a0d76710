package txshim

import (
	"testing"
	"time"
)

// TestOpenDBConnectTimeout: a DSN with connect_timeout (libpq's, which lib/pq honours) made
// every control connection fail at once with "i/o timeout": lib/pq dials under a context of
// its own bounded by connect_timeout and cancels it as soon as the dial returns, and the dialer
// ended the socket's reads when that context ended, in the middle of the start-up exchange.
// The resolver, install, term records and `tandem resolve` all found such a database
// unreachable.
func TestOpenDBConnectTimeout(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	db, err := OpenDB(c.DSN(c.Database()) + "&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var one int
	if err := db.QueryRowContext(capCtx(t, 10*time.Second), `SELECT 1`).Scan(&one); err != nil {
		t.Fatalf("SELECT 1 with connect_timeout=5 in the DSN: %v", err)
	}
}
