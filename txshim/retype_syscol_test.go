package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestRetypeUsingSystemColumnRefused: ALTER TABLE … ALTER COLUMN … TYPE … USING an expression
// that reads a system column (xmin, xmax, cmin, cmax, ctid, tableoid) — immutable as far as
// PostgreSQL is concerned — rewrites the rows with values that differ on the peer, which runs
// the statement on rows of its own transaction ids, places and table OID: through the shim it
// is refused with 0A000 on a table with rows. The same words in a string literal, and an empty
// table, pass; both databases end the same.
func TestRetypeUsingSystemColumnRefused(t *testing.T) {
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY, v text)`,
		`INSERT INTO items SELECT g, g::text FROM generate_series(1, 5) g`,
		`CREATE TABLE fresh (id int PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	simple, ext := pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec
	exec := func(sql string, mode pgx.QueryExecMode) error {
		_, err := conn.Exec(ctx, sql, mode)
		return err
	}
	for _, tt := range []struct {
		sql  string
		mode pgx.QueryExecMode
	}{
		{`ALTER TABLE items ALTER COLUMN v TYPE text USING xmin::text`, simple},
		{`ALTER TABLE items ALTER COLUMN v TYPE text USING v || ctid::text`, ext},
		{`ALTER TABLE items ALTER COLUMN v TYPE text USING items.tableoid::text`, simple},
		{`ALTER TABLE items ALTER v TYPE text USING "xmin"::text || v`, simple},
		{`ALTER TABLE items ALTER v TYPE int USING v::int, ALTER id TYPE bigint USING id + CMAX::text::bigint`, ext},
	} {
		if err := exec(tt.sql, tt.mode); pgCode(err) != "0A000" {
			t.Errorf("%s: want 0A000, got %v", tt.sql, err)
		}
	}
	for _, tt := range []struct {
		sql  string
		mode pgx.QueryExecMode
	}{
		{`ALTER TABLE items ALTER COLUMN v TYPE text USING v || ' xmin ctid'`, simple},
		{`ALTER TABLE fresh ALTER COLUMN v TYPE text USING ctid::text`, simple},
	} {
		if err := exec(tt.sql, tt.mode); err != nil {
			t.Fatalf("%s: %v", tt.sql, err)
		}
	}
	waitForLong(t, "the peer's tables as the local ones", 10*time.Second, func() bool {
		diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
		return err == nil && len(diffs) == 0
	})
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after the conversions: mode %v, peer synced %v", m, sh.PeerSynced())
	}
}
