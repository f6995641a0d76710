package txshim

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestPreparedFullTranslated: the peer's refusal of a PREPARE TRANSACTION for its
// max_prepared_transactions all taken (53200) was told from its other out-of-memory refusals
// by the English words of the message, which a peer of another lc_messages writes in its
// language: on a German peer ("maximale Anzahl vorbereiteter Transaktionen erreicht") it was
// not back-pressure, asked again, but the peer gone. The routine that raised it tells it in
// any language.
func TestPreparedFullTranslated(t *testing.T) {
	t.Parallel()
	pg := func(routine, msg string) error {
		return fmt.Errorf("apply x on the peer: %w", &pgconn.PgError{Code: "53200", Routine: routine, Message: msg})
	}
	for _, c := range []struct {
		err  error
		full bool
	}{
		{pg("MarkAsPreparing", `maximale Anzahl vorbereiteter Transaktionen erreicht`), true},
		{pg("MarkAsPreparing", `maximum number of prepared transactions reached`), true},
		{pg("", `maximum number of prepared transactions reached`), true},
		{pg("AllocSetAlloc", `Speicher aufgebraucht`), false},
		{pg("AllocSetAlloc", `out of memory`), false},
	} {
		if got := preparedFull(c.err); got != c.full {
			t.Errorf("preparedFull(%v) = %v, want %v", c.err, got, c.full)
		}
	}

	// The routine, as a real server names it.
	c := pgtest.Start(t, pgtest.WithMaxPreparedTransactions(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, c.DSN(c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	defer c.Exec(t, `ROLLBACK PREPARED 'full_1'`)
	for i, q := range []string{`BEGIN; CREATE TABLE t1 (); PREPARE TRANSACTION 'full_1'`, `BEGIN; CREATE TABLE t2 (); PREPARE TRANSACTION 'full_2'`} {
		_, err := pc.Exec(ctx, q).ReadAll()
		if i == 0 && err != nil {
			t.Fatal(err)
		}
		if i == 1 && !preparedFull(err) {
			t.Errorf("a PREPARE TRANSACTION past max_prepared_transactions: %v (routine %q), preparedFull false", err, routineOf(err))
		}
	}
	var pgErr *pgconn.PgError
	if _, err := pc.Exec(ctx, `BEGIN; CREATE TABLE t3 (); PREPARE TRANSACTION 'full_3'`).ReadAll(); !errors.As(err, &pgErr) || pgErr.Routine != "MarkAsPreparing" {
		t.Errorf("a PREPARE TRANSACTION past max_prepared_transactions: %v (routine %q), want MarkAsPreparing's", err, routineOf(err))
	}
}
