package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallPublicationPublishOptions: a publication tandem that exists already (made by an
// operator, or changed by hand since) but publishes only some operations — publish = 'insert' —
// was extended and taken: install said installed, and every later UPDATE, DELETE and TRUNCATE
// was committed "dual" on the local database alone (never decoded, never shipped). Install must
// refuse it, naming the setting.
func TestInstallPublicationPublishOptions(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := capCtx(t, 60*time.Second)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	p.local.Exec(t, `ALTER PUBLICATION tandem SET (publish = 'insert')`)
	err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	t.Logf("install: %v", err)
	if err == nil || !strings.Contains(err.Error(), "publish") {
		t.Fatalf("install with a publication publishing inserts only: %v; want a refusal naming publish", err)
	}
	p.local.Exec(t, `ALTER PUBLICATION tandem SET (publish = 'insert, update, delete, truncate')`)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("install once the publication publishes everything: %v", err)
	}
}
