package txshim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestErrorPositionAfterSplit: an error with a position in a statement of a simple Query that
// the shim sends as a Query of its own (after a COMMIT it runs itself, or a ROLLBACK) had its
// position within that part, not within the client's text, as PostgreSQL gives it: psql drew its
// caret under the wrong word. It counts characters, as PostgreSQL does.
func TestErrorPositionAfterSplit(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)")
	c := e.connect(t)
	for _, q := range []string{
		"BEGIN; INSERT INTO rows VALUES (1); COMMIT; SELECT nosuch FROM rows",
		"INSERT INTO rows VALUES (2); COMMIT; SELECT 1; SELECT nosuch FROM rows",
		"SELECT 'ünïcödé'; INSERT INTO rows VALUES (3); COMMIT; SELECT nosuch FROM rows",
		"INSERT INTO rows VALUES (4); ROLLBACK; SELECT nosuch FROM rows",
	} {
		_, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42703" {
			t.Fatalf("%s: %v, want 42703", q, err)
		}
		if want := int32(utf8.RuneCountInString(q[:strings.Index(q, "nosuch")]) + 1); pe.Position != want {
			t.Errorf("%s: position %d, want %d", q, pe.Position, want)
		}
	}
}
