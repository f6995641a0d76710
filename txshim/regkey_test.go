package txshim

import "testing"

// TestApplyRegKey: a table keyed by a reg* column (regclass, regproc, …), which has no "="
// of its own: the key compared with a parameter left for "=" to type took oid's, and the
// peer read the name the walsender sent as an oid.
func TestApplyRegKey(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TABLE t (x int)`,
		`CREATE TABLE kc (k regclass PRIMARY KEY, v int)`,
		`CREATE TABLE kt (k regtype PRIMARY KEY, v int)`,
		`CREATE TABLE ka (k regclass[] PRIMARY KEY, v int)`,
		`CREATE DOMAIN dr AS regproc`, `CREATE DOMAIN dra AS regoper[]`,
		`CREATE TABLE kd (k dr PRIMARY KEY, v int)`,
		`CREATE TABLE kda (k dra PRIMARY KEY, v int)`,
		`INSERT INTO kd VALUES ('now', 0), ('pg_backend_pid', 0)`,
		`INSERT INTO kda VALUES ('{||/}', 0), ('{|/}', 0)`,
		`INSERT INTO kc VALUES ('t', 0), ('pg_class', 0)`,
		`INSERT INTO kt VALUES ('int', 0), ('text', 0)`,
		`INSERT INTO ka VALUES ('{t}', 0), ('{pg_class}', 0)`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE kc SET v = 1 WHERE k = 't'::regclass`, `DELETE FROM kc WHERE k = 'pg_class'::regclass`,
		`UPDATE kt SET v = 1 WHERE k = 'int'::regtype`, `DELETE FROM kt WHERE k = 'text'::regtype`,
		`UPDATE ka SET v = 1 WHERE k = '{t}'::regclass[]`, `DELETE FROM ka WHERE k = '{pg_class}'::regclass[]`,
		`UPDATE kd SET v = 1 WHERE k = 'now'::regproc`, `DELETE FROM kd WHERE k = 'pg_backend_pid'::regproc`,
		`UPDATE kda SET v = 1 WHERE k[1] = '||/'::regoper`, `DELETE FROM kda WHERE k[1] = '|/'::regoper`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
