package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestAlignMasterSetNotCalled: setval(s, v, false) on the master — a plain function call, not
// DDL, so not replayed on the peer — moves its sequence ahead without calling it: PostgreSQL
// shows it without a last_value until the next nextval, and the copy left it out. The peer kept
// handing out the values the master had skipped (1000 is next there, 151 on the peer), behind the
// master's position for as long as the master did not call it; a takeover meanwhile handed them
// out. The copy now takes such a sequence's position from its stored value, as it reads the peer's.
func TestAlignMasterSetNotCalled(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SEQUENCE up`, `CREATE SEQUENCE down INCREMENT -1 MAXVALUE -1 START -1`,
		`CREATE SEQUENCE fresh START 500`, `CREATE SEQUENCE restarted`)
	p.local.Exec(t, `SELECT nextval('up'), nextval('down'), nextval('restarted') FROM generate_series(1, 150)`)
	if err := AlignSequences(capCtx(t, 10*time.Second), p.local.DSN("app"), p.peer.DSN("app")); err != nil {
		t.Fatal(err)
	}
	p.local.Exec(t, `SELECT setval('up', 1000, false), setval('down', -1000, false)`)
	p.local.Exec(t, `ALTER SEQUENCE restarted RESTART`)
	if err := AlignSequences(capCtx(t, 10*time.Second), p.local.DSN("app"), p.peer.DSN("app")); err != nil {
		t.Fatal(err)
	}
	// restarted: the peer's stays ahead (it was restarted on the local database only here).
	for seq, want := range map[string]int64{"up": 1000, "down": -1000, "fresh": 500, "restarted": 151} {
		if next := queryOne[int64](t, p.pdb, fmt.Sprintf(`SELECT nextval('%s')`, seq)); next != want {
			t.Errorf("after AlignSequences the peer's %s hands out %d next, want %d (the master's next)", seq, next, want)
		}
	}
}

// TestAlignSchemaWithoutUsage: the copy reads a master sequence not called since setval(s, v,
// false) through its name, and a name in a schema local_dsn's user may not use (another
// application's, of a user that need not be a superuser) is an error there, not a sequence
// left out: every sequence's copy failed, each period, for one sequence the user cannot see.
func TestAlignSchemaWithoutUsage(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SCHEMA private`, `CREATE SEQUENCE private.fresh`, `CREATE SEQUENCE private.granted`, `CREATE SEQUENCE pub`,
		`CREATE ROLE lim LOGIN REPLICATION`, `GRANT SELECT ON SEQUENCE pub, private.granted TO lim`)
	p.local.Exec(t, `SELECT setval('pub', 70, false), setval('private.granted', 40, false)`)
	lim := strings.Replace(p.local.DSN("app"), pgtest.Superuser+"@", "lim@", 1)
	if err := AlignSequences(capCtx(t, 10*time.Second), lim, p.peer.DSN("app")); err != nil {
		t.Fatalf("AlignSequences with a local user that may not use schema private: %v", err)
	}
	if next := queryOne[int64](t, p.pdb, `SELECT nextval('pub')`); next != 70 {
		t.Errorf("after AlignSequences the peer's pub hands out %d next, want 70 (the master's next)", next)
	}
}
