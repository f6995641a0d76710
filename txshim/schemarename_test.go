package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestApplyAfterSchemaRename: ALTER SCHEMA … RENAME TO … through the shim changes no table, so
// PostgreSQL invalidates none and pgoutput sends no new Relation message for the schema's
// tables: their changes after it still named the schema as it was. On the peer, where the
// statement renamed it too, that table no longer exists: the next write to it was refused
// (42P01) as a divergence. Quoted and U& names, in its own transaction, in one with writes
// before and after it; and with those transactions spilled (spill.go).
func TestApplyAfterSchemaRename(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) { t.Parallel(); schemaRenameSteps(t, nil) })
	t.Run("spilled", func(t *testing.T) {
		t.Parallel()
		schemaRenameSteps(t, func(c *ShipperConfig) { c.SpillBytes = 1 })
	})
}

func schemaRenameSteps(t *testing.T, cfg func(*ShipperConfig)) {
	p, sh, shim := startShipPair(t, cfg, Options{},
		`CREATE SCHEMA s`,
		`CREATE TABLE s.t (id int PRIMARY KEY, v text)`,
		`CREATE TABLE s.f (a int, v text)`,
		`CREATE SCHEMA "Odd ""S"""`,
		`CREATE TABLE "Odd ""S""".t (id int PRIMARY KEY)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, nil,
		`INSERT INTO s.t VALUES (1, 'a')`,
		`INSERT INTO s.f VALUES (1, 'a')`,
		`ALTER SCHEMA s RENAME TO s2`,
		`INSERT INTO s2.t VALUES (2, 'b')`,
		`UPDATE s2.t SET v = 'x'`,
		`UPDATE s2.f SET v = 'y'`,
		`BEGIN; INSERT INTO s2.t VALUES (3, 'c'); /* moved */ ALTER SCHEMA "s2" RENAME TO "S 3"; INSERT INTO "S 3".t VALUES (4, 'd'); DELETE FROM "S 3".f; COMMIT`,
		`UPDATE "S 3".t SET v = 'z'`,
		`INSERT INTO "Odd ""S""".t VALUES (1)`,
		`ALTER SCHEMA "Odd ""S""" RENAME TO U&"\00e9t\00e9"`,
		`INSERT INTO "été".t VALUES (2)`,
		`DELETE FROM "été".t WHERE id = 1`,
	)
}

// TestSchemaRename: the statements schemaRename takes for a schema's rename, and its names.
func TestSchemaRename(t *testing.T) {
	for _, tc := range []struct {
		stmt, from, to string
		ok             bool
	}{
		{`ALTER SCHEMA s RENAME TO s2`, "s", "s2", true},
		{`alter schema S rename to "S2";`, "s", "S2", true},
		{` -- c
ALTER /* x */ SCHEMA "a""b" RENAME TO U&"d!0061t!+000061" UESCAPE '!'`, `a"b`, "data", true},
		{`ALTER SCHEMA s OWNER TO r`, "", "", false},
		{`ALTER SCHEMA s RENAME TO s2; DROP TABLE x`, "", "", false},
		{`ALTER TABLE s RENAME TO s2`, "", "", false},
		{`ALTER SCHEMA s RENAME TO`, "", "", false},
	} {
		from, to, ok := schemaRename(tc.stmt)
		if from != tc.from || to != tc.to || ok != tc.ok {
			t.Errorf("schemaRename(%q) = %q, %q, %v; want %q, %q, %v", tc.stmt, from, to, ok, tc.from, tc.to, tc.ok)
		}
	}
}

// TestApplySchemaRenameConcurrent: a transaction that renames a schema holds no lock on its
// tables, so another session writes into them by the old name while the rename is prepared on
// the local database and not yet committed there (its apply on the peer still under way). That
// write reaches the peer before the rename is committed there, where only the old name finds
// the table: the decoder takes the new name for other transactions from the rename's COMMIT
// PREPARED on, not from its PREPARE.
func TestApplySchemaRenameConcurrent(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE SCHEMA s`,
		`CREATE TABLE s.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO s.t VALUES (1, 'a')`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	// A session on the peer holds row 1 for about a second (until the apply's watchdog ends
	// it): the rename's apply, which updates row 1 after it, is under way there meanwhile.
	blocker, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	for _, q := range []string{"BEGIN", "SELECT * FROM s.t WHERE id = 1 FOR UPDATE"} {
		if _, err := blocker.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	renamer, other := shim.connect(t), shim.connect(t)
	done := make(chan error, 1)
	go func() {
		_, err := renamer.Exec(ctx, `BEGIN; ALTER SCHEMA s RENAME TO s2; UPDATE s2.t SET v = 'b' WHERE id = 1; COMMIT`, pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	waitFor(t, "the rename prepared on the local database", func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) > 0
	})
	if _, err := other.Exec(ctx, `INSERT INTO s.t VALUES (2, 'c')`); err != nil {
		t.Fatalf("a write by the old name while the rename is prepared: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the rename: %v", err)
	}
	fidelityStep(t, p, sh, other, []string{"s2.t"}, `INSERT INTO s2.t VALUES (3, 'd')`, `UPDATE s2.t SET v = v || '!'`)
}
