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

// fencedByPeerSite2 is soloSite2 back with record made in the peer database, checked fenced in
// term 1 by its catch-up (fenceByPeer). It returns the database side, the peer database, a
// client of the shim and the shim's DSN.
func fencedByPeerSite2(t *testing.T, record string) (*database, *sql.DB, *sql.DB, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := soloSite2(t, ctx)
	s.backWithRecord(t, ctx, record)
	if mode, term := s.d.shim.Mode(); mode != txshim.ModeFenced || term != 1 {
		t.Fatalf("after the catch-up found %q in the peer database: shim %s in term %d, want fenced in term 1", record, mode, term)
	}
	return s.d, s.pdb, s.client, s.dsn
}
