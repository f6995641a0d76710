package txshim

import (
	"strings"
	"testing"
)

// TestExplainExecuteManyOptions: EXPLAIN (option, … more than maxWords words of them) EXECUTE
// name, which PostgreSQL runs (it does not refuse a repeated option): finding the name, the lexer
// indexed the kept words past their end, a panic that ended the session.
func TestExplainExecuteManyOptions(t *testing.T) {
	q := "EXPLAIN (" + strings.Repeat("ANALYZE, ", maxWords+40) + "ANALYZE) EXECUTE s1"
	sts := splitStatements(q)
	if len(sts) != 1 || explainExecName(q, sts[0]) != "s1" {
		t.Fatalf("%d statements, name %q, want s1", len(sts), explainExecName(q, sts[0]))
	}
}
