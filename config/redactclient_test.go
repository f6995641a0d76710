package config

import "testing"

// TestRedactedCommandClientSecretOption: the options of common clients that take a password
// without naming one read "redacted": redis-cli's -a, mongosh's and sshpass's -p, and the
// password of curl's -u/--user user:password. They were shown whole. The same letters of
// other programs (psql -p 5432, redis-cli -p 6379, a curl -u without a password) are shown.
func TestRedactedCommandClientSecretOption(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"redis-cli", "-h", "db", "-a", "s3cret", "ping"}, []string{"redis-cli", "-h", "db", "-a", "redacted", "ping"}},
		{[]string{"redis-cli", "-a", "-s3cret", "ping"}, []string{"redis-cli", "-a", "redacted", "ping"}},
		{[]string{"sh", "-c", "redis-cli -a 's3 cret' ping | grep -q PONG"}, []string{"sh", "-c", "redis-cli -a 'redacted' ping | grep -q PONG"}},
		{[]string{"/usr/bin/valkey-cli", "-a", "s3cret", "ping"}, []string{"/usr/bin/valkey-cli", "-a", "redacted", "ping"}},
		{[]string{"mongosh", "-u", "m", "-p", "s3cret", "--eval", "1"}, []string{"mongosh", "-u", "m", "-p", "redacted", "--eval", "1"}},
		{[]string{"sshpass", "-p", "s3cret", "ssh", "db", "true"}, []string{"sshpass", "-p", "redacted", "ssh", "db", "true"}},
		{[]string{"curl", "-fsS", "-u", "monitor:s3cret", "http://db/health"}, []string{"curl", "-fsS", "-u", "monitor:redacted", "http://db/health"}},
		{[]string{"sh", "-c", "curl --user 'monitor:s3 cret' http://db/health"}, []string{"sh", "-c", "curl --user 'monitor:redacted' http://db/health"}},
		// Not a password there: shown as written.
		{[]string{"redis-cli", "-p", "6379", "ping"}, nil},
		{[]string{"psql", "-p", "5432", "-a"}, nil},
		{[]string{"sh", "-c", "pg_isready -p 5432 && redis-cli -p 6379 ping"}, nil},
		{[]string{"curl", "-u", "monitor", "http://db/health"}, nil},
		{[]string{"sh", "-c", "tar -a -cf x.tgz d; ssh -p 22 db true"}, nil},
	})
}
