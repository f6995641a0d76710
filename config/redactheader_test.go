package config

import "testing"

// TestRedactedCommandAuthHeader: an HTTP header carrying a credential (Authorization: Bearer
// ..., Basic ..., X-Api-Key:, PRIVATE-TOKEN:), as a health check's curl sends it, reads
// "redacted", its scheme shown; it was shown whole. A URL's user:password@ is hidden whatever
// its scheme, as before.
func TestRedactedCommandAuthHeader(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"curl", "-H", "Authorization: Bearer s3cret", "http://db/health"}, []string{"curl", "-H", "Authorization: Bearer redacted", "http://db/health"}},
		{[]string{"sh", "-c", "curl -fsS -H 'Authorization: Basic czNjcmV0' http://db/ >/dev/null"}, []string{"sh", "-c", "curl -fsS -H 'Authorization: Basic redacted' http://db/ >/dev/null"}},
		{[]string{"sh", "-c", `curl -H "authorization:bearer s3cret" http://db/`}, []string{"sh", "-c", `curl -H "authorization:bearer redacted" http://db/`}},
		{[]string{"curl", "--header", "Authorization: s3cret", "http://db/"}, []string{"curl", "--header", "Authorization: redacted", "http://db/"}},
		{[]string{"curl", "-H", "X-Api-Key: s3cret", "http://db/"}, []string{"curl", "-H", "X-Api-Key: redacted", "http://db/"}},
		{[]string{"sh", "-c", "curl -H 'PRIVATE-TOKEN: s3cret' http://git/"}, []string{"sh", "-c", "curl -H 'PRIVATE-TOKEN: redacted' http://git/"}},
		// URLs with user:password@, as before.
		{[]string{"redis-cli", "-u", "redis://:s3cret@db:6379/0", "ping"}, []string{"redis-cli", "-u", "redis://:redacted@db:6379/0", "ping"}},
		{[]string{"sh", "-c", "curl -fsS 'https://monitor:s3cret@db/health'"}, []string{"sh", "-c", "curl -fsS 'https://monitor:redacted@db/health'"}},
		// No credential there.
		{[]string{"curl", "-H", "Accept: application/json", "http://db/"}, nil},
		{[]string{"sh", "-c", "curl -H 'Content-Type: text/plain' http://db/ && echo 'no authorization needed'"}, nil},
	})
}
