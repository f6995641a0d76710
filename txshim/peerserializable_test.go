package txshim

import (
	"context"
	"testing"
	"time"
)

// TestPeerSerializableDefault: the apply's transactions took the peer database's default
// isolation, and one whose default is SERIALIZABLE (ALTER DATABASE … SET
// default_transaction_isolation, for its own applications) refused a dual commit of another
// row, 40001 on every try, while an earlier dual commit of the same table was prepared there
// waiting for its COMMIT PREPARED: each had read what the other wrote (the primary key's
// index page, a new index entry of an update), a conflict of the peer's own bookkeeping
// between changes the master had already decided and ordered. The client's commit failed
// where the local database took it. The apply runs READ COMMITTED, as the local database's
// sessions did.
func TestPeerSerializableDefault(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	// A small table, analyzed: the peer finds a row by a scan of the table.
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv SELECT g, 'a' FROM generate_series(1, 10) g`, `ANALYZE kv`)
	installPair(t, p)
	p.peer.Exec(t, `ALTER DATABASE app SET default_transaction_isolation = serializable`)
	s := startShipper(t, p)
	first := gidFor("a", 1, 1)
	prepareBoth(t, p, s, first, `UPDATE kv SET v = 'b' WHERE k = 1`)
	// Its COMMIT PREPARED on the peer not asked for yet (s.Commit): as while the operation
	// loops are behind, it stays prepared there.
	second := gidFor("a", 1, 2)
	prepareLocal(t, p.ldb, second, `UPDATE kv SET v = 'c' WHERE k = 2`)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Prepare(ctx, second); err != nil {
		p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(second))
		s.Commit(first)
		t.Fatalf("a dual commit of another row while an earlier one is prepared on the peer: %v", err)
	}
	p.local.Exec(t, "COMMIT PREPARED "+sqlLiteral(second))
	s.Commit(first)
	s.Commit(second)
	waitFor(t, "both committed on the peer", func() bool { return s.Backlog() == 0 })
	requireSame(t, p)
}
