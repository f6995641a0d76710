package main

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/txshim"
)

// TestFencedByPeerSessionMessage: a master whose shim its catch-up fenced for the peer
// database's record of its term taken by another master (fenceByPeer) refuses new sessions —
// with "this site is fenced; connect to the master", though this site is the master (the
// gossip's, /master answers 200 here) and no other takes writes meanwhile. The refusal says
// what is true: the peer database holds that term of another master.
func TestFencedByPeerSessionMessage(t *testing.T) {
	t.Parallel()
	_, _, _, dsn := fencedByPeerSite2(t, `UPDATE tandem.state SET master = 'site1', peer_synced = false`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fresh, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	err = fresh.PingContext(ctx)
	t.Logf("new session to the master fenced by the peer database's record: %v", err)
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "57P03" {
		t.Fatalf("new session: %v, want 57P03", err)
	}
	if strings.Contains(pe.Message, "connect to the master") || !strings.Contains(pe.Message, "site1") {
		t.Errorf("new session refused with %q: this site is the master; want the peer database's record named (term 1 of site1)", pe.Message)
	}
}

// fencedByPeerSite2 is dualSite2 gone solo (its peer database paused for a commit), with row
// 10 committed alone, then fenced by its catch-up, which found record made in the peer
// database once it answered again (fenceByPeer). It returns the database side, the peer
// database, a client of the shim and the shim's DSN.
func fencedByPeerSite2(t *testing.T, record string) (*database, *sql.DB, *sql.DB, string) {
	t.Helper()
	d, peer, pdb := dualSite2(t)
	client, dsn := serveShim(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := peer.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Resume() })
	if _, err := client.ExecContext(ctx, `INSERT INTO acct VALUES (1, 1)`); err != nil {
		t.Fatalf("commit with the peer database away: %v", err)
	}
	if mode, term := d.shim.Mode(); mode != txshim.ModeSolo || term != 1 {
		t.Fatalf("after a commit with the peer database away: shim %s in term %d, want solo in term 1", mode, term)
	}
	// A commit made alone: the one above may have reached the peer prepared, and the resolver
	// commits it there.
	if _, err := client.ExecContext(ctx, `INSERT INTO acct VALUES (10, 10)`); err != nil {
		t.Fatalf("solo commit: %v", err)
	}
	if err := peer.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := pdb.ExecContext(ctx, record); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		d.catchUp(cctx)
		ccancel()
	}
	if mode, term := d.shim.Mode(); mode != txshim.ModeFenced || term != 1 {
		t.Fatalf("after the catch-up found %q in the peer database: shim %s in term %d, want fenced in term 1", record, mode, term)
	}
	return d, pdb, client, dsn
}
