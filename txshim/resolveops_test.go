package txshim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestResolverPassesBusyOpSessionsTrackActivitiesOff: the Shipper's op pool runs COMMIT and
// ROLLBACK PREPARED on the peer, never an apply. Its sessions bore the apply sessions' startup
// name, and under track_activities = off each of their short transactions was taken for an
// unnamed apply on its way to naming its gid, for its first second: on a peer with a steady
// stream of COMMIT PREPARED a resolver pass seldom got two clean looks in a row and gave up
// with "try again". The op pool's sessions now bear a name of their own.
func TestResolverPassesBusyOpSessionsTrackActivitiesOff(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`, `CREATE TABLE ops (id int)`)
	installPair(t, p)
	ctx := capCtx(t, 90*time.Second)
	sh := NewShipper(ShipperConfig{Site: "b", PeerDSN: p.peer.DSN("app"), Logger: quietLogger()})
	defer sh.opPool.close(context.Background())

	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	errs := make(chan error, 2*opLoops)
	for i := range opLoops {
		slot, err := sh.opPool.get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := slot.c.conn.Exec(ctx, `SET track_activities = off; SET commit_siblings = 0; SET commit_delay = 100000`).ReadAll(); err != nil {
			t.Fatal(err)
		}
		feeder, err := p.pdb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The feeder keeps prepared transactions ahead of the op session, which commits them
		// back to back: a steady stream of COMMIT PREPARED, each held up a tenth of a second
		// before its WAL flush (commit_delay), as on a peer with slow storage.
		gids := make(chan string, 20)
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer feeder.Close()
			defer close(gids)
			for n := 0; sctx.Err() == nil; n++ {
				gid := fmt.Sprintf("stream_%d_%d", i, n) // not a gid of Tandem's: the resolver leaves it alone
				for _, q := range []string{`BEGIN`, fmt.Sprintf(`INSERT INTO ops VALUES (%d)`, n), `PREPARE TRANSACTION ` + sqlLiteral(gid)} {
					if _, err := feeder.ExecContext(sctx, q); err != nil {
						if sctx.Err() == nil {
							errs <- fmt.Errorf("feeder: %s: %w", q, err)
						}
						return
					}
				}
				select {
				case gids <- gid:
				case <-sctx.Done():
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer sh.opPool.put(context.Background(), slot, false)
			for gid := range gids {
				if sctx.Err() != nil {
					continue
				}
				if _, err := slot.c.conn.Exec(sctx, `COMMIT PREPARED `+sqlLiteral(gid)).ReadAll(); err != nil && sctx.Err() == nil {
					errs <- fmt.Errorf("COMMIT PREPARED %s: %w", gid, err)
					return
				}
			}
		}()
	}
	// Let the stream get going.
	waitFor(t, "the op sessions to commit", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM ops`) >= 50
	})
	gid := gidFor("a", 1, 1)
	prepareLocal(t, p.ldb, gid, `UPDATE kv SET v = 'local' WHERE k = 1`)
	start := time.Now()
	rep, err := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger()}).ResolveOnce(ctx)
	if err != nil || !slices.Equal(rep.RolledBack, []string{gid}) {
		t.Fatalf("resolver pass (%v): %+v, %v; want %s rolled back", time.Since(start).Round(time.Millisecond), rep, err, gid)
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
