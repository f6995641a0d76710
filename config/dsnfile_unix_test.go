//go:build unix

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDSNFileNotRegular: a file a DSN names that is a FIFO (or a device) is refused with its
// setting: the database clients read those files while the string is checked, and the read of a
// FIFO nobody writes never ends, so tandem check-config, run, install, verify, resolve and the
// admin commands' -config hung there for ever.
func TestDSNFileNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFO here:", err)
	}
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n"
	for _, tc := range []struct{ dsn, setting string }{
		{"host=10.0.0.2 passfile=" + fifo, "passfile"},
		{"host=10.0.0.2 sslmode=verify-full sslrootcert=" + fifo, "sslrootcert"},
		{"postgres://a@10.0.0.2/c?sslmode=require&sslcert=" + fifo + "&sslkey=" + fifo, "sslcert"},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := Parse("f.toml", []byte(base+"peer_dsn = \""+tc.dsn+"\"\n"), KindSite)
			done <- err
		}()
		select {
		case err := <-done:
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.peer_dsn" || !strings.Contains(errs[0].Msg, tc.setting) {
				t.Errorf("%s: got %v, want one txshim.peer_dsn error naming %s", tc.dsn, err, tc.setting)
			}
		case <-time.After(5 * time.Second):
			// The goroutine stays blocked on the FIFO: open it for writing to let it go.
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.Close()
			}
			t.Fatalf("%s: the configuration is still being read after 5 s (blocked on the FIFO)", tc.dsn)
		}
	}
}

// TestTLSCertFileNotRegular: a txshim.tls_cert_file that is a FIFO is refused, as a secret file
// that is one is: it was read as it stood (tls.LoadX509KeyPair), and the read of a FIFO nobody
// writes never ended, so check-config and run hung.
func TestTLSCertFileNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "cert.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFO here:", err)
	}
	_, keyPEM := selfSignedPEM(t)
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(key, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:6432\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\n" +
		"tls_cert_file = \"" + fifo + "\"\ntls_key_file = \"" + key + "\"\n"
	done := make(chan error, 1)
	go func() {
		_, err := Parse("f.toml", []byte(src), KindSite)
		done <- err
	}()
	select {
	case err := <-done:
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.tls_cert_file" || !strings.Contains(errs[0].Msg, "not a regular file") {
			t.Errorf("got %v, want one txshim.tls_cert_file error: not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("the configuration is still being read after 5 s (blocked on the FIFO)")
	}
}

// TestDSNFileDevNull: passfile=/dev/null (or PGPASSFILE=/dev/null in the environment), the
// usual way to keep a client from reading ~/.pgpass, is a device but reads empty at once: the
// clients read it as an empty file, and the check for files that are not regular must let it
// be (it refused it, "reading it would never end", where it worked before).
func TestDSNFileDevNull(t *testing.T) {
	if _, err := os.Stat(os.DevNull); err != nil {
		t.Skip("no", os.DevNull)
	}
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n"
	if _, err := Parse("f.toml", []byte(base+"peer_dsn = \"host=10.0.0.2 passfile="+os.DevNull+"\"\n"), KindSite); err != nil {
		t.Errorf("passfile=%s: %v", os.DevNull, err)
	}
	t.Setenv("PGPASSFILE", os.DevNull)
	if _, err := Parse("f.toml", []byte(base+"peer_dsn = \"host=10.0.0.2\"\n"), KindSite); err != nil {
		t.Errorf("PGPASSFILE=%s: %v", os.DevNull, err)
	}
}

// TestDSNServiceFileNotRegular: the service file (a servicefile setting, $PGSERVICEFILE or
// ~/.pg_service.conf, read when a service is named) is read while the string is parsed, by
// pgconn and by lib/pq, as the files TestDSNFileNotRegular checks are: a FIFO there hung the
// configuration's reading for ever.
func TestDSNServiceFileNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFO here:", err)
	}
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n"
	for _, tc := range []struct{ dsn, env string }{
		{"host=10.0.0.2 service=s servicefile=" + fifo, ""},
		{"host=10.0.0.2 service=s servicefile='" + fifo + "'", ""},
		{"postgres://a@10.0.0.2/c?service=s&servicefile=" + fifo, ""},
		{"host=10.0.0.2 service=s", fifo},
	} {
		if tc.env != "" {
			t.Setenv("PGSERVICEFILE", tc.env)
		}
		done := make(chan error, 1)
		go func() {
			_, err := Parse("f.toml", []byte(base+"peer_dsn = \""+tc.dsn+"\"\n"), KindSite)
			done <- err
		}()
		select {
		case err := <-done:
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.peer_dsn" || !strings.Contains(errs[0].Msg, "servicefile") {
				t.Errorf("%s (PGSERVICEFILE %q): got %v, want one txshim.peer_dsn error naming servicefile", tc.dsn, tc.env, err)
			}
		case <-time.After(5 * time.Second):
			if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				f.Close()
			}
			t.Fatalf("%s (PGSERVICEFILE %q): the configuration is still being read after 5 s (blocked on the FIFO)", tc.dsn, tc.env)
		}
	}
}

// TestDSNPassfileUnreadable: a passfile the DSN names (or $PGPASSFILE) that cannot be read — a
// directory, or a file its user may not read — is refused with its setting (README: the files
// the DSNs name are read, "and one that cannot be read fails the command with its key"). The
// clients skip a passfile they cannot read, so the file loaded and every connection went
// without its password: tandem install, verify and resolve failed at the database's
// authentication, and tandem run came up with neither database reachable, naming no file.
func TestDSNPassfileUnreadable(t *testing.T) {
	t.Setenv("PGPASSWORD", "") // with a password the clients read no passfile
	dir := t.TempDir()
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n"
	unreadable := []string{dir} // a directory
	if os.Geteuid() != 0 {
		f := filepath.Join(dir, "pgpass")
		if err := os.WriteFile(f, []byte("*:*:*:*:pw\n"), 0o200); err != nil {
			t.Fatal(err)
		}
		unreadable = append(unreadable, f)
	}
	for _, pf := range unreadable {
		for _, dsn := range []string{"host=10.0.0.2 user=a passfile=" + pf, "postgres://a@10.0.0.2/c?passfile=" + pf} {
			_, err := Parse("f.toml", []byte(base+"peer_dsn = \""+dsn+"\"\n"), KindSite)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.peer_dsn" || !strings.Contains(errs[0].Msg, "passfile") {
				t.Errorf("%s: got %v, want one txshim.peer_dsn error naming passfile", dsn, err)
			}
		}
	}
	// One that is not there is no passfile, as for the clients (a $PGPASSFILE set for hosts that
	// have none), and one the clients do not read, the password given, is none of our business:
	// both load.
	if _, err := Parse("f.toml", []byte(base+"peer_dsn = \"host=10.0.0.2 passfile="+filepath.Join(dir, "none")+"\"\n"), KindSite); err != nil {
		t.Errorf("a passfile that is not there: %v", err)
	}
	if _, err := Parse("f.toml", []byte(base+"peer_dsn = \"host=10.0.0.2 password=pw passfile="+dir+"\"\n"), KindSite); err != nil {
		t.Errorf("a passfile not read, the password given: %v", err)
	}
}
