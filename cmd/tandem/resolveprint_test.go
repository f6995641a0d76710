package main

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestResolveGIDNotPrintable: any role may prepare a transaction under any gid, one that starts
// with tandem_ and holds a newline or a terminal's control sequence too. tandem resolve printed
// such a gid as it is, in its "left alone" and "in doubt" lines: a line of its own making
// ("settled: …") or an escape sequence reached the operator's terminal. It is quoted now.
func TestResolveGIDNotPrintable(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.DSN(c.Database())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := createPeerDB(ctx, t, dsn)
	const fake = "settled: no Tandem transaction left in doubt on either database"
	gid := "tandem_x\x1b[2J\n" + fake + "\n"
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN; CREATE TABLE odd (id int)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `PREPARE TRANSACTION `+quoteLiteral(gid)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	t.Cleanup(func() { db.ExecContext(context.Background(), `ROLLBACK PREPARED `+quoteLiteral(gid)) })
	resolve := resolveSiteTimeout(t, dsn, c.DSN("peer"), "1s")
	check := func(when string) {
		t.Helper()
		code, out := resolve()
		if code != 1 {
			t.Errorf("%s: exit %d, want 1", when, code)
		}
		for _, line := range strings.Split(out, "\n") {
			if line == fake {
				t.Errorf("%s: the gid's text printed as a line of its own: %q", when, out)
			}
		}
		if strings.ContainsFunc(out, func(r rune) bool { return r != '\n' && !unicode.IsPrint(r) }) {
			t.Errorf("%s: output holds a character that is not printable: %q", when, out)
		}
	}
	check("prepared just now") // left alone
	const settle = 2 * time.Second
	defer func(f func(time.Duration) time.Duration) { resolveSettle = f }(resolveSettle)
	resolveSettle = func(time.Duration) time.Duration { return settle }
	time.Sleep(settle + time.Second)
	check("past settle") // in doubt: not a gid Tandem makes
}

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// TestPrintableInvalidUTF8: a gid in a SQL_ASCII database may hold any bytes, a lone 0x9b
// (CSI among the C1 controls of a terminal reading 8-bit bytes) among them. Ranged over as a
// string, an invalid byte reads as utf8.RuneError, which is printable: it was printed as it is.
func TestPrintableInvalidUTF8(t *testing.T) {
	for _, s := range []string{"tandem_x\x9b2J_1_2", "tandem_\xff_1_2", "a\nb\x9b"} {
		got := printable(s)
		if got == s || !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Errorf("printable(%q) = %q: want it quoted", s, got)
		}
		if l := printableLines(s); strings.Contains(l, "\x9b") || strings.Contains(l, "\xff") {
			t.Errorf("printableLines(%q) = %q: want each line quoted", s, l)
		}
	}
	if got := printable("tandem_a_1_2"); got != "tandem_a_1_2" {
		t.Errorf("printable of a plain gid = %q", got)
	}
}
