package txshim

import (
	"testing"
	"time"
)

// TestInstallResumesForgetCopyPosition: when install makes the site's slot anew it deletes, on
// the peer, the stream position of an earlier copy (resyncGID), which would make the peer skip
// the new slot's transactions as copied. An install that failed (or was killed) after making
// the slot and before that delete left the row for good: the next run found the slot there and
// did not delete it. The next run must finish what the first began.
func TestInstallResumesForgetCopyPosition(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := capCtx(t, 60*time.Second)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	// The slot is gone, and the peer holds the position of a copy once made onto it.
	p.local.Exec(t, `SELECT pg_drop_replication_slot('tandem_site1')`)
	p.peer.Exec(t, `INSERT INTO tandem.decisions (gid, lsn) VALUES ($1, '0/FFFFFFFF')`, resyncGID("site1"))
	// The delete fails once, as if the install stopped there.
	p.peer.Exec(t, `CREATE FUNCTION public.stop_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'install stopped here'; END $$`)
	p.peer.Exec(t, `CREATE TRIGGER stop_once BEFORE DELETE ON tandem.decisions FOR EACH ROW EXECUTE FUNCTION public.stop_once()`)
	err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	t.Logf("first install: %v", err)
	if err == nil {
		t.Fatal("the first install did not stop")
	}
	p.peer.Exec(t, `DROP TRIGGER stop_once ON tandem.decisions`)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("install run again: %v", err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = $1`, resyncGID("site1")); n != 0 {
		t.Errorf("install run again left the position of the earlier copy on the peer (%d row): the peer would skip the new slot's transactions as copied", n)
	}
	if !queryOne[bool](t, p.ldb, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'tandem_site1')`) {
		t.Error("no slot after install run again")
	}
}
