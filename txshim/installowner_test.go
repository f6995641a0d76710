package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallSchemaOwnedByOther: a schema tandem made beforehand by an ordinary role (the
// application's) was taken as it was. Its owner may drop and make objects in it whatever their
// owner: drop tandem.ddl_key and make it again with a key of its own, and so forge the DDL
// guard's marks; drop or rewrite the term record. Install must refuse, naming the owner.
func TestInstallSchemaOwnedByOther(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE ROLE appowner NOLOGIN`, `CREATE SCHEMA tandem AUTHORIZATION appowner`, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := capCtx(t, 60*time.Second)
	err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	t.Logf("install: %v", err)
	if err == nil || !strings.Contains(err.Error(), "appowner") {
		t.Fatalf("install into a schema tandem owned by an ordinary role: %v; want a refusal naming it", err)
	}
	p.both(t, `ALTER SCHEMA tandem OWNER TO CURRENT_USER`)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("install once the schema is the superuser's: %v", err)
	}
}
