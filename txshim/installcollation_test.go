package txshim

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// requireCollationDiff asserts that Verify and Install of the databases named db on p's two
// clusters each name the difference want.
func requireCollationDiff(t *testing.T, p *capPair, db, want string) {
	t.Helper()
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN(db), p.peer.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(diffs, "\n"), want) {
		t.Errorf("Verify did not name %q; its differences:\n%s", want, strings.Join(diffs, "\n"))
	}
	err = Install(capCtx(t, 60*time.Second), "a", p.local.DSN(db), p.peer.DSN(db), quietLogger())
	switch {
	case err == nil:
		t.Errorf("Install accepted the databases, want a refusal naming %q", want)
	case !strings.Contains(err.Error(), want):
		t.Errorf("Install's refusal does not name %q:\n%v", want, err)
	}
}

// refuses runs stmt on db and reports whether the database refused it.
func refuses(t *testing.T, db *sql.DB, stmt string) bool {
	t.Helper()
	_, err := db.Exec(stmt)
	return err != nil
}

// TestInstallDatabaseCollation: the databases' default collations (the provider, the locales)
// were not compared: a column of the default collation reads "text" on both, though the two
// sort differently. A local database of ICU's en-US and a peer of C route 'B' to different
// partitions of a table partitioned by a text range (the peer has none for it), and judge a
// CHECK (k < 'a') the other way. Install and verify must name it; databases of the same
// locale are still identical.
func TestInstallDatabaseCollation(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.local.Exec(t, `CREATE DATABASE coll TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`)
	p.peer.Exec(t, `CREATE DATABASE coll TEMPLATE template0`)
	p.local.Exec(t, `CREATE DATABASE same TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`)
	p.peer.Exec(t, `CREATE DATABASE same TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`)
	dbs := [2]*sql.DB{}
	for i, c := range []*pgtest.Cluster{p.local, p.peer} {
		for _, name := range []string{"coll", "same"} {
			db := c.Open(t, name)
			for _, s := range []string{`CREATE TABLE t (k text PRIMARY KEY) PARTITION BY RANGE (k)`,
				`CREATE TABLE t1 PARTITION OF t FOR VALUES FROM ('a') TO ('n')`} {
				if _, err := db.Exec(s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			if name == "coll" {
				dbs[i] = db
			}
		}
	}
	if refuses(t, dbs[0], `INSERT INTO t VALUES ('B')`) || !refuses(t, dbs[1], `INSERT INTO t VALUES ('B')`) {
		t.Fatal("the two databases' collations do not differ as the test expects")
	}
	dbs[0].Exec(`DELETE FROM t`)
	requireCollationDiff(t, p, "coll", "the database collation")
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("same"), p.peer.DSN("same"))
	if err != nil || len(diffs) > 0 {
		t.Errorf("Verify of databases of the same locale: %v\n%s", err, strings.Join(diffs, "\n"))
	}
}
