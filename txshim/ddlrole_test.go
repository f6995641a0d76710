package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestApplyDDLRole: DDL a client runs after SET ROLE makes objects owned by that role on the
// local database; on the peer it ran as the apply session's user, so the peer's copies had
// another owner (and the grants their owner makes another grantor): after a failover the
// role could no longer alter its own tables, nor read those it had granted nothing on. The
// statement runs on the peer under the role it ran under on the local database — as the apply
// session's user where the peer lacks that role (made on the local database alone).
func TestApplyDDLRole(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE ROLE "App Owner"`, `CREATE ROLE reader`, `GRANT CREATE ON SCHEMA public TO "App Owner"`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"owned", "mine"},
		`SET ROLE "App Owner"`,
		`CREATE TABLE owned (id int PRIMARY KEY, v text)`,
		`GRANT SELECT ON owned TO reader`,
		`INSERT INTO owned VALUES (1, 'a')`,
		`BEGIN; SET LOCAL ROLE NONE; CREATE TABLE mine (id int PRIMARY KEY); COMMIT`,
		`ALTER TABLE owned ADD COLUMN w int`,
		`RESET ROLE`,
		`INSERT INTO mine VALUES (1)`,
	)
	const q = `SELECT string_agg(c.relname || ':' || r.rolname || ':' || coalesce(c.relacl::text, ''), ' ' ORDER BY c.relname)
FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname IN ('owned', 'mine')`
	if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != r {
		t.Errorf("owners and grants: local %s, peer %s", l, r)
	}
	// The apply session's own statements after the DDL still run as its user.
	ctx := capCtx(t, 30*time.Second)
	if _, err := conn.Exec(ctx, `INSERT INTO owned VALUES (2, 'b', 2)`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	fidelityStep(t, p, sh, conn, []string{"owned"})

	p.local.Exec(t, `CREATE ROLE local_only`)
	p.local.Exec(t, `GRANT CREATE ON SCHEMA public TO local_only`)
	fidelityStep(t, p, sh, conn, []string{"alone"},
		`SET ROLE local_only`, `CREATE TABLE alone (id int PRIMARY KEY)`, `INSERT INTO alone VALUES (1)`, `RESET ROLE`)
	if owner := queryOne[string](t, p.pdb, `SELECT tableowner FROM pg_tables WHERE tablename = 'alone'`); owner != pgtest.Superuser {
		t.Errorf("peer: alone owned by %s, want the apply session's user", owner)
	}
}

// TestApplyDDLRoleRenamed: a role the client set (SET ROLE) and another session renamed since
// (through the shim, on both databases). PostgreSQL keeps the session under that role (by its
// id), SHOW role still says the name the client's SET ROLE used: DDL under it makes objects of
// the renamed role on the local database, and must on the peer too.
func TestApplyDDLRoleRenamed(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE ROLE "App Owner"`, `GRANT CREATE ON SCHEMA public TO "App Owner"`)
	catchUpToDual(t, sh, shim)
	conn, other := shim.connect(t), shim.connect(t)
	fidelityStep(t, p, sh, conn, nil, `SET ROLE "App Owner"`)
	fidelityStep(t, p, sh, other, nil, `ALTER ROLE "App Owner" RENAME TO "New Owner"`)
	fidelityStep(t, p, sh, conn, []string{"owned"},
		`CREATE TABLE owned (id int PRIMARY KEY, v text)`,
		`INSERT INTO owned VALUES (1, 'a')`,
		`BEGIN; CREATE TABLE owned2 (id int PRIMARY KEY); INSERT INTO owned2 VALUES (1); COMMIT`,
	)
	wantOwners(t, p, "owned:New Owner owned2:New Owner", "owned", "owned2")
}
