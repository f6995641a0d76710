package txshim

import (
	"strings"
	"testing"
	"time"
	"unicode"
)

// TestVerifyNamesNotPrintable: each difference is one line of printable text, whatever the
// names and definitions it quotes hold — a table, column or enum label with a newline or a
// terminal's escape sequence, a CHECK whose string literal holds one. Only keys were quoted
// (showKey): a table named E'x\ny' broke its line in two, the second without tandem verify's
// "differs:", and an escape in a name reached the operator's terminal.
func TestVerifyNamesNotPrintable(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE "x`+"\n"+`y" (k int PRIMARY KEY)`,
		`CREATE TABLE "esc`+"\x1b"+`[2J" (k int)`,
		`CREATE TABLE c (k int PRIMARY KEY, v text)`)
	p.local.Exec(t, `INSERT INTO "x`+"\n"+`y" VALUES (1)`)
	p.peer.Exec(t, `INSERT INTO "esc`+"\x1b"+`[2J" VALUES (1)`)
	p.local.Exec(t, `ALTER TABLE c ADD CONSTRAINT v CHECK (v <> E'a\nb')`)
	p.peer.Exec(t, `ALTER TABLE c ADD COLUMN "new`+"\n"+`col" int`)
	p.local.Exec(t, `CREATE TYPE mood AS ENUM (E'sad\r')`)
	p.peer.Exec(t, `CREATE TYPE mood AS ENUM ('sad')`)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 5 {
		t.Errorf("%d differences, want 5: %q", len(diffs), diffs)
	}
	for _, d := range diffs {
		if i := strings.IndexFunc(d, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
			t.Errorf("difference holds %q, not printable: %q", d[i:i+1], d)
		}
	}
}
