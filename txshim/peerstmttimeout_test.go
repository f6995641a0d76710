package txshim

import (
	"testing"
)

// TestPeerStatementTimeoutCatchUp: a peer database whose default statement_timeout is short
// (ALTER DATABASE … SET, for its own applications) ended catch-up's copy of the sequences'
// positions (AlignSequences: one statement for every sequence) on every try once there were
// enough of them, and the shim stayed solo: the apply, resync's copy and verify turn the
// database's timeouts off, Tandem's other connections (OpenDB) kept them. Their work is
// bounded by its contexts, as the apply's is.
func TestPeerStatementTimeoutCatchUp(t *testing.T) {
	t.Parallel()
	const seqs = `DO $$ BEGIN FOR i IN 1..3000 LOOP EXECUTE format('CREATE SEQUENCE s%s', i); END LOOP; END $$`
	p, sh, shim := startShipPair(t, nil, Options{}, "CREATE TABLE kv (k int PRIMARY KEY, v text)", seqs)
	p.peer.Exec(t, `ALTER DATABASE app SET statement_timeout = '50ms'`)
	// Moved on the master alone: catch-up copies every position to the peer.
	p.local.Exec(t, `SELECT count(nextval(format('s%s', g))) FROM generate_series(1, 3000) g`)
	catchUpToDual(t, sh, shim)
	if n := queryOne[int64](t, p.pdb, `SELECT count(*) FROM pg_sequences WHERE last_value IS NOT NULL`); n != 3000 {
		t.Fatalf("%d sequences moved on the peer, want 3000", n)
	}
}
