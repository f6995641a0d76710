package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestVerifyApplyTriggerFunction: a trigger that fires in the apply (ENABLE ALWAYS or REPLICA)
// changes the rows the peer stores, so install, resync and verify compare it — by its CREATE
// TRIGGER, which names the function it runs but not what that function does. A function
// replaced on one database only (CREATE OR REPLACE FUNCTION bypassing the shim) made the peer
// store other values than the local database under the same trigger, and both were called
// identical. The function's definition is compared with the trigger.
func TestVerifyApplyTriggerFunction(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY, v int)`,
		`CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := NEW.v + 1; RETURN NEW; END$$`,
		`CREATE TRIGGER bump BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION bump()`,
		`ALTER TABLE t ENABLE ALWAYS TRIGGER bump`,
		`CREATE TABLE same (id int PRIMARY KEY)`,
		`CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
		`CREATE TRIGGER keep BEFORE INSERT ON same FOR EACH ROW EXECUTE FUNCTION keep()`,
		`ALTER TABLE same ENABLE REPLICA TRIGGER keep`)
	p.peer.Exec(t, `CREATE OR REPLACE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := NEW.v + 2; RETURN NEW; END$$`)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("differences: %q", diffs)
	if len(diffs) != 2 || !strings.Contains(strings.Join(diffs, "\n"), "bump") {
		t.Errorf("verify named %d differences, want trigger bump's on each side (its function differs): %q", len(diffs), diffs)
	}
}
