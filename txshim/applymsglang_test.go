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

// TestTransientTranslatedMessages: two of the peer's refusals were told apart by the English
// text of their message, which PostgreSQL writes in the language of the peer's lc_messages
// (initdb takes it from the environment, as postgresql.conf's default): on a peer set up in
// German a prepared transaction another session was finishing ("… ist beschäftigt") was taken
// for a refusal that means the databases differ, and the peer marked as needing resync; a
// replication origin a dying session still held ("Replication-Origin mit ID … ist bereits
// aktiv") for the peer's refusal of the transaction. The function that raised the error,
// which the server sends untranslated, tells them in any language. The messages and routines
// here are PostgreSQL 15's (its German and Japanese catalogues); the routines are checked
// against a real server below.
func TestTransientTranslatedMessages(t *testing.T) {
	t.Parallel()
	pg := func(code, routine, msg string) error {
		return fmt.Errorf("apply x on the peer: change 1: %w", &pgconn.PgError{Code: code, Routine: routine, Message: msg})
	}
	for _, c := range []struct {
		err                 error
		definite, transient bool
	}{
		{pg("55000", "LockGXact", `vorbereitete Transaktion mit Bezeichner »tandem_a_1_2« ist beschäftigt`), true, true},
		{pg("55000", "LockGXact", `識別子"tandem_a_1_2"の準備されたトランザクションのロックが取得できません`), true, true},
		{pg("55006", "replorigin_session_setup", `Replication-Origin mit ID 1 ist bereits aktiv für PID 4242`), false, false},
		{pg("55006", "replorigin_session_setup", `ID1のレプリケーション基点は既にPID 4242で使用中です`), false, false},
		// Other refusals of those codes still mean the databases differ, in any language.
		{pg("55000", "CheckCmdReplicaIdentity", `Tabelle »kv« kann nicht aktualisiert werden, weil sie keine Replik-Identität hat`), true, false},
		{pg("55006", "CheckTableNotInUse", `DROP TABLE kann nicht mit »kv« ausgeführt werden, weil es von aktiven Anfragen in dieser Sitzung verwendet wird`), true, false},
	} {
		if got := isDefinite(c.err); got != c.definite {
			t.Errorf("isDefinite(%v) = %v, want %v", c.err, got, c.definite)
		}
		if got := transient(c.err); got != c.transient {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.transient)
		}
	}

	// The routines, as a real server names them.
	c := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func() *pgconn.PgConn {
		pc, err := pgconn.Connect(ctx, c.DSN(c.Database()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close(context.Background()) })
		return pc
	}
	exec := func(pc *pgconn.PgConn, q string) error {
		_, err := pc.Exec(ctx, q).ReadAll()
		return err
	}
	a, b := connect(), connect()
	for _, q := range []string{`SELECT pg_replication_origin_create('o')`, `SELECT pg_replication_origin_session_setup('o')`} {
		if err := exec(a, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var pgErr *pgconn.PgError
	err := exec(b, `SELECT pg_replication_origin_session_setup('o')`)
	if !errors.As(err, &pgErr) || pgErr.Code != "55006" || pgErr.Routine != "replorigin_session_setup" || isDefinite(err) {
		t.Errorf("an origin another session holds: %v (routine %q), isDefinite %v; want 55006 of replorigin_session_setup, not definite", err, routineOf(err), isDefinite(err))
	}
	// A COMMIT PREPARED that waits (here for a synchronous standby that never comes) holds
	// the prepared transaction: another's is refused as busy.
	if err := exec(a, `SELECT pg_replication_origin_session_reset(); BEGIN; CREATE TABLE t (); PREPARE TRANSACTION 'g'`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = 'nobody'`, `SELECT pg_reload_conf()`} {
		if err := exec(b, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for applied := false; !applied; time.Sleep(20 * time.Millisecond) { // the reload, as a sees it
		rr, err := a.Exec(ctx, `SHOW synchronous_standby_names`).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		applied = string(rr[0].Rows[0][0]) == "nobody"
	}
	done := make(chan error, 1)
	go func() { done <- exec(a, `COMMIT PREPARED 'g'`) }()
	if err := exec(b, `SET synchronous_commit = local`); err != nil {
		t.Fatal(err)
	}
	for waiting := false; !waiting; time.Sleep(20 * time.Millisecond) {
		rr, err := b.Exec(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).ReadAll()
		if err != nil {
			t.Fatalf("wait for the COMMIT PREPARED to wait: %v", err)
		}
		waiting = string(rr[0].Rows[0][0]) == "1"
	}
	err = exec(b, `COMMIT PREPARED 'g'`)
	if !errors.As(err, &pgErr) || pgErr.Code != "55000" || pgErr.Routine != "LockGXact" || !transient(err) {
		t.Errorf("a prepared transaction another session is committing: %v (routine %q), transient %v; want 55000 of LockGXact, transient", err, routineOf(err), transient(err))
	}
	c.Exec(t, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`)
	<-done
}

func routineOf(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Routine
	}
	return ""
}
