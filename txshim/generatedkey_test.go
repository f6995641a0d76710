package txshim

import "testing"

// TestGeneratedKeyReplicaIdentity: a table whose primary key has a stored generated column —
// made before install, and through the shim — gets REPLICA IDENTITY FULL, as a keyless one
// does. PostgreSQL 15 publishes no generated column, so the key's values never reached the
// peer: its updates and deletes shipped with nothing to find the row by ("has no replica
// identity to find the row by"), each one taken for a lost peer, and the peer never caught up.
func TestGeneratedKeyReplicaIdentity(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE gk (a int NOT NULL, k int GENERATED ALWAYS AS (a * 2) STORED PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	identity := func(table string) {
		t.Helper()
		q := `SELECT relreplident::text FROM pg_class WHERE oid = '` + table + `'::regclass`
		if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != "f" || r != "f" {
			t.Fatalf("%s: replica identity %q on the local database, %q on the peer; want f (FULL) on both", table, l, r)
		}
	}
	identity("gk")
	fidelityStep(t, p, sh, conn, []string{"gk"},
		`INSERT INTO gk (a, v) VALUES (1, 'x'), (2, 'y')`,
		`UPDATE gk SET v = 'z' WHERE a = 1`,
		`DELETE FROM gk WHERE a = 2`,
		`CREATE TABLE gk2 (a int NOT NULL, b int NOT NULL, k int GENERATED ALWAYS AS (a * 2) STORED, v text, PRIMARY KEY (b, k))`)
	identity("gk2")
	fidelityStep(t, p, sh, conn, []string{"gk2"},
		`INSERT INTO gk2 (a, b, v) VALUES (1, 1, 'x'), (2, 1, 'y')`,
		`UPDATE gk2 SET v = 'z' WHERE a = 1`,
		`UPDATE gk2 SET a = 5 WHERE a = 1`,
		`DELETE FROM gk2 WHERE a = 2`)
}
