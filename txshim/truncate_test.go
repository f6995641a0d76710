package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestTruncateUnloggedReferrer: an UNLOGGED table may refer to a logged one by a foreign key.
// TRUNCATE of both together (no CASCADE) is taken by the local database, but pgoutput lists the
// logged table alone, and the peer refused it ("cannot truncate a table referenced in a foreign
// key constraint"): a dual commit failed with "the sites have diverged" (they had not), and the
// same TRUNCATE committed plainly (a transaction that cannot be prepared) sent the master solo,
// its healthy peer needing resync. The peer truncates with CASCADE now: the same tables.
func TestTruncateUnloggedReferrer(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE tp (id serial PRIMARY KEY)`,
		`CREATE UNLOGGED TABLE tu (id int PRIMARY KEY, p int REFERENCES tp)`,
		`CREATE TABLE tq (id int PRIMARY KEY, p int REFERENCES tp)`,
		`CREATE TABLE other (id int PRIMARY KEY)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	for _, q := range []string{
		`INSERT INTO tp VALUES (1), (2)`,
		`INSERT INTO tq VALUES (1, 1)`,
		`INSERT INTO other VALUES (1)`,
		`TRUNCATE tp, tu, tq`, // dual commit
		`INSERT INTO tp VALUES (3)`,
		`INSERT INTO tq VALUES (3, 3)`,
		`BEGIN; CREATE TEMP TABLE scratch (x int); TRUNCATE tp, tu, tq RESTART IDENTITY; COMMIT`, // plain commit, shipped from the stream
		`INSERT INTO tp VALUES (4)`,
	} {
		if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for sh.Backlog() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() || sh.Backlog() != 0 {
		t.Fatalf("mode %v, peer synced %v, backlog %d: want dual, synced, 0", m, sh.PeerSynced(), sh.Backlog())
	}
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM other`); n != 1 {
		t.Errorf("other has %d rows on the peer, want 1", n)
	}
}
