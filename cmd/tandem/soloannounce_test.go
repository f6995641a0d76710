package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/txshim"
)

// slowWitnessStore is a witness's state file that takes witnessDiskDelay to keep a record
// saying site2 goes on alone, and notes when it has.
type slowWitnessStore struct {
	gossip.RecordStore
	held atomic.Int64 // unix nanoseconds when the unsynced record of site2 was kept
}

const witnessDiskDelay = time.Second

func (s *slowWitnessStore) Save(rec gossip.TermRecord) error {
	if rec.Master == "site2" && !rec.PeerSynced {
		time.Sleep(witnessDiskDelay)
		defer s.held.CompareAndSwap(0, time.Now().UnixNano())
	}
	return s.RecordStore.Save(rec)
}

// TestPromotionSoloAnnouncedFirst: a site promoted while the peer database is unreachable
// commits alone only once the witness holds its term's record unsynced (DESIGN §3 "going solo
// is announced first"). The promotion put the shim solo at once, and the first commit went
// through alone while the witness had not heard of it: the new master's site lost right after,
// the old master — back, finding no newer term anywhere — took over without those commits.
func TestPromotionSoloAnnouncedFirst(t *testing.T) {
	t.Parallel()
	c, db, logger := installedSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE TABLE acct (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	dsn := c.DSN(c.Database())
	addrS, addrW := freeGossipAddr(t), freeGossipAddr(t)
	cfg := &config.Config{Kind: config.KindSite, Site: "site2", Priority: 1, DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: addrS, Join: []string{addrW}, Profile: config.ProfileFast, Failback: config.FailbackAuto,
			FailbackDelay: time.Second, Witness: true, FenceDelay: time.Second},
		Server: config.Server{Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
		Admin:  config.Admin{Listen: "127.0.0.1:0"},
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: dsn, PeerDSN: "postgres://postgres@127.0.0.1:1/app?sslmode=disable&connect_timeout=1",
			PeerDown: config.PeerDownContinue, MaxMessage: config.DefaultMaxMessage, CommitTimeout: time.Second}}
	cfgW := &config.Config{Kind: config.KindWitness, Site: "witness", DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: addrW, Join: []string{addrS}, Profile: config.ProfileFast, Witness: true, FenceDelay: time.Second},
		Admin:  config.Admin{Listen: "127.0.0.1:0"}}
	wstore := &slowWitnessStore{RecordStore: gossip.NewFileStore(cfgW.DataDir)}
	witness, err := gossip.New(cfgW, gossip.Options{Logger: slog.New(slog.DiscardHandler), Store: wstore})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wstop := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- witness.Run(wctx) }()
	defer func() { wstop(); <-wdone }()

	d, err := newDatabase(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	sctx, sstop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); d.shim.Serve(sctx) }()
	defer func() { sstop(); <-served }()
	d.records = newRecordStore(cfg.Site, db, gossip.NewFileStore(cfg.DataDir), logger)
	node, err := gossip.New(cfg, gossip.Options{Logger: logger, Store: d.records, BeforePromote: d.promote, WentSolo: d.shim.WentSolo})
	if err != nil {
		t.Fatal(err)
	}
	d.node = node
	defer runRouted(t, d, node, true)()
	node.Force()                // site1 never seen: no cold-start wait
	node.SetServerHealthy(true) // with the witness's vote, it promotes itself

	app, err := txshim.OpenDB(fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgtest.Superuser, d.shim.Addr(), c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	deadline := time.Now().Add(30 * time.Second)
	for node.State().Role != gossip.RoleMaster {
		if time.Now().After(deadline) {
			t.Fatalf("site2 not master within 30 s: %+v", node.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := app.ExecContext(ctx, `INSERT INTO acct VALUES (1)`); err != nil {
		t.Fatalf("the first commit after the promotion: %v", err)
	}
	committed := time.Now()
	held := wstore.held.Load()
	if held == 0 || time.Unix(0, held).After(committed) {
		t.Fatalf("site2 committed alone in term %d before the witness held its record unsynced (held at %v, committed at %v)",
			node.State().Term, held, committed.UnixNano())
	}
	if !d.shim.WentSolo(node.State().Term) {
		t.Errorf("the shim does not say it went solo in term %d", node.State().Term)
	}
}
