package txshim

import (
	"strings"
	"testing"
	"time"
)

// requireIdenticalUnder sets the local database's default by set (ALTER DATABASE ... SET),
// then requires Verify to find no difference from the peer, and Install to accept the pair.
func requireIdenticalUnder(t *testing.T, p *capPair, set string) {
	t.Helper()
	p.local.Exec(t, set)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("Verify of identical databases:\n%s", strings.Join(diffs, "\n"))
	}
	if err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Errorf("Install of identical databases: %v", err)
	}
}

// TestVerifyQuoteAllIdentifiers: a database whose default is quote_all_identifiers = on (which
// makes quote_ident, format_type and regclass's text quote every name) is still identical to
// a peer that holds the same rows under the same definitions, for verify and install alike.
func TestVerifyQuoteAllIdentifiers(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TYPE mood AS ENUM ('sad', 'ok')`,
		`CREATE TABLE kv (k int PRIMARY KEY, m mood, r regclass, CHECK (k > 0))`,
		`INSERT INTO kv VALUES (1, 'ok', 'kv')`)
	requireIdenticalUnder(t, p, `ALTER DATABASE app SET quote_all_identifiers = on`)
}
