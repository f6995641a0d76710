package config

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// TestRedactDSNErrorURLCutAtHash: net/url reads a URL up to its first '#' (the rest is the
// fragment), and its error quotes that part only: for a password holding an unencoded '#' it
// is the user and the password's start, read as a host and a port (parse "postgres://u:s3c":
// invalid port ":s3c" after host). That part has no '@', RedactDSN finds nothing to hide in
// it, and RedactDSNError showed lib/pq's error as it was.
func TestRedactDSNErrorURLCutAtHash(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3c#ret@127.0.0.1/db",
		"postgres://u:s3c#r/et@127.0.0.1:5432/db?sslmode=disable",
	} {
		_, perr := pq.NewConfig(dsn)
		if perr == nil {
			t.Fatalf("%q: lib/pq read it", dsn)
		}
		err := RedactDSNError(dsn, perr)
		if strings.Contains(err.Error(), "s3c") {
			t.Errorf("%q: the error shows the password: %v", dsn, err)
		}
		if !errors.Is(err, perr) {
			t.Errorf("%q: errors.Is does not find lib/pq's error in %v", dsn, err)
		}
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Errorf("%q: errors.As does not find net/url's error in %v", dsn, err)
		}
	}
}
