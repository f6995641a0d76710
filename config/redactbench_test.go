package config

import (
	"strings"
	"testing"
	"time"
)

// redactBenchScripts are 64 KiB sh -c scripts for BenchmarkRedactCommand: one with no secret
// (an ordinary script: commands, paths, a few URLs and headers), one dense with them.
func redactBenchScripts() map[string]string {
	const size = 64 << 10
	plain := `set -e
for f in /var/lib/postgresql/15/main/*.conf; do test -r "$f" || exit 3; done
pg_isready -h 127.0.0.1 -p 5432 -U monitor -d wire -t 2 >/dev/null 2>&1
curl -fsS -H 'Accept: application/json' "http://127.0.0.1:8008/health?verbose=1" | grep -q '"state": "running"'
awk -F: '{ print $1, $3 }' /etc/passwd | sort -u > /tmp/users.$$ && rm -f /tmp/users.$$
echo "checked at $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)" >> /var/log/health.log
`
	dense := `PGPASSWORD=s3cret psql "host=db password='it''s' sslpassword=k3y" -c "ALTER ROLE m PASSWORD 'pw'"
curl -u admin:s3cret -H 'Authorization: Bearer t0ken' -d '{"password":"s3cret"}' https://m:s3cret@db/x
mysql -uroot -ps3cret -e 'select 1'; redis-cli -a s3cret ping; sshpass -p s3cret ssh db true
tool --password -s3cret --api-key=$(cat /k) --client-secret "$SECRET" '--token' 't0k'
`
	return map[string]string{
		"plain": strings.Repeat(plain, size/len(plain)+1)[:size],
		"dense": strings.Repeat(dense, size/len(dense)+1)[:size],
	}
}

// BenchmarkRedactCommand: redactArgv and CommandSecrets, as a hook's run and check-config do
// them, on a 64 KiB script; ns/B is the cost per byte of it.
func BenchmarkRedactCommand(b *testing.B) {
	for name, script := range redactBenchScripts() {
		b.Run(name, func(b *testing.B) {
			argv := []string{"sh", "-c", script}
			b.SetBytes(int64(len(script)))
			for b.Loop() {
				redactArgv(argv)
				CommandSecrets(argv)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(script)), "ns/B")
		})
	}
}

// TestRedactedCommandFast: redacting a 64 KiB script holding no secret, as a hook's run does
// (redactArgv and CommandSecrets), costs less than two readings of it by argPasswordName: the
// regexps read it whole, several times each, a microsecond or more a byte (2.5 s under the race
// detector), five to six readings' time; they read the parts of it their matches may be in
// (argPasswordWindows...), a fifth to a half of one. The two are timed in turn, the best of a
// few runs of each, and timed again if that fails, so that a busy machine (one slowing the
// redaction's allocations more than the regexp's reading) does not fail it.
func TestRedactedCommandFast(t *testing.T) {
	const times = 2
	script := redactBenchScripts()["plain"]
	argv := []string{"sh", "-c", script}
	timed := func(f func()) time.Duration {
		start := time.Now()
		f()
		return time.Since(start)
	}
	var read, took time.Duration
	for try := 0; try < 3; try++ {
		read, took = time.Duration(1<<62), time.Duration(1<<62)
		for range 5 {
			read = min(read, timed(func() { argPasswordName.FindAllStringSubmatchIndex(script, -1) }))
			took = min(took, timed(func() { redactArgv(argv); CommandSecrets(argv) }))
		}
		t.Logf("%d bytes: redacted in %v (%.0f ns/B), read in %v", len(script), took, float64(took.Nanoseconds())/float64(len(script)), read)
		if took < times*read {
			return
		}
	}
	t.Errorf("%d bytes: redacted in %v, not less than the %v reading it %d times takes", len(script), took, times*read, times)
}
