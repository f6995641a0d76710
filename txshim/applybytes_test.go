package txshim

import (
	"fmt"
	"testing"
)

// TestApplyLargeValuesInBatches: a transaction whose changes hold more than applyBatchBytes of
// values goes to the peer in several round trips (the pipeline held a thousand changes' worth
// before) and arrives whole: updates by key of a dozen 1 MiB values, and their rows read the
// same on both databases.
func TestApplyLargeValuesInBatches(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE big (k int PRIMARY KEY, v text)`, `INSERT INTO big SELECT g, 'small' FROM generate_series(1, 12) g`)
	installPair(t, p)
	s := startShipper(t, p)
	const size = 1 << 20
	if n := 12 * (size + 16); n <= applyBatchBytes {
		t.Fatalf("the transaction's %d bytes of values fit in one round trip of %d: the test tests nothing", n, applyBatchBytes)
	}
	dualCommit(t, p, s, gidFor("a", 1, 1),
		fmt.Sprintf(`UPDATE big SET v = k || repeat(md5(k::text), %d)`, size/32))
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM big WHERE length(v) > $1`, size-100); n != 12 {
		t.Fatalf("%d rows of the peer have the large value, want 12", n)
	}
	requireSame(t, p)
}
