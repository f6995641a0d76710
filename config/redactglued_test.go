package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestArgPasswordMatchesGluedLinear: a word of many -p glued to what follows them (-p-p-p...,
// each a MySQL client's -p glued to a '-'), or ending in an option (-p-p...-p x), in a text
// that folds (ſ, K: one window) or not, was read by
// argPasswordName once for each -p in it from there to its end, the regexp's names that may
// start anywhere in a word ([\w.-]*password) taking all of it each time: a 128 KiB word took
// minutes, on every hook run and health check. Reading four times as much costs about four
// times as long (under six), the best of a few runs of each.
func TestArgPasswordMatchesGluedLinear(t *testing.T) {
	// run runs f, in at most limit: ok false if not.
	run := func(f func(), limit time.Duration) (took time.Duration, ok bool) {
		done := make(chan struct{})
		start := time.Now()
		go func() { // left running if too slow: the test fails without waiting for it
			defer close(done)
			f()
		}()
		select {
		case <-done:
			return time.Since(start), true
		case <-time.After(limit):
			return limit, false
		}
	}
	for _, c := range []struct{ name, unit, tail string }{
		{"glued", "-p", ""},
		{"glued then an option", "-p", " x"},
		{"glued to letters", "-pq", " --password x"},
		{"options", "-p ", ""},
		// A text holding a character the regexp folds to an ASCII letter (ſ, K) is read whole.
		{"glued, folding", "-p", " x \u017f"},
		{"glued to a folding letter", "-p\u212a", " x"},
	} {
		text := func(size int) string { return strings.Repeat(c.unit, size/len(c.unit)) + c.tail }
		// 16 KiB took minutes before (quadratic); at 64 KiB the test took 45 s under -race.
		const size = 16 << 10
		// best is the best of a few runs on size bytes, false if none took less than limit.
		best := func(size int, limit time.Duration) (time.Duration, bool) {
			best, ok := time.Duration(1<<62), false
			a := text(size)
			for range 3 {
				took, done := run(func() { argPasswordMatches(a) }, limit)
				best, ok = min(best, took), ok || done
			}
			return best, ok
		}
		// Timed again if that fails, so that a busy machine does not fail it.
		var small, large, limit time.Duration
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			if small, ok = best(size, 10*time.Second); !ok {
				break
			}
			limit = max(6*small, 100*time.Millisecond)
			large, ok = best(4*size, limit)
		}
		switch {
		case small == 10*time.Second:
			t.Errorf("%s: %d bytes not read in %v", c.name, size, small)
		case !ok:
			t.Errorf("%s: %d bytes read in %v, %d bytes not in %v", c.name, size, small, 4*size, limit)
		default:
			t.Logf("%s: %d bytes read in %v, %d bytes in %v", c.name, size, small, 4*size, large)
		}
	}
}

// TestArgPasswordMatchesGluedSame: argPasswordMatches finds what argPasswordName does read
// from each match on (checkWindows), in words of many -p glued to what follows them that end
// in any of its matches' forms, near their end or far from it. The whole set, 80 000 texts,
// took 280 s under -race, more than the rest of the suite's critical path can spare: every
// gluedSample-th of them runs (each head, glued unit, count and tail still among them), and
// all with TANDEM_REDACT_EXHAUSTIVE=1. With argGluedTail at 2 or 8, the sample finds
// differences as the whole set does (at 20 neither finds any).
func TestArgPasswordMatchesGluedSame(t *testing.T) {
	step := gluedSample
	if os.Getenv("TANDEM_REDACT_EXHAUSTIVE") != "" {
		step = 1
	}
	i := 0
	for _, head := range []string{"", "x", "-", "?", "&", "-p", "--p", "pass", "xpassword", "\u017f ", "\u212a-"} {
		for _, glued := range []string{"-p-", "-pq", "-p.", "-p_", "-pp", "-pa", "-p-p", "-pass-", "x-p", "-p\u017f", "-p\u212a", "\u017f-p"} {
			for _, n := range []int{1, 5, 10, 11, 12, 20, 40} {
				for _, tail := range []string{
					"", " x", "=x", "-p x", "-p", "-pé", "-p'", "-p'x", "-p= x", "-a x", "-u x", "--user x",
					"--proxy-user x", "-password x", "--password x", "password=x", "-password=x",
					"pass=x", ".pass=x", "-pass x", "token=x", "-token=x", "_token x", "api-key=x",
					"rediscli_auth=x", "-rediscli_auth x", "--rediscli_auth x", "xrediscli_auth=x",
					"_pwd=x", "-pwd x", "passphrase = x", "-p\t\"x", "-pass' x", "-secret\t x",
					"-p" + strings.Repeat("x", 40) + "password=y", strings.Repeat("y", 40) + "-pass x",
					"pa\u017f\u017fword=x", "-pa\u017f\u017fword x", "-to\u212aen x", "\u017f-p x", "_pwd é",
				} {
					if i++; i%step != 0 {
						continue
					}
					a := head + strings.Repeat(glued, n) + tail
					checkWindows(t, a)
					checkWindows(t, "mysql "+a+" "+a)
				}
			}
		}
	}
}

// gluedSample is how sparsely TestArgPasswordMatchesGluedSame samples its texts: a prime, so
// that the sample's tails, counts and units shift from one head to the next.
const gluedSample = 31
