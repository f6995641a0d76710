package config

import "testing"

// TestRedactedCommandMongoPasswordPrompt: mongosh's (and the mongo tools') -p given no value
// prompts for the password, and the option after it is no password: it was shown as
// "redacted" (mongosh -u admin -p --port 27017 read "-p redacted 27017"), and masked wherever
// the command's output held it (CommandSecrets). sshpass's -p and redis-cli's -a take the word
// after them whatever it starts with.
func TestRedactedCommandMongoPasswordPrompt(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"mongosh", "-u", "admin", "-p", "--authenticationDatabase", "admin"}, nil},
		{[]string{"sh", "-c", "mongosh -u admin -p --port 27017 --eval 1"}, nil},
		{[]string{"mongosh", "-u", "admin", "-p", "s3cret"}, []string{"mongosh", "-u", "admin", "-p", "redacted"}},
		{[]string{"sh", "-c", "mongosh -u admin -p s3cret --port 27017"}, []string{"sh", "-c", "mongosh -u admin -p redacted --port 27017"}},
		{[]string{"sshpass", "-p", "-s3cret", "ssh", "db"}, []string{"sshpass", "-p", "redacted", "ssh", "db"}},
		{[]string{"sh", "-c", "sshpass -p -s3cret ssh db"}, []string{"sh", "-c", "sshpass -p redacted ssh db"}},
	})
}
