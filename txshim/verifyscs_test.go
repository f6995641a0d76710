package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestVerifyStandardConformingStrings: a database whose default is standard_conforming_strings
// = off (a legacy application's setting, under which PostgreSQL spells a backslash in a
// definition's string literal doubled) is still identical to a peer that holds the same
// definitions, for verify and install alike.
func TestVerifyStandardConformingStrings(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text CHECK (v <> 'a\b'), g text GENERATED ALWAYS AS (v || '\') STORED)`,
		`CREATE UNIQUE INDEX kv_v ON kv (v) WHERE v <> '\x'`,
		`INSERT INTO kv VALUES (1, 'x\y')`)
	p.local.Exec(t, `ALTER DATABASE app SET standard_conforming_strings = off`)
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
