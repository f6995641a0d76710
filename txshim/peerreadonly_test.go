package txshim

import (
	"fmt"
	"testing"
	"time"
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

// TestPeerReadOnlyDefaultCatchUp: with the peer database read-only by default, the apply took
// the backlog but catch-up never ended: its copy of the sequences' positions (AlignSequences),
// on a connection of the database's default, was refused ("cannot execute setval() in a
// read-only transaction") on every try, and the shim stayed solo. Tandem's own connections
// (OpenDB) are writable whatever the database's default, as the apply's are.
func TestPeerReadOnlyDefaultCatchUp(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, "CREATE TABLE kv (k serial PRIMARY KEY, v text)")
	p.peer.Exec(t, `ALTER DATABASE app SET default_transaction_read_only = on`)
	conn := shim.connect(t)
	ctx := capCtx(t, 30*time.Second)
	for range 3 { // solo: the sequence moves on the local database only
		if _, err := conn.Exec(ctx, "INSERT INTO kv (v) VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
	}
	catchUpToDual(t, sh, shim)
	if _, err := conn.Exec(ctx, "INSERT INTO kv (v) VALUES ('y')"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the peer to have every commit", func() bool { return sh.Backlog() == 0 })
	requireSame(t, p)
	if n := queryOne[int64](t, p.pdb, "SELECT last_value FROM kv_k_seq"); n < 3 {
		t.Fatalf("the peer's sequence is at %d, behind the 3 values the master handed out alone", n)
	}
}
