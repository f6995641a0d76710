package txshim

import (
	"fmt"
	"testing"
)

// TestPeerDatabaseReadOnlyDefault: a peer database whose default is read-only (ALTER DATABASE …
// SET default_transaction_read_only = on, say for its own site's applications while it is the
// backup) still takes the apply: it runs its own transactions, not the database's
// applications'. Without its setting pinned, every dual commit was refused by the peer.
func TestPeerDatabaseReadOnlyDefault(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	var db string
	if err := p.pdb.QueryRow("SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pdb.Exec(fmt.Sprintf("ALTER DATABASE %s SET default_transaction_read_only = on", sqlIdent(db))); err != nil {
		t.Fatal(err)
	}
	// The apply's connections made before the setting keep their session's default: drop them,
	// waiting (up to 10 s each) until they are gone, so that none is still taken for alive.
	if _, err := p.pdb.Exec("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name LIKE 'tandem%' AND pid <> pg_backend_pid()"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := exec(fmt.Sprintf("INSERT INTO kv VALUES (%d, 'x')", i)); err != nil {
			t.Fatalf("insert %d with the peer database read-only by default: %v", i, err)
		}
	}
	shipped()
	requireSame(t, p)
}
