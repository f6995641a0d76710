package config

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tandem-ha/tandem/internal/procgroup"
)

// TestCommandSecretsShellEscapes: a secret a script writes with the shell's quoting or escapes
// ("pa\"ss", 'pa'\”ss', pa\ ss, $'pa\'ss') reaches the program, and bash's set -x trace, as
// the shell reads it; CommandSecrets gave it as written only, so that the output's log (masked
// with them: procgroup.Output.Masked) showed it. They give it as the shell reads it too. And
// curl's -u 'user:pa'\”ss' was shown without its closing quote, taken for the password's.
func TestCommandSecretsShellEscapes(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"sh", "-c", `curl -u 'user:pa'\''ss' http://db/`}, []string{"sh", "-c", `curl -u 'user:redacted' http://db/`}},
	})
	for _, tc := range []struct{ script, secret string }{
		{`: curl -u "user:pa\"ss-1" http://db/`, `pa"ss-1`},
		{`: curl -u 'user:pa'\''ss-2' http://db/`, `pa'ss-2`},
		{`: tool --password pa\ ss-3`, `pa ss-3`},
		{`PGPASSWORD="pa\$ss-4" : psql`, `pa$ss-4`},
		{`: tool --password $'pa\'ss-5\t'`, "pa'ss-5\t"},
		{`: tool --token "pa\\ss-6"`, `pa\ss-6`},
		{`: mysql -p"pa'ss-7"`, `pa'ss-7`},
		{`: tool --password=$'pa\x41ss-8'`, `paAss-8`},
		// A NUL ends what $'...' gives: the program gets s3cr3t-9, set -x traces it.
		{`: tool --password $'s3cr3t-9\0xyz'`, `s3cr3t-9`},
		{`: tool --password $'s3cr3t\x00xyz'-10`, `s3cr3t-10`},
	} {
		argv := []string{"bash", "-xc", tc.script + "; echo " + "\"[$(printf %s '" + strings.ReplaceAll(tc.secret, "'", `'\''`) + "')]\""}
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v: %s", argv, err, out)
		}
		if !strings.Contains(string(out), "["+tc.secret+"]") {
			t.Fatalf("%q: the script did not print %q: %s", argv, tc.secret, out)
		}
		// Masked by the script's own secrets alone: the echo's are taken out.
		secrets := CommandSecrets([]string{"bash", "-xc", tc.script})
		o := procgroup.Output{Max: 1 << 20}
		o.Write(out)
		if masked := o.Masked(secrets...); strings.Contains(masked, tc.secret[:len(tc.secret)-2]) {
			t.Errorf("%q: secrets %q; its output's log shows the secret:\n%s", tc.script, secrets, masked)
		}
	}
}
