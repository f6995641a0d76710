package config

import (
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRedactedCommandLeftovers: scripts whose secrets check-config showed, or the command's
// output log did not mask (CommandSecrets missed them), or where check-config hid what is no
// secret. Each case is a script as sh -c runs it, what check-config shows of it, and the
// secrets CommandSecrets gives for its output's log (the longest first).
func TestRedactedCommandLeftovers(t *testing.T) {
	for _, tc := range []struct {
		why, script, shown string
		secrets            []string
	}{
		// A Unicode escape string after PASSWORD (U&'...', its quotes doubled inside, a
		// backslash no escape of a quote) was read as no string.
		{"U&", `psql -c "ALTER ROLE m PASSWORD U&'s3\0063ret'"`, `psql -c "ALTER ROLE m PASSWORD U&'redacted'"`, []string{`s3\0063ret`, `s30063ret`}},
		// A dollar-quoted string after PASSWORD ($$...$$, $tag$...$tag$) too.
		{"$$", `psql -c 'ALTER ROLE m PASSWORD $$s3cret$$'`, `psql -c 'ALTER ROLE m PASSWORD $$redacted$$'`, []string{"s3cret"}},
		{"$tag$", `psql -c 'alter role m password $pw$s3$$c'"'"'ret$pw$'`, `psql -c 'alter role m password $pw$redacted$pw$'`, []string{`s3$$c'"'"'ret`, `s3$$c'ret`}},
		{"u& quote doubled", `psql -c "alter role m password u&'s3''c\\ret' UESCAPE '!'"`, `psql -c "alter role m password u&'redacted' UESCAPE '!'"`, []string{`s3''c\\ret`, `s3''c\ret`, `s3c\\ret`, `s3c\ret`}},
		// A JSON member's string in a JSON string in a shell's double quotes (\\\"password\\\":
		// \\\"...\\\"), its quotes escaped twice, was read as no member; and a value escaped once
		// ended at the first \" though that was a quote in it (\\\").
		{"JSON twice", `sh -c "curl -d \"{\\\"password\\\":\\\"s3cret\\\"}\" http://h"`, `sh -c "curl -d \"{\\\"password\\\":\\\"redacted\\\"}\" http://h"`, []string{"s3cret"}},
		{"JSON quote in value", `curl -d "{\"token\": \"pa\\\"ss\", \"u\": 1}" http://h`, `curl -d "{\"token\": \"redacted\", \"u\": 1}" http://h`, []string{`pa\\\"ss`, `pa\"ss`}},
		// A password file's lines joined by \\n, which the shell reads as \n in no quote and
		// in double quotes, the newline of echo -e and printf: the password ran on over the
		// lines after it, and CommandSecrets gave "s3cret\nbk:5432:*:m:x2", which the file,
		// cat'ed into the output's log, does not hold.
		{"echo -e \\\\n", `echo -e db:5432:*:m:s3cret\\nbk:5432:*:m:x2 >> ~/.pgpass`, `echo -e db:5432:*:m:redacted\\nbk:5432:*:m:redacted >> ~/.pgpass`, []string{"s3cret", "x2"}},
		{"echo -e \"\\\\n\"", `echo -e "db:5432:*:m:s3cret\\nbk:5432:*:m:x2\\n" >> ~/.pgpass`, `echo -e "db:5432:*:m:redacted\\nbk:5432:*:m:redacted\\n" >> ~/.pgpass`, []string{"s3cret", "x2"}},
		// A password file named in a comment alone is none the script writes: its lines that
		// read as a password file's (a status line) were hidden, and what they end with was a
		// secret to mask in the output's log.
		{"passfile in a comment", "# no passfile: PGPASSWORD is set\necho \"db1:5432:wire:monitor:up since $(date)\"", "", nil},
		{".pgpass in a comment", "psql -h db -c 'select 1' # reads ~/.pgpass\necho db1:5432:wire:monitor:up", "", nil},
		{"named, and in a comment", "echo 'db:5432:*:m:s3cret' > ~/.pgpass # the passfile", "echo 'db:5432:*:m:redacted' > ~/.pgpass # the passfile", []string{"s3cret"}},
		{"# in a quote or a word", `echo 'a # b' db:5432:*:m:s3cret > "/etc/#/.pgpass"; echo x#y > m.passfile`, `echo 'a # b' db:5432:*:m:redacted > "/etc/#/.pgpass"; echo x#y > m.passfile`, []string{"s3cret"}},
		// A password file's fields given to printf as arguments of its format's conversions
		// (printf '%s:%s:%s:%s:%s\n' db 5432 '*' m s3cret > ~/.pgpass): the password, an
		// argument, was shown, and the format's %s taken for it.
		{"printf arguments", `printf '%s:%s:%s:%s:%s\n' db 5432 '*' monitor s3cret > ~/.pgpass`, `printf '%s:%s:%s:%s:%s\n' db 5432 '*' monitor redacted > ~/.pgpass`, []string{"s3cret"}},
		{"printf arguments twice", "printf -- \"%s:%d:*:%s:%-3s\\n\" db 5432 m 's3 cret' \\\n  bk 5433 m \"x2\" >>~/.pgpass; psql -h db 1 2", "printf -- \"%s:%d:*:%s:%-3s\\n\" db 5432 m 'redacted' \\\n  bk 5433 m \"redacted\" >>~/.pgpass; psql -h db 1 2", []string{"s3 cret", "x2"}},
		{"printf some arguments", `printf 'db:5432:*:%s:%s\n' monitor "$PW" bk "s3cret" | tee -a ~/.pgpass`, `printf 'db:5432:*:%s:%s\n' monitor "$PW" bk "redacted" | tee -a ~/.pgpass`, []string{"s3cret"}},
		{"printf -v, -- and a format starting with -", `printf -v l -- '-%s:%s:%s:%s:%s\n' db 5432 '*' m s3cret; echo "$l" > ~/.pgpass`, `printf -v l -- '-%s:%s:%s:%s:%s\n' db 5432 '*' m redacted; echo "$l" > ~/.pgpass`, []string{"s3cret"}},
		// A format whose port is a conversion, its password written in it, was read as no
		// password file's line (a port is digits or '*').
		{"printf port a conversion", `printf '%s:%s:*:m:s3cret\n' db 5432 > ~/.pgpass; printf "%s:%05d:*:m:x2\n" bk 5433 >> ~/.pgpass`, `printf '%s:%s:*:m:redacted\n' db 5432 > ~/.pgpass; printf "%s:%05d:*:m:redacted\n" bk 5433 >> ~/.pgpass`, []string{"s3cret", "x2"}},
		{"printf no password's", `printf '%s:%s\n' db 5432 > ~/.pgpass; printf '%%s:1:%s:%s' a b`, "", nil},
	} {
		argv := []string{"sh", "-c", tc.script}
		if tc.shown == "" {
			tc.shown = tc.script // nothing hidden
		}
		if got := redactArgv(argv)[2]; got != tc.shown {
			t.Errorf("%s: %q shown as %q, want %q", tc.why, tc.script, got, tc.shown)
		}
		if got := CommandSecrets(argv); !slices.Equal(got, tc.secrets) {
			t.Errorf("%s: %q: secrets %q, want %q", tc.why, tc.script, got, tc.secrets)
		}
	}
}

// TestRedactedCommandPgpassFast: a script naming a password file had its password file's
// lines looked for by argPgpassLine in all of it, the slowest of the regexps' engines reading
// it whole, four times for a hook's run (redactArgv and redactArgIn each, for check-config's
// text and CommandSecrets'): a 64 KiB script took 3.5-4.5 times the CPU time of the same
// naming none. The lines are looked for in the windows a port is in (pgpassWindows): it costs
// 1.1 times as much, less than twice. What each run costs is the CPU time the process spends
// in it (processCPU), after a collection (runtime.GC) so that the garbage of the one before it
// is not collected in its time: the wall clock's time on a loaded 2-CPU machine, where a run
// waits for a CPU as long again as it runs or more, was twice as long naming a password file
// in one try of nine (seven times once), the best of three runs of each; CPU time's ratio was
// 0.96-1.13, under the race detector too. The two are run in turn, the best of five runs of
// each, and again if that fails.
func TestRedactedCommandPgpassFast(t *testing.T) {
	const times = 2
	plain := redactBenchScripts()["plain"]
	named := plain + "\ncat ~/.pgpass\n"
	cost := func(script string) time.Duration {
		runtime.GC()
		start := processCPU()
		redactArgv([]string{"sh", "-c", script})
		CommandSecrets([]string{"sh", "-c", script})
		return processCPU() - start
	}
	var none, took time.Duration
	for try := 0; try < 3; try++ {
		none, took = time.Duration(1<<62), time.Duration(1<<62)
		for range 5 {
			none = min(none, cost(plain))
			took = min(took, cost(named))
		}
		t.Logf("%d bytes: redacted in %v of CPU time (%.0f ns/B), in %v naming no password file", len(named), took, float64(took.Nanoseconds())/float64(len(named)), none)
		if took < times*none {
			return
		}
	}
	t.Errorf("%d bytes naming a password file: redacted in %v of CPU time, not less than %d times the %v naming none takes", len(named), took, times, none)
}

// processCPU is the CPU time the process has spent, in user and system mode, in all its
// threads (the collector's too), not the time it waited for a CPU.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPgpassWindows: argPgpassLine finds in the windows of pgpassWindows what it finds in all
// of a text, on texts made of what its matches are and end at.
func TestPgpassWindows(t *testing.T) {
	texts := []string{"a:% d:b:c:x", "a:%0 5d:b:c:", "db:5432:*:m:s3cret", "a:1:b:c:\\\nx:1:y:z:", "x\\ db:5432:*:m:", "é\\é:1:\\\":c:d", "'a:1:b:c:'\"d:*:e:f:\""}
	parts := []string{"a", ":", "1", "*", " ", "'", "\"", "\\", "\n", "\\n", "é", ":1:", "a:1:b:c:", "%", "%0 5d", "s", "a:%0 5d:b:c:", "a:%-5s:b:c:"}
	seed := uint32(1)
	for range 3000 {
		var b strings.Builder
		for range 1 + seed%12 {
			seed = seed*1664525 + 1013904223
			b.WriteString(parts[seed>>16%uint32(len(parts))])
		}
		texts = append(texts, b.String())
	}
	for _, a := range texts {
		if got, want := findAllIn(argPgpassLine, a, pgpassWindows(a)), argPgpassLine.FindAllStringSubmatchIndex(a, -1); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("%q: read in windows %v, all of it %v", a, got, want)
		}
	}
}
