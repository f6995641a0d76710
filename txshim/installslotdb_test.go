package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallSlotOfAnotherDatabase: replication slots are the cluster's, not a database's. A
// slot tandem_site1 made in another database of the local cluster (a second application's
// Tandem with the same site names) was taken for this one's: install said installed, and the
// decoder's START_REPLICATION then failed ("replication slot was not created in this
// database"). Install must refuse, naming the database the slot belongs to.
func TestInstallSlotOfAnotherDatabase(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.local.Exec(t, `CREATE DATABASE other`)
	other, err := OpenDB(p.local.DSN("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`SELECT pg_create_logical_replication_slot('tandem_site1', 'pgoutput', false, true)`); err != nil {
		t.Fatal(err)
	}
	ctx := capCtx(t, 60*time.Second)
	err = Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	t.Logf("install: %v", err)
	if err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("install with the slot in another database: %v; want a refusal naming that database", err)
	}
}
