package txshim

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// Verify compares the application tables of the local and the peer database (DESIGN §5.5
// "verify"): their definitions, and per table the row count and an md5 of all rows in
// primary-key order (whole-row order for tables without one), each database read under one
// REPEATABLE READ snapshot. It returns one line per difference; none means identical. The two
// snapshots are taken one after the other: compare while commits are held, or expect the
// transactions in flight between them to show up.
func Verify(ctx context.Context, localDSN, peerDSN string) (diffs []string, err error) {
	var snaps [2]*sql.Tx
	for i, dsn := range []string{localDSN, peerDSN} {
		db, err := OpenDB(dsn)
		if err != nil {
			return nil, fmt.Errorf("verify: open %s database: %w", sideName(i), err)
		}
		defer db.Close()
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("verify: begin snapshot on the %s database: %w", sideName(i), err)
		}
		defer tx.Rollback()
		snaps[i] = tx
	}
	var tables [2]map[string]verifyTable
	for i, tx := range snaps {
		if tables[i], err = verifyTables(ctx, tx); err != nil {
			return nil, fmt.Errorf("verify: %s database: %w", sideName(i), err)
		}
	}
	for _, name := range unionKeys(tables[0], tables[1]) {
		l, lok := tables[0][name]
		p, pok := tables[1][name]
		switch {
		case !pok:
			diffs = append(diffs, fmt.Sprintf("table %s exists only on the local database", name))
			continue
		case !lok:
			diffs = append(diffs, fmt.Sprintf("table %s exists only on the peer database", name))
			continue
		case strings.Join(l.cols, ",") != strings.Join(p.cols, ","):
			diffs = append(diffs, fmt.Sprintf("table %s has columns (%s) on the local database but (%s) on the peer",
				name, strings.Join(l.cols, ", "), strings.Join(p.cols, ", ")))
			continue
		}
		var sums [2]struct {
			n   int64
			md5 string
		}
		for i, tx := range snaps {
			t := tables[i][name]
			row := "ROW(" + strings.Join(t.cols, ", ") + ")::text"
			order := row
			if len(t.key) > 0 {
				order = strings.Join(t.key, ", ")
			}
			q := fmt.Sprintf("SELECT count(*), coalesce(md5(string_agg(%s, E'\\n' ORDER BY %s)), '') FROM ONLY %s", row, order, name)
			if err := tx.QueryRowContext(ctx, q).Scan(&sums[i].n, &sums[i].md5); err != nil {
				return nil, fmt.Errorf("verify: checksum %s on the %s database: %w", name, sideName(i), err)
			}
		}
		switch {
		case sums[0].n != sums[1].n:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows on the local database but %d on the peer", name, sums[0].n, sums[1].n))
		case sums[0].md5 != sums[1].md5:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows on both databases but their contents differ (md5 %s local, %s peer)",
				name, sums[0].n, sums[0].md5, sums[1].md5))
		}
	}
	return diffs, nil
}

func sideName(i int) string {
	if i == 0 {
		return "local"
	}
	return "peer"
}

// verifyTable is one table holding rows: its quoted columns in name order and its quoted
// primary-key columns in key order.
type verifyTable struct {
	cols, key []string
}

func verifyTables(ctx context.Context, tx *sql.Tx) (map[string]verifyTable, error) {
	// Partitioned parents hold no rows of their own: their partitions are compared.
	rows, err := tx.QueryContext(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), quote_ident(a.attname),
  coalesce(array_position(con.conkey, a.attnum), 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'p'
WHERE c.relkind = 'r' AND `+appRelFilter)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	type keyCol struct {
		pos  int
		name string
	}
	cols := map[string][]string{}
	keys := map[string][]keyCol{}
	for rows.Next() {
		var table, col string
		var pos int
		if err := rows.Scan(&table, &col, &pos); err != nil {
			return nil, err
		}
		cols[table] = append(cols[table], col)
		if pos > 0 {
			keys[table] = append(keys[table], keyCol{pos, col})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := map[string]verifyTable{}
	for t, cs := range cols {
		sort.Strings(cs)
		k := keys[t]
		sort.Slice(k, func(i, j int) bool { return k[i].pos < k[j].pos })
		vt := verifyTable{cols: cs}
		for _, kc := range k {
			vt.key = append(vt.key, kc.name)
		}
		out[t] = vt
	}
	return out, nil
}
