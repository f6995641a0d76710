package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDSNClientsReadDifferently: a connection string the two database clients read differently
// is refused at its line and key, naming what differs and how to write it, and showing nothing
// of the password. The shim's sessions read it with pgx (pgconn), the control connections
// (install, term records, the resolver) with lib/pq, and each of these was taken: for
// postgres://u@h/db?password=s3c;ret pgconn read the password "s3c;ret" while lib/pq (net/url's
// query reader) skipped the parameter, and the control connections went without a password.
func TestDSNClientsReadDifferently(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := filepath.Join(dir, "ca1.pem"), filepath.Join(dir, "ca2.pem")
	for _, f := range []string{ca1, ca2} {
		cert, _ := selfSignedPEM(t)
		if err := os.WriteFile(f, []byte(cert), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	svc := filepath.Join(dir, "pg_service.conf")
	if err := os.WriteFile(svc, []byte("[app]\nhost=10.0.0.9\n[tls]\nsslmode=require\n[ca]\nsslrootcert="+ca2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSERVICEFILE", svc)
	t.Setenv("PGHOST", "")
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n"
	for _, tc := range []struct{ dsn, msg string }{
		// URL query parameters: net/url (lib/pq) drops a pair holding ';' or a bad '%' escape,
		// reads '+' as a space, and takes a parameter's first value where pgconn takes its last.
		{"postgres://u@10.0.0.2/db?sslmode=disable&password=s3c;ret", "%3B"},
		{"postgres://u@10.0.0.2/db?sslmode=disable&sslpassword=s3c;ret", "%3B"},
		{"postgres://u@10.0.0.2/db?password=s3c+ret", "%2B"},
		{"postgres://u@10.0.0.2/db?application_name=a+b", "%2B"},
		{"postgres://u@10.0.0.2/db?sslmode=disable&sslmode=require", "sslmode: given twice"},
		{"postgres://u:s3cret@10.0.0.2/db?ssl=true", "ssl: "},
		// Hosts and ports.
		{"postgres://u:s3cret@10.0.0.2:5432,10.0.0.3:5433/db", "?port="},
		{"postgres://u:s3cret@[fd00::2]/db", "give the port"},
		{"postgres://u:s3cret@10.0.0.3/db?host=10.0.0.2", "host: "},
		{"postgres://tandem:s3cret@10.0.0.2/db?user=app", "user: "},
		{"host=10.0.0.2, dbname=db password=s3cret", "or empty"},
		{"host='' dbname=db password=s3cret", "or empty"},
		{"dbname=db password=s3cret", "left out"},
		{"postgres://u:s3cret@/db", "left out"},
		{"host=10.0.0.2 sslpassword=s3cret", "sslpassword: "},
		{"host=@pgsock dbname=db password=s3cret", "host: "},
		{"hostaddr=10.0.0.3 host=10.0.0.2 password=s3cret", "hostaddr: "},
		{"service=app host=10.0.0.2 password=s3cret", "host: "},
		{"service=tls host=10.0.0.2 password=s3cret sslmode=disable", "sslmode: "},
		{"service=ca host=10.0.0.2 password=s3cret sslmode=verify-ca sslrootcert=" + ca1, "sslrootcert: "},
		// key=value: lib/pq ends an unquoted value at any Unicode space, pgconn at an ASCII one;
		// an empty user is the OS user's name for pgconn, none for lib/pq.
		{"host=10.0.0.2 password=s3cret\u00a0", "password: "},
		{"host=10.0.0.2 user='' password=s3cret", "user: "},
		// Settings one client reads and the other sends to the server as its own setting.
		{"host=10.0.0.2 password=s3cret sslcertmode=disable", "sslcertmode: "},
		{"host=10.0.0.2 password=s3cret channel_binding=require", "channel_binding: "},
		{"host=10.0.0.2 password=s3cret require_auth=scram-sha-256", "require_auth: "},
		{"host=10.0.0.2 password=s3cret load_balance_hosts=random", "load_balance_hosts: "},
		{"host=10.0.0.2 password=s3cret fallback_application_name=x", "fallback_application_name: "},
		{"host=10.0.0.2 password=s3cret tz=UTC", "tz: "},
		{"host=10.0.0.2 password=s3cret servicefile=" + svc, "servicefile: "},
	} {
		_, err := Parse("f.toml", []byte(base+"peer_dsn = "+tomlString(tc.dsn)+"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.peer_dsn" || errs[0].Line != 12 || !strings.Contains(errs[0].Msg, tc.msg) {
			t.Errorf("%s: got %v, want one error at f.toml:12 txshim.peer_dsn saying %q", tc.dsn, err, tc.msg)
		}
		if err != nil && strings.Contains(err.Error(), "s3c") {
			t.Errorf("%s: the error shows the password: %v", tc.dsn, err)
		}
	}
	// What both read alike stays accepted.
	for _, dsn := range []string{
		"postgres://u:s3c%3Bret@10.0.0.2/db?sslmode=disable",
		"postgres://u@10.0.0.2/db?password=s3c%3Bret&application_name=a%2Bb",
		"postgres://u%40x:s3c%2Bret@10.0.0.2/db",
		"postgres://u@10.0.0.2,10.0.0.3/db?port=5432,5433",
		"postgres://u@[fd00::2]:5432/db",
		"postgres://u@[fe80::1%25eth0]:5432/db",
		"postgres://u@10.0.0.2/db?options=-c%20lock_timeout%3D0",
		"host=10.0.0.2,10.0.0.3 port=5432,5433 dbname=db",
		"host=/var/run/postgresql dbname=db",
		"host=10.0.0.2 password='s3c\\'ret' options='-c lock_timeout=0' application_name=x",
		"host=10.0.0.2 password=s3c\\ ret database=db sslmode=disable",
		"service=app dbname=db",
		"service=ca host=10.0.0.2 sslmode=verify-ca",
		"host=10.0.0.2 sslmode=verify-full sslrootcert=" + ca1,
		"host=10.0.0.2 client_connection_check_interval=2s",
	} {
		if _, err := Parse("f.toml", []byte(base+"peer_dsn = "+tomlString(dsn)+"\n"), KindSite); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
	}
}

// tomlString is s as a TOML basic string.
func tomlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
