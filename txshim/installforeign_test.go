package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallForeignTandemSchema: a database whose application already has a schema tandem
// with a table of the name of one of Tandem's (tandem.state, its own) was taken: CREATE TABLE IF
// NOT EXISTS left the application's table as it was, install said installed, and the sidecar
// then failed on every term record it read or wrote (no column term). Its rows were never
// shipped either (schema tandem is not an application schema). Install must refuse, naming the
// table.
func TestInstallForeignTandemSchema(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SCHEMA tandem`, `CREATE TABLE tandem.state (id int PRIMARY KEY, note text)`)
	ctx := capCtx(t, 60*time.Second)
	err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	t.Logf("install: %v", err)
	if err == nil || !strings.Contains(err.Error(), "tandem.state") {
		t.Fatalf("install over an application's tandem.state: %v; want a refusal naming the table", err)
	}
}
