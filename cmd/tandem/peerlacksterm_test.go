package main

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/txshim"
)

// deafWitnessStore is a witness's state file that takes ackDelay to keep a record saying
// site2's peer lacks a commit: the witness is alive, but acknowledges that word late.
type deafWitnessStore struct {
	gossip.RecordStore
}

const ackDelay = 4 * time.Second // past soloAckTimeout

func (s *deafWitnessStore) Save(rec gossip.TermRecord) error {
	if rec.Master == "site2" && !rec.PeerSynced {
		time.Sleep(ackDelay)
	}
	return s.RecordStore.Save(rec)
}

// witnessedSite2 is site2's database side run by a gossip node, with a witness whose state
// file acknowledges peer_synced = false late (deafWitnessStore), over a local database and a
// peer database of its own (each with a table acct and a procedure ins): master of term 1 in
// dual mode. It returns the database side, the node, the peer database, a client of the shim
// and the sidecar's log.
func witnessedSite2(t *testing.T) (*database, *gossip.Node, *sql.DB, *sql.DB, *syncBuffer) {
	t.Helper()
	local, peer := pgtest.Start(t), pgtest.Start(t)
	ldb, pdb := local.Open(t, local.Database()), peer.Open(t, peer.Database())
	for _, db := range []*sql.DB{ldb, pdb} {
		for _, q := range []string{`CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`,
			`CREATE PROCEDURE ins(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	localDSN, peerDSN := local.DSN(local.Database()), peer.DSN(peer.Database())
	if err := txshim.Install(ctx, "site2", localDSN, peerDSN, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	addrS, addrW := freeGossipAddr(t), freeGossipAddr(t)
	cfg := &config.Config{Kind: config.KindSite, Site: "site2", Priority: 1, DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: addrS, Join: []string{addrW}, Profile: config.ProfileFast, Failback: config.FailbackAuto,
			FailbackDelay: time.Second, Witness: true, FenceDelay: time.Second},
		Server: config.Server{Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
		Admin:  config.Admin{Listen: "127.0.0.1:0"},
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: localDSN, PeerDSN: peerDSN, PeerDown: config.PeerDownContinue,
			MaxMessage: config.DefaultMaxMessage, CommitTimeout: time.Second}}
	cfgW := &config.Config{Kind: config.KindWitness, Site: "witness", DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: addrW, Join: []string{addrS}, Profile: config.ProfileFast, Witness: true, FenceDelay: time.Second},
		Admin:  config.Admin{Listen: "127.0.0.1:0"}}
	witness, err := gossip.New(cfgW, gossip.Options{Logger: slog.New(slog.DiscardHandler),
		Store: &deafWitnessStore{RecordStore: gossip.NewFileStore(cfgW.DataDir)}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wstop := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- witness.Run(wctx) }()
	t.Cleanup(func() { wstop(); <-wdone })

	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	d, err := newDatabase(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	shipped := make(chan error, 1)
	go func() { shipped <- d.ship.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		<-shipped
		d.close()
	})
	client, _ := serveShim(t, d)
	d.records = newRecordStore(cfg.Site, ldb, gossip.NewFileStore(cfg.DataDir), logger)
	node, err := gossip.New(cfg, gossip.Options{Logger: logger, Store: d.records, BeforePromote: d.promote, WentSolo: d.shim.WentSolo})
	if err != nil {
		t.Fatal(err)
	}
	d.node = node
	t.Cleanup(runRouted(t, d, node, true))
	node.Force()                // site1 never seen: no cold-start wait
	node.SetServerHealthy(true) // with the witness's vote, it promotes itself
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := node.State()
		mode, term := d.shim.Mode()
		if st.Role == gossip.RoleMaster && st.Record.PeerSynced && mode == txshim.ModeDual && term == st.Term {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("site2 not master in dual mode within 30 s: %+v, shim %s in term %d", st, mode, term)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return d, node, pdb, client, logs
}

// TestPlainRefusedForTermNoSoloWait: a plain commit through the shim (a procedure's CALL) that
// the peer database refused for this master's term (it holds this term of another master)
// records peer_synced = false and answers 08007; the shim stays dual, nothing goes solo. The
// word went through OnPeerDown, the announcement before going solo, which waited up to
// soloAckTimeout (3 s) for the witness's acknowledgement before the client had its answer,
// and logged "not going solo" (or "going solo: ... acknowledged") for a shim that never goes
// solo there. The word is recorded now without that wait.
func TestPlainRefusedForTermNoSoloWait(t *testing.T) {
	t.Parallel()
	d, node, pdb, client, logs := witnessedSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	term := node.State().Term
	if _, err := pdb.ExecContext(ctx, `UPDATE tandem.state SET master = 'site1', peer_synced = false`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := client.ExecContext(ctx, `CALL ins(1)`)
	took := time.Since(start)
	t.Logf("CALL whose commit the peer refused for term %d: %v after %v", term, err, took.Round(time.Millisecond))
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "08007" {
		t.Fatalf("CALL whose commit the peer refused for its term: %v, want 08007", err)
	}
	if took >= 2*time.Second {
		t.Errorf("the 08007 answer took %v: it waited for an acknowledgement of going solo, and the shim does not go solo", took.Round(time.Millisecond))
	}
	if mode, mterm := d.shim.Mode(); mode != txshim.ModeDual || mterm != term {
		t.Errorf("shim %s in term %d, want dual in term %d", mode, mterm, term)
	}
	// The word is in the local database's record by the time the client has its answer.
	if rterm, rmaster, synced, err := txshim.ReadTermRecord(ctx, d.local); err != nil || synced {
		t.Errorf("local record after a commit the peer lacks: term %d of %s, peer_synced %v (%v); want peer_synced = false",
			rterm, rmaster, synced, err)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		for _, w := range []string{"going solo: peer_synced", "not going solo: a member", "not going solo: neither", "going solo unacknowledged"} {
			if strings.Contains(line, w) {
				t.Errorf("log speaks of going solo for a shim that stays dual: %s", line)
			}
		}
	}
}
