package txshim

import (
	"testing"
	"time"
)

// resyncDiverged makes the peer diverge (peerDel, run there), stops the stream on it (the
// local change upd, of the row the peer lost), and requires a Resync to succeed and leave the
// peer synced and identical: the peer's schema is the master's.
func resyncDiverged(t *testing.T, p *capPair, sh *Shipper, peerDel, upd string) {
	t.Helper()
	if _, err := p.pdb.Exec(peerDel); err != nil { // the peer diverges
		t.Fatal(err)
	}
	p.local.Exec(t, upd)
	waitFor(t, "the stream to stop on the divergence", func() bool { return sh.Err() != nil })
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync of a peer whose schema is the master's: %v", err)
	}
	if !sh.PeerSynced() || sh.Err() != nil {
		t.Fatalf("after Resync: synced %v, err %v", sh.PeerSynced(), sh.Err())
	}
	requireSame(t, p)
}

// TestResyncDefinitionSpelling: resync compares the application schemas before it copies, as
// install and verify do, and a database whose default is quote_all_identifiers = on (every
// name in format_type, pg_get_constraintdef and reg* values quoted) or
// standard_conforming_strings = off (a backslash in a definition's string literal doubled)
// spells an identical schema otherwise than its peer: resync must read both under the same
// spelling (definitionSpelling), as install and verify do, or it refuses a peer whose schema is
// the master's.
func TestResyncDefinitionSpelling(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, set string }{
		{"quoteall", `ALTER DATABASE app SET quote_all_identifiers = on`},
		{"scs", `ALTER DATABASE app SET standard_conforming_strings = off`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startCapPair(t)
			p.both(t, `CREATE TYPE mood AS ENUM ('sad', 'ok')`,
				`CREATE TABLE kv (k int PRIMARY KEY, m mood, v text CHECK (v <> 'a\b'))`,
				`INSERT INTO kv VALUES (1, 'ok', 'x')`)
			sh := syncedShipper(t, p)
			p.local.Exec(t, tc.set)
			resyncDiverged(t, p, sh, `DELETE FROM kv WHERE k = 1`, `UPDATE kv SET v = 'y' WHERE k = 1`)
		})
	}
}
