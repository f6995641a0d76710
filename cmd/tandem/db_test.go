package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/txshim"
)

// installedSite2 starts a cluster with Tandem's schema installed for site2 (its own peer, which
// the record store does not mind) and opens it for control work.
func installedSite2(t *testing.T) (*pgtest.Cluster, *sql.DB, *slog.Logger) {
	t.Helper()
	return installedSite(t, "site2")
}

// installedSite is installedSite2 for site.
func installedSite(t *testing.T, site string, opts ...pgtest.Option) (*pgtest.Cluster, *sql.DB, *slog.Logger) {
	t.Helper()
	c := pgtest.Start(t, opts...)
	dsn := c.DSN(c.Database())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := txshim.Install(ctx, site, dsn, dsn, logger); err != nil {
		t.Fatal(err)
	}
	db, err := txshim.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return c, db, logger
}

// TestRecordStoreFrozenDatabase: with the local database frozen, an adopted record is kept (in
// the state file) at once and reaches the database once it answers again; this site's own
// record is refused within the store's timeout, since its database must hold it.
func TestRecordStoreFrozenDatabase(t *testing.T) {
	t.Parallel()
	c, db, logger := installedSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file := gossip.NewFileStore(t.TempDir())
	s := newRecordStore("site2", db, file, logger)
	defer s.close()
	inDB := func() gossip.TermRecord {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		term, master, synced, err := txshim.ReadTermRecord(rctx, db)
		if err != nil {
			t.Fatal(err)
		}
		return gossip.TermRecord{Term: term, Master: master, PeerSynced: synced}
	}
	waitDB := func(want gossip.TermRecord) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for inDB() != want {
			if time.Now().After(deadline) {
				t.Fatalf("database holds %+v, want %+v", inDB(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	own := gossip.TermRecord{Term: 5, Master: "site2", PeerSynced: true}
	if err := s.Save(own); err != nil {
		t.Fatal(err)
	}
	if got := inDB(); got != own {
		t.Fatalf("own record: database holds %+v, want %+v", got, own)
	}

	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	defer c.Resume()
	adopted := gossip.TermRecord{Term: 6, Master: "site1", PeerSynced: true}
	start := time.Now()
	if err := s.Save(adopted); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("saving an adopted record with the database frozen took %v", d)
	}
	if got, err := file.Load(); err != nil || got != adopted {
		t.Errorf("state file: %+v, %v; want %+v", got, err, adopted)
	}
	start = time.Now()
	if err := s.Save(gossip.TermRecord{Term: 7, Master: "site2", PeerSynced: true}); err == nil {
		t.Error("own record saved with the database frozen")
	} else if d := time.Since(start); d > recordTimeout+2*time.Second {
		t.Errorf("own record refused after %v, want within %v", d, recordTimeout)
	}
	if got, err := s.Load(); err != nil || got != adopted {
		t.Errorf("Load with the database frozen: %+v, %v; want %+v", got, err, adopted)
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	waitDB(adopted)

	// The same term's master going solo: the newer peer_synced wins, in the database and in Load.
	solo := gossip.TermRecord{Term: 6, Master: "site1", PeerSynced: false}
	if err := s.Save(solo); err != nil {
		t.Fatal(err)
	}
	waitDB(solo)
	if got, err := s.Load(); err != nil || got != solo {
		t.Errorf("Load: %+v, %v; want %+v", got, err, solo)
	}
	// An older adopted record never moves the database back.
	if err := s.Save(gossip.TermRecord{Term: 4, Master: "site1", PeerSynced: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := inDB(); got != solo {
		t.Errorf("database moved back to %+v", got)
	}
}

// TestRecordStoreLoad: which of the database's and the state file's records Load believes when
// they differ. This site's own records reach the database first, adopted ones the file first.
func TestRecordStoreLoad(t *testing.T) {
	t.Parallel()
	_, db, logger := installedSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := func(term uint64, master string, synced bool) gossip.TermRecord {
		return gossip.TermRecord{Term: term, Master: master, PeerSynced: synced}
	}
	cases := []struct {
		name         string
		inDB, inFile gossip.TermRecord
		want         gossip.TermRecord
	}{
		{"file newer term", rec(3, "site1", true), rec(4, "site1", true), rec(4, "site1", true)},
		{"database newer term", rec(5, "site2", true), rec(4, "site1", true), rec(5, "site2", true)},
		{"adopted: the file's newer peer_synced (false)", rec(4, "site1", true), rec(4, "site1", false), rec(4, "site1", false)},
		{"adopted: the file's newer peer_synced (true)", rec(4, "site1", false), rec(4, "site1", true), rec(4, "site1", true)},
		{"own: the file saying the peer lacks commits", rec(4, "site2", true), rec(4, "site2", false), rec(4, "site2", false)},
		{"own: the database's newer peer_synced", rec(4, "site2", false), rec(4, "site2", true), rec(4, "site2", false)},
		{"the same record: the file's word order", rec(4, "site2", true), withSeq(rec(4, "site2", true), 7), withSeq(rec(4, "site2", true), 7)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.ExecContext(ctx, `DELETE FROM tandem.state`); err != nil {
				t.Fatal(err)
			}
			if err := txshim.WriteTermRecord(ctx, db, tc.inDB.Term, tc.inDB.Master, tc.inDB.PeerSynced); err != nil {
				t.Fatal(err)
			}
			file := gossip.NewFileStore(t.TempDir())
			if err := file.Save(tc.inFile); err != nil {
				t.Fatal(err)
			}
			s := newRecordStore("site2", db, file, logger)
			defer s.close()
			if got, err := s.Load(); err != nil || got != tc.want {
				t.Errorf("Load = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func withSeq(r gossip.TermRecord, seq uint64) gossip.TermRecord { r.Seq = seq; return r }

// TestRecordStoreSaveDatabaseLostTerm: the database restored from an earlier backup (or
// re-initialised) while the sidecar runs — PostgreSQL stopped, restored, started again — holds
// an older term than it did. The site's own record in memory still says it was master of the
// newest term, so it counts as current, and its next promotion saved the new term into the
// restored database as into any: it took control over a database lacking what it committed
// then. An own record's Save refuses now when the database holds an older term than it was
// seen to hold: the promotion fails, the site stands aside, and the other site takes over.
func TestRecordStoreSaveDatabaseLostTerm(t *testing.T) {
	t.Parallel()
	_, db, logger := installedSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, `DELETE FROM tandem.state`); err != nil {
		t.Fatal(err)
	}
	s := newRecordStore("site2", db, gossip.NewFileStore(t.TempDir()), logger)
	defer s.close()
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(gossip.TermRecord{Term: 7, Master: "site2", PeerSynced: true}); err != nil {
		t.Fatal(err)
	}
	// The restore: the database's record as the backup had it.
	if _, err := db.ExecContext(ctx, `DELETE FROM tandem.state`); err != nil {
		t.Fatal(err)
	}
	if err := txshim.WriteTermRecord(ctx, db, 3, "site2", true); err != nil {
		t.Fatal(err)
	}
	err := s.Save(gossip.TermRecord{Term: 8, Master: "site2", PeerSynced: true})
	if err == nil || !strings.Contains(err.Error(), "term 7") {
		t.Fatalf("Save of term 8 into a database back at term 3 after it held term 7: %v; want a refusal", err)
	}
	t.Logf("Save: %v", err)
	// A term the database holds is no loss: another site's newer one written there meanwhile.
	if err := txshim.WriteTermRecord(ctx, db, 9, "site1", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(gossip.TermRecord{Term: 10, Master: "site2", PeerSynced: true}); err != nil {
		t.Fatalf("Save of term 10 over the database's term 9: %v", err)
	}
}

// TestRecordStoreDatabaseLostTermDownAtStart: a database restored from an earlier backup is
// often started again just before the sidecar, and may not answer its first read (recovery,
// a slow start). Load then takes the state file's record — this site master of term 7 — and
// the store knew nothing the database held (held 0), so neither Load's refusal nor Save's
// check held: the site counted as current and its next promotion saved term 8 into the
// database back at term 3, taking control over a database lacking what it committed then.
// This site's own record in the file was in its database first (Save): the database held it.
func TestRecordStoreDatabaseLostTermDownAtStart(t *testing.T) {
	t.Parallel()
	c, db, logger := installedSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The restore: the database's record as the backup had it.
	if _, err := db.ExecContext(ctx, `DELETE FROM tandem.state`); err != nil {
		t.Fatal(err)
	}
	if err := txshim.WriteTermRecord(ctx, db, 3, "site2", true); err != nil {
		t.Fatal(err)
	}
	file := gossip.NewFileStore(t.TempDir())
	if err := file.Save(gossip.TermRecord{Term: 7, Master: "site2", PeerSynced: true, Seq: 9}); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	s := newRecordStore("site2", db, file, logger)
	defer s.close()
	if _, err := s.Load(); err != nil {
		t.Fatalf("Load with the database down: %v; want the state file's record", err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	err := s.Save(gossip.TermRecord{Term: 8, Master: "site2", PeerSynced: true})
	if term, _, _, rerr := txshim.ReadTermRecord(ctx, db); rerr != nil || term != 3 {
		t.Errorf("database record after the Save: term %d, %v; want term 3 kept", term, rerr)
	}
	if err == nil || !strings.Contains(err.Error(), "term 7") {
		t.Fatalf("Save of term 8 into a database back at term 3 after this site was master of term 7: %v; want a refusal", err)
	}
	t.Logf("Save: %v", err)
}

// TestRecordStoreLoadDatabaseLostOwnTerm: this site's own term record reaches its database
// before its state file (Save), so a file naming this site master of a term its database does
// not hold means the database lost it: restored from a backup taken before that term, or
// re-initialised (README: install, then resync on the master). Load took the file's record:
// the site counted as current — the master of the newest term — with a database that lacks
// what it committed then, and, the better site, took control back from the site that holds
// those commits (tandem resync on it would then copy the old data over them). Load refuses
// now, naming the two terms.
func TestRecordStoreLoadDatabaseLostOwnTerm(t *testing.T) {
	t.Parallel()
	_, db, logger := installedSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name string
		inDB *gossip.TermRecord // nil: no row (a database re-initialised, then installed)
	}{
		{"restored from an earlier backup", &gossip.TermRecord{Term: 3, Master: "site2", PeerSynced: true}},
		{"restored, an older term of the other site", &gossip.TermRecord{Term: 6, Master: "site1", PeerSynced: true}},
		{"re-initialised", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.ExecContext(ctx, `DELETE FROM tandem.state`); err != nil {
				t.Fatal(err)
			}
			if r := tc.inDB; r != nil {
				if err := txshim.WriteTermRecord(ctx, db, r.Term, r.Master, r.PeerSynced); err != nil {
					t.Fatal(err)
				}
			}
			file := gossip.NewFileStore(t.TempDir())
			if err := file.Save(gossip.TermRecord{Term: 7, Master: "site2", PeerSynced: true, Seq: 9}); err != nil {
				t.Fatal(err)
			}
			s := newRecordStore("site2", db, file, logger)
			defer s.close()
			got, err := s.Load()
			if err == nil || !strings.Contains(err.Error(), "term 7") {
				t.Fatalf("Load = %+v, %v; want an error: the database lacks this site's term 7", got, err)
			}
			t.Logf("Load: %v", err)
		})
	}
}

// TestSoloAllowed: a master whose peer database stopped answering commits alone once going
// solo is acknowledged; unacknowledged only when nobody alive could have acknowledged and no
// witness is configured (DESIGN §3; see soloAllowed for the departure).
func TestSoloAllowed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		acked, noneAlive, witness, want bool
		what                            string
	}{
		{true, true, false, true, "acknowledged, no witness"},
		{true, true, true, true, "acknowledged, witness"},
		{false, true, false, true, "nobody alive, no witness: split-brain risk accepted"},
		{false, true, true, false, "nobody alive, witness: this site lost its majority"},
		{false, false, false, false, "alive but silent, no witness"},
		{false, false, true, false, "alive but silent, witness"},
	} {
		if got := soloAllowed(c.acked, c.noneAlive, c.witness); got != c.want {
			t.Errorf("%s: soloAllowed = %v, want %v", c.what, got, c.want)
		}
	}
}

// TestPublishSyncedAfterPeerDown: a catch-up that ended in step may say peer_synced = true
// only if the peer was not found down after it began (a dual commit that failed meanwhile
// recorded false and may be going solo), and only while this site is master of its term.
func TestPublishSyncedAfterPeerDown(t *testing.T) {
	t.Parallel()
	d := &database{role: gossip.RoleMaster, term: 3, log: slog.New(slog.DiscardHandler)}
	gen := d.peerDowns()
	if !d.maySayInSync(3, gen) {
		t.Fatal("a catch-up with no peer-down since may publish")
	}
	if !d.peerDown() {
		t.Fatal("peerDown without a node: want going solo allowed")
	}
	if d.maySayInSync(3, gen) {
		t.Error("published peer_synced = true over a peer-down recorded after the catch-up began")
	}
	if !d.maySayInSync(3, d.peerDowns()) {
		t.Error("the next catch-up may publish")
	}
	if d.maySayInSync(4, d.peerDowns()) {
		t.Error("published for a term this site is not master of")
	}
}

// TestShimTLS: the shim offers TLS with the configured pair, at TLS 1.2 or later, and none
// without one.
func TestShimTLS(t *testing.T) {
	t.Parallel()
	if shimTLS(&config.TxShim{}) != nil {
		t.Error("TLS offered without a certificate")
	}
	cert := &tls.Certificate{Certificate: [][]byte{{1}}}
	c := shimTLS(&config.TxShim{TLSCert: cert})
	if c == nil || len(c.Certificates) != 1 || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("shimTLS = %+v", c)
	}
}

// site2Database makes site2's database side over an installed database (its peer_dsn the same
// database), closed when the test ends.
func site2Database(t *testing.T) *database {
	t.Helper()
	return site2DatabaseTo(t, "")
}

// site2DatabaseTo is site2Database whose peer database is at peerDSN ("": its own).
func site2DatabaseTo(t *testing.T, peerDSN string, opts ...pgtest.Option) *database {
	t.Helper()
	return site2DatabaseDown(t, peerDSN, config.PeerDownContinue, opts...)
}

// site2DatabaseDown is site2DatabaseTo with txshim.peer_down = peerDown.
func site2DatabaseDown(t *testing.T, peerDSN, peerDown string, opts ...pgtest.Option) *database {
	t.Helper()
	c, db, _ := installedSite(t, "site2", opts...)
	db.Close() // takes no connection slot of its own
	dsn := c.DSN(c.Database())
	cfg := &config.Config{Kind: config.KindSite, Site: "site2", DataDir: t.TempDir(),
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: dsn, PeerDSN: cmp.Or(peerDSN, dsn), PeerDown: peerDown,
			MaxMessage: config.DefaultMaxMessage, CommitTimeout: time.Second}}
	d, err := newDatabase(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d.shim.Serve(ctx) // closes the listener Start bound
		d.close()
	})
	return d
}

// TestPromoteRefusedByPeerTerm: a promotion whose term the peer's database refuses (it holds a
// newer term, or this one of another master — a master the gossip does not show, across a cut
// link) fails: it went solo, committing alone in the same term as that master.
func TestPromoteRefusedByPeerTerm(t *testing.T) {
	t.Parallel()
	d := site2Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := txshim.WriteTermRecord(ctx, d.peer, 10, "site1", true); err != nil {
		t.Fatal(err)
	}
	synced, err := d.promote(ctx, 5)
	mode, term := d.shim.Mode()
	t.Logf("promote(5) with the peer database at term 10 of site1: synced %v, err %v; shim %s in term %d", synced, err, mode, term)
	if err == nil || !errors.Is(err, txshim.ErrStaleTerm) {
		t.Fatalf("promote(5): %v, want an error wrapping ErrStaleTerm", err)
	}
	if mode == txshim.ModeSolo || mode == txshim.ModeDual {
		t.Fatalf("after the refused promotion the shim is %s: it takes writes", mode)
	}
}

// TestSplitBrainKeepsLaterTerms: a site whose split-brain mark (term 5) is still set and that
// became master of a newer term since (a switchover to it, or a failover) commits alone while
// the peer database is away; demoted, it must keep those commits for the peer — abandoning
// them, as it rightly abandons what it committed alone in term 5, lost commits whose clients
// had been told COMMIT.
func TestSplitBrainKeepsLaterTerms(t *testing.T) {
	t.Parallel()
	// The peer database is away.
	d := site2DatabaseTo(t, "postgres://postgres@127.0.0.1:1/app?sslmode=disable&connect_timeout=1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	shipped := make(chan error, 1)
	go func() { shipped <- d.ship.Run(rctx) }()
	defer func() {
		stop()
		<-shipped
	}()
	d.setRole(gossip.State{Role: gossip.RoleBackup, Term: 8, SplitBrain: 5, Record: gossip.TermRecord{Term: 8, Master: "site1"}})
	if _, err := d.promote(ctx, 9); err != nil {
		t.Fatal(err)
	}
	d.setRole(gossip.State{Role: gossip.RoleMaster, Term: 9, SplitBrain: 5, Record: gossip.TermRecord{Term: 9, Master: "site2"}})
	for _, q := range []string{`CREATE TABLE later (id int PRIMARY KEY)`, `INSERT INTO later VALUES (1)`, `INSERT INTO later VALUES (2)`} {
		if _, err := d.local.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for d.ship.Backlog() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	before := d.ship.Backlog()
	d.setRole(gossip.State{Role: gossip.RoleFenced, Term: 9, SplitBrain: 5, Record: gossip.TermRecord{Term: 9, Master: "site2"}})
	waitDrained(t, d)
	after := d.ship.Backlog()
	t.Logf("backlog for the peer: %d as master of term 9, %d once fenced", before, after)
	if before < 2 || after < before {
		t.Fatalf("backlog %d as master of term 9, %d once fenced: the later term's commits were given up", before, after)
	}
}

// TestPromoteBlockNeverSolo: with peer_down = "block" a master never commits alone (README:
// such commits fail with 08007 and wait for the peer), yet a promotion whose peer database was
// unreachable (the failover after the other site was lost) opened the shim in solo mode: every
// commit of the new master was on its own database only, what block is there to prevent. The
// shim is dual then, the peer not in step (peer_synced = false), and catch-up brings it in
// step once it answers (catchUp, as after a failed commit).
func TestPromoteBlockNeverSolo(t *testing.T) {
	t.Parallel()
	// The peer database is away.
	d := site2DatabaseDown(t, "postgres://postgres@127.0.0.1:1/app?sslmode=disable&connect_timeout=1", config.PeerDownBlock)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	shipped := make(chan error, 1)
	go func() { shipped <- d.ship.Run(rctx) }()
	defer func() {
		stop()
		<-shipped
	}()
	synced, err := d.promote(ctx, 9)
	mode, term := d.shim.Mode()
	t.Logf("promote(9) with the peer database away and peer_down = block: synced %v, err %v; shim %s in term %d", synced, err, mode, term)
	if err != nil {
		t.Fatal(err)
	}
	if synced {
		t.Errorf("promote(9) said the peer is in step, with its database away")
	}
	if mode != txshim.ModeDual || term != 9 {
		t.Errorf("after the promotion with peer_down = block the shim is %s in term %d, want dual in term 9: it commits alone", mode, term)
	}
}

// TestStatusInDoubtOnlyMaster: the in-doubt count of status and metrics is the master's: once
// this site is backup (or fenced) it runs no resolver pass, and the count its last pass as master
// left stood for ever (an alert on tandem_txshim_in_doubt fired on the old master long after the
// new master settled those transactions).
func TestStatusInDoubtOnlyMaster(t *testing.T) {
	t.Parallel()
	d := site2Database(t)

	d.mu.Lock()
	d.role, d.term = gossip.RoleMaster, 3
	d.mu.Unlock()
	d.shim.SetMode(txshim.ModeSolo, 3)
	d.inDoubt.Store(2) // the last resolver pass as master of term 3
	if got := d.status().InDoubt; got != 2 {
		t.Fatalf("master: in_doubt %d, want 2", got)
	}
	d.setRole(gossip.State{Role: gossip.RoleBackup, Term: 4, Master: "site1"})
	if got := d.status().InDoubt; got != 0 {
		t.Errorf("backup of term 4: in_doubt %d, want 0 (the master's resolver has them)", got)
	}
	// setRole's drain (the shipper turns backup after it) ends before the database closes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		draining := d.draining
		d.mu.Unlock()
		if draining == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain after the demotion did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSetRoleStaleAfterPromote: route reads the node's State, then hands it to setRole, which
// waits for d.mu; database.promote holds d.mu throughout (resolver, sequences, catch-up: up to
// many seconds), and the node's State stays the one from before the promotion until it ends.
// A route that read that State (a role change followRoles was still passing on) and waited
// meanwhile applied it once the promotion was done: the new master's shim turned read-only,
// and the master State that followed left it so ("promote has already run"), refusing every
// write for the whole term. A State of a term older than the one promote set is now ignored.
func TestSetRoleStaleAfterPromote(t *testing.T) {
	t.Parallel()
	d := site2Database(t)
	stale := gossip.State{Role: gossip.RoleBackup, Term: 4, Master: "site1"}
	d.setRole(stale) // backup of term 4

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	promoted := make(chan error, 1)
	go func() {
		_, err := d.promote(ctx, 5)
		promoted <- err
	}()
	// route, with the State it read before the promotion, reaches setRole while promote runs.
	for d.mu.TryLock() {
		d.mu.Unlock()
		select {
		case err := <-promoted:
			t.Fatalf("promote ended (%v) before the test saw it hold d.mu", err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	d.setRole(stale)
	if err := <-promoted; err != nil {
		t.Fatal(err)
	}
	d.setRole(gossip.State{Role: gossip.RoleMaster, Term: 5, Master: "site2"}) // the promotion's State
	mode, term := d.shim.Mode()
	t.Logf("after the promotion to term 5: shim %s in term %d", mode, term)
	if (mode != txshim.ModeDual && mode != txshim.ModeSolo) || term != 5 {
		t.Fatalf("master of term 5, but its shim is %s in term %d", mode, term)
	}
	waitDrained(t, d)
}

// waitDrained waits until setRole's drains are over, before the database closes.
func waitDrained(t *testing.T, d *database) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		draining := d.draining
		d.mu.Unlock()
		if draining == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain after a demotion did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// failingWord is the node's record store with the node's own saves of peer_synced = false
// failing (they carry a Seq; database.promote's own save of it does not): the local database
// went away right after the promotion readied the shim to commit alone.
type failingWord struct {
	*recordStore
	failed atomic.Bool
	term   atomic.Uint64 // the term of the failed save
}

func (s *failingWord) Save(rec gossip.TermRecord) error {
	if rec.Master == "site2" && !rec.PeerSynced && rec.Seq != 0 {
		s.term.Store(rec.Term)
		s.failed.Store(true)
		return errors.New("write term record: connection reset")
	}
	return s.recordStore.Save(rec)
}

// TestFailedPromotionShimNotSolo: a promotion that went solo (the peer database not in step)
// and whose node then could not record peer_synced = false left the shim committing alone,
// in the new term, on a site whose node stayed backup. The failed promotion now reaches the
// shim, through the node's State as route passes it on, which puts it read-only; and as no
// client worked through the shim meanwhile, the shim says it committed nothing alone in that
// term (Options.WentSolo), so the node does not count the announced term as solo.
func TestFailedPromotionShimNotSolo(t *testing.T) {
	t.Parallel()
	c, db, logger := installedSite2(t)
	dsn := c.DSN(c.Database())
	cfg := &config.Config{Kind: config.KindSite, Site: "site2", Priority: 1, DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
		Server: config.Server{Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
		Admin:  config.Admin{Listen: "127.0.0.1:0"},
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: dsn, PeerDSN: dsn, PeerDown: config.PeerDownContinue,
			MaxMessage: config.DefaultMaxMessage, CommitTimeout: time.Second}}
	d, err := newDatabase(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d.shim.Serve(ctx) // closes the listener Start bound
	}()
	d.records = newRecordStore(cfg.Site, db, gossip.NewFileStore(cfg.DataDir), logger)
	store := &failingWord{recordStore: d.records}
	node, err := gossip.New(cfg, gossip.Options{Logger: logger, Store: store, BeforePromote: d.promote, WentSolo: d.shim.WentSolo})
	if err != nil {
		t.Fatal(err)
	}
	d.node = node
	defer runRouted(t, d, node, true)()
	node.SetServerHealthy(true) // alone: it promotes itself

	deadline := time.Now().Add(20 * time.Second)
	for !store.failed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the promotion did not go solo within 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		mode, term := d.shim.Mode()
		st := node.State()
		if st.Role != gossip.RoleMaster && mode != txshim.ModeSolo && mode != txshim.ModeDual {
			t.Logf("after the failed promotion: node %s of term %d, shim %s in term %d", st.Role, st.Term, mode, term)
			// No client worked through the shim while it was solo: it committed nothing alone,
			// and the split-brain check must not count the announced term as solo.
			if ft := store.term.Load(); d.shim.WentSolo(ft) {
				t.Errorf("the shim says it went solo in term %d, though no client worked through it", ft)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s of term %d, but its shim is %s in term %d", st.Role, st.Term, mode, term)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runRouted runs node, passing its role changes to d as route does, until the returned stop
// (then, with drained, it waits for d's drain of a demotion: waitDrained).
func runRouted(t *testing.T, d *database, node *gossip.Node, drained bool) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done, routed := make(chan error, 1), make(chan struct{})
	go func() { done <- node.Run(ctx) }()
	go func() { // route's part for the shim, until Run closes Changes
		defer close(routed)
		for range node.Changes() {
			d.setRole(node.State())
		}
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		<-routed
		if drained {
			waitDrained(t, d)
		}
	}
}

// site2OverTerms sets site2 up to promote over site1's database holding {peerTerm, site1,
// peer_synced = false} (site2Database: its peer database is its own, for the record read here)
// and a new data_dir holding own. Each call of start runs a new node of site2 over that data_dir,
// routed to the database until its stop, healthy and forced past the cold-start wait; mayPromote
// checks its promotions (BeforePromote passes them, writing nothing), and each refusal goes to
// refused while it has room.
func site2OverTerms(t *testing.T, peerTerm uint64, own gossip.TermRecord) (start func() (*gossip.Node, func()), refused chan error) {
	t.Helper()
	d := site2Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := txshim.WriteTermRecord(ctx, d.peer, peerTerm, "site1", false); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := gossip.NewFileStore(dir).Save(own); err != nil {
		t.Fatal(err)
	}
	refused = make(chan error, 16)
	start = func() (*gossip.Node, func()) {
		t.Helper()
		cfg := &config.Config{Kind: config.KindSite, Site: "site2", Priority: 2, DataDir: dir,
			Gossip: config.Gossip{Bind: freeGossipAddr(t), Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
			Server: config.Server{Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
			Admin:  config.Admin{Listen: "127.0.0.1:0"}}
		node, err := gossip.New(cfg, gossip.Options{Logger: slog.New(slog.DiscardHandler),
			CheckPromote: func(ctx context.Context, term uint64) error {
				err := d.mayPromote(ctx, term)
				if err != nil {
					select {
					case refused <- err:
					default:
					}
				}
				return err
			},
			BeforePromote: func(ctx context.Context, term uint64) (bool, error) { return true, nil }})
		if err != nil {
			t.Fatal(err)
		}
		d.attach(node)
		stop := runRouted(t, d, node, false)
		node.SetServerHealthy(true)
		node.Force() // alone: the operator lifted the cold-start wait
		return node, stop
	}
	return start, refused
}

// freeGossipAddr returns a loopback address whose port is free for TCP and UDP (memberlist).
func freeGossipAddr(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return addr
	}
	t.Fatal("no free TCP+UDP port on 127.0.0.1")
	return ""
}

// TestAttachKnowsSplitBrain: after a split brain and a kill -9, the restarted site's data_dir
// holds the split-brain mark. The node's State has it from the start, but it delivers only
// changes: a site that waits at cold start (the other site not seen) never told the database,
// which then never gave up shipping what it committed alone (Shipper.Abandon), and its slot
// held that WAL for as long as the wait lasted. The database takes the node's State at once.
func TestAttachKnowsSplitBrain(t *testing.T) {
	t.Parallel()
	d := site2Database(t)
	dir := t.TempDir()
	if err := gossip.NewFileStore(dir).Save(gossip.TermRecord{Term: 7, Master: "site2", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, gossip.SplitBrainFile), []byte(`{"term":7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Kind: config.KindSite, Site: "site2", Priority: 2, DataDir: dir,
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Join: []string{"127.0.0.1:1"}, Profile: config.ProfileFast, Failback: config.FailbackAuto}}
	node, err := gossip.New(cfg, gossip.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if st := node.State(); st.SplitBrain != 7 || !st.Cold {
		t.Fatalf("node at start: split brain %d, cold %v; want 7, cold", st.SplitBrain, st.Cold)
	}
	d.attach(node)
	d.mu.Lock()
	sb, role := d.splitBrain, d.role
	d.mu.Unlock()
	if sb != 7 {
		t.Fatalf("database after attach: split brain %d (role %s), want 7: the shipper keeps what was committed alone", sb, role)
	}
}

// TestStatusInstallMark: status shows whether each database was set up by this version's
// tandem install, and the log says once when one was not (after an upgrade the shim would
// otherwise run without what the new version installs).
func TestStatusInstallMark(t *testing.T) {
	t.Parallel()
	d := site2Database(t)
	var logged strings.Builder // checkInstall is called directly: no other writer
	d.log = slog.New(slog.NewTextHandler(&logged, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if got := d.status().Install; got != nil {
		t.Fatalf("install before any look = %v, want none", got)
	}
	d.checkInstall(ctx)
	if got := d.status().Install; got["local"] != txshim.InstallCurrent || got["peer"] != txshim.InstallCurrent {
		t.Fatalf("install after tandem install = %v, want both current", got)
	}
	if _, err := d.local.Exec(`UPDATE tandem.installed SET mark = 'an older version'`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d.checkInstall(ctx)
	}
	if got := d.status().Install; got["local"] != txshim.InstallOutdated || got["peer"] != txshim.InstallOutdated {
		t.Fatalf("install after another version's = %v, want both outdated", got)
	}
	if n := strings.Count(logged.String(), "run tandem install"); n != 2 {
		t.Errorf("the outdated install was logged %d times over two looks, want 2 (once per database):\n%s", n, logged.String())
	}
}

// TestPromoteTakesPeerSequences: at a handover the old master's database is reachable, but
// nothing copied its sequences' positions to the new master: the periodic copy (every 5 s,
// with a lead measured from the previous one) lags behind, and BumpSequences moves only the
// sequences a column takes its values from. A standalone sequence the application fetches ids
// from (an order number, here in a schema and with a name that need quoting) that the old
// master advanced after the last copy handed the same values out again on the new master.
// The promotion now copies the peer database's sequence positions to the local one first.
func TestPromoteTakesPeerSequences(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old, oldDB, _ := installedSite(t, "site1") // site1's database, master until now
	oldDSN := old.DSN(old.Database())
	d := site2DatabaseTo(t, oldDSN)
	const ddl = `CREATE SCHEMA "Billing"; CREATE SEQUENCE "Billing"."Order Nos"`
	for _, db := range []*sql.DB{oldDB, d.local} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	// The old master hands out order numbers 1 to 3 after the last copy of positions.
	for range 3 {
		if _, err := oldDB.ExecContext(ctx, `SELECT nextval('"Billing"."Order Nos"')`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.promote(ctx, 5); err != nil {
		t.Fatal(err)
	}
	var next int64
	if err := d.local.QueryRowContext(ctx, `SELECT nextval('"Billing"."Order Nos"')`).Scan(&next); err != nil {
		t.Fatal(err)
	}
	t.Logf("the new master's next order number: %d (the old master handed out 1 to 3)", next)
	if next <= 3 {
		t.Fatalf("the new master hands out order number %d, which the old master already handed out", next)
	}
}

// TestPromoteKeepsOwnCycleSequence: a site that was master of the last term promotes again (its
// sidecar restarted, an upgrade, a restart of both sites) with its backup's database reachable.
// That database holds copies of this site's sequence positions, up to a copy period behind —
// and a CYCLE sequence's copy takes it back to them exactly: the new term handed out again the
// values this site handed out since the last copy.
func TestPromoteKeepsOwnCycleSequence(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	backup, backupDB, _ := installedSite(t, "site1") // site1's database, the backup of term 4
	backupDSN := backup.DSN(backup.Database())
	d := site2DatabaseTo(t, backupDSN) // site2: master of term 4
	for _, db := range []*sql.DB{backupDB, d.local} {
		if _, err := db.ExecContext(ctx, `CREATE SEQUENCE cyc MAXVALUE 1000 CYCLE`); err != nil {
			t.Fatal(err)
		}
	}
	// Term 4: site2 master, its term in both databases; the last copy saw cyc at 40, then
	// site2 handed out 41 to 50.
	for _, db := range []*sql.DB{backupDB, d.local} {
		if err := txshim.WriteTermRecord(ctx, db, 4, "site2", true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := backupDB.ExecContext(ctx, `SELECT setval('cyc', 40)`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.local.ExecContext(ctx, `SELECT setval('cyc', 50)`); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.record = gossip.TermRecord{Term: 4, Master: "site2", PeerSynced: true}
	d.mu.Unlock()
	// site2 restarts and takes term 5.
	if _, err := d.promote(ctx, 5); err != nil {
		t.Fatal(err)
	}
	var next int64
	if err := d.local.QueryRowContext(ctx, `SELECT nextval('cyc')`).Scan(&next); err != nil {
		t.Fatal(err)
	}
	t.Logf("site2, master of term 4 (cyc at 50; its backup's copy at 40), promotes to term 5: next cyc %d", next)
	if next != 51 {
		t.Fatalf("the new term hands out cyc %d, which site2 handed out in term 4 (41 to 50)", next)
	}
}

// TestPromoteAfterReleaseKeepsOwnCycleSequence: site2, master of term 5 alone (its peer's
// database, site1's, was away at the promotion: it still holds site1's term 4 and a copy of
// cyc at 40), handed out cyc 41 to 50, released the role (its server failed its health check;
// site1, not current, took nothing) and takes term 6 once its server is back, the peer's
// database reachable again. The release's stepDown replaced the node's term record the
// database side holds with an empty one, and no State came between to bring it back: the
// promotion no longer knew that site2's own term 5 was the last, copied the peer's positions,
// and cyc went back onto values handed out in term 5.
func TestPromoteAfterReleaseKeepsOwnCycleSequence(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	backup, backupDB, _ := installedSite(t, "site1") // site1's database
	backupDSN := backup.DSN(backup.Database())
	d := site2DatabaseTo(t, backupDSN)
	for _, db := range []*sql.DB{backupDB, d.local} {
		if _, err := db.ExecContext(ctx, `CREATE SEQUENCE cyc MAXVALUE 1000 CYCLE`); err != nil {
			t.Fatal(err)
		}
	}
	// Term 4: site1's, in its database. Term 5: site2's alone, in its own database only.
	if err := txshim.WriteTermRecord(ctx, backupDB, 4, "site1", true); err != nil {
		t.Fatal(err)
	}
	if err := txshim.WriteTermRecord(ctx, d.local, 5, "site2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := backupDB.ExecContext(ctx, `SELECT setval('cyc', 40)`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.local.ExecContext(ctx, `SELECT setval('cyc', 50)`); err != nil {
		t.Fatal(err)
	}
	rec5 := gossip.TermRecord{Term: 5, Master: "site2", PeerSynced: false}
	// Master of term 5, solo (as promote left it with the peer away, and the master State routed).
	d.mu.Lock()
	d.role, d.term, d.record, d.bypass = gossip.RoleMaster, 5, rec5, bypassMaster
	d.mu.Unlock()
	d.ship.SetTerm(5)
	d.ship.SetBackup(false)
	d.shim.SetMode(txshim.ModeSolo, 5)
	// The release of term 5: route with the node's State, then BeforeRelease's stepDown.
	d.setRole(gossip.State{Self: "site2", Role: gossip.RoleBackup, Term: 5, Record: rec5, Releasing: 5})
	d.stepDown(ctx, 5)
	waitDrained(t, d)
	// Term 6, nothing delivered in between (the node's role, term and master are unchanged).
	if _, err := d.promote(ctx, 6); err != nil {
		t.Fatal(err)
	}
	var next int64
	if err := d.local.QueryRowContext(ctx, `SELECT nextval('cyc')`).Scan(&next); err != nil {
		t.Fatal(err)
	}
	t.Logf("site2, master of term 5 alone (cyc at 50; the peer's copy at 40), released and promoted to term 6: next cyc %d", next)
	if next != 51 {
		t.Fatalf("the new term hands out cyc %d, which site2 handed out in term 5 (41 to 50)", next)
	}
}

// TestHealthLocalSlotsFull: a local database whose every connection slot is taken (SQLSTATE
// 53300, too_many_connections) answers: it is busy, not down, and the site must not give up
// its role as if it were — its application's own connections are what fill it.
func TestHealthLocalSlotsFull(t *testing.T) {
	t.Parallel()
	d := site2DatabaseTo(t, "", pgtest.WithSetting("max_connections", "10"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Every slot taken, the sidecar's handle holding none (as at its start).
	d.local.SetMaxIdleConns(0)
	fill, err := txshim.OpenDB(d.cfg.LocalDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer fill.Close()
	var held []*sql.Conn
	for {
		conn, err := fill.Conn(ctx)
		if err != nil {
			var pe *pq.Error
			if !errors.As(err, &pe) || pe.Code != "53300" {
				t.Fatalf("filling the slots: %v", err)
			}
			break
		}
		if err := conn.PingContext(ctx); err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	d.local.SetMaxIdleConns(2)
	t.Logf("%d connections fill the local database", len(held))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.run(rctx, 100*time.Millisecond) }()
	time.Sleep(time.Duration(pingFailures+3) * 100 * time.Millisecond)
	down := d.localDown.Load()
	stop()
	<-done
	if down {
		t.Fatal("local database with every connection slot taken (53300) counted as down: the site would give up its role")
	}
}

// TestPromoteSilentPeerWaitsOnce: a peer database that accepts connections and then says
// nothing (its site's network gone, its host down) is waited for once per takeover. The check
// before the term is taken (mayPromote) waits 2 s for the peer's term record, and the
// promotion's resolver pass waited 2 s more for the same silent peer, doubling the failover
// after the loss of a whole site.
func TestPromoteSilentPeerWaitsOnce(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	held.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // accepted, never answered
			mu.Unlock()
		}
	})
	defer func() {
		l.Close()
		held.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	d := site2DatabaseTo(t, "postgres://postgres@"+l.Addr().String()+"/app?sslmode=disable")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := d.mayPromote(ctx, 9); err != nil {
		t.Fatalf("mayPromote with a silent peer database: %v, want nil (it tells nothing)", err)
	}
	checked := time.Since(start)
	if _, err := d.promote(ctx, 9); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("silent peer database: check %v, check and promotion %v", checked, took)
	if took > checked+time.Second {
		t.Errorf("the promotion waited %v more for the peer database the check had just waited %v for in vain", took-checked, checked)
	}
}
