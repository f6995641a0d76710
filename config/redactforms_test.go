package config

import "testing"

// TestRedactedCommandMoreForms: credentials in forms check-config showed as written, and the
// hook and health output logs did not mask: an HTTP Digest Authorization header's response
// (its username and other parameters shown), sshpass's -p glued to its password
// (sshpass -ps3cret), the password of a .pgpass line a script writes
// (host:port:database:user:password), and a URL's password holding an unencoded '/'
// (postgres://u:p/ss@h). Look-alikes are shown: ssh -p2222, a path's '@' after a port
// (http://h:4873/@scope/pkg), a line of colons not written to a password file.
func TestRedactedCommandMoreForms(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"curl", "-H", `Authorization: Digest username="m", realm="db", nonce="abc", uri="/", response="6629fae49393a053"`, "http://db/"},
			[]string{"curl", "-H", `Authorization: Digest username="m", realm="db", nonce="abc", uri="/", response="redacted"`, "http://db/"}},
		{[]string{"sh", "-c", `curl -H 'Authorization: Digest username="m",response="6629fae4",qop=auth' http://db/`},
			[]string{"sh", "-c", `curl -H 'Authorization: Digest username="m",response="redacted",qop=auth' http://db/`}},
		{[]string{"sshpass", "-ps3cret", "ssh", "db", "true"}, []string{"sshpass", "-predacted", "ssh", "db", "true"}},
		{[]string{"sh", "-c", "sshpass -v -ps3cret ssh -p2222 db true"}, []string{"sh", "-c", "sshpass -v -predacted ssh -p2222 db true"}},
		{[]string{"/usr/bin/sshpass", "-ps3cret", "ssh", "-p2222", "db"}, []string{"/usr/bin/sshpass", "-predacted", "ssh", "-p2222", "db"}},
		{[]string{"sh", "-c", "echo 'db:5432:*:monitor:s3cret' > ~/.pgpass && psql -h db"}, []string{"sh", "-c", "echo 'db:5432:*:monitor:redacted' > ~/.pgpass && psql -h db"}},
		{[]string{"sh", "-c", `printf '%s\n' "*:*:wire:monitor:s3 cret" >> "$PGPASSFILE"`}, []string{"sh", "-c", `printf '%s\n' "*:*:wire:monitor:redacted" >> "$PGPASSFILE"`}},
		{[]string{"sh", "-c", "echo db:5432:wire:mon\\:itor:s3cret >/root/.pgpass"}, []string{"sh", "-c", "echo db:5432:wire:mon\\:itor:redacted >/root/.pgpass"}},
		{[]string{"psql", "postgres://u:p/ss@db/wire"}, []string{"psql", "postgres://u:redacted@db/wire"}},
		{[]string{"sh", "-c", "psql 'postgresql://monitor:2024/Summer@db:5432/wire' -c 'select 1'"}, []string{"sh", "-c", "psql 'postgresql://monitor:redacted@db:5432/wire' -c 'select 1'"}},
		// No credential there.
		{[]string{"ssh", "-p2222", "db", "true"}, nil},
		{[]string{"curl", "http://registry:4873/@scope/pkg"}, nil},
		{[]string{"sh", "-c", "echo db:5432:wire:monitor:x > /tmp/list"}, nil},
	})
}

// TestRedactedCommandDigestBeforeHeader: a Digest Authorization header without a response,
// before another header carrying a credential and a response= after that (a form field, a
// later header's): the response was looked for to the line's end, hidden, and the other
// header's credential, before it, left shown and then written again: redactArgv panicked
// (slice bounds out of range), in check-config and on each of the hook's runs. A Digest
// header's response is its own, before the next header.
func TestRedactedCommandDigestBeforeHeader(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"sh", "-c", "curl -H 'Authorization: Digest username=m' -H 'X-Api-Key: k3y' -d response=abc http://db/"},
			[]string{"sh", "-c", "curl -H 'Authorization: Digest username=m' -H 'X-Api-Key: redacted' -d response=abc http://db/"}},
		{[]string{"curl", "-H", "Authorization: Digest x Authorization: Bearer t0k,response=r3sp"},
			[]string{"curl", "-H", "Authorization: Digest x Authorization: Bearer redacted"}},
	})
}
