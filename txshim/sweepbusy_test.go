package txshim

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// plainLoad runs, until stop, clients each committing plainly on the local database in a
// loop and waiting, as the shim does for a plain commit in dual mode (awaitShipped), until the
// Shipper has shipped it: a steady stream of plain commits that keeps plainLoop busy.
func plainLoad(t *testing.T, db *sql.DB, s *Shipper, clients int) (stop func() int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var n atomic.Int64
	for c := range clients {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				var xid uint32
				if err := db.QueryRowContext(ctx, `WITH w AS (INSERT INTO load VALUES ($1, $2)) SELECT pg_current_xact_id()::text::bigint`, c, i).Scan(&xid); err != nil {
					if ctx.Err() == nil {
						t.Errorf("plain commit: %v", err)
					}
					return
				}
				var at string
				if err := db.QueryRowContext(ctx, `SELECT pg_logical_emit_message(true, 'tandem', '')::text`).Scan(&at); err != nil {
					if ctx.Err() == nil {
						t.Errorf("mark: %v", err)
					}
					return
				}
				mark, err := pglogrepl.ParseLSN(at)
				if err != nil {
					t.Error(err)
					return
				}
				wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
				err = s.WaitShipped(wctx, xid, mark)
				wcancel()
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("WaitShipped: %v", err)
					}
					return
				}
				n.Add(1)
			}
		})
	}
	return func() int64 { cancel(); wg.Wait(); return n.Load() }
}

// TestSweepUnderPlainLoad: a dual commit whose session never asked for the peer's COMMIT
// PREPARED (it died after the local one; or the ask was dropped or failed) is committed on the
// peer by sweep after commitGrace — also while plain commits keep plainLoop busy without a
// pause. Until it is, it holds the slot, and a later dual commit that must follow it (it
// updates the table the first one inserted into) waits in Prepare: were sweep run only when
// plainLoop is idle, that one would time out and take the peer for down.
func TestSweepUnderPlainLoad(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `CREATE TABLE load (c int, i int, PRIMARY KEY (c, i))`)
	installPair(t, p)
	// The peer is some way off: each plain commit shipped takes a while there (a WAN's round
	// trips), so that a few clients keep plainLoop busy.
	p.peer.Exec(t, `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END$$`)
	p.peer.Exec(t, `CREATE TRIGGER slow BEFORE INSERT ON load FOR EACH ROW EXECUTE FUNCTION slow()`)
	p.peer.Exec(t, `ALTER TABLE load ENABLE ALWAYS TRIGGER slow`)
	s := startShipper(t, p)

	first := gidFor("a", 1, 1)
	prepareBoth(t, p, s, first, `INSERT INTO kv VALUES (1, 'a')`)
	// Its session never calls s.Commit(first).
	stop := plainLoad(t, p.ldb, s, 8)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	start := time.Now()
	second := gidFor("a", 1, 2)
	prepareLocal(t, p.ldb, second, `UPDATE kv SET v = 'b' WHERE k = 1`)
	err := s.Prepare(capCtx(t, 8*time.Second), second)
	took := time.Since(start)
	stillPrepared := preparedOn(t, p.pdb, first)
	shipped := stop()
	stopped = true
	t.Logf("second prepare took %v (err %v); %d plain commits shipped meanwhile", took, err, shipped)
	if stillPrepared {
		t.Errorf("%s still prepared on the peer after %v", first, took)
	}
	if err != nil {
		p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(second))
		t.Fatalf("the second dual commit waited for the first, left prepared on the peer under a plain-commit load: %v", err)
	}
	p.local.Exec(t, "COMMIT PREPARED "+sqlLiteral(second))
	s.Commit(second)
	waitFor(t, "both on the peer", func() bool { return s.Backlog() == 0 })
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	p.peer.Exec(t, `DROP TRIGGER slow ON load`)
	p.peer.Exec(t, `DROP FUNCTION slow()`) // requireSame compares functions too
	requireSame(t, p)
}
