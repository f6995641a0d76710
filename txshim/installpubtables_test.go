package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallPublicationOwnTables: a publication tandem that holds Tandem's own per-database
// tables (tandem.state, tandem.decisions), added by hand, ships each database's term record
// and decision rows to the other. Install refuses FOR ALL TABLES for that very reason; it must
// refuse these too, naming the table.
func TestInstallPublicationOwnTables(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := capCtx(t, 60*time.Second)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	p.local.Exec(t, `ALTER PUBLICATION tandem ADD TABLE tandem.state, tandem.decisions`)
	err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	t.Logf("install: %v", err)
	if err == nil || !strings.Contains(err.Error(), "tandem.state") {
		t.Fatalf("install with tandem.state published: %v; want a refusal naming it", err)
	}
	p.local.Exec(t, `ALTER PUBLICATION tandem DROP TABLE tandem.state, tandem.decisions`)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("install once they are out of the publication: %v", err)
	}
}
