package txshim

import (
	"testing"
)

// TestDDLRecordedReplicaRole: a client session with session_replication_role = replica (a
// superuser's may set it, as loaders do) had its recorded DDL refused: the trigger that makes
// the guard's mark as the shim's tandem.ddl row goes in is of the default kind, which
// PostgreSQL does not fire there, so the DDL the shim recorded met no mark.
func TestDDLRecordedReplicaRole(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY, v int)`)
	if err := exec(`SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE t2 (id int PRIMARY KEY)`,
		`BEGIN; INSERT INTO items VALUES (1, 1); CREATE TABLE t3 (id int PRIMARY KEY); COMMIT`,
		`INSERT INTO t2 VALUES (1)`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() == 'E' {
				exec(`ROLLBACK`)
			}
		}
	}
	shipped()
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM t2`); n != 1 {
		t.Errorf("peer: t2 has %d rows, want 1", n)
	}
}
