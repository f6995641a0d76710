package txshim

import (
	"fmt"
	"testing"
	"time"
)

// TestPeerIdleSessionTimeoutDefault: a peer database whose default ends idle sessions
// (ALTER DATABASE … SET idle_session_timeout) ended the apply's pooled connections between
// dual commits, so after every quiet spell each apply and COMMIT PREPARED dialled its
// connection again within its commit's time (startup, session setup, the check of what the
// peer holds), and one taken in the moment the peer ended it failed with an unknown outcome.
// The apply turns the timeout off for its sessions, as it does the others (noTimeouts).
func TestPeerIdleSessionTimeoutDefault(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	var db string
	if err := p.pdb.QueryRow("SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pdb.Exec(fmt.Sprintf("ALTER DATABASE %s SET idle_session_timeout = '300ms'", sqlIdent(db))); err != nil {
		t.Fatal(err)
	}
	// The apply's connections made before the setting keep their session's default: drop them,
	// waiting (up to 10 s each) until they are gone. pg_terminate_backend without a timeout
	// only signals: a dual commit right after took a pooled connection whose backend had not
	// yet acted on it, lost it mid-apply (unknown outcome) and sent the shim on alone, and the
	// backlog never reached 0 (a backend stopped while it is signalled does it every time).
	if _, err := p.pdb.Exec("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name LIKE 'tandem apply%' AND pid <> pg_backend_pid()"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := exec(fmt.Sprintf("INSERT INTO kv VALUES (%d, 'x')", i)); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	shipped()
	applies := func() (n int) {
		if err := p.pdb.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tandem apply'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := applies()
	time.Sleep(time.Second)
	if after := applies(); before == 0 || after < before {
		t.Fatalf("apply sessions on the peer: %d after the commits, %d after a second idle: the peer's idle_session_timeout ended them", before, after)
	}
	if err := exec("INSERT INTO kv VALUES (10, 'y')"); err != nil {
		t.Fatal(err)
	}
	shipped()
}
