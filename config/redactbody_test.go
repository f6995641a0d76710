package config

import "testing"

// TestRedactedCommandSQLAndJSONSecrets: a password written as SQL's PASSWORD literal (psql -c
// "ALTER ROLE m PASSWORD 's3cret'") or as a JSON member named like a secret (curl -d
// '{"password":"s3cret"}', "token": "...") reads "redacted" in check-config's output, the
// literal's or the string's quotes kept; both were shown as written. SQL that names a password
// without one (password_encryption, PASSWORD NULL) and JSON members of other names are shown.
func TestRedactedCommandSQLAndJSONSecrets(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"psql", "-c", "ALTER ROLE monitor PASSWORD 's3cret'"}, []string{"psql", "-c", "ALTER ROLE monitor PASSWORD 'redacted'"}},
		{[]string{"psql", "-c", "alter user m with encrypted password 's3''cret' valid until 'infinity'"}, []string{"psql", "-c", "alter user m with encrypted password 'redacted' valid until 'infinity'"}},
		{[]string{"sh", "-c", `psql -c "CREATE USER m WITH PASSWORD 's3 cret'" && echo ok`}, []string{"sh", "-c", `psql -c "CREATE USER m WITH PASSWORD 'redacted'" && echo ok`}},
		{[]string{"curl", "-d", `{"user":"m","password":"s3cret"}`, "http://db/login"}, []string{"curl", "-d", `{"user":"m","password":"redacted"}`, "http://db/login"}},
		{[]string{"sh", "-c", `curl -d '{"token": "s3\"cret", "x": 1}' http://db/`}, []string{"sh", "-c", `curl -d '{"token": "redacted", "x": 1}' http://db/`}},
		{[]string{"sh", "-c", `curl -d "{\"api_key\":\"s3cret\"}" http://db/`}, []string{"sh", "-c", `curl -d "{\"api_key\":\"redacted\"}" http://db/`}},
		// No secret written there.
		{[]string{"psql", "-c", "show password_encryption"}, nil},
		{[]string{"psql", "-c", "ALTER ROLE m PASSWORD NULL"}, nil},
		{[]string{"sh", "-c", "psql --no-password 'postgresql://m@db/wire' -c 'select 1'"}, nil},
		{[]string{"curl", "-d", `{"user":"m","password_file":"/etc/pw","tokens":"3"}`, "http://db/"}, nil},
	})
}

// TestRedactedCommandSQLEscapeStringPassword: a password written as SQL's escape string
// constant after PASSWORD (psql -c "ALTER ROLE m PASSWORD E's3cret'") was shown in
// check-config's output and was no secret to mask in the command's output log: PASSWORD was
// one before a quote only. Its E may stand before the quote, and a backslash inside escapes the
// character after it (E's3\'cret').
func TestRedactedCommandSQLEscapeStringPassword(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"psql", "-c", "ALTER ROLE m PASSWORD E's3cret'"}, []string{"psql", "-c", "ALTER ROLE m PASSWORD E'redacted'"}},
		{[]string{"sh", "-c", `psql -c "alter role m password  e's3\'cr''et' valid until 'infinity'"`}, []string{"sh", "-c", `psql -c "alter role m password  e'redacted' valid until 'infinity'"`}},
		{[]string{"psql", "-c", "ALTER ROLE m PASSWORD Ex's3cret'"}, nil},
	})
}
