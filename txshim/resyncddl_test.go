package txshim

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestResyncAfterDDLWhileDiverged: DDL through the shim reaches the peer only as a tandem.ddl
// row in the stream. DDL committed while the peer needs resync (or in WAL a lost slot no
// longer holds) lies before the copy's position, which the journal and the slot forget: the
// copy brings the rows over, never the DDL. Resync called such a peer synced while a table the
// master dropped stood there with its rows (tandem verify: "exists only on the peer").
func TestResyncAfterDDLWhileDiverged(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `CREATE TABLE gone (id int PRIMARY KEY)`,
		`INSERT INTO kv VALUES (1, 'one')`, `INSERT INTO gone VALUES (1), (2)`)
	sh := syncedShipper(t, p)
	if _, err := p.pdb.Exec(`DELETE FROM kv WHERE k = 1`); err != nil { // the peer diverges
		t.Fatal(err)
	}
	p.local.Exec(t, `UPDATE kv SET v = 'uno' WHERE k = 1`)
	waitFor(t, "the stream to stop on the divergence", func() bool { return sh.Err() != nil })
	// DDL through the shim while the master goes on alone: its tandem.ddl row, then the DDL.
	p.local.Exec(t, `BEGIN; INSERT INTO tandem.ddl (stmt) VALUES ('DROP TABLE gone'); DROP TABLE gone; COMMIT`)

	err := sh.Resync(capCtx(t, 30*time.Second), nil)
	if err == nil {
		requireSame(t, p) // called synced: the databases must not differ
		t.Fatal("Resync copied rows over a peer whose schema differs")
	}
	if !strings.Contains(err.Error(), `"public"."gone" exists only on the peer`) || sh.PeerSynced() || !errors.Is(sh.Err(), ErrNeedsResync) {
		t.Fatalf("Resync over a peer lacking DDL = %v (synced %v, shipper err %v), want a refusal naming public.gone, still needing resync",
			err, sh.PeerSynced(), sh.Err())
	}
	// The operator runs the DDL on the peer's database; the next resync brings it in step.
	if _, err := p.pdb.Exec(`DROP TABLE gone`); err != nil {
		t.Fatal(err)
	}
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync after the DDL ran on the peer: %v", err)
	}
	if !sh.PeerSynced() || sh.Err() != nil {
		t.Fatalf("after Resync: synced %v, err %v", sh.PeerSynced(), sh.Err())
	}
	requireSame(t, p)
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'two')`)
	waitFor(t, "a later commit on the peer", func() bool {
		var n int
		return p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k = 2`).Scan(&n) == nil && n == 1
	})
	requireSame(t, p)
}
