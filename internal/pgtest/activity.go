package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Activity describes what the database at dsn is doing, for a failed test's log: every other
// backend's state, wait and query, the lock requests not granted, prepared transactions and
// replication slots. It takes at most a few seconds and reports its own error as text.
func Activity(dsn string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return "activity: " + err.Error()
	}
	defer db.Close()
	var b strings.Builder
	for _, q := range []struct{ title, sql string }{
		{"backends", `SELECT pid, coalesce(application_name, ''), coalesce(backend_type, ''),
			coalesce(state, ''), coalesce(wait_event_type || ':' || wait_event, ''),
			coalesce(backend_xid::text, ''), coalesce(round(extract(epoch FROM now() - xact_start))::text, ''),
			left(coalesce(query, ''), 200)
			FROM pg_stat_activity WHERE pid <> pg_backend_pid() ORDER BY pid`},
		{"locks not granted", `SELECT pid, locktype, mode, coalesce(relation::regclass::text, ''),
			coalesce(transactionid::text, virtualxid, ''), array_to_string(pg_blocking_pids(pid), ',')
			FROM pg_locks WHERE NOT granted`},
		{"prepared", `SELECT gid, transaction::text, round(extract(epoch FROM now() - prepared))::text FROM pg_prepared_xacts`},
		{"slots", `SELECT slot_name, coalesce(active_pid::text, ''), coalesce(confirmed_flush_lsn::text, ''), pg_current_wal_lsn()::text FROM pg_replication_slots`},
	} {
		fmt.Fprintf(&b, "%s:\n", q.title)
		if err := writeRows(ctx, &b, db, q.sql); err != nil {
			fmt.Fprintf(&b, "  error: %v\n", err)
		}
	}
	return b.String()
}

func writeRows(ctx context.Context, b *strings.Builder, db *sql.DB, query string) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		b.WriteString(" ")
		for _, v := range vals {
			b.WriteString(" | ")
			b.WriteString(strings.ReplaceAll(v.String, "\n", " "))
		}
		b.WriteString("\n")
	}
	return rows.Err()
}
