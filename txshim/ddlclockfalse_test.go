package txshim

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestClockWordElsewhereNotRefused: the check of 2cdf80d refused any date or time constant in
// a default or partition bound the transaction had made, once the statement had a clock word
// in any string literal: CREATE TABLE … (d date DEFAULT '2020-01-01', kind text DEFAULT
// 'today') was refused, and so was a statement with 'now' in a text default after an earlier
// one of the same transaction had made a default or a partition of fixed dates. Only a
// constant holding the moment a clock word was read is refused.
func TestClockWordElsewhereNotRefused(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE cp (id int, at timestamptz, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`,
		`CREATE TABLE r (id int PRIMARY KEY)`, `INSERT INTO r VALUES (1), (2)`)
	for _, q := range []string{
		`CREATE TABLE f1 (id int PRIMARY KEY, d date DEFAULT '2020-01-01', kind text DEFAULT 'today')`,
		`BEGIN; CREATE TABLE f2 (id int PRIMARY KEY, d date DEFAULT '2020-01-01'); CREATE TABLE f3 (id int PRIMARY KEY, s text DEFAULT 'now'); COMMIT`,
		`BEGIN; CREATE TABLE cp_2020 PARTITION OF cp FOR VALUES FROM ('2020-01-01') TO ('2021-01-01'); CREATE TABLE f4 (id int PRIMARY KEY, s text DEFAULT 'tomorrow'); COMMIT`,
		`CREATE TABLE f5 (id int PRIMARY KEY, at timestamptz DEFAULT CURRENT_TIMESTAMP, since timestamp DEFAULT '2019-05-05 10:00', s text CHECK (s <> 'now'))`,
		`CREATE TABLE f6 (id int PRIMARY KEY, at timestamptz DEFAULT now()) -- 'now'`,
		`BEGIN; SAVEPOINT a; ALTER TABLE r ADD COLUMN z int DEFAULT 1; RELEASE a; SAVEPOINT b; ALTER TABLE r ADD COLUMN w date DEFAULT '2020-01-01'; ROLLBACK TO b; COMMIT`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	for _, q := range []string{
		`CREATE TABLE g1 (id int PRIMARY KEY, d date DEFAULT '2020-01-01', at timestamp DEFAULT 'tomorrow 10:00')`,
		`CREATE TABLE g2 (id int PRIMARY KEY, d daterange[] DEFAULT '{"[yesterday,)"}')`,
		`CREATE TABLE g3 (id int PRIMARY KEY, opens time DEFAULT '09:00', at timetz DEFAULT 'now')`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	shipped()
}

// TestClockCheckKeepsClientSettings: the clock-literal check turns DateStyle and JIT its own way
// while it reads the catalogs; the client's transaction has its own settings back after it.
func TestClockCheckKeepsClientSettings(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t)
	ctx := capCtx(t, 60*time.Second)
	for _, q := range []string{`BEGIN`, `SET LOCAL datestyle = 'German'`, `SET LOCAL jit = on`,
		`CREATE TABLE ks (id int PRIMARY KEY, s text DEFAULT 'today', d date DEFAULT '2020-01-01')`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var jit, style string
	if err := conn.QueryRow(ctx, `SELECT current_setting('jit'), current_setting('datestyle')`, pgx.QueryExecModeSimpleProtocol).Scan(&jit, &style); err != nil {
		t.Fatal(err)
	}
	if jit != "on" || style != "German, DMY" {
		t.Errorf("after the check: jit %q, DateStyle %q; want the client's on and German, DMY", jit, style)
	}
	if err := exec(`COMMIT`); err != nil {
		t.Fatal(err)
	}
	shipped()
}

// TestClockCheckRunsWithoutJIT: the clock-literal check's catalog reads run with JIT off
// whatever the client's setting (203e061 said so and left the line out: JIT compiling made such
// a statement take 1.7 s). Under jit on with jit_above_cost 0, each plan PostgreSQL logs
// (auto_explain, nested statements) shows whether it was compiled.
func TestClockCheckRunsWithoutJIT(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t)
	for _, q := range []string{`LOAD 'auto_explain'`, `SET auto_explain.log_min_duration = 0`, `SET auto_explain.log_nested_statements = on`,
		`SET jit = on`, `SET jit_above_cost = 0`,
		`CREATE TABLE jt (id int PRIMARY KEY, s text DEFAULT 'today', d date DEFAULT '2020-01-01')`,
		`SELECT 1 AS jit_marker`, `RESET ALL`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	log, err := os.ReadFile(filepath.Join(p.local.Dir(), "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Each plan's entry starts with a log line's time stamp; the clock reads aggregate into
	// clock_defs and the like.
	var reads, compiled, marker int
	for _, e := range regexp.MustCompile(`\n\d{4}-\d\d-\d\d `).Split(string(log), -1) {
		switch {
		case strings.Contains(e, "plan:") && strings.Contains(e, "FROM pg_catalog.pg_attrdef d") && strings.Contains(e, "regexp_matches"):
			reads++
			if strings.Contains(e, "JIT:") {
				compiled++
			}
		case strings.Contains(e, "plan:") && strings.Contains(e, "jit_marker") && strings.Contains(e, "JIT:"):
			marker++
		}
	}
	if marker == 0 {
		t.Fatal("the client's own query was not JIT-compiled (or not logged): the test shows nothing")
	}
	if reads == 0 || compiled > 0 {
		t.Errorf("the clock check's read of defaults: %d plans logged, %d of them JIT-compiled; want some, none compiled", reads, compiled)
	}
	shipped()
}
