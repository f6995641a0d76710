package procgroup

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Output keeps the first Max bytes written to it (a command's output, kept for the log) and
// counts the rest in Dropped: a command that prints without end (a `yes`, a `tail -f` by
// mistake) must not fill the sidecar's memory.
type Output struct {
	Max     int
	b       []byte
	Dropped int64
}

func (o *Output) Write(p []byte) (int, error) {
	keep := min(len(p), max(o.Max-len(o.b), 0))
	o.b = append(o.b, p[:keep]...)
	o.Dropped += int64(len(p) - keep)
	return len(p), nil
}

// Masked is what was kept as it is logged, the value of $PGPASSWORD masked as "<PGPASSWORD>"
// (a hook and a health command keep that variable: they may need the database; secrets never
// appear in logs), and each of secrets, those written in the command's own arguments, masked
// as "<redacted>", each in the forms MaskSecret masks: a script under set -x writes them out quoted, and the output
// kept may stop inside one.
//
// Each is masked first as a mark no secret holds (a NUL, which no argument or environment
// variable does, around a letter), the marks made masks at the end: a secret that is part of a
// mask (acted, PASSWORD) made "<red<redacted>>" of one written before (TestMaskedMasksOnce).
func (o *Output) Masked(secrets ...string) string {
	const pgMark, secretMark = "\x00P\x00", "\x00R\x00"
	s := MaskSecret(string(o.b), os.Getenv("PGPASSWORD"), pgMark, o.Dropped > 0)
	for _, v := range secrets {
		s = MaskSecret(s, v, secretMark, o.Dropped > 0)
	}
	return strings.NewReplacer(pgMark, "<PGPASSWORD>", secretMark, "<redacted>").Replace(s)
}

// MaskSecret masks pw in s, a command's output for the log, as mask: as it stands, with a
// backslash before each quote and backslash in it, or before each double quote and backslash
// (JSON, Go's %q), and as bash's set -x
// quotes it — single-quoted (each quote in it closed, escaped and opened again), or, for a
// word without a character the shell treats specially but with one it cannot print in its
// locale, in $'...' form (ansiQuoted). cut: s was cut short, and its last
// bytes may be the start of pw, which go too. An empty pw masks nothing.
//
// A pw shorter than minMaskLen bytes (a password of one character) is masked only where it
// stands as a value (maskValues): masked wherever it stands, every such character or pair of
// the log would read as mask (TestMaskSecretShort).
func MaskSecret(s, pw, mask string, cut bool) string {
	if pw == "" {
		return s
	}
	forms := []string{pw}
	add := func(f string) {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	add(strings.ReplaceAll(pw, "'", `'\''`))
	// With a backslash before each quote and backslash in it: in a JSON string, a Go-quoted
	// one (a log line of the command's), "..." (TestMaskSecretEscaped).
	add(backslashed.Replace(pw))
	// JSON and %q put none before a single quote (TestMaskSecretEscapedMixedQuotes).
	add(jsonEscaped.Replace(pw))
	short := len(pw) < minMaskLen
	for _, f := range forms {
		if short {
			s = maskValues(s, regexp.QuoteMeta(f), mask)
		} else {
			s = strings.ReplaceAll(s, f, mask)
		}
	}
	if re := ansiQuoted(pw); re != nil {
		if short {
			s = maskValues(s, re.String(), mask)
		} else {
			s = re.ReplaceAllLiteralString(s, mask)
		}
		// For a cut: as the C locale writes it (every byte beyond ASCII escaped), and as a
		// UTF-8 one does (the characters beyond ASCII as they are).
		add(ansiForm(pw, false))
		add(ansiForm(pw, true))
	}
	if cut {
		for _, f := range forms {
			for k := min(len(f)-1, len(s)); k > 0; k-- {
				if strings.HasSuffix(s, f[:k]) {
					s = s[:len(s)-k]
					break
				}
			}
		}
	}
	return s
}

// backslashed writes a backslash before each quote and backslash; jsonEscaped before each
// double quote and backslash.
var (
	backslashed = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `'`, `\'`)
	jsonEscaped = strings.NewReplacer(`\`, `\\`, `"`, `\"`)
)

// minMaskLen is the length, in bytes, below which a secret is masked in a command's output
// only where it stands as a value (MaskSecret).
const minMaskLen = 4

// maskValues masks, as mask, what the regexp form matches in s where it stands as a value: after
// '=' or ':' (PGPASSWORD=x, --password=x, password=x in a connection string, a URL's user:x@,
// curl's user:x), also after spaces or tabs after the ':' ("password": "x", X-Api-Key: x), as
// the word after an option (--password x, -p x, sshpass -p x), or glued to a -p (a MySQL
// client's and sshpass's -px: TestMaskSecretShortValueForms), maybe in quotes ('x', "x", $'x'),
// or as SQL's PASSWORD '...' (psql -c "ALTER ROLE m PASSWORD 'x'", also as set -x traces it,
// each of its quotes closing, escaped and opening the word they are in again:
// TestMaskSecretShortSQLPassword), or after an Authorization header's scheme (Authorization:
// Bearer x: TestMaskSecretShortAuthorization), and ending a word there (a space, a quote,
// '@', '&', ';', ',', ')' or the line's end after it); a quote around it may be escaped, in a
// string of its own (a JSON string's "{\"password\":\"x\"}": TestMaskSecretShortEscapedJSON),
// or in a string in such a string (\\\"x\\\": TestMaskSecretShortLeftovers).
func maskValues(s, form, mask string) string {
	re := regexp.MustCompile(`(?m)(?:=|:[ \t]*|(?:^|[\s'"])(?:--?[A-Za-z][\w.-]*['"]?[ \t]+|-p)|` + sqlPassword + `|` + authScheme + `)\$?(?:\\*['"])?(` + form + `)`)
	var b strings.Builder
	done := 0
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		if e := m[3]; e < len(s) && !strings.ContainsRune(" \t\r\n'\"@&;,)", rune(s[e])) && !escapedQuote(s[e:]) {
			continue // part of a longer word
		}
		b.WriteString(s[done:m[2]])
		b.WriteString(mask)
		done = m[3]
	}
	b.WriteString(s[done:])
	return b.String()
}

// escapedQuote tells whether s starts with a quote escaped by backslashes (\" or \', or
// \\\" in a string in a string: 15 at most, a string four deep, so that a run of them is
// read a bounded length after each of many matches).
func escapedQuote(s string) bool {
	s = s[:min(len(s), 16)]
	t := strings.TrimLeft(s, `\`)
	return len(t) < len(s) && t != "" && (t[0] == '"' || t[0] == '\'')
}

// sqlPassword is what SQL's PASSWORD before its string is in a maskValues regexp: that word, any
// case, spaces and the string's quote, which bash's set -x writes as four in a quoted word,
// maybe after an escape string's E (PASSWORD E'x': TestMaskSecretShortSQLEscapeString) or a
// Unicode escape string's U& (PASSWORD U&'x': TestMaskSecretShortLeftovers).
const sqlPassword = `(?:^|[^\w-])(?i:password)[ \t\n]+(?i:e|u&)?'(?:\\'')?`

// authScheme is what an Authorization header (or a Proxy-Authorization one) before its
// credential is in a maskValues regexp: its name, any case, its ':' and its scheme.
const authScheme = `(?i:authorization)[ \t]*:[ \t]*[A-Za-z][\w.-]*[ \t]+`

// ansiQuoted matches pw as bash's set -x writes it inside a $'...' word (ansic_quote), the form
// it gives a word holding a character it cannot print in its locale: the usual C escapes for
// the control characters that have one (ESC as \E), a backslash before a backslash or a
// quote, and every other byte it cannot print as a three-digit octal escape — in the C locale
// every byte beyond ASCII, in a UTF-8 one those of a character it takes for unprintable, which
// either way may be written as it is or escaped here. Nil when that form is pw itself.
func ansiQuoted(pw string) *regexp.Regexp {
	var b strings.Builder
	escaped := false
	for i := 0; i < len(pw); {
		c := pw[i]
		if c >= utf8.RuneSelf {
			escaped = true
			if r, n := utf8.DecodeRuneInString(pw[i:]); r != utf8.RuneError || n > 1 { // U+FFFD itself is valid
				fmt.Fprintf(&b, "(?:%s|%s)", regexp.QuoteMeta(pw[i:i+n]), regexp.QuoteMeta(octal(pw[i:i+n])))
				i += n
				continue
			}
		}
		e := ansiByte(c)
		escaped = escaped || e != pw[i:i+1]
		b.WriteString(regexp.QuoteMeta(e))
		i++
	}
	if !escaped {
		return nil
	}
	return regexp.MustCompile(b.String())
}

// ansiForm is pw as ansiQuoted matches it, each character beyond ASCII as it is (utf8Locale)
// or escaped.
func ansiForm(pw string, utf8Locale bool) string {
	var b strings.Builder
	for i := 0; i < len(pw); {
		c := pw[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(pw[i:])
			if (r != utf8.RuneError || n > 1) && utf8Locale {
				b.WriteString(pw[i : i+n])
			} else {
				b.WriteString(octal(pw[i : i+n]))
			}
			i += n
			continue
		}
		b.WriteString(ansiByte(c))
		i++
	}
	return b.String()
}

// ansiByte is an ASCII byte as ansic_quote writes it.
func ansiByte(c byte) string {
	switch c {
	case 0x1b:
		return `\E`
	case '\a':
		return `\a`
	case '\v':
		return `\v`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\\', '\'':
		return `\` + string(rune(c))
	}
	if c < ' ' || c >= 0x7f {
		return octal(string([]byte{c}))
	}
	return string(rune(c)) // ASCII
}

// octal is each byte of s as a three-digit octal escape.
func octal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, `\%03o`, s[i])
	}
	return b.String()
}
