package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRedactedCommandLongScriptLinear: the redaction of a command reads a long script (or a
// long argv) a bounded number of times, not once more for each option in it: each option
// looked for the clients named before it in all the script before it (argOption, the MySQL
// client before a -p), and each argument in all the arguments before it, so that a 52 KB
// script of "--password x " took 15 s, run on every hook and health check. Redacting a 16 KB
// one must cost no more than 50 times reading it once for the secrets' names
// (argPasswordName), the best of a few runs of each: the redaction reads it about ten times;
// the one before read it hundreds of times.
func TestRedactedCommandLongScriptLinear(t *testing.T) {
	const size, times = 16 << 10, 50
	var cases [][]string
	for _, s := range []string{
		"--password x ", "-p x ", "-a ", "curl -u a:b ", "x PGPASSWORD=x ", "'--password' 'x' ", "psql --password -h db ",
		// Each read the rest of its line for its response.
		"curl -H 'Authorization: Digest x' ", "curl -H 'Authorization: Digest response=x' ",
	} {
		cases = append(cases, []string{"sh", "-c", strings.Repeat(s, size/len(s))})
	}
	for _, s := range []string{"password=x ", "--password x "} { // in one long quote
		cases = append(cases, []string{"sh", "-c", `psql "` + strings.Repeat(s, size/len(s)) + `"`})
	}
	cases = append(cases, append([]string{"curl"}, strings.Split(strings.Repeat("-p\x00", size/3), "\x00")...))
	var distinct strings.Builder // secrets all different
	for i := 0; distinct.Len() < size; i++ {
		fmt.Fprintf(&distinct, "--password x%d ", i)
	}
	cases = append(cases, []string{"sh", "-c", distinct.String()})
	// run runs f, in at most limit (0: any time): ok false if not.
	run := func(f func(), limit time.Duration) (took time.Duration, ok bool) {
		done := make(chan struct{})
		start := time.Now()
		go func() { // left running if too slow: the test fails without waiting for it
			defer close(done)
			f()
		}()
		if limit == 0 {
			<-done
			return time.Since(start), true
		}
		select {
		case <-done:
			return time.Since(start), true
		case <-time.After(limit):
			return limit, false
		}
	}
	for _, argv := range cases {
		text := strings.Join(argv, " ")
		once := time.Duration(1 << 62)
		for range 3 {
			took, _ := run(func() { argPasswordName.FindAllStringSubmatchIndex(text, -1) }, 0)
			once = min(once, took)
		}
		limit := max(times*once, 50*time.Millisecond)
		var took time.Duration
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			took, ok = run(func() { redactArgv(argv); CommandSecrets(argv) }, limit)
		}
		if !ok {
			t.Fatalf("%.24q... (%d arguments, %d bytes): not redacted in %v, %d times the %v reading it takes", text, len(argv), len(text), limit, times, once)
		}
		t.Logf("%.24q... (%d arguments, %d bytes): redacted in %v, read in %v", text, len(argv), len(text), took, once)
	}
}
