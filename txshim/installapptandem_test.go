package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallApplicationTableInTandemSchema: schema tandem is Tandem's: its tables are not
// application tables (neither published nor compared), and the shim refuses its clients' writes
// to them. An application table made there beforehand (tandem.orders) was taken without a word:
// its rows would never reach the peer. Install must refuse, naming it.
func TestInstallApplicationTableInTandemSchema(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SCHEMA tandem`, `CREATE TABLE tandem.orders (id int PRIMARY KEY)`)
	ctx := capCtx(t, 60*time.Second)
	err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	t.Logf("install: %v", err)
	if err == nil || !strings.Contains(err.Error(), "tandem.orders") {
		t.Fatalf("install with an application table in schema tandem: %v; want a refusal naming it", err)
	}
	p.both(t, `CREATE SCHEMA app`, `ALTER TABLE tandem.orders SET SCHEMA app`)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("install once the table is moved out: %v", err)
	}
}
