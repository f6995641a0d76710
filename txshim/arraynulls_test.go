package txshim

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// fidelityDump is every row of table as text, in a stable order: what both databases must hold
// the same of it.
func fidelityDump(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query(fmt.Sprintf(`SELECT fidelity_row::text FROM %s fidelity_row ORDER BY fidelity_row::text COLLATE "C"`, table))
	if err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	return b.String()
}

// fidelityStep runs stmts through the shim (dual mode), waits for the peer to hold them, and
// compares tables row by row on both databases.
func fidelityStep(t *testing.T, p *capPair, sh *Shipper, conn *pgx.Conn, tables []string, stmts ...string) {
	t.Helper()
	ctx := capCtx(t, 120*time.Second)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			conn.Exec(ctx, "ROLLBACK")
			t.Fatalf("%.200s: %v", q, err)
		}
	}
	waitForLong(t, "the peer to hold every commit, or a refusal", 60*time.Second, func() bool {
		return sh.Err() != nil || sh.Backlog() == 0
	})
	if err := sh.Err(); err != nil {
		t.Fatalf("shipping: %v", err)
	}
	if !sh.PeerSynced() {
		t.Fatalf("peer no longer synced")
	}
	for _, tb := range tables {
		l, r := fidelityDump(t, p.ldb, tb), fidelityDump(t, p.pdb, tb)
		if l != r {
			if len(l) > 2000 || len(r) > 2000 {
				ll, rr := strings.Split(l, "\n"), strings.Split(r, "\n")
				l, r = "", ""
				for i := range min(len(ll), len(rr)) {
					if ll[i] != rr[i] {
						l, r = l+fmt.Sprintf("%.300s\n", ll[i]), r+fmt.Sprintf("%.300s\n", rr[i])
					}
					if len(l) > 3000 {
						break
					}
				}
			}
			t.Errorf("%s differs:\nlocal:\n%s\npeer:\n%s", tb, l, r)
		}
	}
	requireSame(t, p)
}

// TestFidelityArrayNullsOff: databases whose default is array_nulls = off (a legacy
// application's setting) read an unquoted NULL in an array's text as the string "NULL". The
// decoder writes a null element as NULL, unquoted: the peer's apply must read it as null.
func TestFidelityArrayNullsOff(t *testing.T) {
	t.Parallel()
	const off = `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET array_nulls = off', current_database()); END $$`
	p, sh, shim := startShipPair(t, nil, Options{},
		off,
		`CREATE TABLE arr (id int PRIMARY KEY, a text[], n int[])`,
		`CREATE TABLE arrfull (a text[], n int[])`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"arr", "arrfull"},
		`INSERT INTO arr VALUES (1, ARRAY['a', NULL, 'NULL'], ARRAY[1, NULL])`,
		`INSERT INTO arrfull VALUES (ARRAY[NULL, 'x'], ARRAY[NULL]::int[])`,
		`UPDATE arrfull SET a = a || 'y'::text`,
		`INSERT INTO arr SELECT g, ARRAY[NULL, g::text], NULL FROM generate_series(2, 100) g`,
		// DDL reads its literals under the session's array_nulls: '{NULL}' is a string here,
		// in the rows already there (a "missing value") as in new ones.
		`ALTER TABLE arr ADD COLUMN d text[] DEFAULT '{NULL}'`,
		`INSERT INTO arr (id) VALUES (1000)`,
	)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM arr WHERE d[1] = 'NULL'`); n != 101 {
		t.Errorf("peer: %d rows of arr with the string NULL in d, want 101", n)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM arr WHERE id = 1 AND a[2] IS NULL`); n != 1 {
		t.Errorf("peer: %d rows of arr with a null second element, want 1", n)
	}
}
