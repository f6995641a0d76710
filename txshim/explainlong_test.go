package txshim

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestExplainExecuteManyOptions: EXPLAIN (option, … more than maxWords words of them) EXECUTE
// name, which PostgreSQL runs (it does not refuse a repeated option): finding the name, the lexer
// indexed the kept words past their end, a panic that ended the session.
func TestExplainExecuteManyOptions(t *testing.T) {
	t.Parallel()
	q := "EXPLAIN (" + strings.Repeat("ANALYZE, ", maxWords+40) + "ANALYZE) EXECUTE s1"
	sts := splitStatements(q)
	if len(sts) != 1 || explainExecName(q, sts[0]) != "s1" {
		t.Fatalf("%d statements, name %q, want s1", len(sts), explainExecName(q, sts[0]))
	}
}

// TestExplainAnalyzeMakesTableManyOptions: EXPLAIN (… more than maxWords words of options)
// CREATE TABLE … AS: the statement explained starts past the kept words, where the lexer saw no
// word (wordList.from) and took it for a write, not for one that makes a table: not refused
// (explainMakesRefusal), the table was made on the local database only.
func TestExplainAnalyzeMakesTableManyOptions(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	before := e.shim.Stats()
	c := e.connect(t)
	q := "EXPLAIN (" + strings.Repeat("COSTS, ", maxWords+40) + "ANALYZE) CREATE TABLE pl AS SELECT 1 AS a WITH NO DATA"
	_, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
	wantRefused(t, "EXPLAIN (… long options) CREATE TABLE … AS", err, "EXPLAIN ANALYZE")
	e.settle(t, before)
	e.sameOnBoth(t, "pl")
}
