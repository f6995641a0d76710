package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ddlPair starts a pair holding setup, a Shipper and a shim in dual mode over it, and a client
// of the shim; shipped waits until the peer has everything committed and both databases hold
// the same rows.
func ddlPair(t *testing.T, setup ...string) (p *capPair, conn *pgx.Conn, exec func(sql string) error, shipped func()) {
	t.Helper()
	p, sh, shim := startShipPair(t, nil, Options{}, setup...)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn = shim.connect(t)
	exec = func(sql string) error {
		_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		return err
	}
	shipped = func() {
		t.Helper()
		waitFor(t, "the peer to have every commit", func() bool { return sh.Backlog() == 0 })
		if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
			t.Fatalf("mode %v, peer synced %v: want dual and in step", m, sh.PeerSynced())
		}
		requireSame(t, p)
	}
	return p, conn, exec, shipped
}

// TestNewSchemaPublished: the publication held the schemas there at install; a schema made
// later through the shim reached the peer as DDL, but the rows of its tables were never
// decoded — committed "dual", missing on the peer. Its schema is now published as it is made,
// in the same transaction, on both databases (the peer's run of the statement adds it there).
func TestNewSchemaPublished(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	for _, q := range []string{
		`CREATE SCHEMA s2`,
		`CREATE TABLE s2.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO s2.t VALUES (1, 'x'), (2, 'y')`,
		`BEGIN; CREATE SCHEMA s3 CREATE TABLE t (id int PRIMARY KEY); INSERT INTO s3.t VALUES (7); COMMIT`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	for _, c := range []struct {
		q    string
		want int
	}{{`SELECT count(*) FROM s2.t`, 2}, {`SELECT count(*) FROM s3.t`, 1}} {
		if n := queryOne[int](t, p.pdb, c.q); n != c.want {
			t.Errorf("peer: %s = %d, want %d", c.q, n, c.want)
		}
	}
	q := `SELECT count(*) FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE n.nspname IN ('s2', 's3')`
	if l, pr := queryOne[int](t, p.ldb, q), queryOne[int](t, p.pdb, q); l != 2 || pr != 2 {
		t.Errorf("schemas s2, s3 in the publication: %d locally, %d on the peer; want 2 and 2", l, pr)
	}
}

// TestDDLGuardReplicaRole: the DDL guard's event triggers were of the default kind, which
// PostgreSQL does not fire in a session with session_replication_role = replica: DDL inside a
// DO block then ran unrecorded, and the peer refused the next write to what it changed.
func TestDDLGuardReplicaRole(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY, v int)`)
	if err := exec(`SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	err := exec(`DO $$BEGIN EXECUTE 'ALTER TABLE items ADD COLUMN w int DEFAULT 7'; END$$`)
	if pgCode(err) != "0A000" {
		t.Fatalf("DDL inside a DO block under session_replication_role = replica: %v, want 0A000", err)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	if err := exec(`INSERT INTO items VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	shipped()
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'w'`); n != 0 {
		t.Error("the refused DDL left column w")
	}
}
