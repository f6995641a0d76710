package config

import "testing"

// TestRedactedCommandOtherSecretNames: a secret given under another common name than
// *password/*passwd reads "redacted" as a password does: MySQL's MYSQL_PWD=, a *_PASS= or
// --pass, a token (--token, VAULT_TOKEN=), a secret (CLIENT_SECRET=, --client-secret), an API
// key (--api-key, API_KEY=) and redis-cli's REDISCLI_AUTH=. They were shown as written. Names
// that only hold such a word, or end in another, are shown: $PWD and $OLDPWD are directories,
// --token-file and SECRET_FILE name files, --bypass is no pass.
func TestRedactedCommandOtherSecretNames(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"env", "MYSQL_PWD=s3cret", "mysql", "-e", "select 1"}, []string{"env", "MYSQL_PWD=redacted", "mysql", "-e", "select 1"}},
		{[]string{"sh", "-c", "MYSQL_PWD='s3cret' mysqladmin ping"}, []string{"sh", "-c", "MYSQL_PWD='redacted' mysqladmin ping"}},
		{[]string{"env", "DB_PASS=s3cret", "check"}, []string{"env", "DB_PASS=redacted", "check"}},
		{[]string{"redis-cli", "--pass", "s3cret", "ping"}, []string{"redis-cli", "--pass", "redacted", "ping"}},
		{[]string{"check", "--token", "s3cret"}, []string{"check", "--token", "redacted"}},
		{[]string{"check", "--token=s3cret"}, []string{"check", "--token=redacted"}},
		{[]string{"check", "--auth-token", "s3cret"}, []string{"check", "--auth-token", "redacted"}},
		{[]string{"sh", "-c", "VAULT_TOKEN=s3cret vault status"}, []string{"sh", "-c", "VAULT_TOKEN=redacted vault status"}},
		{[]string{"env", "CLIENT_SECRET=s3cret", "check"}, []string{"env", "CLIENT_SECRET=redacted", "check"}},
		{[]string{"check", "--client-secret", "s3cret"}, []string{"check", "--client-secret", "redacted"}},
		{[]string{"check", "--api-key", "s3cret"}, []string{"check", "--api-key", "redacted"}},
		{[]string{"env", "API_KEY=s3cret", "check"}, []string{"env", "API_KEY=redacted", "check"}},
		{[]string{"sh", "-c", "REDISCLI_AUTH=s3cret redis-cli ping"}, []string{"sh", "-c", "REDISCLI_AUTH=redacted redis-cli ping"}},
		// No secret there: shown as written.
		{[]string{"sh", "-c", "cd /srv && OLDPWD=/tmp PWD=/srv check"}, nil},
		{[]string{"check", "--token-file", "/etc/tandem/token", "--secret-file=/etc/s"}, nil},
		{[]string{"env", "SECRET_FILE=/etc/s", "check", "--bypass", "cache", "--max-tokens", "5"}, nil},
		{[]string{"check", "--no-token", "wire"}, nil},
	})
}
