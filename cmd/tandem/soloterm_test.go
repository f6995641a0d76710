package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/txshim"
)

// TestSoloMasterFencedByPeerTerm: a master gone solo because its peer database was away
// (site2, term 1) finds, once that database answers again, that another site took a newer term
// there (term 2 of site1: its successor, cut off from this site, touched the peer database
// only). Its catch-up is refused for the term, and the shim went on committing alone on its
// own database, whose record still names this site — beside the successor's commits, against
// DESIGN §3: a master cut off cannot commit once its successor has touched either database.
// The shim is fenced for the term now (no new transaction, 57P03; no write commit, 25006),
// and status says by what.
func TestSoloMasterFencedByPeerTerm(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, record string
	}{
		{"newer term", `UPDATE tandem.state SET term = 2, master = 'site1', peer_synced = false`},
		// Both took term 1 on stale views, each saving it into its own database first.
		{"same term of another master", `UPDATE tandem.state SET master = 'site1', peer_synced = false`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			soloFencedByPeer(t, c.record)
		})
	}
}

// soloFencedByPeer is TestSoloMasterFencedByPeerTerm with the successor's record made in the
// peer database by record.
func soloFencedByPeer(t *testing.T, record string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := soloSite2(t, ctx)
	d, client := s.d, s.client
	// A transaction open across the fence: its commit is refused.
	open, err := client.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Rollback()
	if _, err := open.ExecContext(ctx, `INSERT INTO acct VALUES (3, 3)`); err != nil {
		t.Fatal(err)
	}
	// The successor's record in the peer database.
	s.backWithRecord(t, ctx, record)
	var pe *pq.Error
	if err := open.Commit(); !errors.As(err, &pe) || pe.Code != "25006" {
		t.Errorf("commit of a transaction open across the fence: %v, want 25006", err)
	}
	_, err = client.ExecContext(ctx, `INSERT INTO acct VALUES (2, 2)`)
	if !errors.As(err, &pe) || (pe.Code != "25006" && pe.Code != "57P03") || !strings.Contains(pe.Message, "fenced") {
		t.Errorf("commit of the solo master of term 1 after its catch-up found %q in the peer database: %v, want fenced (25006 or 57P03)", record, err)
	}
	var n int
	if err := d.local.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id IN (2, 3)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the solo master of term 1 committed alone after its catch-up found %q in the peer database", record)
	}
	mode, term := d.shim.Mode()
	st := d.status()
	t.Logf("shim %s in term %d; status fenced_by %q", mode, term, st.FencedBy)
	if mode == txshim.ModeSolo || mode == txshim.ModeDual {
		t.Errorf("shim %s in term %d: takes writes", mode, term)
	}
	if !strings.Contains(st.FencedBy, "site1") {
		t.Errorf("status fenced_by %q, want the peer database's record (%q)", st.FencedBy, record)
	}
}

// TestDualMasterRefusedForTermFenced pins what README says of a dual master whose plain
// commit the peer database refused for its term (its record holds this term of another
// master): the commit is answered 08007, and the refusal lasts as long as the term — the next
// catch-up round finds the record in the peer database and fences the shim in its term, never
// a catch-up that brings the peer in step in it.
func TestDualMasterRefusedForTermFenced(t *testing.T) {
	t.Parallel()
	d, _, pdb := dualSite2(t)
	client, _ := serveShim(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.local.ExecContext(ctx, `CREATE PROCEDURE ins(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := pdb.ExecContext(ctx, `UPDATE tandem.state SET master = 'site1', peer_synced = false`); err != nil {
		t.Fatal(err)
	}
	var pe *pq.Error
	if _, err := client.ExecContext(ctx, `CALL ins(1)`); !errors.As(err, &pe) || pe.Code != "08007" {
		t.Fatalf("CALL whose commit the peer refused for term 1: %v, want 08007", err)
	}
	for range 3 {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		d.catchUp(cctx)
		ccancel()
	}
	if mode, term := d.shim.Mode(); mode != txshim.ModeFenced || term != 1 || d.ship.PeerSynced() {
		t.Fatalf("after the refusal and the catch-up rounds: shim %s in term %d, peer synced %v; want fenced in term 1, not in step",
			mode, term, d.ship.PeerSynced())
	}
	if st := d.status(); !strings.Contains(st.FencedBy, "site1") {
		t.Errorf("status fenced_by %q, want the peer database's record", st.FencedBy)
	}
}
