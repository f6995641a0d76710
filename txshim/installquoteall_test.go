package txshim

import (
	"testing"
	"time"
)

// TestInstallAgainQuoteAllIdentifiers: install is run again after an upgrade, and must take its
// own tables back. On a database whose default is quote_all_identifiers = on it did not: it
// checks that each table of schema tandem has the columns Tandem made it with by their types as
// format_type spells them, which under that setting quotes every name ("text"), so it called
// each of its own tables an application's and refused.
func TestInstallAgainQuoteAllIdentifiers(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY)`)
	if err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	p.both(t, `ALTER DATABASE app SET quote_all_identifiers = on`)
	if err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Errorf("install again: %v", err)
	}
}
