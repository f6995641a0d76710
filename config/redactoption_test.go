package config

import "testing"

// TestRedactedCommandPasswordOptionDashOrQuoted: the value after an option naming a password
// is hidden though it starts with '-' (--password -s3cret), and so is one after such an option
// a script quotes ('--password' 's3cret', "--password" s3cret): both were shown whole, the
// first taken for another option, the second for no option at all. A PostgreSQL or MySQL
// client's --password takes no value as the next word (psql prompts), so an option after it
// is still shown.
func TestRedactedCommandPasswordOptionDashOrQuoted(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"mongosh", "--password", "-s3cret", "--eval", "1"}, []string{"mongosh", "--password", "redacted", "--eval", "1"}},
		{[]string{"check", "--db-password", "--s3cret"}, []string{"check", "--db-password", "redacted"}},
		{[]string{"sh", "-c", "check --password -s3cret && echo ok"}, []string{"sh", "-c", "check --password redacted && echo ok"}},
		{[]string{"sh", "-c", "check '--password' 's3cret' -v"}, []string{"sh", "-c", "check '--password' 'redacted' -v"}},
		{[]string{"sh", "-c", `check "--password" s3cret; echo ok`}, []string{"sh", "-c", `check "--password" redacted; echo ok`}},
		{[]string{"sh", "-c", `ssh db "check '--password' 's3 cret'"`}, []string{"sh", "-c", `ssh db "check '--password' 'redacted'"`}},
		// Still hidden, as before.
		{[]string{"sh", "-c", `check "--password=s3cret"`}, []string{"sh", "-c", `check "--password=redacted"`}},
		{[]string{"sh", "-c", `check '--password=s3cret' -v`}, []string{"sh", "-c", `check '--password=redacted' -v`}},
		{[]string{"sh", "-c", "mysql --password -ps3cret db"}, []string{"sh", "-c", "mysql --password -predacted db"}},
		{[]string{"mysql", "--password", "-ps3cret", "db"}, []string{"mysql", "--password", "-predacted", "db"}},
		// A PostgreSQL or MySQL client's --password is no option with a value: shown.
		{[]string{"psql", "--password", "-h", "db"}, nil},
		{[]string{"env", "PGHOST=db", "/usr/bin/pg_dump", "--password", "-Fc", "wire"}, nil},
		{[]string{"mysql", "--password", "-h", "db"}, nil},
		{[]string{"sh", "-c", "psql --password -h db -c 'select 1'"}, nil},
		{[]string{"sh", "-c", "pg_isready -h db; psql -W --password -d wire"}, nil},
		{[]string{"sh", "-c", "check '--password' >/dev/null"}, nil},
	})
}
