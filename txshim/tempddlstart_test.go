package txshim

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestTempDDLUserStartTrigger: an event trigger of the user's on ddl_command_start that fires
// before the DDL guard's (by name) and does DDL itself (here on a temporary table) took the
// recorded statement's mark at its own command: the statement's command then counted as nested,
// the record of DDL on temporary objects only was kept, and the peer's apply of DROP TABLE of a
// temporary table failed (shipping stopped, the peer needing resync).
func TestTempDDLUserStartTrigger(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	c := e.connect(t)
	execAll(t, c,
		`CREATE FUNCTION scratch_log() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('my.busy', true) = '1' THEN RETURN; END IF;
  PERFORM set_config('my.busy', '1', true);
  CREATE TEMP TABLE IF NOT EXISTS ddl_seen (tag text);
  PERFORM set_config('my.busy', '', true);
END $$`,
		`CREATE EVENT TRIGGER a_scratch ON ddl_command_start WHEN TAG IN ('CREATE TABLE', 'DROP TABLE') EXECUTE FUNCTION scratch_log()`,
	)
	before := e.shim.Stats()
	for _, q := range []string{
		"CREATE TEMP TABLE tmp1 (a int)",
		"DROP TABLE tmp1",
		"CREATE TABLE perm1 (id int PRIMARY KEY)",
	} {
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	e.settle(t, before)
	if got := e.peerString(t, "SELECT coalesce(to_regclass('perm1')::text, 'missing')"); got != "perm1" {
		t.Fatalf("perm1 on the peer: %q", got)
	}
}
