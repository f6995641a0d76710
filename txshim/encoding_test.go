package txshim

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestDatabaseEncodings: databases in SQL_ASCII and LATIN1 (the same on both sides, as install
// requires) with bytes that are not UTF-8, and text COPY must escape, shipped both as a single
// INSERT and as a run of inserts the peer takes in a COPY (copyMin): the peer holds the same
// bytes. The decoder's walsender ran with client_encoding UTF8, which a SQL_ASCII database cannot
// convert to: it failed on the first such byte and again on every restart, and nothing after
// it was shipped.
func TestDatabaseEncodings(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	for i, enc := range []string{"SQL_ASCII", "LATIN1"} {
		db, site := fmt.Sprintf("enc%d", i), string(rune('a'+i)) // a slot per site, and slots are the cluster's
		p.both(t, `CREATE DATABASE `+db+` ENCODING '`+enc+`' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`)
		var dbs [2]*sql.DB
		for k, dsn := range []string{p.local.DSN(db), p.peer.DSN(db)} {
			c, err := sql.Open("postgres", dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if _, err := c.Exec(`CREATE TABLE t (id int PRIMARY KEY, v text)`); err != nil {
				t.Fatal(err)
			}
			dbs[k] = c
		}
		ldb, pdb := dbs[0], dbs[1]
		ctx := capCtx(t, 60*time.Second)
		if err := Install(ctx, site, p.local.DSN(db), p.peer.DSN(db), quietLogger()); err != nil {
			t.Fatal(err)
		}
		for _, c := range dbs {
			if err := WriteTermRecord(ctx, c, 1, site, true); err != nil {
				t.Fatal(err)
			}
		}
		s := NewShipper(ShipperConfig{Site: site, LocalDSN: p.local.DSN(db), PeerDSN: p.peer.DSN(db), Conns: 1, OpTimeout: 3 * time.Second, Logger: quietLogger()})
		s.SetTerm(1)
		rctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); s.Run(rctx) }()
		t.Cleanup(func() { cancel(); wg.Wait() })

		const v = `E'caf\xe9 \\ \t \r\n\\.\n\xff'`
		for k, stmt := range []string{`INSERT INTO t VALUES (1, ` + v + `)`,
			`INSERT INTO t SELECT g, ` + v + ` || g FROM generate_series(10, 200) g`} {
			gid := gidFor(site, 1, uint64(k+1))
			prepareLocal(t, ldb, gid, stmt)
			if err := s.Prepare(capCtx(t, 20*time.Second), gid); err != nil {
				ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
				t.Fatalf("%s database, %s: %v", enc, stmt, err)
			}
			if _, err := ldb.Exec("COMMIT PREPARED " + sqlLiteral(gid)); err != nil {
				t.Fatal(err)
			}
			s.Commit(gid)
			waitFor(t, gid+" committed on the peer", func() bool { return !preparedOn(t, pdb, gid) })
		}
		const sum = `SELECT count(*) || ' ' || md5(string_agg(id || ':' || encode(convert_to(v, getdatabaseencoding()), 'hex'), ',' ORDER BY id)) FROM t`
		if l, r := queryOne[string](t, ldb, sum), queryOne[string](t, pdb, sum); l != r || l[:4] != "192 " {
			t.Fatalf("%s database: local %s, peer %s (rows, md5 of their bytes)", enc, l, r)
		}
		cancel()
		wg.Wait()
	}
}
