package txshim

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestVerifyCatchUpHintByKind: the error the verify after a catch-up logs when the databases
// differ said "tandem resync copies the master's tables" whatever differed — but resync copies
// rows only: a definition only the applications meet (a view, a default, a trigger…) and large
// objects, never shipped, stay different after it. The hint now says what ends each kind found,
// and names no row's value.
func TestVerifyCatchUpHintByKind(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	ctx := capCtx(t, 60*time.Second)
	verifyLog := func() string {
		t.Helper()
		var buf bytes.Buffer
		sh := NewShipper(ShipperConfig{Site: "a", PeerDSN: p.peer.DSN("app"), Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
		snaps, err := beginVerify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
		if err != nil {
			t.Fatal(err)
		}
		sh.verifying.Add(1)
		sh.verifyCatchUp(ctx, snaps, time.Now())
		if r, _ := sh.LastVerify(); r.Err != nil || len(r.Diffs) == 0 {
			t.Fatalf("verify: %q, %v; want differences", r.Diffs, r.Err)
		}
		return buf.String()
	}
	resyncEnds := "resync on the master copies its tables"

	// A definition only: resync leaves it as it is.
	p.local.Exec(t, `CREATE VIEW kv_view AS SELECT k FROM kv`)
	if log := verifyLog(); strings.Contains(log, "copies the master's tables") || strings.Contains(log, resyncEnds) || !strings.Contains(log, "definitions differ") {
		t.Errorf("a view on one database only: the log says %s; want a hint about definitions, not resync's copy", log)
	}
	p.local.Exec(t, `DROP VIEW kv_view`)

	// A large object only: never shipped, nor copied by resync.
	p.local.Exec(t, `SELECT lo_from_bytea(0, 'x')`)
	if log := verifyLog(); strings.Contains(log, "copies the master's tables") || strings.Contains(log, resyncEnds) || !strings.Contains(log, "large objects differ") {
		t.Errorf("a large object on one database only: the log says %s; want a hint about large objects, not resync's copy", log)
	}
	p.local.Exec(t, `SELECT lo_unlink(oid) FROM pg_largeobject_metadata`)

	// Rows: resync copies them; the log names no value.
	p.peer.Exec(t, `UPDATE kv SET v = 'secretvalue' WHERE k = 1`)
	if log := verifyLog(); !strings.Contains(log, resyncEnds) || strings.Contains(log, "definitions differ") || strings.Contains(log, "secretvalue") {
		t.Errorf("rows that differ: the log says %s; want resync's copy named, and no value", log)
	}
}
