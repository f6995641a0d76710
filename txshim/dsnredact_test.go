package txshim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-ha/tandem/config"
)

// TestDSNParseErrorHidesPassword: the connection strings are read again whenever a part of the
// shim connects (the decoder, an apply, a resync), and that read opens the files they name
// (sslrootcert, sslcert, sslkey). One gone since the configuration was checked — a certificate
// being replaced — failed the read with pgx's error, which quotes the string with the password
// hidden only as far as its patterns go: "password = secret" (spaces around '=', as libpq
// takes it) or a quoted password holding \' were logged as written.
func TestDSNParseErrorHidesPassword(t *testing.T) {
	t.Parallel()
	ca := filepath.Join(t.TempDir(), "gone.pem") // not there
	for _, dsn := range []string{
		"host=127.0.0.1 password = s3cret sslmode=verify-full sslrootcert=" + ca,
		"host=127.0.0.1 password='s3c\\' ret' sslmode=verify-full sslrootcert=" + ca,
		"host=127.0.0.1 password=s3cret\tsslmode=verify-full sslrootcert=" + ca,
		"postgres://u:s3cret@127.0.0.1/db?sslmode=verify-full&sslrootcert=" + ca,
	} {
		var errs []error
		_, err := New(config.TxShim{Listen: "127.0.0.1:0", LocalDSN: dsn, PeerDSN: dsn}, Options{})
		errs = append(errs, err)
		errs = append(errs, NewDecoder(dsn, "s1", nil).Run(context.Background(), make(chan Event)))
		_, err = dialApply(context.Background(), dsn, "s1", "", applyAppName, nil)
		errs = append(errs, err)
		_, err = terminateBlockers(context.Background(), dsn, 1, "", "", nil)
		errs = append(errs, err)
		for i, err := range errs {
			if err == nil {
				t.Errorf("%q: call %d: no error", dsn, i)
				continue
			}
			if strings.Contains(err.Error(), "s3c") || strings.Contains(err.Error(), "ret'") {
				t.Errorf("call %d: the error shows the password: %v", i, err)
			}
			if !strings.Contains(err.Error(), "sslrootcert") && !strings.Contains(err.Error(), "CA") {
				t.Errorf("call %d: the error does not say what failed: %v", i, err)
			}
		}
	}
	_ = os.Remove(ca)
}

// TestOpenDBServiceFileErrorHidesPassword: lib/pq reads the service file a connection string
// names at every OpenDB (catch-up, prune, resync, the resolver open one as they run), and its
// error on a line without '=' quotes the line: a password written "password s3cret" (or
// "password: s3cret") in a file edited while the sidecar runs went to the log, as did the
// words before a missing '=' of the string itself.
func TestOpenDBServiceFileErrorHidesPassword(t *testing.T) {
	dir := t.TempDir()
	svc := filepath.Join(dir, "pg_service.conf")
	for _, line := range []string{"password s3cret", "password: s3cret", "= s3cret"} {
		if err := os.WriteFile(svc, []byte("[app]\nhost=127.0.0.1\n"+line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PGSERVICEFILE", svc)
		for _, dsn := range []string{"service=app", "postgres://u@/db?service=app"} {
			db, err := OpenDB(dsn)
			if err == nil {
				db.Close()
				t.Errorf("%q with %q: no error", dsn, line)
				continue
			}
			if strings.Contains(err.Error(), "s3c") {
				t.Errorf("%q: the error shows the password: %v", dsn, err)
			}
			if !strings.Contains(err.Error(), "line 3") {
				t.Errorf("%q: the error does not say where: %v", dsn, err)
			}
		}
	}
	// The words before a missing '=' (an unquoted password holding a space) are not shown either.
	if _, err := OpenDB("host=127.0.0.1 password=two s3cret words"); err == nil || strings.Contains(err.Error(), "s3c") || !strings.Contains(err.Error(), `missing "="`) {
		t.Errorf("unquoted password with spaces: %v", err)
	}
}

// TestOpenDBURLErrorHidesPassword: lib/pq reads a URL with net/url, whose error quotes it whole,
// password and all, and for a password holding an unencoded '/' names a piece of it as the port:
// OpenDB returned that error as it was.
func TestOpenDBURLErrorHidesPassword(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"postgres://u:s3cret@127.0.0.1/db%zz",
		"postgres://u:s3cret@127.0.0.1:abc/db",
		"postgres://u:s3c/ret@127.0.0.1/db",
	} {
		db, err := OpenDB(dsn)
		if err == nil {
			db.Close()
			t.Errorf("%q: no error", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3c") {
			t.Errorf("%q: the error shows the password: %v", dsn, err)
		}
	}
}
