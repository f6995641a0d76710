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
		_, err = dialApply(context.Background(), dsn, "s1", "", nil)
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
