package txshim

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// PublicationName is the publication both sites' decoders stream (DESIGN §5.2).
const PublicationName = "tandem"

// SlotName is the two-phase logical slot of a site: tandem_<site>.
func SlotName(site string) string { return "tandem_" + site }

var siteNameRE = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)

// appSchemasSQL lists the schemas whose tables are application tables: everything but the
// system schemas and Tandem's own.
const appSchemasSQL = `SELECT nspname FROM pg_namespace
WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'tandem', 'pg_toast')
  AND nspname NOT LIKE 'pg_temp_%' AND nspname NOT LIKE 'pg_toast_temp_%'
ORDER BY 1`

// appRelFilter restricts pg_class c / pg_namespace n to application tables.
const appRelFilter = `c.relkind IN ('r', 'p') AND ` + appSchemaFilter

// appSchemaFilter leaves out relations n of the system's schemas and of Tandem's.
const appSchemaFilter = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'tandem', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'`

// shippedRelFilter restricts appRelFilter to the tables whose rows Tandem ships: not UNLOGGED
// ones, which write no WAL, so logical decoding never sees their rows (their definitions, DDL
// through the shim included, still ship). Install names them; verify and resync leave them out.
const shippedRelFilter = appRelFilter + ` AND c.relpersistence = 'p'`

// Install prepares the local and the peer database for Tandem (DESIGN §5.2); it is idempotent.
//
// On both databases it checks wal_level, max_prepared_transactions and the REPLICATION
// attribute, refuses when the application schemas differ, creates the tandem schema, sets
// REPLICA IDENTITY FULL on application tables without a primary key (or with a DEFERRABLE
// one, which PostgreSQL does not take for a replica identity, or one with a generated column,
// which PostgreSQL 15 does not publish; so too a REPLICA IDENTITY USING INDEX index with one),
// creates (or extends)
// the publication "tandem" and the event triggers that refuse DDL the shim cannot ship (DDL
// inside DO blocks, functions and procedures its clients run: ddlGuardSQL). Its user must be a
// superuser. On the local database it creates the two-phase slot tandem_<site>.
//
// The publication is FOR TABLES IN SCHEMA <every application schema> plus TABLE tandem.ddl,
// not FOR ALL TABLES: that would publish tandem.state and tandem.decisions, which each database
// keeps for itself. Tables created later in those schemas are published automatically; a
// schema made later is added by an event trigger as it is made (ddlGuardSQL). A table that DDL through the shim leaves
// without a primary key later gets REPLICA IDENTITY FULL from the shim, on both databases
// (ddlcheck.go); one made straight on a database has no replica identity: PostgreSQL itself
// then refuses UPDATE and DELETE on it ("does not have a replica identity") until it gets a
// key or REPLICA IDENTITY FULL (Install run again sets it).
//
// A table given FULL that later gets a primary key keeps FULL: its updates and deletes then
// ship the whole old row, and the peer finds the row by every column (apply.go matchRow: NULLs
// by IS NULL, types without an equality by their text), which costs WAL and apply time but
// finds the same one row (TestKeyAddedToFullIdentityTable). Tandem does not reset it: nothing
// records which tables Install made FULL (an operator may have chosen FULL on purpose), and the
// shim runs its after-DDL step only for DDL that may leave a table keyless (ddlcheck.go; the
// lexer's MayUnkey). To go back to the key, run ALTER TABLE … REPLICA IDENTITY DEFAULT through
// the shim, which ships it to the peer.
func Install(ctx context.Context, site string, localDSN, peerDSN string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	if !siteNameRE.MatchString(site) {
		return fmt.Errorf("install: site name %q cannot name a replication slot: use 1-40 lowercase letters, digits or underscores", site)
	}
	local, err := OpenDB(localDSN)
	if err != nil {
		return fmt.Errorf("install: local database: %w", err)
	}
	defer local.Close()
	peer, err := OpenDB(peerDSN)
	if err != nil {
		return fmt.Errorf("install: peer database: %w", err)
	}
	defer peer.Close()

	dbs := []struct {
		side string
		db   *sql.DB
	}{{"local", local}, {"peer", peer}}
	for _, d := range dbs {
		if err := checkPrerequisites(ctx, d.db); err != nil {
			return fmt.Errorf("install: %s database: %w", d.side, err)
		}
		warnPreparedLimit(ctx, d.db, logger.With("side", d.side))
	}
	ls, err := readAppSchema(ctx, local)
	if err != nil {
		return fmt.Errorf("install: local database: %w", err)
	}
	ps, err := readAppSchema(ctx, peer)
	if err != nil {
		return fmt.Errorf("install: peer database: %w", err)
	}
	if diffs := diffAppSchemas(ls, ps); len(diffs) > 0 {
		return fmt.Errorf("install: the application schemas of the local and the peer database differ; make them identical first:\n  %s",
			listDiffs(diffs))
	}
	// Differences only the applications meet, after a failover: the shim ships rows that land
	// alike, so install goes on, but tandem verify names them until they are made alike.
	if diffs := diffClientSchemas(ls, ps); len(diffs) > 0 {
		logger.Warn("install: the application schemas of the local and the peer database differ where the applications, not Tandem's apply, "+
			"meet it (after a failover they behave otherwise); make them identical (DDL through the shim, or on the database that lacks it)",
			"differences", listDiffs(diffs))
	}
	for _, d := range dbs {
		if err := installObjectsLocked(ctx, d.db, logger.With("side", d.side)); err != nil {
			return fmt.Errorf("install: %s database: %w", d.side, err)
		}
	}
	// A term record means the site ran before: a slot missing now was dropped, and what it
	// held for the peer is not in the one made anew.
	var ran bool
	if err := local.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM tandem.state)`).Scan(&ran); err != nil {
		return fmt.Errorf("install: local database: read the term record: %w", err)
	}
	if ran {
		if err := owedIfMasterSlotGone(ctx, local, peer, site, logger); err != nil {
			return fmt.Errorf("install: %w", err)
		}
	}
	// The peer may hold the stream position of a copy this site once made onto it
	// (resyncGID): transactions before it count as in the copy. A new slot streams from now on,
	// past it — unless this database is a new one (re-initialised, or restored without its
	// slot), whose positions start again below it: then every new transaction would be skipped
	// as copied. The row means nothing to the new slot either way. Deleted before the slot is
	// made, not after: an install that stopped in between found the slot at its next run and
	// left the row for good (TestInstallResumesForgetCopyPosition).
	var slotMissing bool
	if err := local.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, SlotName(site)).Scan(&slotMissing); err != nil {
		return fmt.Errorf("install: local database: read replication slot %s: %w", SlotName(site), err)
	}
	if slotMissing {
		if _, err := peer.ExecContext(ctx, `DELETE FROM tandem.decisions WHERE gid = $1`, resyncGID(site)); err != nil {
			return fmt.Errorf("install: peer database: forget the position of an earlier copy: %w", err)
		}
	}
	if err := ensureSlot(ctx, local, SlotName(site), ran, logger); err != nil {
		return fmt.Errorf("install: local database: %w", err)
	}
	return nil
}

func checkPrerequisites(ctx context.Context, db *sql.DB) error {
	var walLevel, maxPrepared, walSenders, slots, version string
	var versionNum int
	if err := db.QueryRowContext(ctx, `SELECT current_setting('wal_level'), current_setting('max_prepared_transactions'),
	current_setting('max_wal_senders'), current_setting('max_replication_slots'),
	current_setting('server_version'), current_setting('server_version_num')::int`).Scan(&walLevel, &maxPrepared, &walSenders, &slots, &version, &versionNum); err != nil {
		return fmt.Errorf("read settings: %w", err)
	}
	if versionNum < 150000 {
		// pgoutput decodes two-phase transactions (its two_phase option) from PostgreSQL 15 on.
		return fmt.Errorf("PostgreSQL %s: Tandem needs PostgreSQL 15 or newer", version)
	}
	if walLevel != "logical" {
		return fmt.Errorf("wal_level is %q, Tandem needs logical: run ALTER SYSTEM SET wal_level = logical and restart the PostgreSQL server", walLevel)
	}
	if n, err := strconv.Atoi(maxPrepared); err != nil || n <= 0 {
		return fmt.Errorf("max_prepared_transactions is %s, Tandem needs more than 0 (at least the number of concurrent write sessions): run ALTER SYSTEM SET max_prepared_transactions = 64 and restart the PostgreSQL server", maxPrepared)
	}
	// The decoder streams the site's slot over a replication connection, a WAL sender: without
	// one (or without a slot to make) the site could not ship a transaction.
	for _, s := range []struct{ name, value string }{{"max_wal_senders", walSenders}, {"max_replication_slots", slots}} {
		if n, err := strconv.Atoi(s.value); err != nil || n <= 0 {
			return fmt.Errorf("%s is %s, Tandem needs more than 0 (its decoder streams the site's replication slot): run ALTER SYSTEM SET %[1]s = 10 and restart the PostgreSQL server", s.name, s.value)
		}
	}
	// Every right the user lacks is named at once: one named per run took as many runs.
	var user string
	var repl, super bool
	if err := db.QueryRowContext(ctx, `SELECT rolname, rolreplication OR rolsuper, rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&user, &repl, &super); err != nil {
		return fmt.Errorf("read role attributes: %w", err)
	}
	var lacks []string
	if !repl {
		lacks = append(lacks, fmt.Sprintf("lacks the REPLICATION attribute (run ALTER ROLE %s REPLICATION)", sqlIdent(user)))
	}
	if !super {
		// CREATE EVENT TRIGGER (ddlGuardSQL) and a publication FOR TABLES IN SCHEMA need one.
		lacks = append(lacks, "is not a superuser: install creates an event trigger (which refuses DDL inside DO blocks and functions sent through the shim, as it cannot ship) and a publication FOR TABLES IN SCHEMA, both reserved to superusers; run install as a superuser")
	}
	if len(lacks) > 0 {
		return fmt.Errorf("user %s %s", user, strings.Join(lacks, ", and "))
	}
	return nil
}

// warnPreparedLimit warns when max_prepared_transactions is below max_connections: every
// session committing a write holds a prepared transaction for a moment, so past the limit
// dual commits wait for one another — on the local database the shim holds at most that many
// sessions' commits prepared (prepSlots), on the peer the Shipper at most that many prepared
// there (and takes the peer's refusal, SQLSTATE 53200, for back-pressure). A commit that
// waits past the commit timeout fails locally, and on the peer sends the master on alone.
func warnPreparedLimit(ctx context.Context, db *sql.DB, logger *slog.Logger) {
	var prepared, conns int
	if err := db.QueryRowContext(ctx, `SELECT current_setting('max_prepared_transactions')::int, current_setting('max_connections')::int`).Scan(&prepared, &conns); err != nil {
		return // checkPrerequisites read the same settings; nothing more to say
	}
	if prepared < conns {
		logger.Warn("max_prepared_transactions is below max_connections: more write commits at once than it allows wait for one another, "+
			"and fail (locally) or go solo (on the peer) past the commit timeout; set it to max_connections (and restart)",
			"max_prepared_transactions", prepared, "max_connections", conns)
	}
}

// appColumn is one column of an application table as the schema comparison sees it.
type appColumn struct {
	typ       string // format_type
	notNull   bool
	identity  string // '', 'a' always, 'd' by default
	generated string // '', 's' stored
	genExpr   string // a generated column's expression: each database computes it for itself
	collation string // a collatable column's collation: equality (a nondeterministic one) and order
	pkPos     int    // position in the primary key, 0 when not part of it
}

func (c appColumn) String() string {
	s := c.typ
	if c.notNull {
		s += " NOT NULL"
	}
	switch c.identity {
	case "a":
		s += " GENERATED ALWAYS AS IDENTITY"
	case "d":
		s += " GENERATED BY DEFAULT AS IDENTITY"
	}
	if c.collation != "" {
		s += " COLLATE " + c.collation
	}
	if c.generated == "s" {
		s += " GENERATED ALWAYS AS (" + c.genExpr + ") STORED"
	}
	if c.pkPos > 0 {
		s += fmt.Sprintf(" (primary key column %d)", c.pkPos)
	}
	return s
}

// appSchema is what the schema comparison reads of a database: its application tables'
// columns (cols, "schema.table" to its columns by name), what else of each table decides how a
// shipped row lands (tables: its kind, partitioning, parents, and the constraints, unique
// indexes and apply-firing triggers that may refuse or change a row), and the other objects
// whose definitions do (objs: the types columns are made of, sequences, the encoding).
type appSchema struct {
	cols   map[string]map[string]appColumn
	tables map[string][]string // "schema.table" to its sorted facts
	objs   map[string]string   // an object's description to its definition
	client clientSchema        // what only the applications meet (diffClientSchemas)
}

// listDiffs is diffs one a line (indented after the first), the first 20 of them.
func listDiffs(diffs []string) string {
	shown := diffs
	if len(shown) > 20 {
		shown = append(shown[:20:20], fmt.Sprintf("… and %d more", len(diffs)-20))
	}
	return strings.Join(shown, "\n  ")
}

// schemaSettingsSQL pins, for readAppSchema's transaction, the search path and how constants
// and names are written as text.
var schemaSettingsSQL = setLocalSQL(textSettings, catalogPath, definitionSpelling, map[string]string{"timezone": "UTC"})

// definitionSpelling are the settings, beyond textSettings, after which PostgreSQL spells the names
// and literals of definitions (format_type, pg_get_constraintdef, pg_get_indexdef, pg_get_expr,
// quote_ident) and of reg* values, which install, verify and resync compare as text: pinned where
// they compare, as a database's default of either made two identical databases differ.
// quote_all_identifiers on quoted every name ("public"."kv" against public.kv:
// TestVerifyQuoteAllIdentifiers); standard_conforming_strings off doubled a backslash in a string
// literal of a CHECK, an index predicate or a generation expression
// (TestVerifyStandardConformingStrings, TestResyncDefinitionSpelling). Not for the apply, whose
// session computes generated columns as the client's did (quote_ident in one, under the database's
// default).
var definitionSpelling = map[string]string{"quote_all_identifiers": "off", "standard_conforming_strings": "on"}

func readAppSchema(ctx context.Context, db *sql.DB) (appSchema, error) {
	// Under a search path of pg_catalog alone, format_type qualifies every type of another
	// schema, on both databases alike: under a database's own search_path it spells a type it
	// finds there without its schema (mood on one side, public.mood on the other), and two
	// identical schemas were refused as different. And constants in a CHECK constraint or a
	// partition bound are printed after IntervalStyle, DateStyle and TimeZone: pinned as the
	// apply and verify pin them (schemaSettingsSQL), else two sites whose databases keep the
	// time of their own zones read one bound two ways (TestInstallSchemaDifferences, "the same
	// constants under other settings"). REPEATABLE READ, as verify reads, not the database's
	// default isolation: a READ ONLY transaction under SERIALIZABLE and DEFERRABLE defaults
	// waits for a safe snapshot, for as long as a serializable read-write transaction is open
	// there — one left prepared too (TestInstallDeferrableDefaults).
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return appSchema{}, fmt.Errorf("read application tables: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schemaSettingsSQL); err != nil {
		return appSchema{}, fmt.Errorf("read application tables: %w", err)
	}
	return readAppSchemaIn(ctx, tx)
}

// readAppSchemaIn reads the application schema in tx, whose search path must be pg_catalog
// alone (readAppSchema).
func readAppSchemaIn(ctx context.Context, tx *sql.Tx) (appSchema, error) {
	return readAppSchemaWith(ctx, func(ctx context.Context, q string) ([][]string, error) {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return nil, err
		}
		var out [][]string
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return nil, err
			}
			row := make([]string, len(cols))
			for i, v := range vals {
				row[i] = v.String
			}
			out = append(out, row)
		}
		return out, rows.Err()
	})
}

// schemaQuery runs a query of readAppSchemaWith and returns its rows as text (NULL as "").
type schemaQuery func(ctx context.Context, q string) ([][]string, error)

// readAppSchemaWith reads an application schema with query, in a session whose search_path is
// pg_catalog alone (readAppSchema).
func readAppSchemaWith(ctx context.Context, query schemaQuery) (appSchema, error) {
	rows, err := query(ctx, `SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
  a.attnotnull::text, a.attidentity::text, a.attgenerated::text,
  CASE WHEN a.attgenerated <> '' THEN coalesce(pg_get_expr(d.adbin, d.adrelid), '') ELSE '' END,
  CASE WHEN a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid) THEN a.attcollation::regcollation::text ELSE '' END,
  coalesce(array_position(con.conkey, a.attnum), 0)::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'p'
WHERE `+appRelFilter)
	if err != nil {
		return appSchema{}, fmt.Errorf("read application tables: %w", err)
	}
	s := appSchema{cols: map[string]map[string]appColumn{}, tables: map[string][]string{}, objs: map[string]string{}}
	for _, r := range rows {
		if len(r) != 10 {
			return appSchema{}, fmt.Errorf("read application tables: %d columns, want 10", len(r))
		}
		c := appColumn{typ: r[3], notNull: r[4] == "true", identity: r[5], generated: r[6], genExpr: r[7], collation: r[8]}
		if c.pkPos, err = strconv.Atoi(r[9]); err != nil {
			return appSchema{}, fmt.Errorf("read application tables: primary key position %q: %w", r[9], err)
		}
		name := sqlIdent(r[0]) + "." + sqlIdent(r[1])
		if s.cols[name] == nil {
			s.cols[name] = map[string]appColumn{}
		}
		s.cols[name][r[2]] = c
	}
	facts, err := query(ctx, appTableFactsSQL)
	if err != nil {
		return appSchema{}, fmt.Errorf("read application tables: %w", err)
	}
	for _, r := range facts {
		if len(r) != 3 {
			return appSchema{}, fmt.Errorf("read application tables: %d columns, want 3", len(r))
		}
		name := sqlIdent(r[0]) + "." + sqlIdent(r[1])
		s.tables[name] = append(s.tables[name], r[2])
	}
	objs, err := query(ctx, appObjectsSQL)
	if err != nil {
		return appSchema{}, fmt.Errorf("read application types and sequences: %w", err)
	}
	for _, r := range objs {
		if len(r) != 4 {
			return appSchema{}, fmt.Errorf("read application types and sequences: %d columns, want 4", len(r))
		}
		kind := r[0]
		if r[1] != "" {
			kind += " " + sqlIdent(r[1]) + "." + sqlIdent(r[2])
		}
		s.objs[kind] = r[3]
	}
	if s.client, err = readClientSchema(ctx, query); err != nil {
		return appSchema{}, err
	}
	return s, nil
}

// appTableFactsSQL lists, per application table, what beyond its columns decides how a
// shipped row lands on the peer: the apply inserts into the partition (or table) that held the
// row, by column name, with session_replication_role = replica, so a partition's bound, a table's
// kind and parents (a partitioned table or a parent reads its children's rows), CHECK, UNIQUE
// and EXCLUDE constraints and unique indexes (which refuse rows the other database took),
// persistence (an UNLOGGED table is neither shipped nor kept over a crash) and triggers and rules
// that fire in replica sessions (ENABLE ALWAYS, ENABLE REPLICA: they change, add or drop rows on
// the peer alone — a rule ON INSERT … DO INSTEAD NOTHING there lost every row shipped by INSERT:
// TestInstallRuleFiringInApply) must be the same on both databases. Named by their definitions,
// not their names (a trigger's or a rule's definition with its name cut out); a trigger's with
// the definition of the function it runs, by its md5: CREATE TRIGGER names the function, not what
// it does, and one replaced on one database only made the peer store other values under the same
// trigger (TestVerifyApplyTriggerFunction). Left out as well:
// whether a CHECK is validated (NOT VALID checks the apply's rows all the same), the storage
// parameters of a unique index or an EXCLUDE constraint's (WITH (fillfactor=...)), and a UNIQUE
// constraint that is not DEFERRABLE, whose index says all it does (a unique index made without
// one refuses the same rows). Foreign keys, triggers and rules that fire only on the master,
// defaults, column order and plain indexes do not act on the apply's rows (the applications
// meet foreign keys, those triggers and rules, and defaults after a failover: verify names
// them, install warns of them, clientSchema). An invalid index, by name, is a
// fact all the same: the leftover of a CREATE INDEX (or REINDEX) CONCURRENTLY that did not finish
// — its backend killed, its client gone, the shim's connection lost —, which no one drops for
// the statement and which is not recorded for the other database: there only, it is one the
// databases do not share (a unique one still refuses rows once ready), and its DROP INDEX
// through the shim, or the statement run again, meets it on one database alone
// (TestKilledConcurrentIndexVerify). While a CREATE INDEX or REINDEX runs in the database
// (pg_stat_progress_create_index), none is listed: the index it builds, or the old one a
// REINDEX CONCURRENTLY has swapped out (<name>_ccold, invalid until the statement drops it, and
// not the index the view names: TestReindexConcurrentlyInProgressVerify), is a statement in
// progress, not a leftover — and which indexes a statement touches cannot always be told (a
// REINDEX SCHEMA or DATABASE names one table at a time; another role's is hidden from this
// one), so a leftover is reported once none runs. Nor is one a DDL statement holds a lock on
// (ShareUpdateExclusiveLock or stronger): a DROP INDEX CONCURRENTLY marks its index invalid
// first, then waits for the table's users before it drops it, and the view does not show it
// (TestDropIndexConcurrentlyInProgressVerify). A partitioned table's index, invalid by
// design until its partitions' are attached, is not a leftover either.
const appTableFactsSQL = `SELECT n.nspname, c.relname,
  CASE c.relkind WHEN 'p' THEN 'partitioned by ' || pg_get_partkeydef(c.oid) ELSE 'a plain table' END
    || CASE c.relpersistence WHEN 'u' THEN ', UNLOGGED' ELSE '' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ` + appRelFilter + `
UNION ALL
SELECT n.nspname, c.relname,
  CASE WHEN c.relispartition THEN 'partition of ' || i.inhparent::regclass::text || ' ' || pg_get_expr(c.relpartbound, c.oid)
    ELSE 'inherits from ' || i.inhparent::regclass::text END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_inherits i ON i.inhrelid = c.oid WHERE ` + appRelFilter + `
UNION ALL
SELECT n.nspname, c.relname, 'constraint ' || CASE WHEN ic.reloptions IS NULL THEN d.def ELSE replace(d.def, ` + indexStorageSQL + `, '') END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_constraint con ON con.conrelid = c.oid
  LEFT JOIN pg_class ic ON ic.oid = con.conindid,
  LATERAL (SELECT regexp_replace(pg_get_constraintdef(con.oid), ' NOT VALID$', '') AS def) d
WHERE ` + appRelFilter + ` AND (con.contype IN ('c', 'x') OR (con.contype = 'u' AND con.condeferrable))
UNION ALL
SELECT n.nspname, c.relname,
  'unique index' || CASE WHEN ic.reloptions IS NULL THEN d.def ELSE replace(d.def, ` + indexStorageSQL + `, '') END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index x ON x.indrelid = c.oid JOIN pg_class ic ON ic.oid = x.indexrelid,
  LATERAL (SELECT substring(pg_get_indexdef(x.indexrelid) from ' USING .*$') AS def) d
WHERE ` + appRelFilter + ` AND x.indisunique
UNION ALL
SELECT n.nspname, c.relname, 'invalid index ' || quote_ident(ic.relname) || ' ' || d.def
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index x ON x.indrelid = c.oid JOIN pg_class ic ON ic.oid = x.indexrelid,
  LATERAL (SELECT substring(pg_get_indexdef(x.indexrelid) from 'USING .*$') AS def) d
WHERE ` + appRelFilter + ` AND NOT x.indisvalid AND ic.relkind = 'i'
  AND NOT EXISTS (SELECT FROM pg_stat_progress_create_index g JOIN pg_database db ON db.oid = g.datid WHERE db.datname = current_database())
  AND NOT EXISTS (SELECT FROM pg_locks l JOIN pg_database db ON db.oid = l.database
    WHERE db.datname = current_database() AND l.locktype = 'relation' AND l.relation = x.indexrelid
      AND l.mode NOT IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock'))
UNION ALL
SELECT n.nspname, c.relname,
  'trigger firing in the apply (ENABLE ' || CASE tg.tgenabled WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END || '): ' || k.head
    || substr(pg_get_triggerdef(tg.oid), length(k.head || ' ' || quote_ident(tg.tgname)) + 1)
    || ' (function definition md5 ' || md5(pg_get_functiondef(tg.tgfoid)) || ')'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_trigger tg ON tg.tgrelid = c.oid,
  LATERAL (SELECT CASE WHEN tg.tgconstraint <> 0 THEN 'CREATE CONSTRAINT TRIGGER' ELSE 'CREATE TRIGGER' END AS head) k
WHERE ` + appRelFilter + ` AND NOT tg.tgisinternal AND tg.tgenabled IN ('A', 'R')
UNION ALL
SELECT n.nspname, c.relname,
  'rule firing in the apply (ENABLE ' || CASE rw.ev_enabled WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END || '): '
    || ltrim(substr(pg_get_ruledef(rw.oid), length('CREATE RULE ' || quote_ident(rw.rulename) || ' AS') + 1), E' \n')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_rewrite rw ON rw.ev_class = c.oid
WHERE ` + appRelFilter + ` AND rw.ev_enabled IN ('A', 'R')
ORDER BY 1, 2, 3`

// indexStorageSQL is the WITH (...) clause pg_get_indexdef and pg_get_constraintdef print of
// index ic's storage parameters (ruleutils.c flatten_reloptions), for the facts to leave out.
const indexStorageSQL = `' WITH (' || (SELECT string_agg(quote_ident(split_part(o, '=', 1)) || '='
    || CASE WHEN quote_ident(v) = v THEN v ELSE quote_literal(v) END, ', ' ORDER BY k)
  FROM unnest(ic.reloptions) WITH ORDINALITY AS r(o, k), LATERAL (SELECT substr(o, strpos(o, '=') + 1) AS v) ov) || ')'`

// appObjectsSQL lists the definitions the apply's values pass through: each type of the
// application schemas a column may be made of (a domain's base type, typmod and constraints —
// numeric(12,4) against numeric(12,2) rounds the peer's value —, an enum's labels, a composite
// type's attributes, which its values' text gives by position, a range's subtype; and so the
// row type of a table, view or foreign table that a column of a logged table or of a composite
// type holds — directly, as an array, under a domain, in a composite type or a range —: the
// order of its columns, which may differ where no value is made of it, the apply mapping a
// row's columns by name, while the peer read such a value's fields by position, two of one
// type swapped, silently (TestInstallRowTypeColumnOrder)), each
// sequence (copied to the peer by position, which its bounds may refuse), the database's
// encoding, into which the peer converts every value, and the database's default collation
// (its provider and locales), by which every text column without a COLLATE of its own sorts
// and changes case: a local database of ICU's en-US put 'B' in a partition FROM ('a') TO ('n')
// that a peer of C has no room for, and judged a CHECK (k < 'a') the other way
// (TestInstallDatabaseCollation). Likewise each collation of the application schemas (a
// column names it, and a column's collation is compared by that name): one deterministic on
// the local database and case-insensitive on the peer let the local primary key hold 'a' and
// 'A', the peer's refuse the second (TestInstallCollationDefinitions). The columns that name a
// locale differ between PostgreSQL's versions (daticulocale and colliculocale, datlocale and
// colllocale), so they are read through to_jsonb.
const appObjectsSQL = `SELECT 'type', n.nspname, t.typname,
  CASE t.typtype
  WHEN 'e' THEN 'enum (' || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ')'
  WHEN 'd' THEN 'domain over ' || format_type(t.typbasetype, t.typtypmod)
    || CASE WHEN t.typcollation <> (SELECT typcollation FROM pg_type WHERE oid = t.typbasetype) THEN ' COLLATE ' || t.typcollation::regcollation::text ELSE '' END
    || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END
    || coalesce((SELECT ' ' || string_agg(k.def, ' ' ORDER BY k.def)
      FROM (SELECT regexp_replace(pg_get_constraintdef(k.oid), ' NOT VALID$', '') AS def FROM pg_constraint k WHERE k.contypid = t.oid) k), '')
  WHEN 'r' THEN 'range of ' || (SELECT format_type(r.rngsubtype, -1)
      || CASE WHEN r.rngcollation <> (SELECT typcollation FROM pg_type WHERE oid = r.rngsubtype) THEN ' COLLATE ' || r.rngcollation::regcollation::text ELSE '' END FROM pg_range r WHERE r.rngtypid = t.oid)
  ELSE 'composite (' || coalesce((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
      || CASE WHEN a.attcollation <> (SELECT typcollation FROM pg_type WHERE oid = a.atttypid) THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END, ', ' ORDER BY a.attnum)
    FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')'
  END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE ` + appSchemaFilter + `
  AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND ((SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'
    OR EXISTS (SELECT FROM pg_depend dep WHERE dep.refclassid = 'pg_type'::regclass AND dep.refobjid IN (t.oid, t.typarray)
      AND (dep.classid = 'pg_type'::regclass AND dep.objid <> t.typarray
        OR dep.classid = 'pg_class'::regclass AND dep.objsubid > 0
          AND EXISTS (SELECT FROM pg_class r WHERE r.oid = dep.objid AND r.relkind IN ('r', 'p', 'c') AND r.relpersistence = 'p'))))))
UNION ALL
SELECT 'sequence', n.nspname, c.relname,
  format('%s INCREMENT %s MINVALUE %s MAXVALUE %s%s', format_type(s.seqtypid, -1), s.seqincrement, s.seqmin, s.seqmax,
    CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END)
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE ` + appSchemaFilter + ` AND c.relpersistence = 'p'
UNION ALL
SELECT 'collation', n.nspname, co.collname, concat_ws(', ', 'provider ' || CASE co.collprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu'
    WHEN 'b' THEN 'builtin' ELSE co.collprovider::text END,
  'locale ' || quote_literal(coalesce(j->>'colliculocale', j->>'colllocale')), 'rules ' || quote_literal(j->>'collicurules'),
  'LC_COLLATE ' || quote_literal(co.collcollate), 'LC_CTYPE ' || quote_literal(co.collctype),
  CASE WHEN NOT co.collisdeterministic THEN 'nondeterministic' END)
FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace, LATERAL (SELECT to_jsonb(co) AS j) x
WHERE ` + appSchemaFilter + ` AND co.collencoding IN (-1, (SELECT encoding FROM pg_database WHERE datname = current_database()))
UNION ALL
SELECT 'the database encoding', '', '', pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()
UNION ALL
SELECT 'the database collation', '', '', concat_ws(', ', 'provider ' || CASE j->>'datlocprovider' WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu'
    WHEN 'b' THEN 'builtin' ELSE j->>'datlocprovider' END,
  'locale ' || quote_literal(coalesce(j->>'daticulocale', j->>'datlocale')), 'rules ' || quote_literal(j->>'daticurules'),
  'LC_COLLATE ' || quote_literal(d.datcollate), 'LC_CTYPE ' || quote_literal(d.datctype))
FROM pg_database d, LATERAL (SELECT to_jsonb(d) AS j) x WHERE d.datname = current_database()`

// diffAppSchemas names every difference between the local and the peer application schema.
func diffAppSchemas(local, peer appSchema) []string {
	diffs := diffKeyed(local.objs, peer.objs, func(o string) string { return o }, func(o, l, p string) []string {
		if sameObject(o, l, p) {
			return nil
		}
		return []string{fmt.Sprintf("%s is %s on the local database but %s on the peer", o, l, p)}
	})
	// Every application table has facts (its kind at least), a table of no column no columns.
	for _, t := range unionKeys(local.tables, peer.tables) {
		lc, pc := local.cols[t], peer.cols[t]
		switch {
		case peer.tables[t] == nil:
			diffs = append(diffs, fmt.Sprintf("table %s exists only on the local database", t))
			continue
		case local.tables[t] == nil:
			diffs = append(diffs, fmt.Sprintf("table %s exists only on the peer database", t))
			continue
		}
		diffs = append(diffs, diffKeyed(lc, pc, func(col string) string { return "column " + t + "." + sqlIdent(col) },
			func(col string, l, p appColumn) []string {
				if l == p {
					return nil
				}
				return []string{fmt.Sprintf("column %s.%s is %s on the local database but %s on the peer", t, sqlIdent(col), l, p)}
			})...)
		diffs = append(diffs, tableFactDiffs(t, local.tables[t], peer.tables[t])...)
	}
	return diffs
}

// sameObject tells whether the definitions l and p of the object o (appObjectsSQL) are the
// same. A collation's, and the database's, LC_COLLATE and LC_CTYPE name a locale of the C
// library, whose codeset glibc reads as it likes: en_US.UTF-8 and en_US.utf8 are one locale,
// and two hosts whose environments at initdb spelled it differently sort alike
// (TestInstallLocaleSpelling). Those are compared as glibc normalises them (libcLocale); the
// difference, if any, still names each side's spelling.
func sameObject(o, l, p string) bool {
	if l == p {
		return true
	}
	if o != "the database collation" && !strings.HasPrefix(o, "collation ") {
		return false
	}
	norm := func(def string) string {
		return libcLocaleRE.ReplaceAllStringFunc(def, func(m string) string {
			sub := libcLocaleRE.FindStringSubmatch(m)
			return sub[1] + " '" + libcLocale(strings.ReplaceAll(sub[2], "''", "'")) + "'"
		})
	}
	return norm(l) == norm(p)
}

// libcLocaleRE matches the LC_COLLATE and LC_CTYPE of a collation's definition
// (appObjectsSQL), quoted by quote_literal.
var libcLocaleRE = regexp.MustCompile(`(LC_COLLATE|LC_CTYPE) E?'((?:[^']|'')*)'`)

// libcLocale normalises the codeset of the locale name language[_territory][.codeset][@modifier]
// as glibc does when it looks a locale up (_nl_normalize_codeset): letters lowercased, digits
// kept, all else dropped, and "iso" before a codeset of digits only — UTF-8 is utf8, and
// 8859-1 iso88591.
func libcLocale(name string) string {
	dot := strings.IndexByte(name, '.')
	if dot < 0 {
		return name
	}
	codeset, modifier := name[dot+1:], ""
	if at := strings.IndexByte(codeset, '@'); at >= 0 {
		codeset, modifier = codeset[:at], codeset[at:]
	}
	var b strings.Builder
	digits := true
	for i := 0; i < len(codeset); i++ {
		switch ch := codeset[i]; {
		case ch >= 'a' && ch <= 'z':
			digits = false
			b.WriteByte(ch)
		case ch >= 'A' && ch <= 'Z':
			digits = false
			b.WriteByte(ch - 'A' + 'a')
		case ch >= '0' && ch <= '9':
			b.WriteByte(ch)
		}
	}
	norm := b.String()
	if digits && norm != "" {
		norm = "iso" + norm
	}
	return name[:dot+1] + norm + modifier
}

// diffKeyed names each key of local or peer that the other lacks, as what(key) "exists only
// on" the one database, and what differ says of the two values of each key both have (nothing
// when they are alike); in the keys' order.
func diffKeyed[V any](local, peer map[string]V, what func(key string) string, differ func(key string, l, p V) []string) []string {
	var diffs []string
	for _, k := range unionKeys(local, peer) {
		l, lok := local[k]
		p, pok := peer[k]
		switch {
		case !pok:
			diffs = append(diffs, what(k)+" exists only on the local database")
		case !lok:
			diffs = append(diffs, what(k)+" exists only on the peer database")
		default:
			diffs = append(diffs, differ(k, l, p)...)
		}
	}
	return diffs
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range []map[string]V{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// installLockKey is the advisory lock (pg_advisory_lock) an install holds on a database while
// it sets up Tandem's objects there: "tandem" in ASCII.
const installLockKey = 0x74616e64656d

// installObjectsLocked is installObjects while no other install works on db. Each site's install
// sets up both databases, and the two sites' installs may run at once (configuration
// management starting both): concurrent CREATE OR REPLACE of the same function or event
// trigger fails ("tuple concurrently updated", XX000), concurrent CREATE ... IF NOT EXISTS of a
// table with a unique violation (23505). One database at a time, never two locks held, so two
// installs going through the databases in opposite orders cannot deadlock.
func installObjectsLocked(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Not ended as idle while the install works over other connections: a database's
	// idle_session_timeout would take the lock with it.
	if _, err := conn.ExecContext(ctx, `SET idle_session_timeout = 0`); err != nil {
		return fmt.Errorf("take the install lock: %w", err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, int64(installLockKey)).Scan(&got); err != nil {
		return fmt.Errorf("take the install lock: %w", err)
	}
	if !got {
		logger.Info("waiting for another tandem install on this database (the other site's?)")
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(installLockKey)); err != nil {
			return fmt.Errorf("wait for another install on this database: %w", err)
		}
	}
	defer func() {
		// Released also when the connection ends (an error, ctx gone): a session lock.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(installLockKey)); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn }) // closed, not pooled: the lock goes with it
		}
	}()
	return installObjects(ctx, db, logger)
}

// ownTableColumnsSQL lists, as "tandem.x (lacks column c t)", each table of Tandem's own that
// exists in schema tandem without a column every version of Install has made it with: not
// Tandem's table but an application's of the same name, which CREATE TABLE IF NOT EXISTS would
// leave as it is (TestInstallForeignTandemSchema); and, as "tandem.x (not one of Tandem's)",
// each other table there: an application's, whose rows would never be shipped, as schema tandem
// is no application schema (TestInstallApplicationTableInTandemSchema). Columns later versions
// added are not asked for: Install adds them. A column's type is compared by its oid, not as
// format_type spells it, which under a database default of quote_all_identifiers = on is
// "text": install run again called each of Tandem's own tables an application's
// (TestInstallAgainQuoteAllIdentifiers).
const ownTableColumnsSQL = `SELECT 'tandem.' || w.rel || ' (lacks column ' || w.col || ' ' || w.typ || ')'
FROM (VALUES ('state', 'term', 'bigint'), ('state', 'master', 'text'), ('state', 'peer_synced', 'boolean'),
  ('decisions', 'gid', 'text'), ('decisions', 'at', 'timestamp with time zone'),
  ('ddl', 'id', 'bigint'), ('ddl', 'stmt', 'text'), ('ddl_key', 'k', 'text'), ('installed', 'mark', 'text')) w(rel, col, typ)
WHERE pg_catalog.to_regclass('tandem.' || w.rel) IS NOT NULL
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = pg_catalog.to_regclass('tandem.' || w.rel)
    AND a.attname = w.col AND NOT a.attisdropped AND a.atttypid = pg_catalog.to_regtype(w.typ))
UNION ALL
SELECT 'tandem.' || quote_ident(c.relname) || ' (not one of Tandem''s)' FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'tandem' AND c.relkind IN ('r', 'p') AND c.relname NOT IN ('state', 'decisions', 'ddl', 'ddl_key', 'installed')
ORDER BY 1`

// ownedByOthersSQL lists schema tandem and the relations and functions in it whose owner is
// not a superuser, as "what (owner role)": a schema made beforehand by the application's role,
// whose owner may drop and make objects in it whatever their owner
// (TestInstallSchemaOwnedByOther).
const ownedByOthersSQL = `SELECT w.what || ' (owner ' || quote_ident(r.rolname) || ')'
FROM (SELECT 'schema tandem' AS what, n.nspowner AS owner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'tandem'
  UNION ALL
  SELECT 'tandem.' || quote_ident(c.relname), c.relowner FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'tandem'
  UNION ALL
  SELECT 'function tandem.' || quote_ident(f.proname), f.proowner FROM pg_catalog.pg_proc f
    JOIN pg_catalog.pg_namespace n ON n.oid = f.pronamespace WHERE n.nspname = 'tandem') w
JOIN pg_catalog.pg_roles r ON r.oid = w.owner
WHERE NOT r.rolsuper
ORDER BY 1`

func installObjects(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	others, err := queryStrings(ctx, db, ownedByOthersSQL)
	if err != nil {
		return fmt.Errorf("read the owners of schema tandem and its objects: %w", err)
	}
	if len(others) > 0 {
		return fmt.Errorf("schema tandem, or what is in it, is owned by a role that is not a superuser: %s; such an owner may drop and make Tandem's objects (its term record, the DDL guard's key), so they must be a superuser's: "+
			"ALTER SCHEMA tandem OWNER TO CURRENT_USER (and likewise each object named) on that database as the superuser install runs as, or drop schema tandem if it is the application's and not Tandem's, and run install again",
			strings.Join(others, ", "))
	}
	foreign, err := queryStrings(ctx, db, ownTableColumnsSQL)
	if err != nil {
		return fmt.Errorf("read the tables of schema tandem: %w", err)
	}
	if len(foreign) > 0 {
		return fmt.Errorf("schema tandem holds tables Tandem did not make: %s; schema tandem is Tandem's (and its tables are never shipped): move the application's tables to another schema (ALTER TABLE tandem.… SET SCHEMA …) on both databases and run install again",
			strings.Join(foreign, ", "))
	}
	if _, err := db.ExecContext(ctx, schemaSQL); err != nil {
		return fmt.Errorf("create schema tandem: %w", err)
	}
	if _, err := db.ExecContext(ctx, ddlGuardSQL); err != nil {
		return fmt.Errorf("create the event triggers that refuse DDL the shim cannot ship: %w", err)
	}
	// Tables without a primary key (and no other replica identity) get REPLICA IDENTITY FULL so
	// that UPDATE and DELETE ship their whole old row and the peer can find it. A DEFERRABLE
	// primary key counts as none: PostgreSQL takes no such key for the replica identity, and
	// refused UPDATE and DELETE on its table (TestDeferrableKeyReplicaIdentity).
	// So do tables whose REPLICA IDENTITY USING INDEX index was dropped (PostgreSQL takes them
	// for NOTHING), or DEFAULT where they have a key (keylessTablesFrom).
	rows, err := db.QueryContext(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' REPLICA IDENTITY ' || `+replicaIdentityFor+`
FROM (SELECT c.oid, `+immediateKeySQL+` AS keyed`+keylessTablesFrom+`) r
JOIN pg_class c ON c.oid = r.oid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE `+appRelFilter+`
ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("list tables without a primary key: %w", err)
	}
	var noKey []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		noKey = append(noKey, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	unlogged, err := queryStrings(ctx, db, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE `+appRelFilter+` AND c.relpersistence = 'u' ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("list unlogged tables: %w", err)
	}
	if len(unlogged) > 0 {
		logger.Warn("UNLOGGED tables: their rows are not shipped to the peer (they write no WAL to decode) and verify leaves them out; to ship them, ALTER TABLE … SET LOGGED on both databases, then tandem resync copies their rows",
			"tables", unlogged)
	}
	// A trigger that fires in replica sessions fires in the peer's apply too, on rows the local
	// one already made: an audit trigger's second row, a changed value (the apply is refused, or
	// the databases differ).
	replicaTriggers, err := queryStrings(ctx, db, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ': ' || quote_ident(tg.tgname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_trigger tg ON tg.tgrelid = c.oid
WHERE `+appRelFilter+` AND NOT tg.tgisinternal AND tg.tgenabled IN ('A', 'R') ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("list triggers: %w", err)
	}
	if len(replicaTriggers) > 0 {
		logger.Warn("triggers ENABLE ALWAYS or ENABLE REPLICA on application tables: they fire in the peer's apply too, on rows the master's trigger already wrote or changed, "+
			"so the peer refuses the transaction or differs; make them ordinary triggers (ALTER TABLE … ENABLE TRIGGER)", "triggers", replicaTriggers)
	}
	for _, t := range noKey {
		if _, err := db.ExecContext(ctx, "ALTER TABLE "+t); err != nil {
			return fmt.Errorf("set %s (it has no replica identity): %w", t, err)
		}
		logger.Info("table has no replica identity: set one", "table", t)
	}
	if err := ensurePublication(ctx, db, logger); err != nil {
		return err
	}
	return writeInstallMark(ctx, db)
}

func ensurePublication(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	schemas, err := queryStrings(ctx, db, appSchemasSQL)
	if err != nil {
		return fmt.Errorf("list application schemas: %w", err)
	}
	var allTables bool
	err = db.QueryRowContext(ctx, `SELECT puballtables FROM pg_publication WHERE pubname = $1`, PublicationName).Scan(&allTables)
	if err == sql.ErrNoRows {
		objs := []string{"TABLE tandem.ddl"}
		if len(schemas) > 0 {
			objs = append(objs, "TABLES IN SCHEMA "+joinIdents(schemas))
		}
		if _, err := db.ExecContext(ctx, "CREATE PUBLICATION "+PublicationName+" FOR "+strings.Join(objs, ", ")); err != nil {
			return fmt.Errorf("create publication %s: %w", PublicationName, err)
		}
		logger.Info("created publication", "publication", PublicationName, "schemas", schemas)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read publication %s: %w", PublicationName, err)
	}
	if allTables {
		return fmt.Errorf("publication %s exists FOR ALL TABLES, which would ship tandem.state and tandem.decisions: DROP PUBLICATION %s and run install again", PublicationName, PublicationName)
	}
	// Tandem's own tables, added by hand: each database's term record and decisions would
	// reach the other, as with FOR ALL TABLES (TestInstallPublicationOwnTables).
	own, err := queryStrings(ctx, db, `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_publication_tables
WHERE pubname = $1 AND schemaname = 'tandem' AND tablename <> 'ddl' ORDER BY 1`, PublicationName)
	if err != nil {
		return fmt.Errorf("read tables of publication %s: %w", PublicationName, err)
	}
	if len(own) > 0 {
		return fmt.Errorf("publication %s holds %s, which each database keeps for itself: ALTER PUBLICATION %s DROP TABLE %s (or DROP TABLES IN SCHEMA tandem, where the schema was added) and run install again",
			PublicationName, strings.Join(own, ", "), PublicationName, strings.Join(own, ", "))
	}
	var viaRoot, ins, upd, del, trunc bool
	if err := db.QueryRowContext(ctx, `SELECT pubviaroot, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`,
		PublicationName).Scan(&viaRoot, &ins, &upd, &del, &trunc); err != nil {
		return fmt.Errorf("read publication %s: %w", PublicationName, err)
	}
	// A publication made or changed by hand to publish only some operations: what it leaves
	// out is never decoded, so never shipped, and the local commit still counts as dual
	// (TestInstallPublicationPublishOptions).
	var unpublished []string
	for _, op := range []struct {
		name string
		on   bool
	}{{"insert", ins}, {"update", upd}, {"delete", del}, {"truncate", trunc}} {
		if !op.on {
			unpublished = append(unpublished, op.name)
		}
	}
	if len(unpublished) > 0 {
		return fmt.Errorf("publication %s does not publish %s (its publish setting), which would then never reach the peer: ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate') and run install again",
			PublicationName, strings.Join(unpublished, ", "), PublicationName)
	}
	if viaRoot {
		// Tandem leaves the setting as it finds it (the apply handles either), but PostgreSQL
		// then decodes no TRUNCATE of a single partition: it would never reach the peer.
		logger.Warn("publication publishes through partition roots (publish_via_partition_root): a TRUNCATE of a single partition is not decoded and so not shipped, and the databases differ; "+
			"truncate the partitioned table or DELETE, or ALTER PUBLICATION "+PublicationName+" SET (publish_via_partition_root = false)", "publication", PublicationName)
		bad, err := queryStrings(ctx, db, uncoveredPartitionsSQL)
		if err != nil {
			return fmt.Errorf("read the replica identities of partitions: %w", err)
		}
		if len(bad) > 0 {
			return fmt.Errorf("publication %s publishes through partition roots (publish_via_partition_root), and the replica identity of these partitions does not cover their root's: %s; "+
				"PostgreSQL logs a partition's old rows by the partition's own replica identity but sends them under the root's, so the peer finds no row for their updates and deletes and refuses them as a divergence. "+
				"ALTER PUBLICATION %s SET (publish_via_partition_root = false) (each partition's changes then ship under its own replica identity), "+
				"or give each such partition REPLICA IDENTITY FULL (or its root a primary key the partition keeps as its replica identity), on both databases, and run install again",
				PublicationName, strings.Join(bad, ", "), PublicationName)
		}
	}
	have, err := queryStrings(ctx, db, `SELECT n.nspname FROM pg_publication_namespace pn
JOIN pg_publication p ON p.oid = pn.pnpubid JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE p.pubname = $1`, PublicationName)
	if err != nil {
		return fmt.Errorf("read schemas of publication %s: %w", PublicationName, err)
	}
	var missing []string
	for _, s := range schemas {
		if !containsString(have, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		if _, err := db.ExecContext(ctx, "ALTER PUBLICATION "+PublicationName+" ADD TABLES IN SCHEMA "+joinIdents(missing)); err != nil {
			return fmt.Errorf("add schemas %v to publication %s: %w", missing, PublicationName, err)
		}
		logger.Info("added schemas to publication", "publication", PublicationName, "schemas", missing)
	}
	var hasDDL bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = 'tandem' AND tablename = 'ddl')`,
		PublicationName).Scan(&hasDDL); err != nil {
		return fmt.Errorf("read tables of publication %s: %w", PublicationName, err)
	}
	if !hasDDL {
		if _, err := db.ExecContext(ctx, "ALTER PUBLICATION "+PublicationName+" ADD TABLE tandem.ddl"); err != nil {
			return fmt.Errorf("add tandem.ddl to publication %s: %w", PublicationName, err)
		}
	}
	return nil
}

// uncoveredPartitionsSQL lists, as "partition (of root: ...)", the application partitions whose
// replica identity does not hold every column of their partition root's, or whose root has
// none. Published through its root, a partition's UPDATE and DELETE reach the peer under the
// root's relation (its key columns; every column for REPLICA IDENTITY FULL), but PostgreSQL
// logged the old row by the partition's own replica identity: the columns outside it arrive
// as NULL (pgoutput sends them as nulls, not as values left out), and an UPDATE that keeps
// the partition's key sends no old row at all, only the new one, whose root key may have
// changed. The peer then finds no row (TestInstallPartitionIdentityViaRoot).
var uncoveredPartitionsSQL = `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' (of ' || r.oid::regclass::text || ': replica identity '
    || ` + identityNameSQL("c") + ` || ' against ' || ` + identityNameSQL("r") + ` || ')'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class r ON r.oid = pg_partition_root(c.oid)
WHERE ` + appRelFilter + ` AND c.relispartition AND c.relkind = 'r'
  AND ` + uncoveredSQL("c", "r") + `
ORDER BY 1`

// identityColsSQL is the names of the published columns of table rel's replica identity, in
// their order: every one for FULL; for DEFAULT those of its primary key, for USING INDEX those
// of the index. Written for a client's session too (ddlcheck.go): operators from pg_catalog (a
// CASE x WHEN y would compare with the = found along the session's search_path).
func identityColsSQL(rel string) string {
	return `(SELECT COALESCE(pg_catalog.array_agg(a.attname ORDER BY a.attnum), '{}') FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) ` + rel + `.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''
      AND (` + rel + `.relreplident OPERATOR(pg_catalog.=) 'f' OR EXISTS (SELECT FROM pg_catalog.pg_index x WHERE x.indrelid OPERATOR(pg_catalog.=) ` + rel + `.oid
        AND a.attnum OPERATOR(pg_catalog.=) ANY (x.indkey)
        AND CASE WHEN ` + rel + `.relreplident OPERATOR(pg_catalog.=) 'd' THEN x.indisprimary WHEN ` + rel + `.relreplident OPERATOR(pg_catalog.=) 'i' THEN x.indisreplident ELSE false END)))`
}

// uncoveredSQL is the condition that partition c's replica identity lacks a column of its
// partition root r's, or r has none (uncoveredPartitionsSQL).
func uncoveredSQL(c, r string) string {
	return `(` + identityColsSQL(r) + ` OPERATOR(pg_catalog.=) '{}' OR NOT ` + identityColsSQL(r) + ` OPERATOR(pg_catalog.<@) ` + identityColsSQL(c) + `)`
}

// identityNameSQL spells table rel's replica identity for a message.
func identityNameSQL(rel string) string {
	return `CASE ` + rel + `.relreplident WHEN 'f' THEN 'FULL' WHEN 'n' THEN 'NOTHING' ELSE
    CASE WHEN ` + identityColsSQL(rel) + ` = '{}' THEN 'none' ELSE '(' || array_to_string(` + identityColsSQL(rel) + `, ', ') || ')' END END`
}

// owedIfMasterSlotGone records on the peer that it is owed a copy of site's tables (owedGID)
// when site's slot is missing and the local term record names site the master: the dropped
// slot held what the peer may lack, and the one ensureSlot makes streams from now on. A
// Shipper restarted on it cannot tell, and its catch-up called the peer synced without those
// transactions (TestInstallRemadeMasterSlot); with the row, catch-up refuses until tandem resync
// copies the tables, as after a resync that made a lost slot anew and did not finish
// (renewLostSlot). Written before the slot is made, so that a failure in between leaves it
// missing still. A backup's slot holds nothing to ship: made anew without the row.
func owedIfMasterSlotGone(ctx context.Context, local, peer *sql.DB, site string, logger *slog.Logger) error {
	var missing bool
	var master sql.NullString
	if err := local.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),
  (SELECT master FROM tandem.state WHERE id = 1)`, SlotName(site)).Scan(&missing, &master); err != nil {
		return fmt.Errorf("local database: read the slot and the term record: %w", err)
	}
	if !missing || master.String != site {
		return nil
	}
	if _, err := peer.ExecContext(ctx, `INSERT INTO tandem.decisions (gid) VALUES ($1) ON CONFLICT (gid) DO NOTHING`, owedGID(site)); err != nil {
		return fmt.Errorf("peer database: record that it is owed a copy of the tables, before the master's missing slot is made anew: %w", err)
	}
	logger.Warn("the master's replication slot is missing: the peer may lack what it held; catch-up refuses until tandem resync copies the tables", "slot", SlotName(site))
	return nil
}

// ensureSlot creates the site's two-phase slot if it is missing, and checks the one there;
// ran: the site has run before (its term record exists), so a missing slot was dropped.
func ensureSlot(ctx context.Context, db *sql.DB, slot string, ran bool, logger *slog.Logger) error {
	var plugin, walStatus, slotDB, thisDB string
	var twoPhase bool
	err := db.QueryRowContext(ctx, `SELECT coalesce(plugin, ''), two_phase, coalesce(wal_status, ''), coalesce(database, ''), current_database()
FROM pg_replication_slots WHERE slot_name = $1`,
		slot).Scan(&plugin, &twoPhase, &walStatus, &slotDB, &thisDB)
	if err == nil {
		// Slots are the cluster's: one of this name made in another database (another
		// application's Tandem with the same site names) cannot stream this one's changes
		// (TestInstallSlotOfAnotherDatabase).
		if plugin != "" && slotDB != thisDB {
			return fmt.Errorf("replication slot %s exists in database %q, not in this one (%q): slot names are the PostgreSQL cluster's, so a site name serves one database of a cluster; give this pair other site names, or drop that slot (SELECT pg_drop_replication_slot('%s')) if nothing uses it, and run install again",
				slot, slotDB, thisDB, slot)
		}
		if plugin != "pgoutput" || !twoPhase {
			return fmt.Errorf("replication slot %s exists with plugin %q and two_phase=%v; Tandem needs a pgoutput slot with two_phase: drop it (SELECT pg_drop_replication_slot('%s')) and run install again",
				slot, plugin, twoPhase, slot)
		}
		if walStatus == "lost" {
			// Made anew only together with a copy of the tables: what it lost, the peer may lack.
			logger.Warn("replication slot was invalidated by PostgreSQL (max_slot_wal_keep_size); `tandem resync` on the master makes it anew", "slot", slot)
		}
		return nil
	}
	if err != sql.ErrNoRows {
		return fmt.Errorf("read replication slot %s: %w", slot, err)
	}
	if err := createSlotSaying(ctx, db, slot, logger); err != nil {
		return err
	}
	logger.Info("created two-phase logical replication slot", "slot", slot)
	if ran {
		logger.Warn("the replication slot was missing although this site has run before: what the dropped slot held for the peer is not in the new one; "+
			"if this site was master with its peer behind (peer_synced false), run tandem resync on it", "slot", slot)
	}
	return nil
}

// slotWaitSaid is how long Install lets the making of a slot wait before it says what it waits
// for, and again after each time it said so.
const slotWaitSaid = 5 * time.Second

// createSlotSaying is createSlot, saying what it waits for while it waits. PostgreSQL makes a
// logical slot only once every transaction in progress on the server has ended, a prepared one
// too: one left in doubt (until the resolver or an operator settles it) held install without
// end and without a word (TestInstallSlotWaitsForPrepared).
func createSlotSaying(ctx context.Context, db *sql.DB, slot string, logger *slog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- createSlot(ctx, db, slot) }()
	tick := time.NewTicker(slotWaitSaid)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			qctx, cancel := context.WithTimeout(ctx, slotWaitSaid)
			prepared, perr := queryStrings(qctx, db, `SELECT quote_literal(gid) || ' (database ' || quote_ident(database) || ', prepared ' || date_trunc('second', prepared)::text || ')'
FROM pg_prepared_xacts ORDER BY prepared`)
			open, oerr := queryStrings(qctx, db, `SELECT 'pid ' || pid || ' (database ' || coalesce(quote_ident(datname), '-') || ', user ' || coalesce(quote_ident(usename), '-')
  || ', transaction since ' || date_trunc('second', xact_start)::text || ')'
FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND query NOT ILIKE '%pg_create_logical_replication_slot%' ORDER BY xact_start`)
			cancel()
			if perr != nil || oerr != nil {
				prepared, open = nil, nil
			}
			logger.Warn("making the replication slot waits for every transaction in progress on the PostgreSQL server to end, a prepared one too: "+
				"settle those prepared (tandem resolve, or COMMIT PREPARED / ROLLBACK PREPARED) and end the others; install goes on once they have",
				"slot", slot, "prepared", prepared, "open", open)
		}
	}
}

func queryStrings(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func joinIdents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = sqlIdent(n)
	}
	return strings.Join(q, ", ")
}

// tableFactDiffs names the facts (definitions) of table t found on one database only: lf the
// local database's, pf the peer's.
func tableFactDiffs(t string, lf, pf []string) []string {
	var diffs []string
	for _, f := range lf {
		if !containsString(pf, f) {
			diffs = append(diffs, fmt.Sprintf("table %s: %s on the local database only", t, f))
		}
	}
	for _, f := range pf {
		if !containsString(lf, f) {
			diffs = append(diffs, fmt.Sprintf("table %s: %s on the peer database only", t, f))
		}
	}
	return diffs
}
