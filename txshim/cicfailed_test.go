package txshim

import "testing"

// TestFailedConcurrentIndexDropped: a CREATE INDEX CONCURRENTLY that fails once it has made
// its index (a unique one over duplicates) leaves that index, invalid, on the local database
// (PostgreSQL's behaviour), and it was recorded nowhere for the peer: the sites differed, and
// the DROP INDEX that clears such a leftover was refused as a divergence, the peer having no
// such index. The shim drops the leftover, recording DROP INDEX IF EXISTS for the peer.
func TestFailedConcurrentIndexDropped(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE SCHEMA s2`,
		`CREATE TABLE s2.items (id int PRIMARY KEY, v text)`,
		`INSERT INTO s2.items SELECT g, 'x' FROM generate_series(1, 5) g`)
	if err := exec(`CREATE UNIQUE INDEX CONCURRENTLY u ON s2.items (v)`); pgCode(err) != "23505" {
		t.Fatalf("CREATE UNIQUE INDEX CONCURRENTLY over duplicates: %v, want 23505", err)
	}
	shipped()
	if err := exec(`UPDATE s2.items SET v = id::text`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`CREATE UNIQUE INDEX CONCURRENTLY u ON s2.items (v)`); err != nil {
		t.Fatalf("the index made again, once the rows allow it: %v", err)
	}
	shipped()
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('s2.u') AND indisvalid`); n != 1 {
		t.Errorf("peer has %d valid s2.u, want 1", n)
	}
}
