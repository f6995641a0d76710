package txshim

import (
	"testing"
)

// TestPeerAsyncCommitDefault: a peer database whose default commits asynchronously (ALTER
// DATABASE … SET synchronous_commit = off, for its own applications' speed) answered the
// COMMIT of a transaction shipped from the stream before its WAL was on disk; the Shipper
// took it for on the peer and let the slot go past it, and a crash of the peer's host lost it
// there for good (found later as a peer "restored from an earlier backup": resync). The apply
// session commits durably whatever the database's default.
func TestPeerAsyncCommitDefault(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	p.peer.Exec(t, `ALTER DATABASE app SET synchronous_commit = off`)
	// The WAL writer writes an asynchronous commit out within wal_writer_delay: at its most,
	// so that the crash below comes first.
	p.peer.Exec(t, `ALTER SYSTEM SET wal_writer_delay = '10s'`)
	p.peer.Exec(t, `SELECT pg_reload_conf()`)
	s := startShipper(t, p)
	p.local.Exec(t, `INSERT INTO kv VALUES (1, 'a')`) // plain: not through the shim, shipped from the stream
	waitFor(t, "the plain commit on the peer", func() bool {
		return s.Backlog() == 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`) == 1
	})
	p.peer.Kill() // as the host's crash: what the peer had not written is gone
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	pdb := p.peer.Open(t, "app")
	if n := queryOne[int](t, pdb, `SELECT count(*) FROM kv`); n != 1 {
		t.Fatalf("after the peer's crash it holds %d of the 1 row it had committed (Backlog 0: the slot is past it)", n)
	}
}
