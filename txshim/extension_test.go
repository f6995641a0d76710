package txshim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// installTestExtension writes a small extension into PostgreSQL's share directory (both test
// clusters run the same installation) under a name of this process, removed at the end of the
// test: version 1.0 makes two tables and fills them, one marked with
// pg_extension_config_dump; the update to 1.1 makes a third table with rows, those from 1.1
// to 1.2 and 1.3 write into a table of 1.0.
func installTestExtension(t *testing.T) string {
	t.Helper()
	dir := "/usr/share/postgresql/15/extension"
	name := fmt.Sprintf("tandem_test_ext_%d", os.Getpid())
	files := map[string]string{
		name + ".control": "default_version = '1.0'\nrelocatable = false\nschema = public\n",
		name + "--1.0.sql": `CREATE TABLE ext_codes (code int PRIMARY KEY, label text NOT NULL);
INSERT INTO ext_codes VALUES (1, 'one'), (2, 'two');
SELECT pg_catalog.pg_extension_config_dump('ext_codes', '');
CREATE TABLE ext_fixed (k text PRIMARY KEY, n int);
INSERT INTO ext_fixed SELECT 'k' || i, i FROM generate_series(1, 40) i;
`,
		name + "--1.0--1.1.sql": `CREATE TABLE ext_more (id int PRIMARY KEY, v text);
INSERT INTO ext_more VALUES (1, 'x'), (2, 'y');
`,
		name + "--1.1--1.2.sql": `INSERT INTO ext_codes VALUES (3, 'three');
`,
		name + "--1.1--1.3.sql": `DELETE FROM ext_fixed WHERE k = 'k40';
`,
	}
	for f, body := range files {
		path := filepath.Join(dir, f)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Skipf("cannot install a test extension in %s: %v", dir, err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
	return name
}

// TestExtensionThroughShim: CREATE EXTENSION, ALTER EXTENSION … UPDATE and DROP EXTENSION
// through the shim, for an extension whose scripts make tables and fill them. The statement
// ships (the peer's run of it makes the tables there) and the rows its script inserted on the
// local database are decoded too: the peer ends with each row once, shipping goes on in dual
// mode, and Verify finds both databases identical.
func TestExtensionThroughShim(t *testing.T) {
	t.Parallel()
	ext := installTestExtension(t)
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE app_t (id int PRIMARY KEY)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 90*time.Second)
	conn := shim.connect(t)
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	check := func(step, q, want string) {
		t.Helper()
		waitForLong(t, step+": the peer's rows", 10*time.Second, func() bool {
			var got string
			return p.pdb.QueryRow(q).Scan(&got) == nil && got == want // the table may not be there yet
		})
		if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
			t.Fatalf("%s: mode %v, peer synced %v (local %s, peer %s)", step, m, sh.PeerSynced(),
				queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q))
		}
		if l := queryOne[string](t, p.ldb, q); l != want {
			t.Fatalf("%s: local %s, want %s", step, l, want)
		}
		// The peer commits the last transaction (COMMIT PREPARED) after the client's reply.
		var diffs []string
		var err error
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			diffs, err = Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
			if (err == nil && len(diffs) == 0) || time.Now().After(end) {
				break
			}
		}
		if err != nil || len(diffs) != 0 {
			t.Fatalf("%s: verify: %v %v", step, err, diffs)
		}
	}
	codes := `SELECT coalesce(string_agg(code || label, ',' ORDER BY code), '') || '/' || (SELECT count(*) FROM ext_fixed) FROM ext_codes`

	exec(`CREATE EXTENSION ` + ext)
	exec(`INSERT INTO app_t VALUES (1)`)
	check("CREATE EXTENSION", codes, "1one,2two/40")

	// In a transaction block, with rows written to its table by the client after it.
	exec(`DROP EXTENSION ` + ext)
	exec(`BEGIN`)
	exec(`CREATE EXTENSION ` + ext + ` VERSION '1.0'`)
	exec(`INSERT INTO ext_codes VALUES (7, 'seven')`)
	exec(`UPDATE ext_codes SET label = 'uno' WHERE code = 1`)
	exec(`COMMIT`)
	check("CREATE EXTENSION in a block", codes, "1uno,2two,7seven/40")

	exec(`ALTER EXTENSION ` + ext + ` UPDATE TO '1.1'`)
	check("ALTER EXTENSION UPDATE", `SELECT string_agg(id || v, ',' ORDER BY id) FROM ext_more`, "1x,2y")

	// An update whose script writes into a table that was there before it (the peer's run
	// writes there too) is refused, before it commits: nothing reaches the peer.
	for _, v := range []string{"1.2", "1.3"} {
		_, err := conn.Exec(ctx, `ALTER EXTENSION `+ext+` UPDATE TO '`+v+`'`)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "ext_") {
			t.Fatalf("ALTER EXTENSION UPDATE TO %s, whose script writes into a table of 1.0: err = %v, want 0A000 naming the table", v, err)
		}
		check("refused ALTER EXTENSION UPDATE TO "+v, codes, "1uno,2two,7seven/40")
	}
	exec(`DROP EXTENSION ` + ext)
	exec(`INSERT INTO app_t VALUES (2)`)
	check("DROP EXTENSION", `SELECT count(*)::text FROM pg_class WHERE relname LIKE 'ext\_%'`, "0")
}
