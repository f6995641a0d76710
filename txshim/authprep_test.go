package txshim

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestSCRAMPasswordPrepared: a client normalizes a non-ASCII password before it hashes it
// (SASLprep: libpq; PRECIS OpaqueString: pgx), and so does PostgreSQL when it stores one. The
// shim used the users_file's bytes as they are: the same client with the same password was
// let in by PostgreSQL and refused by the shim (28P01) whenever the password is not in
// normalized form — a decomposed accent (as macOS writes file names), a no-break space.
func TestSCRAMPasswordPrepared(t *testing.T) {
	t.Parallel()
	// A decomposed accent, a no-break space, a soft hyphen (mapped to nothing), a Roman numeral
	// (NFKC: "IX"; pgx's PRECIS keeps it, and PostgreSQL refuses pgx then: so must the shim),
	// an ASCII control character (kept as it is), a right-to-left password and a mixed one
	// (bidirectional rule broken: used as it is), one of nothing but what is mapped to nothing
	// (empty once mapped: used as it is).
	//
	// One cluster for every case: each sets the password user's password (PostgreSQL stores
	// it as it does at CREATE ROLE), then starts a shim of its own that knows it.
	c := pgtest.Start(t, pgtest.WithPasswordUser("app", "unused", "scram-sha-256"))
	for _, pw := range []string{"cafe\u0301-pw", "pass\u00a0word", "pass\u00adword", "\u2168-pw", "pw\x01", "\u05d0\u05d1\u05d2", "\u05d0b\u05d1", "\u00ad"} {
		t.Run(strconv.QuoteToASCII(pw), func(t *testing.T) {
			c.Exec(t, "SET password_encryption = 'scram-sha-256'; ALTER ROLE app PASSWORD "+sqlLiteral(pw))
			s := startShim(t, c, Options{Users: map[string]string{"app": pw}}, ModeSolo, 0)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dsn := func(port int) string {
				u := url.URL{Scheme: "postgres", User: url.UserPassword("app", pw),
					Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/" + c.Database(), RawQuery: "sslmode=disable"}
				return u.String()
			}
			try := func(port int) (pgxErr, psqlErr error, psqlOut []byte) {
				conn, err := pgx.Connect(ctx, dsn(port))
				if err == nil {
					conn.Close(ctx)
				}
				cmd := exec.CommandContext(ctx, "psql", "-X", "-At", "-c", "SELECT 1", "-d",
					fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=%s sslmode=disable", port, c.Database()))
				cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
				out, perr := cmd.CombinedOutput()
				return err, perr, out
			}
			pgPgx, pgPsql, _ := try(c.Port())
			shimPgx, shimPsql, out := try(s.Addr().(*net.TCPAddr).Port)
			if (pgPgx == nil) != (shimPgx == nil) {
				t.Errorf("pgx: PostgreSQL says %v, the shim %v", pgPgx, shimPgx)
			}
			if (pgPsql == nil) != (shimPsql == nil) {
				t.Errorf("psql (libpq): PostgreSQL says %v, the shim %v: %s", pgPsql, shimPsql, out)
			}
		})
	}
}

func TestSASLprep(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"user": "user", "I\u00adX": "IX", "\u00aa": "a", "\u2168": "IX", "a\u00a0b": "a b",
		"\x07": "\x07", "e\u0301": "\u00e9", "\u0627\u0031": "\u0627\u0031", "\u0627\u0031\u0628": "\u0627\u0031\u0628",
		"\xff\xfe": "\xff\xfe", "a\u0221": "a\u0221", "\ue000x": "\ue000x",
		"\u00ad": "\u00ad",
	} {
		if got := saslprep(in); got != want {
			t.Errorf("saslprep(%+q) = %+q, want %+q", in, got, want)
		}
	}
}
