package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestCommandProgramIsAssignment: a health command or hook whose first element is a variable
// assignment (["PGPASSWORD=s3cret", "psql", ...], as a shell would take it) is refused at its
// line, without its value: no shell runs the command, so the file loaded and every run failed
// with exec's "PGPASSWORD=s3cret": executable file not found, which tandem logged with the
// program's name (cmd=PGPASSWORD=s3cret) — the password in the log. Set through env, it loads.
func TestCommandProgramIsAssignment(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n" +
		"[server]\nhealth = \"exec\"\nhealth_command = %s\n" + // line 7
		"[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[hooks]\non_promote = %s\n" // line 12
	for _, tc := range []struct{ health, hook, key string }{
		{`["PGPASSWORD=s3cret", "pg_isready"]`, `["true"]`, "server.health_command"},
		{`["true"]`, `["MYSQL_PWD=s3cret", "mysql", "-e", "select 1"]`, "hooks.on_promote"},
		{`["true"]`, `["A_1=s3cret", "/bin/sh", "-c", "x"]`, "hooks.on_promote"},
	} {
		_, err := Parse("f.toml", []byte(fmt.Sprintf(base, tc.health, tc.hook)), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, "env") {
			t.Errorf("%s %s: got %v, want one error at %s saying to use env", tc.health, tc.hook, err, tc.key)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error shows the value: %v", err)
		}
	}
	for _, argv := range []string{`["env", "PGPASSWORD=s3cret", "pg_isready"]`, `["/opt/x=y/check"]`, `["./check", "A=1"]`} {
		if _, err := Parse("f.toml", []byte(fmt.Sprintf(base, argv, `["true"]`)), KindSite); err != nil {
			t.Errorf("health_command %s: %v", argv, err)
		}
	}
}
