package main

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/txshim"
)

// TestRecordStoreSaveRefusedLoadsOtherMaster: the other site promoted the same term and wrote
// it into this site's database first. This site's own record of that term is refused there,
// and Load then says what the database holds: the other master's record, which the node takes
// after such a failed promotion (gossip's TestNodeSaveRefusedAdoptsDatabaseRecord).
func TestRecordStoreSaveRefusedLoadsOtherMaster(t *testing.T) {
	t.Parallel()
	_, db, logger := installedSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file := gossip.NewFileStore(t.TempDir())
	s := newRecordStore("site2", db, file, logger)
	defer s.close()
	if err := s.Save(gossip.TermRecord{Term: 6, Master: "site1", PeerSynced: true}); err != nil {
		t.Fatal(err)
	}
	// site1's promotion to term 7 writes it into this database (unsynced).
	if err := txshim.WriteTermRecord(ctx, db, 7, "site1", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(gossip.TermRecord{Term: 7, Master: "site2", PeerSynced: true}); err == nil {
		t.Fatal("site2's own record of term 7 saved over site1's in its database")
	}
	want := gossip.TermRecord{Term: 7, Master: "site1"}
	if got, err := s.Load(); err != nil || got != want {
		t.Fatalf("Load after the refused Save = %+v, %v; want the database's %+v", got, err, want)
	}
}
