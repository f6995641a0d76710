package txshim

import "testing"

// TestGeneratedIndexReplicaIdentity: a table given REPLICA IDENTITY USING INDEX of an index
// with a stored generated column — through the shim, or made so before install — is given
// REPLICA IDENTITY FULL, as one whose primary key has one (TestGeneratedKeyReplicaIdentity),
// or DEFAULT where it has a primary key the peer can find rows by: PostgreSQL 15 publishes no
// generated column, so the index's values never reached the peer, and the peer never caught up.
func TestGeneratedIndexReplicaIdentity(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE gi (a int NOT NULL, k int GENERATED ALWAYS AS (a * 2) STORED NOT NULL, v text)`,
		`CREATE UNIQUE INDEX gi_k ON gi (k)`, `ALTER TABLE gi REPLICA IDENTITY USING INDEX gi_k`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	identity := func(table, want string) {
		t.Helper()
		q := `SELECT relreplident::text FROM pg_class WHERE oid = '` + table + `'::regclass`
		if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != want || r != want {
			t.Fatalf("%s: replica identity %q on the local database, %q on the peer; want %s on both", table, l, r, want)
		}
	}
	identity("gi", "f")
	fidelityStep(t, p, sh, conn, []string{"gi"},
		`INSERT INTO gi (a, v) VALUES (1, 'x'), (2, 'y')`,
		`UPDATE gi SET v = 'z' WHERE a = 1`,
		`DELETE FROM gi WHERE a = 2`,
		`CREATE TABLE gj (a int NOT NULL, b int NOT NULL, k int GENERATED ALWAYS AS (a * 2) STORED NOT NULL, v text, PRIMARY KEY (a))`,
		`CREATE UNIQUE INDEX gj_bk ON gj (b, k)`,
		`ALTER TABLE gj REPLICA IDENTITY USING INDEX gj_bk`)
	identity("gj", "d")
	fidelityStep(t, p, sh, conn, []string{"gj"},
		`INSERT INTO gj (a, b, v) VALUES (1, 1, 'x'), (2, 1, 'y')`,
		`UPDATE gj SET v = 'z' WHERE a = 1`,
		`UPDATE gj SET a = 5 WHERE a = 1`,
		`DELETE FROM gj WHERE a = 2`)
}
