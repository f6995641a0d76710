package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestImplicitCommitSetLocalStatus: a setting reported to the client (TimeZone, application_name)
// changed by SET LOCAL in a Query's implicit transaction is back to what it was once the
// transaction ends, and the client's view of it (ParameterStatus) must say so, as directly.
func TestImplicitCommitSetLocalStatus(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE hstat (id int PRIMARY KEY)`)
	for _, dsn := range []string{c.DSN(c.Database()), s.dsn(pgtest.Superuser)} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pc, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		before := pc.ParameterStatus("application_name")
		if _, err := pc.Exec(ctx, "INSERT INTO hstat VALUES (1); SET LOCAL application_name = 'hstat_local'").ReadAll(); err != nil {
			t.Fatal(err)
		}
		// A round trip more: anything the shim sends late is read too.
		if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
		var got string
		if rr, err := pc.Exec(ctx, "SHOW application_name").ReadAll(); err != nil {
			t.Fatal(err)
		} else {
			got = string(rr[0].Rows[0][0])
		}
		if st := pc.ParameterStatus("application_name"); st != got {
			t.Errorf("%s: application_name is %q, the client was told %q (before %q)", dsn, got, st, before)
		}
		pc.Close(ctx)
		cancel()
		c.Exec(t, "DELETE FROM hstat")
	}
}
