package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallLocaleSpelling: the databases' LC_COLLATE and LC_CTYPE, and those of a libc
// collation of the application schemas, were compared as written, but glibc writes the
// codeset of a locale name as it likes — en_US.UTF-8 and en_US.utf8 (and C.UTF-8 and C.utf8)
// are one locale, its codeset lowercased and stripped of all but letters and digits — and
// two hosts initialised from environments that spell it differently sort alike: install and
// verify must not refuse them. A locale that does differ is still named.
func TestInstallLocaleSpelling(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.local.Exec(t, `CREATE DATABASE sp TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'`)
	p.peer.Exec(t, `CREATE DATABASE sp TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8'`)
	for i, c := range []string{"C.UTF-8", "C.utf8"} {
		cl := p.local
		if i == 1 {
			cl = p.peer
		}
		db := cl.Open(t, "sp")
		for _, s := range []string{`CREATE COLLATION sp (provider = libc, locale = '` + c + `')`,
			`CREATE TABLE t (k text COLLATE sp PRIMARY KEY, v text)`} {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("sp"), p.peer.DSN("sp"))
	if err != nil || len(diffs) > 0 {
		t.Errorf("Verify of databases of one locale spelled two ways: %v\n%s", err, strings.Join(diffs, "\n"))
	}
	if err := Install(capCtx(t, 60*time.Second), "a", p.local.DSN("sp"), p.peer.DSN("sp"), quietLogger()); err != nil {
		t.Errorf("Install of databases of one locale spelled two ways: %v", err)
	}
	// A collation whose locale does differ is still named, with each side's spelling.
	p.local.Exec(t, `CREATE DATABASE d TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'`)
	p.peer.Exec(t, `CREATE DATABASE d TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.utf8'`)
	diffs, err = Verify(capCtx(t, 30*time.Second), p.local.DSN("d"), p.peer.DSN("d"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(diffs, "\n"); !strings.Contains(got, `LC_COLLATE 'C.UTF-8'`) || !strings.Contains(got, `LC_COLLATE 'C'`) {
		t.Errorf("Verify of databases of LC_COLLATE C.UTF-8 and C did not name both:\n%s", got)
	}
}

func TestLibcLocaleCodeset(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"en_US.UTF-8": "en_US.utf8", "en_US.utf8": "en_US.utf8", "de_DE.ISO-8859-1": "de_DE.iso88591",
		"de_DE.8859-1": "de_DE.iso88591", "sr_RS.UTF-8@latin": "sr_RS.utf8@latin", "C": "C", "en_US": "en_US",
	} {
		if got := libcLocale(in); got != want {
			t.Errorf("libcLocale(%q) = %q, want %q", in, got, want)
		}
	}
}
