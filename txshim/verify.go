package txshim

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Verify compares the application tables of the local and the peer database (DESIGN §5.5
// "verify"): their definitions, and per table the row count and a checksum of its rows
// (checksum), each database read under one REPEATABLE READ snapshot. For a table with a
// primary key that differs it names the first keys whose rows differ (diffKeys). It returns
// one line per difference; none means identical. The two snapshots are taken one after the
// other: compare while commits are held, or expect the transactions in flight between them
// to show up.
//
// What only the applications meet is compared too (diffClientSchemas): views' INSTEAD OF
// triggers and rules among it, and the application objects' owners, privileges and comments
// (diffObjectFacts).
//
// Sequences are compared by what a failover makes of them, not by last_value and is_called,
// which a backup's legitimately differ in (verifyseq.go): a difference is the backup's
// sequence behind the master's next value even after a takeover moves it past its own
// columns' values (BumpSequences); the backup ahead is the lead the copies give it, and the
// master's behind the values its own columns hold (keys written by hand) is alike on both. Where neither database is known for the master (no
// term record), a position behind the other database's is named on either side.
func Verify(ctx context.Context, localDSN, peerDSN string) (diffs []string, err error) {
	snaps, err := beginVerify(ctx, localDSN, peerDSN)
	if err != nil {
		return nil, err
	}
	defer snaps.close()
	return snaps.compare(ctx)
}

// diffKinds counts a comparison's differences by what can end them: rows (of tables and
// materialized views), which tandem resync copies or computes anew; definitions (the
// application schema install compares, and what only the applications meet: views, defaults,
// foreign keys, triggers, functions, extensions, row-level security), which resync does not
// copy; large objects, which are never shipped nor copied.
type diffKinds struct{ rows, defs, lobs, seqs int }

// hint says, for an operator, what ends each kind of difference found. It names no value of
// any row.
func (k diffKinds) hint() string {
	var parts []string
	if k.rows > 0 {
		parts = append(parts, "rows differ: tandem resync on the master copies its tables to the peer")
	}
	if k.defs > 0 {
		parts = append(parts, "definitions differ: tandem resync copies no definitions; run the DDL the other database lacks on it")
	}
	if k.seqs > 0 {
		parts = append(parts, "sequences behind: setval each past the values in use and the master's position (the master copies its positions to a synced peer every few seconds and at the end of each catch-up)")
	}
	if k.lobs > 0 {
		parts = append(parts, "large objects differ: they are never shipped, and tandem resync does not copy them; copy them by hand")
	}
	return strings.Join(parts, "; ")
}

// verifySnapshots are the two databases' snapshots a verification reads: taken at one moment
// (beginVerify), compared later (compare), closed at the end.
type verifySnapshots struct {
	dbs  [2]*sql.DB
	txs  [2]*sql.Tx
	seqs verifySeqs // the sequences' positions, read right after the snapshots
}

// beginVerify opens a REPEATABLE READ READ ONLY transaction on each database, under fixed
// text settings (verifySettingsSQL), and then takes their snapshots, one right after the other.
func beginVerify(ctx context.Context, localDSN, peerDSN string) (_ *verifySnapshots, err error) {
	return beginVerifyCopying(ctx, localDSN, peerDSN, nil)
}

// beginVerifyCopying is beginVerify, calling copySeqs (when not nil) once the snapshots are
// taken and the local database's sequence positions read, before the peer's are
// (readSeqPositions). Its error is returned as it is.
func beginVerifyCopying(ctx context.Context, localDSN, peerDSN string, copySeqs func() error) (_ *verifySnapshots, err error) {
	v := &verifySnapshots{}
	// Two spellings of one database's address (TCP and the Unix socket, a host name and its
	// address) pass the configuration's check, and compared that database with itself:
	// "identical" (TestVerifyOneDatabaseTwice). The local session is marked by its
	// application_name, which the peer looks for among its database's sessions.
	mark := "tandem verify " + rand.Text()
	defer func() {
		if err != nil {
			v.close()
		}
	}()
	// Both sessions are set up before either snapshot is taken: a commit that lands on both
	// databases between the two snapshots shows as a difference, and the local one was taken
	// before the peer was even connected to — TCP, TLS and authentication over the link between
	// the sites (TestVerifySnapshotsAfterConnecting). BEGIN and SET take no snapshot.
	for i, dsn := range []string{localDSN, peerDSN} {
		if v.dbs[i], err = OpenDB(dsn); err != nil {
			return nil, fmt.Errorf("verify: open %s database: %w", sideName(i), err)
		}
		if v.txs[i], err = v.dbs[i].BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}); err != nil {
			return nil, fmt.Errorf("verify: begin snapshot on the %s database: %w", sideName(i), err)
		}
		settings := verifySettingsSQL
		if i == 0 {
			settings += "SET LOCAL application_name = " + sqlLiteral(mark) + ";\n"
		}
		if _, err = v.txs[i].ExecContext(ctx, settings); err != nil {
			return nil, fmt.Errorf("verify: session settings on the %s database: %w", sideName(i), err)
		}
	}
	for i, tx := range v.txs {
		var one int
		if err = tx.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil { // the snapshot is taken here
			return nil, fmt.Errorf("verify: take a snapshot of the %s database: %w", sideName(i), err)
		}
	}
	// In a session of its own, not the snapshot's transaction: pg_stat_activity's locks on
	// pg_database and pg_authid would be held for the whole verification, which may take hours.
	var same bool
	if err = v.dbs[1].QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database())`,
		mark).Scan(&same); err != nil {
		return nil, fmt.Errorf("verify: look for the local session on the peer database: %w", err)
	}
	if same {
		return nil, errors.New("verify: local_dsn and peer_dsn reach one database (the local session is a session of the peer database): nothing to compare; give the other site's database as peer_dsn")
	}
	// Sequences are not under the snapshots: their positions are read now, at the moment
	// compared (verifyseq.go).
	if v.seqs, err = v.readSeqPositions(ctx, copySeqs); err != nil {
		return nil, err
	}
	return v, nil
}

// verifySettingsSQL pins, for a verification's transaction, how values are written as text:
// checksum and diffKeys compare md5s of rows' text, which must read the same on both databases
// whatever their defaults. So the settings of the apply (textSettings), pg_catalog alone on the
// search path (catalogPath), the spelling of names (definitionSpelling: in reg* values), and
// TimeZone, in which a timestamptz is printed; no timeouts of the databases' defaults, as it
// reads every row; and every row or an error (allRows).
var verifySettingsSQL = setLocalSQL(textSettings, catalogPath, definitionSpelling, noTimeouts, allRows, map[string]string{"timezone": "UTC"})

// setLocalSQL is the SET LOCAL statements, in name order, of settings.
func setLocalSQL(settings ...map[string]string) string {
	all := map[string]string{}
	for _, set := range settings {
		maps.Copy(all, set)
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(all)) {
		fmt.Fprintf(&b, "SET LOCAL %s = %s;\n", name, sqlLiteral(all[name]))
	}
	return b.String()
}

func (v *verifySnapshots) close() {
	for i := range v.txs {
		if v.txs[i] != nil {
			_ = v.txs[i].Rollback()
		}
		if v.dbs[i] != nil {
			v.dbs[i].Close()
		}
	}
}

// compare compares the snapshots' application tables (see Verify).
func (v *verifySnapshots) compare(ctx context.Context) (diffs []string, err error) {
	diffs, _, err = v.compareKinds(ctx)
	return diffs, err
}

// compareKinds is compare, also counting the differences by kind.
func (v *verifySnapshots) compareKinds(ctx context.Context) (diffs []string, kinds diffKinds, err error) {
	// The definitions first, as install compares them (diffAppSchemas): DDL that ran on one
	// database only may leave every table's rows alike and still make them differ — a partition
	// detached (its parent reads fewer rows), a constraint or a unique index (that refuses the
	// rows the other takes), a table's kind or persistence, a type or sequence.
	var schemas [2]appSchema
	var tables [2]map[string]verifyTable
	var inUse [2]map[string]seqInUse
	var objFacts [2]objectFacts
	err = v.unlocking(ctx, func() error {
		for i, tx := range v.txs {
			var err error
			if schemas[i], err = readAppSchemaIn(ctx, tx); err != nil {
				return fmt.Errorf("verify: %s database: %w", sideName(i), err)
			}
			if tables[i], err = verifyTables(ctx, tx); err != nil {
				return fmt.Errorf("verify: %s database: %w", sideName(i), err)
			}
			if inUse[i], err = readSeqInUse(ctx, tx, v.seqs.pos[i]); err != nil {
				return fmt.Errorf("verify: %s database: %w", sideName(i), err)
			}
			if objFacts[i], err = readObjectFacts(ctx, tx); err != nil {
				return fmt.Errorf("verify: %s database: %w", sideName(i), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, kinds, err
	}
	diffs = append(diffAppSchemas(schemas[0], schemas[1]), diffClientSchemas(schemas[0], schemas[1])...)
	diffs = append(diffs, diffObjectFacts(objFacts[0], objFacts[1])...)
	kinds.defs = len(diffs)
	seqDiffs := diffSequences(v.seqs, inUse)
	diffs = append(diffs, seqDiffs...)
	kinds.seqs = len(seqDiffs)
	for _, name := range unionKeys(tables[0], tables[1]) {
		l, lok := tables[0][name]
		p, pok := tables[1][name]
		if diffs, err = v.compareTable(ctx, name, l, lok, p, pok, tables, diffs, &kinds); err != nil {
			return nil, kinds, err
		}
	}
	var lo string
	err = v.unlocking(ctx, func() (err error) {
		lo, err = diffLargeObjects(ctx, v.txs)
		return err
	})
	if err != nil {
		return nil, kinds, err
	}
	if lo != "" {
		diffs = append(diffs, lo)
		kinds.lobs++
	}
	// One line of printable text per difference, whatever the names and definitions it quotes
	// hold: a table, column or enum label, a CHECK's string literal, with a newline or a
	// terminal's escape sequence (TestVerifyNamesNotPrintable).
	for i, d := range diffs {
		diffs[i] = showKey(d)
	}
	return diffs, kinds, nil
}

// compareTable compares table name, l on the local database (lok: it is there) and p on the
// peer's, and appends what differs to diffs, counting it in kinds.
func (v *verifySnapshots) compareTable(ctx context.Context, name string, l verifyTable, lok bool, p verifyTable, pok bool,
	tables [2]map[string]verifyTable, diffs []string, kinds *diffKinds) ([]string, error) {
	kind := "table"
	if (lok && l.view) || (pok && p.view) {
		kind = "materialized view"
	}
	switch {
	case lok && pok && l.view != p.view:
		what := [2]string{"a table", "a materialized view"}
		if l.view {
			what[0], what[1] = what[1], what[0]
		}
		kinds.defs++
		return append(diffs, fmt.Sprintf("%s is %s on the local database but %s on the peer", name, what[0], what[1])), nil
	case lok && pok && l.view && l.populated != p.populated:
		side := "local"
		if p.populated {
			side = "peer"
		}
		kinds.rows++ // resync computes the peer's views anew over the copied rows
		return append(diffs, fmt.Sprintf("%s %s is populated on the %s database only", kind, name, side)), nil
	case kind == "table" && (!lok || !pok || !slices.Equal(l.cols, p.cols) || !slices.Equal(l.types, p.types)):
		// A table's existence, persistence and columns are definitions: the schema comparison
		// named how they differ.
		return diffs, nil
	case !pok:
		kinds.defs++
		return append(diffs, fmt.Sprintf("%s %s exists only on the local database", kind, name)), nil
	case !lok:
		kinds.defs++
		return append(diffs, fmt.Sprintf("%s %s exists only on the peer database", kind, name)), nil
	case strings.Join(l.cols, ",") != strings.Join(p.cols, ","):
		kinds.defs++
		return append(diffs, fmt.Sprintf("%s %s has columns (%s) on the local database but (%s) on the peer",
			kind, name, strings.Join(l.cols, ", "), strings.Join(p.cols, ", "))), nil
	}
	// Rows of columns whose types differ may read the same as text (integer, bigint): the
	// definitions differ all the same (DDL that ran on one database only).
	typesDiffer := false
	for i, c := range l.cols {
		if l.types[i] != p.types[i] {
			diffs = append(diffs, fmt.Sprintf("column %s.%s is %s on the local database but %s on the peer", name, c, l.types[i], p.types[i]))
			kinds.defs++
			typesDiffer = true
		}
	}
	if typesDiffer {
		return diffs, nil
	}
	if l.view && l.query != p.query {
		// Its REFRESH ships, and each database computes the rows by its own query: a difference
		// while they hold the same rows, or none (TestVerifyMaterializedViewQuery).
		diffs = append(diffs, fmt.Sprintf("%s %s is made by another query on each database", kind, name))
		kinds.defs++
	}
	if l.view && !l.populated {
		// No rows to compare on either: its columns were (TestVerifyUnpopulatedViewColumns).
		return diffs, nil
	}
	var what string
	err := v.unlocking(ctx, func() (err error) {
		what, err = v.compareRows(ctx, name, l, tables)
		return err
	})
	if err != nil || what == "" {
		return diffs, err
	}
	kinds.rows++
	return append(diffs, what), nil
}

// unlocking runs read on both snapshots inside a savepoint, rolled back after it: the locks its
// reads took (a table's, while its rows are read and checked unrewritten: checksum) go then,
// not at the end of the whole comparison — a full read of both databases, minutes or hours,
// during which DDL on a table compared long ago (on the master a client's, every session that
// touches the table queued behind it; on the peer the apply of shipped DDL, every shipped
// transaction behind it) waited for it (TestVerifyReleasesCompared). The snapshots stay.
func (v *verifySnapshots) unlocking(ctx context.Context, read func() error) error {
	for i, tx := range v.txs {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT tandem_verify"); err != nil {
			return fmt.Errorf("verify: %s database: %w", sideName(i), err)
		}
	}
	if err := read(); err != nil {
		return err
	}
	// ROLLBACK TO keeps the savepoint: released too, or each call would open one more level
	// inside the last, a subtransaction per table left open to the end (TestVerifySavepointsDoNotNest).
	for i, tx := range v.txs {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT tandem_verify; RELEASE SAVEPOINT tandem_verify"); err != nil {
			return fmt.Errorf("verify: %s database: %w", sideName(i), err)
		}
	}
	return nil
}

// compareRows compares the rows of table name (l: as the local database's snapshot sees it),
// and returns what differs, "" when nothing does.
func (v *verifySnapshots) compareRows(ctx context.Context, name string, l verifyTable, tables [2]map[string]verifyTable) (string, error) {
	kind := "table"
	if l.view {
		kind = "materialized view"
	}
	var sums [2]tableSum
	for i, tx := range v.txs {
		var err error
		if sums[i], err = checksum(ctx, tx, name, tables[i][name]); err != nil {
			return "", fmt.Errorf("verify: checksum %s on the %s database: %w", name, sideName(i), err)
		}
	}
	if sums[0] == sums[1] {
		return "", nil
	}
	what := fmt.Sprintf("%s %s has %d rows on both databases but their contents differ", kind, name, sums[0].n)
	if sums[0].n != sums[1].n {
		what = fmt.Sprintf("%s %s has %d rows on the local database but %d on the peer", kind, name, sums[0].n, sums[1].n)
	}
	if len(l.key) > 0 {
		keys, err := diffKeys(ctx, v.txs, name, l, diffKeysMax)
		if err != nil {
			return "", fmt.Errorf("verify: compare the rows of %s: %w", name, err)
		}
		what += ": " + strings.Join(keys, ", ")
	}
	return what, nil
}

func sideName(i int) string {
	if i == 0 {
		return "local"
	}
	return "peer"
}

// verifyTable is one table holding rows: its quoted columns in name order, their types in
// the same order, its quoted primary-key columns in key order, and its relfilenode as the
// snapshot sees it (checksum: unrewritten).
type verifyTable struct {
	cols, types, key []string
	filenode         int64
	view             bool   // a materialized view
	populated        bool   // a materialized view: populated (its rows can be read)
	query            string // a materialized view: its query (pg_get_viewdef)
}

func verifyTables(ctx context.Context, tx *sql.Tx) (map[string]verifyTable, error) {
	// Partitioned parents hold no rows of their own: their partitions are compared. A
	// materialized view's rows are not shipped — its CREATE and REFRESH are, and each database
	// computes them — so one over a query that is not immutable (random(), now(), nextval)
	// differs; its rows compared where it is populated on both.
	rows, err := tx.QueryContext(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), coalesce(quote_ident(a.attname), ''),
  coalesce(format_type(a.atttypid, a.atttypmod), ''), coalesce(array_position(con.conkey, a.attnum), 0),
  c.relfilenode::bigint, c.relkind = 'm', c.relispopulated, CASE c.relkind WHEN 'm' THEN pg_get_viewdef(c.oid) ELSE '' END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'p'
WHERE c.relkind IN ('r', 'm') AND c.relpersistence = 'p' AND `+appSchemaFilter)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	type keyCol struct {
		pos  int
		name string
	}
	cols := map[string][]string{}
	types := map[string]map[string]string{}
	keys := map[string][]keyCol{}
	filenodes := map[string]int64{}
	views, populated, queries := map[string]bool{}, map[string]bool{}, map[string]string{}
	for rows.Next() {
		var table, col, typ, query string
		var pos int
		var filenode int64
		var view, filled bool
		if err := rows.Scan(&table, &col, &typ, &pos, &filenode, &view, &filled, &query); err != nil {
			return nil, err
		}
		filenodes[table] = filenode
		if view {
			views[table], populated[table], queries[table] = true, filled, query
		}
		if col == "" {
			cols[table] = nil // a table of no column: its rows are counted
			continue
		}
		cols[table] = append(cols[table], col)
		if types[table] == nil {
			types[table] = map[string]string{}
		}
		types[table][col] = typ
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
		vt := verifyTable{cols: cs, filenode: filenodes[t], view: views[t], populated: populated[t], query: queries[t]}
		for _, c := range cs {
			vt.types = append(vt.types, types[t][c])
		}
		for _, kc := range k {
			vt.key = append(vt.key, kc.name)
		}
		out[t] = vt
	}
	return out, nil
}

// tableSum is what checksum computes of a table: its row count and two sums of 64-bit hashes
// of its rows.
type tableSum struct {
	n      int64
	h1, h2 string // numeric sums, as text
}

// checksum sums, over the rows of one table, two 64-bit halves of each row's md5. A sum does
// not depend on the order of the rows, so the scan needs no sort and constant memory whatever
// the table's size (an md5 of all rows aggregated in key order, as verify did before, builds
// one string of the whole table: past 1 GB PostgreSQL refuses it), and equal multisets of rows
// give equal sums. Numeric sums do not overflow.
//
// TRUNCATE and the forms of ALTER TABLE that rewrite a table are not MVCC-safe: committed
// after the snapshot was taken and before the table is read, they leave it reading empty to
// the snapshot (DDL through the shim commits on both databases: two tables whose rows
// differed then both read empty, "identical"). A verification reads its snapshots long after
// it took them (a full read of both databases; after a catch-up, once commits go on), so
// checksum fails when the table's storage is no longer the one the snapshot saw: checked once
// its read holds the table's lock, which such DDL needs, until the transaction ends (diffKeys
// reads later under that lock too).
func checksum(ctx context.Context, tx *sql.Tx, name string, t verifyTable) (tableSum, error) {
	row := "md5(ROW(" + strings.Join(t.cols, ", ") + ")::text)"
	q := fmt.Sprintf(`SELECT count(*),
  coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text,
  coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text
FROM (SELECT %s AS h FROM ONLY %s) rows`, row, name)
	var sum tableSum
	if err := tx.QueryRowContext(ctx, q).Scan(&sum.n, &sum.h1, &sum.h2); err != nil {
		return sum, err
	}
	var now sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT pg_relation_filenode($1::regclass)::bigint`, name).Scan(&now); err != nil {
		return sum, err
	}
	if !now.Valid || now.Int64 != t.filenode {
		return sum, fmt.Errorf("table %s was truncated or rewritten (TRUNCATE, ALTER TABLE, REFRESH MATERIALIZED VIEW) after the snapshot was taken: it reads empty to it; verify again", name)
	}
	return sum, nil
}

// diffKeysMax is how many differing keys Verify names per table.
const diffKeysMax = 5

// diffKeys reads a keyed table's (key, md5 of row) pairs from both snapshots in one byte order
// of the key's text and merges them, naming up to max keys whose rows differ or exist on one
// side only ("… and more" past that).
func diffKeys(ctx context.Context, snaps [2]*sql.Tx, name string, t verifyTable, max int) ([]string, error) {
	key := "ROW(" + strings.Join(t.key, ", ") + ")::text"
	q := fmt.Sprintf(`SELECT %s, md5(ROW(%s)::text) FROM ONLY %s ORDER BY %[1]s COLLATE "C"`, key, strings.Join(t.cols, ", "), name)
	var rows [2]*sql.Rows
	for i, tx := range snaps {
		r, err := tx.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		rows[i] = r
	}
	type pair struct {
		key, sum string
		ok       bool
	}
	next := func(i int) (pair, error) {
		if !rows[i].Next() {
			return pair{}, rows[i].Err()
		}
		var p pair
		p.ok = true
		return p, rows[i].Scan(&p.key, &p.sum)
	}
	var out []string
	add := func(s string) bool {
		if len(out) == max {
			out = append(out, "and more")
			return false
		}
		out = append(out, s)
		return true
	}
	l, err := next(0)
	if err != nil {
		return nil, err
	}
	p, err := next(1)
	if err != nil {
		return nil, err
	}
	for l.ok || p.ok {
		more := true
		switch {
		case p.ok && (!l.ok || p.key < l.key):
			more = add("key " + showKey(p.key) + " only on the peer")
			p, err = next(1)
		case l.ok && (!p.ok || l.key < p.key):
			more = add("key " + showKey(l.key) + " only on the local database")
			l, err = next(0)
		default:
			if l.sum != p.sum {
				more = add("key " + showKey(l.key) + " differs")
			}
			if l, err = next(0); err == nil {
				p, err = next(1)
			}
		}
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	return out, nil
}

// showKey is a row's key as a difference names it, or a difference as Verify returns it: as
// written, unless it holds a character that is not printable — a newline or a terminal's
// control sequence in application data or names would break the one line per difference, or
// the terminal — then quoted as Go quotes.
func showKey(key string) string {
	for _, r := range key {
		if !unicode.IsPrint(r) {
			return strconv.Quote(key)
		}
	}
	return key
}
