package txshim

import (
	"fmt"
	"sort"
	"strings"
)

// DDL that gives rows already in a table values each database computes for itself cannot ship
// as a statement: ALTER TABLE … ADD COLUMN with a default that is not a constant — now(),
// CURRENT_USER, random(), a serial or identity column — evaluates it on the local database
// and again on the peer when the peer runs the statement (DESIGN §5.2 ships decoded row
// changes precisely so that values are not computed twice; neither a table rewrite nor a
// "missing value" is decoded). The shim refuses such a statement when the table has rows,
// inside the client's transaction, which then rolls back (SQLSTATE 0A000), and says how to
// do it instead: add the column without the default, fill it with UPDATE (whose row changes
// ship), then SET DEFAULT.
//
// DDL that leaves a table without a primary key (statement.MayUnkey) would leave it without a
// replica identity too, and PostgreSQL refuses UPDATE and DELETE on a published table that has
// none ("does not have a replica identity and publishes updates"). DESIGN §5.2: such tables
// get REPLICA IDENTITY FULL, as Install gives the tables there when it runs (same rule: an
// application table, default identity, no primary key). The shim sets it right after the
// statement, in its transaction, and records the ALTER TABLE in tandem.ddl like any DDL, so the
// peer runs it where it stands in the change stream, right after the statement that made the
// table. Recorded, not recomputed on the peer: the peer then runs exactly what the local
// database ran, in catch-up too, and the apply needs no rule of its own that might pick other
// tables from the peer's catalog (DDL that bypassed the shim). Only the tables the statement
// left keyless are changed: those that were not keyless before it and that its transaction
// holds in ACCESS EXCLUSIVE mode (as making a table or dropping a key does) — never another
// table that happens to lack a key, such as one another session made meanwhile, whose lock the
// ALTER TABLE would wait for.

// afterDDLBeforeSQL reads, before a statement stmt that adds defaults or may leave tables
// keyless runs, what afterDDLSQL compares against: the highest column number of the ALTER
// TABLE's table (a column the statement adds gets a higher one; an ALTER … SET NOT NULL or
// ADD PRIMARY KEY rewrites a column's pg_attribute row, which is no new column) — or, when the
// lexer cannot read the table's name, the session's own columns so far (pg_attribute rows it
// can see whose xmin is its own xid or a later one, age at most 0 — another transaction's rows
// are visible only once committed, and older) — and the application tables that have no key
// and a default replica identity; with a clock literal in stmt, the definitions written before
// it (clockSeenSQL). One row of three texts; '{}' for what the statement does not need.
func afterDDLBeforeSQL(addsDefault, mayUnkey bool, stmt string) string {
	cols, keyless, seen := "'{}'", "'{}'", "'{}'"
	if hasClockLiteral(stmt) {
		seen = "(SELECT COALESCE(pg_catalog.array_agg(s.k), '{}')::pg_catalog.text FROM (" + clockSeenSQL + ") s(k))"
	}
	if table, _ := usingClauses(stmt); addsDefault && table != "" {
		cols = "(SELECT COALESCE(pg_catalog.max(a.attnum), 0)::pg_catalog.text FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(" + quoteLiteral(table) + "))"
	} else if addsDefault {
		cols = "(SELECT COALESCE(pg_catalog.array_agg(a.attrelid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) a.attnum::pg_catalog.text), '{}')::pg_catalog.text" +
			" FROM pg_catalog.pg_attribute a WHERE pg_catalog.age(a.xmin) OPERATOR(pg_catalog.<=) 0 AND a.attnum OPERATOR(pg_catalog.>) 0)"
	}
	if mayUnkey {
		keyless = "(SELECT COALESCE(pg_catalog.array_agg(c.oid), '{}')::pg_catalog.text" + keylessTablesFrom + ")"
	}
	return "SELECT " + cols + ", " + keyless + ", " + seen
}

// clockSeen gives, for the definitions the clock-literal check reads (afterDDLSQL), the key of
// each as it stands: a catalog row's letter, its OID and the place of its version (ctid: a row
// the statement writes, new or changed, gets another), or for a partition the digest of its
// bounds, which only making the partition or attaching it sets (an ALTER TABLE of the
// partitioned table rewrites its partitions' pg_class rows).
var clockSeen = map[string]string{
	"d":   `'d:' OPERATOR(pg_catalog.||) d.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) d.ctid::pg_catalog.text`,
	"c":   `'c:' OPERATOR(pg_catalog.||) c.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pg_catalog.md5(c.relpartbound::pg_catalog.text)`,
	"t":   `'t:' OPERATOR(pg_catalog.||) t.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) t.ctid::pg_catalog.text`,
	"k":   `'k:' OPERATOR(pg_catalog.||) k.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) k.ctid::pg_catalog.text`,
	"ix":  `'ix:' OPERATOR(pg_catalog.||) ix.indexrelid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) ix.ctid::pg_catalog.text`,
	"rw":  `'rw:' OPERATOR(pg_catalog.||) rw.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) rw.ctid::pg_catalog.text`,
	"pol": `'pol:' OPERATOR(pg_catalog.||) pol.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pol.ctid::pg_catalog.text`,
	"tg":  `'tg:' OPERATOR(pg_catalog.||) tg.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) tg.ctid::pg_catalog.text`,
	"pr":  `'pr:' OPERATOR(pg_catalog.||) pr.oid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pr.ctid::pg_catalog.text`,
}

// clockSeenSQL lists the keys (clockSeen) of the definitions there before a statement with a
// clock literal: those its transaction wrote, and every partition. The check leaves them out,
// for the statement fixed no moment into them: a partition for today made earlier in the
// transaction, or long before, is no clock literal of the statement's
// (TestClockWordDDLBesideDatedPartitions).
var clockSeenSQL = `SELECT ` + clockSeen["d"] + ` FROM pg_catalog.pg_attrdef d WHERE pg_catalog.age(d.xmin) OPERATOR(pg_catalog.<=) 0
    UNION ALL SELECT ` + clockSeen["c"] + ` FROM pg_catalog.pg_class c WHERE c.relispartition AND c.relpartbound IS NOT NULL
    UNION ALL SELECT ` + clockSeen["t"] + ` FROM pg_catalog.pg_type t WHERE pg_catalog.age(t.xmin) OPERATOR(pg_catalog.<=) 0 AND t.typtype OPERATOR(pg_catalog.=) 'd'
    UNION ALL SELECT ` + clockSeen["k"] + ` FROM pg_catalog.pg_constraint k WHERE pg_catalog.age(k.xmin) OPERATOR(pg_catalog.<=) 0
    UNION ALL SELECT ` + clockSeen["ix"] + ` FROM pg_catalog.pg_index ix WHERE pg_catalog.age(ix.xmin) OPERATOR(pg_catalog.<=) 0
    UNION ALL SELECT ` + clockSeen["rw"] + ` FROM pg_catalog.pg_rewrite rw WHERE pg_catalog.age(rw.xmin) OPERATOR(pg_catalog.<=) 0
    UNION ALL SELECT ` + clockSeen["pol"] + ` FROM pg_catalog.pg_policy pol WHERE pg_catalog.age(pol.xmin) OPERATOR(pg_catalog.<=) 0
    UNION ALL SELECT ` + clockSeen["tg"] + ` FROM pg_catalog.pg_trigger tg WHERE pg_catalog.age(tg.xmin) OPERATOR(pg_catalog.<=) 0
    UNION ALL SELECT ` + clockSeen["pr"] + ` FROM pg_catalog.pg_proc pr WHERE pg_catalog.age(pr.xmin) OPERATOR(pg_catalog.<=) 0 AND (pr.prosqlbody IS NOT NULL OR pr.proargdefaults IS NOT NULL)`

// keylessTablesFrom picks the application tables (install.go's appRelFilter, written for the
// client's session: operators from pg_catalog whatever its search_path) that PostgreSQL gives
// no replica identity: the default one and no primary key it can take for one — a DEFERRABLE
// key's index is not immediate, and PostgreSQL takes none such (TestDeferrableKeyReplicaIdentity);
// nor can the peer use a key of a generated column (immediateKeySQL) —, or USING INDEX of an index since dropped, which PostgreSQL takes for NOTHING
// (TestReplicaIdentityIndexDropped), or of one with a generated column, whose values PostgreSQL
// 15 does not publish, as a primary key's (TestGeneratedIndexReplicaIdentity). (REPLICA
// IDENTITY NOTHING set on purpose is left alone.) The key and the index are looked for with
// NOT EXISTS at the WHERE's top level, which PostgreSQL joins (an anti join), the pg_class
// rows read once: as a CASE of subqueries, which it prices for every pg_class row, the read
// before a DDL statement, in the client's session, was priced above jit_above_cost on a
// database of a thousand tables and JIT-compiled before each such statement
// (TestDDLKeylessReadBelowJIT). immediateKeySQL, written out: the same key.
const keylessTablesFrom = ` FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog."char"[])
      AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema,tandem,pg_toast}'::pg_catalog.name[])
      AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\_temp\_%' AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\_toast\_temp\_%'
      AND c.relreplident OPERATOR(pg_catalog.=) ANY ('{d,i}'::pg_catalog."char"[])
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid OPERATOR(pg_catalog.=) c.oid AND c.relreplident OPERATOR(pg_catalog.=) 'd'
        AND k.contype OPERATOR(pg_catalog.=) 'p' AND NOT k.condeferrable
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute g WHERE g.attrelid OPERATOR(pg_catalog.=) k.conrelid
          AND g.attnum OPERATOR(pg_catalog.=) ANY (k.conkey) AND g.attgenerated OPERATOR(pg_catalog.<>) ''))
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_index x WHERE x.indrelid OPERATOR(pg_catalog.=) c.oid AND c.relreplident OPERATOR(pg_catalog.=) 'i'
        AND x.indisreplident
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute g WHERE g.attrelid OPERATOR(pg_catalog.=) x.indrelid
          AND g.attnum OPERATOR(pg_catalog.=) ANY (x.indkey::pg_catalog.int2[]) AND g.attgenerated OPERATOR(pg_catalog.<>) ''))`

// immediateKeySQL tells whether table c has a primary key PostgreSQL can take for its replica
// identity, one not DEFERRABLE, whose updates and deletes can be found on the peer by it: a key
// with a generated column counts as none. PostgreSQL 15 does not publish generated columns,
// so such a key's values never reach the peer — an update or a delete of the table shipped
// with no key to find its row by, which the apply could not build, taken for a lost peer on
// every try (TestGeneratedKeyReplicaIdentity).
const immediateKeySQL = `EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.conrelid OPERATOR(pg_catalog.=) c.oid AND k.contype OPERATOR(pg_catalog.=) 'p' AND NOT k.condeferrable
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute g WHERE g.attrelid OPERATOR(pg_catalog.=) c.oid AND g.attnum OPERATOR(pg_catalog.=) ANY (k.conkey) AND g.attgenerated OPERATOR(pg_catalog.<>) ''))`

// replicaIdentityFor is what a table keylessTablesFrom picks is given: DEFAULT where it has a
// key PostgreSQL takes (its USING INDEX index dropped), else FULL; for a row with column keyed.
const replicaIdentityFor = `CASE WHEN r.keyed THEN 'DEFAULT' ELSE 'FULL' END`

// afterDDLSQL is what runs right after such a statement, in its transaction, given
// afterDDLBeforeSQL's row from before it (cols, keyless):
//
//   - with addsDefault, it raises 0A000 when a column the statement stmt just added (past
//     the column number in cols, or one of the session's own columns not in cols) has a default that is not immutable (a function
//     call that is not, CURRENT_TIMESTAMP and its kind, nextval; a date or time literal that
//     reads the clock; without a default of its own, its domain's) or is an identity column,
//     and its table has rows;
//   - with mayUnkey, it gives each keyless application table not in keyless REPLICA IDENTITY
//     FULL, and records that in tandem.ddl for the peer.
func afterDDLSQL(addsDefault, mayUnkey bool, stmt, cols, keyless, seen string) string {
	var b strings.Builder
	b.WriteString("DO $tandem$\nDECLARE r pg_catalog.record; has_rows boolean; q pg_catalog.text;\n  clock pg_catalog.text[]; clock_defs pg_catalog.oid[]; clock_parts pg_catalog.oid[]; clock_doms pg_catalog.oid[];\n  clock_cons pg_catalog.oid[]; clock_idx pg_catalog.oid[]; clock_rules pg_catalog.oid[];\n  clock_pols pg_catalog.oid[]; clock_trigs pg_catalog.oid[]; clock_procs pg_catalog.oid[];\nBEGIN\n")
	if hasClockLiteral(stmt) {
		// A date or time literal that reads the clock ('now', 'today', …) is turned into a
		// constant as the statement runs, each database's own moment. The defaults (a
		// column's, a domain's) and the partition bounds that hold one are those the
		// statement wrote (not among seen, clockSeenSQL) that hold a constant
		// of a type holding a date or time (a date or time type, or one made of one — an
		// array, a range or multirange, a domain, a composite type: '{now}'::timestamptz[] and
		// '[today,)'::daterange read the clock too, TestAddedColumnClockLiteralWrapped) whose
		// text, under DateStyle ISO in a subtransaction that always rolls back, holds the day
		// of the transaction's start ('now', 'today'), the next or the one before, or its time
		// of day. Not any date or time constant: the clock word may sit in another string of
		// the statement (d date DEFAULT '2020-01-01', kind text DEFAULT 'today'), and the
		// constant in a definition an earlier statement of the transaction made
		// (TestClockWordElsewhereNotRefused, TestAddedColumnClockWordElsewhereNotRefused). A
		// time of day fixed from 'today' or 'tomorrow 10:00' is the same on the peer.
		//
		// A view's query, a materialized view's and a rule's condition and actions (pg_rewrite,
		// read as pg_get_ruledef gives them) hold such a constant too: CREATE VIEW … WHERE at > 'now'
		// keeps the moment it ran (TestClockLiteralViewRefused); so do a policy's expressions,
		// a trigger's WHEN condition and a function's SQL-standard body (BEGIN ATOMIC, RETURN),
		// parsed as the statement runs (TestClockLiteralPolicyTriggerBodyRefused), and its
		// argument defaults, whatever its language (TestClockLiteralFunctionDefaultRefused).
		readText := func(alias, tree, text string) string {
			return `((` + clockSeen[alias] + `) OPERATOR(pg_catalog.=) ANY (` + quoteLiteral(seen) + `::pg_catalog.text[])) IS NOT TRUE
      AND ` + clockHeldSQL(tree, text)
		}
		read := func(alias, tree, rel string) string {
			return readText(alias, tree, `pg_catalog.pg_get_expr(`+tree+`, `+rel+`)`)
		}
		// JIT off (clockSetupSQL): the planner prices each catalog read (a regexp and a
		// recursive walk of types per row) far above jit_above_cost, and PostgreSQL then spent
		// 265-490 ms compiling each of them for a run of under a millisecond — 1.7 s a DDL statement with a clock
		// word (auto_explain, TestClockWordElsewhereNotRefused's statements). Like DateStyle, it
		// is set in the subtransaction that always rolls back: the client's own setting is back
		// once the check ends.
		b.WriteString(`  BEGIN
` + clockSetupSQL + `
    SELECT pg_catalog.array_agg(d.oid) INTO clock_defs FROM pg_catalog.pg_attrdef d
    WHERE pg_catalog.age(d.xmin) OPERATOR(pg_catalog.<=) 0 AND ` + read("d", "d.adbin", "d.adrelid") + `;
    SELECT pg_catalog.array_agg(c.oid) INTO clock_parts FROM pg_catalog.pg_class c
    WHERE pg_catalog.age(c.xmin) OPERATOR(pg_catalog.<=) 0 AND c.relispartition AND ` + read("c", "c.relpartbound", "c.oid") + `;
    SELECT pg_catalog.array_agg(t.oid) INTO clock_doms FROM pg_catalog.pg_type t
    WHERE pg_catalog.age(t.xmin) OPERATOR(pg_catalog.<=) 0 AND t.typtype OPERATOR(pg_catalog.=) 'd' AND ` + read("t", "t.typdefaultbin", "0") + `;
    SELECT pg_catalog.array_agg(k.oid) INTO clock_cons FROM pg_catalog.pg_constraint k
    WHERE pg_catalog.age(k.xmin) OPERATOR(pg_catalog.<=) 0 AND k.contype OPERATOR(pg_catalog.=) 'c' AND ` + read("k", "k.conbin", "k.conrelid") + `;
    SELECT pg_catalog.array_agg(ix.indexrelid) INTO clock_idx FROM pg_catalog.pg_index ix
    WHERE pg_catalog.age(ix.xmin) OPERATOR(pg_catalog.<=) 0 AND (` + read("ix", "ix.indpred", "ix.indrelid") + ` OR ` + read("ix", "ix.indexprs", "ix.indrelid") + `);
    SELECT pg_catalog.array_agg(rw.oid) INTO clock_rules FROM pg_catalog.pg_rewrite rw
    WHERE pg_catalog.age(rw.xmin) OPERATOR(pg_catalog.<=) 0 AND ` + readText("rw", "(rw.ev_qual::pg_catalog.text OPERATOR(pg_catalog.||) rw.ev_action::pg_catalog.text)", "pg_catalog.pg_get_ruledef(rw.oid)") + `;
    SELECT pg_catalog.array_agg(pol.oid) INTO clock_pols FROM pg_catalog.pg_policy pol
    WHERE pg_catalog.age(pol.xmin) OPERATOR(pg_catalog.<=) 0 AND ` + readText("pol", "(COALESCE(pol.polqual::pg_catalog.text, '') OPERATOR(pg_catalog.||) COALESCE(pol.polwithcheck::pg_catalog.text, ''))",
			"(COALESCE(pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), '') OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) COALESCE(pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid), ''))") + `;
    SELECT pg_catalog.array_agg(tg.oid) INTO clock_trigs FROM pg_catalog.pg_trigger tg
    WHERE pg_catalog.age(tg.xmin) OPERATOR(pg_catalog.<=) 0 AND tg.tgqual IS NOT NULL AND ` + readText("tg", "tg.tgqual", "pg_catalog.pg_get_triggerdef(tg.oid)") + `;
    SELECT pg_catalog.array_agg(pr.oid) INTO clock_procs FROM pg_catalog.pg_proc pr
    WHERE pg_catalog.age(pr.xmin) OPERATOR(pg_catalog.<=) 0 AND (pr.prosqlbody IS NOT NULL OR pr.proargdefaults IS NOT NULL)
      AND pr.prokind OPERATOR(pg_catalog.<>) 'a' AND ` + readText("pr", "(COALESCE(pr.prosqlbody::pg_catalog.text, '') OPERATOR(pg_catalog.||) COALESCE(pr.proargdefaults::pg_catalog.text, ''))", "pg_catalog.pg_get_functiondef(pr.oid)") + `;
    RAISE EXCEPTION USING ERRCODE = 'TDM97';
  EXCEPTION WHEN SQLSTATE 'TDM97' THEN NULL;
  END;
`)
	}
	if addsDefault {
		// A default that holds a clock literal's moment counts as not constant (see above), and
		// so does one that converts text by input function ('now'::text::timestamptz, kept as
		// a CoerceViaIO to run later), when the statement has such a literal.
		clock := ""
		if hasClockLiteral(stmt) {
			clock = ` OR d.adbin::pg_catalog.text OPERATOR(pg_catalog.~) '\{COERCEVIAIO '
        OR d.oid OPERATOR(pg_catalog.=) ANY (clock_defs)`
		}
		// The columns the statement added (see afterDDLBeforeSQL).
		added := `pg_catalog.age(a.xmin) OPERATOR(pg_catalog.<=) 0 AND a.attnum OPERATOR(pg_catalog.>) 0
      AND NOT (a.attrelid::pg_catalog.text OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) a.attnum::pg_catalog.text) OPERATOR(pg_catalog.=) ANY (` + quoteLiteral(cols) + `::pg_catalog.text[])`
		if table, _ := usingClauses(stmt); table != "" {
			added = `a.attrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(` + quoteLiteral(table) + `) AND a.attnum OPERATOR(pg_catalog.>) ` + quoteLiteral(cols) + `::pg_catalog.int4`
		}
		// A column added and given another default in the same statement (ADD COLUMN c …
		// DEFAULT random(), ALTER COLUMN c SET DEFAULT 0): the rows there got the first one,
		// which the default left shows nothing of (TestAddedColumnDefaultResetInStatement).
		// One the statement adds without a default of its own (ADD COLUMN c int, ALTER
		// COLUMN c SET DEFAULT 5) got NULL there, unless its type is a domain, whose default
		// it got (TestAddedColumnPlainThenDefaultSet).
		reset := "false"
		// A column added with a constant written out gave the rows there that constant on
		// both databases, whatever default an ALTER … SET DEFAULT of the same statement left
		// it (ADD c timestamptz DEFAULT '2020-01-01', ALTER c SET DEFAULT now()): the default
		// left is for rows inserted later, whose row changes ship
		// (TestAddedConstantThenClockDefaultNotRefused).
		var constLits []string
		for _, n := range constAddedColumns(stmt) {
			constLits = append(constLits, quoteLiteral(n))
		}
		if len(constLits) > 0 {
			added += `
      AND NOT a.attname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (ARRAY[` + strings.Join(constLits, ", ") + `]::pg_catalog.text[])`
		}
		if names, all := defaultSetColumns(stmt); all {
			reset = "true"
		} else if len(names) > 0 {
			plain, constant := map[string]bool{}, map[string]bool{}
			for _, n := range plainAddedColumns(stmt) {
				plain[n] = true
			}
			for _, n := range constAddedColumns(stmt) {
				constant[n] = true
			}
			var lits, plainLits []string
			for _, n := range names {
				if constant[n] {
					// Added with a constant written out: the rows there got it on both
					// databases (TestAddedColumnConstantThenDefaultSet).
					continue
				}
				if plain[n] {
					plainLits = append(plainLits, quoteLiteral(n))
				} else {
					lits = append(lits, quoteLiteral(n))
				}
			}
			var conds []string
			if len(lits) > 0 {
				conds = append(conds, `a.attname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (ARRAY[`+strings.Join(lits, ", ")+`]::pg_catalog.text[])`)
			}
			if len(plainLits) > 0 {
				conds = append(conds, `(a.attname::pg_catalog.text OPERATOR(pg_catalog.=) ANY (ARRAY[`+strings.Join(plainLits, ", ")+`]::pg_catalog.text[])
        AND EXISTS (SELECT FROM pg_catalog.pg_type ty WHERE ty.oid OPERATOR(pg_catalog.=) a.atttypid AND ty.typtype OPERATOR(pg_catalog.=) 'd'))`)
			}
			if len(conds) > 0 {
				reset = "(" + strings.Join(conds, " OR ") + ")"
			}
		}
		b.WriteString(`  FOR r IN SELECT a.attrelid::pg_catalog.regclass AS rel, a.attname, ` + reset + ` AS reset
    FROM pg_catalog.pg_attribute a
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid AND d.adnum OPERATOR(pg_catalog.=) a.attnum
    WHERE ` + added + ` AND NOT a.attisdropped
      -- A temporary table's DDL does not reach the peer (ddlGuardSQL): nothing to compute twice.
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_class t WHERE t.oid OPERATOR(pg_catalog.=) a.attrelid AND t.relpersistence OPERATOR(pg_catalog.=) 't')
      AND a.attgenerated OPERATOR(pg_catalog.=) ''
      AND (a.attidentity OPERATOR(pg_catalog.<>) '' OR ` + reset + `
        OR ` + notConstantSQL("d.adbin") + clock + `
        -- No default of its own: the rows there get its domain's, the nearest along the
        -- domains it is made of.
        OR (d.oid IS NULL AND EXISTS (WITH RECURSIVE dom AS (
            SELECT t.typdefaultbin AS def, t.typbasetype AS base FROM pg_catalog.pg_type t
            WHERE t.oid OPERATOR(pg_catalog.=) a.atttypid AND t.typtype OPERATOR(pg_catalog.=) 'd'
            UNION ALL
            SELECT t.typdefaultbin, t.typbasetype FROM pg_catalog.pg_type t JOIN dom ON t.oid OPERATOR(pg_catalog.=) dom.base
            WHERE dom.def IS NULL AND t.typtype OPERATOR(pg_catalog.=) 'd')
          SELECT FROM dom WHERE ` + notConstantSQL("dom.def") + `)))
  LOOP
` + hasRowsSQL("r.rel", "    ") + `    IF has_rows AND r.reset THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = pg_catalog.format('tandem: column %I of %s is added and given another default in one statement: the rows already there would get the default it is added with, which each database computes for itself unless it is a constant', r.attname, r.rel),
        HINT = 'Add the column in one statement (without a default that is not a constant) and set its default in another.';
    ELSIF has_rows THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = pg_catalog.format('tandem: column %I of %s would get, in the rows already there, a value each database computes for itself (its default is not a constant)', r.attname, r.rel),
        HINT = 'Add the column without the default, fill it with UPDATE (its row changes reach both databases), then ALTER COLUMN ... SET DEFAULT.';
    END IF;
  END LOOP;
`)
	}
	if hasClockLiteral(stmt) {
		// A clock literal fixed into a definition the statement made — a column's default, a
		// partition's bounds, a domain's default, a CHECK constraint (a table's or a domain's),
		// an index's predicate or expressions (TestClockLiteralCheckAndIndexRefused) — is each
		// database's own moment: the
		// definitions would differ (TestClockLiteralDefinitionsRefused). This runs for any DDL
		// with such a literal, not only DDL that adds a column or may leave a table keyless:
		// ALTER … SET DEFAULT 'now' and CREATE DOMAIN … DEFAULT 'now' are neither
		// (TestClockLiteralSetDefaultRefused). The rows of a table with rows are checked above.
		b.WriteString(`  FOR r IN SELECT d.adrelid::pg_catalog.regclass AS rel, a.attname
    FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.adrelid AND a.attnum OPERATOR(pg_catalog.=) d.adnum
    JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) d.adrelid
    WHERE d.oid OPERATOR(pg_catalog.=) ANY (clock_defs) AND t.relpersistence OPERATOR(pg_catalog.<>) 't'
    LIMIT 1
  LOOP
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: the default of column %I of %s would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself', r.attname, r.rel),
      HINT = 'Write the date or time itself, or a function that reads the clock when a row is inserted (now(), CURRENT_DATE).';
  END LOOP;
  FOR r IN SELECT c.oid::pg_catalog.regclass AS rel FROM pg_catalog.pg_class c
    WHERE c.oid OPERATOR(pg_catalog.=) ANY (clock_parts) AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
    LIMIT 1
  LOOP
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: the bounds of partition %s would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself', r.rel),
      HINT = 'Write the date or time itself.';
  END LOOP;
  FOR r IN SELECT t.oid::pg_catalog.regtype AS typ FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
    WHERE t.oid OPERATOR(pg_catalog.=) ANY (clock_doms) AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\_temp\_%'
    LIMIT 1
  LOOP
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: the default of domain %s would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself', r.typ),
      HINT = 'Write the date or time itself, or a function that reads the clock when a row is inserted (now(), CURRENT_DATE).';
  END LOOP;
  FOR r IN SELECT k.conname, k.conrelid::pg_catalog.regclass AS rel, t.oid::pg_catalog.regtype AS typ FROM pg_catalog.pg_constraint k
    LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) k.conrelid
    LEFT JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) k.contypid
    LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.connamespace
    WHERE k.oid OPERATOR(pg_catalog.=) ANY (clock_cons) AND c.relpersistence IS DISTINCT FROM 't'
      AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\_temp\_%'
    LIMIT 1
  LOOP
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: constraint %I of %s would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself', r.conname, COALESCE(r.rel::pg_catalog.text, r.typ::pg_catalog.text)),
      HINT = 'Write the date or time itself.';
  END LOOP;
  FOR r IN SELECT x.indexrelid::pg_catalog.regclass AS idx FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) x.indexrelid
    WHERE x.indexrelid OPERATOR(pg_catalog.=) ANY (clock_idx) AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
    LIMIT 1
  LOOP
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: index %s would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself', r.idx),
      HINT = 'Write the date or time itself.';
  END LOOP;
  FOR r IN SELECT rw.rulename, rw.ev_class::pg_catalog.regclass AS rel, c.relkind FROM pg_catalog.pg_rewrite rw
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rw.ev_class
    WHERE rw.oid OPERATOR(pg_catalog.=) ANY (clock_rules) AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
    LIMIT 1
  LOOP
    IF r.rulename OPERATOR(pg_catalog.=) '_RETURN' AND r.relkind OPERATOR(pg_catalog.=) ANY ('{v,m}'::pg_catalog."char"[]) THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = pg_catalog.format('tandem: the query of view %s would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself', r.rel),
        HINT = 'Write the date or time itself, or a function that reads the clock when the view is read (now(), CURRENT_DATE).';
    END IF;
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: rule %I on %s would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself', r.rulename, r.rel),
      HINT = 'Write the date or time itself, or a function that reads the clock when the rule fires (now(), CURRENT_DATE).';
  END LOOP;
  FOR r IN SELECT pg_catalog.format('policy %I on %s', pol.polname, c.oid::pg_catalog.regclass) AS what FROM pg_catalog.pg_policy pol
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pol.polrelid
      WHERE pol.oid OPERATOR(pg_catalog.=) ANY (clock_pols) AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
    UNION ALL SELECT pg_catalog.format('the WHEN condition of trigger %I on %s', tg.tgname, c.oid::pg_catalog.regclass) FROM pg_catalog.pg_trigger tg
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tg.tgrelid
      WHERE tg.oid OPERATOR(pg_catalog.=) ANY (clock_trigs) AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
    UNION ALL SELECT pg_catalog.format('the body or an argument default of function %s', pr.oid::pg_catalog.regprocedure) FROM pg_catalog.pg_proc pr
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) pr.pronamespace
      WHERE pr.oid OPERATOR(pg_catalog.=) ANY (clock_procs) AND n.nspname::pg_catalog.text OPERATOR(pg_catalog.!~~) 'pg\_temp\_%'
    LIMIT 1
  LOOP
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: %s would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself', r.what),
      HINT = 'Write the date or time itself, or a function that reads the clock when it runs (now(), CURRENT_DATE).';
  END LOOP;
`)
	}
	if mayUnkey {
		// Schema-qualified, so that the peer finds the same table whatever the row's
		// search_path; recorded before it runs here, as the shim records any DDL.
		// A DROP … CASCADE may drop the key of a table the session's user does not own, which
		// it then cannot ALTER: the statement fails, saying why, rather than leave a table on
		// which UPDATE and DELETE fail. Recorded under the session's user, as the statement is: a
		// role the client set has no rights on tandem.ddl (TestSetRoleUnkeyDDL).
		b.WriteString(`  FOR r IN SELECT n.nspname, c.relname, c.relowner, ` + immediateKeySQL + ` AS keyed` + keylessTablesFrom + `
      AND c.oid OPERATOR(pg_catalog.<>) ALL (` + quoteLiteral(keyless) + `::pg_catalog.oid[])
      AND EXISTS (SELECT FROM pg_catalog.pg_locks l WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'
        AND l.relation OPERATOR(pg_catalog.=) c.oid AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
        AND l.mode OPERATOR(pg_catalog.=) 'AccessExclusiveLock' AND l.granted)
    ORDER BY n.nspname, c.relname
  LOOP
    IF NOT pg_catalog.pg_has_role(r.relowner, 'USAGE') THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('tandem: table %I.%I would be left without a primary key, so without a replica identity, and only its owner can give it REPLICA IDENTITY FULL', r.nspname, r.relname),
        HINT = 'Have its owner run ALTER TABLE ... REPLICA IDENTITY FULL on it through Tandem first.';
    END IF;
    q := pg_catalog.format('ALTER TABLE %I.%I REPLICA IDENTITY %s', r.nspname, r.relname, ` + replicaIdentityFor + `);
    PERFORM ` + strings.TrimPrefix(asSessionUserSQL, "SELECT ") + `;
    INSERT INTO tandem.ddl (stmt) VALUES (q);
    PERFORM ` + strings.TrimPrefix(roleBackSQL, "SELECT ") + `;
    EXECUTE q;
  END LOOP;
`)
		// With the publication publishing through partition roots, a partition the statement
		// made, attached or gave another replica identity (or whose root it changed or
		// detached, making a partitioned table the partition's root) must
		// keep every column of its root's identity in its own (install.go
		// uncoveredPartitionsSQL): else the peer finds no row for its updates and deletes.
		b.WriteString(`  FOR r IN SELECT c.oid::pg_catalog.regclass AS part, rt.oid::pg_catalog.regclass AS root
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_class rt ON rt.oid OPERATOR(pg_catalog.=) pg_catalog.pg_partition_root(c.oid)
    WHERE c.relispartition AND c.relkind OPERATOR(pg_catalog.=) 'r'
      AND EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname OPERATOR(pg_catalog.=) '` + PublicationName + `' AND pubviaroot)
      AND EXISTS (SELECT FROM pg_catalog.pg_locks l WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'
        AND l.relation OPERATOR(pg_catalog.=) ANY (ARRAY[c.oid, rt.oid]) AND l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()
        AND l.mode OPERATOR(pg_catalog.=) 'AccessExclusiveLock' AND l.granted)
      AND ` + uncoveredSQL("c", "rt") + `
    LIMIT 1
  LOOP
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: the replica identity of partition %s would lack columns of its root %s''s, and publication ` + PublicationName + ` publishes through partition roots (publish_via_partition_root): the peer could not find the rows its updates and deletes change', r.part, r.root),
      HINT = 'Give the table REPLICA IDENTITY FULL through Tandem before it becomes a partition (or keep FULL on the partition), or ALTER PUBLICATION ` + PublicationName + ` SET (publish_via_partition_root = false) on both databases.';
  END LOOP;
`)
	}
	b.WriteString(generatedSettingsSQL()) // generatedcheck.go
	b.WriteString("END\n$tandem$")
	return b.String()
}

// clockSetupSQL starts the always-rolled-back subtransaction of a clock-literal check: DateStyle
// ISO and JIT off in it, and clock the texts (clockHeldSQL) of the transaction's moment.
const clockSetupSQL = `    PERFORM pg_catalog.set_config('datestyle', 'ISO', true);
    PERFORM pg_catalog.set_config('jit', 'off', true);
    clock := ARRAY['today'::pg_catalog.date::pg_catalog.text, 'tomorrow'::pg_catalog.date::pg_catalog.text,
      'yesterday'::pg_catalog.date::pg_catalog.text, 'now'::pg_catalog.time::pg_catalog.text];`

// clockHeldSQL is the condition that the expression tree (a pg_node_tree, or its text), whose
// text as SQL is text, holds a constant of a type holding a date or time whose text holds one
// of clock (clockSetupSQL): the moment a clock literal was read in this transaction.
func clockHeldSQL(tree, text string) string {
	return `EXISTS (SELECT FROM pg_catalog.regexp_matches(` + tree + `::pg_catalog.text, ':consttype (\d+) ', 'g') m
        WHERE ` + holdsTimeSQL("m[1]::pg_catalog.oid") + `)
      AND EXISTS (SELECT FROM pg_catalog.unnest(clock) x WHERE pg_catalog.strpos(` + text + `, x) OPERATOR(pg_catalog.>) 0)`
}

// CREATE INDEX CONCURRENTLY runs outside a transaction block and is recorded once it ran
// (session.lastPartShipAfter): afterDDLSQL's check, which reads what a statement did in its
// transaction, never ran for it, and WHERE at > 'now' left each database its own moment in the
// index (TestClockLiteralConcurrentIndexRefused). Building the index to check it would cost
// what the client runs CONCURRENTLY to spread, so before it runs the shim makes, in a
// transaction that always rolls back, a temporary table LIKE the index's table and the index
// on it, and checks that index's predicate and expressions as afterDDLSQL does — as the
// session's user when the client's role may not make temporary tables.

// cicClockCheckSQL is the DO block that refuses text, a CREATE INDEX as recorded without
// CONCURRENTLY, when the index it makes would hold a clock literal's moment; "" when text has
// no clock literal or the lexer does not read the index's table.
func cicClockCheckSQL(text string) string {
	if !hasClockLiteral(text) {
		return ""
	}
	st := sigTokens(text)
	toks, word, punct := st.toks, st.word, st.punct
	if !word(0, "CREATE") {
		return ""
	}
	on := -1
	for i := 1; i < len(toks) && !punct(i, '('); i++ {
		if word(i, "ON") {
			on = i
			break
		}
	}
	if on < 0 || !(word(1, "INDEX") || (word(1, "UNIQUE") && word(2, "INDEX"))) {
		return ""
	}
	i := on + 1
	if word(i, "ONLY") {
		i++
	}
	from := i
	for i < len(toks) && (toks[i].kind == tokWord || toks[i].kind == tokQuoted) && !punct(i+1, '&') {
		if i++; !punct(i, '.') {
			break
		}
		i++
	}
	if i == from || punct(i-1, '.') || !(punct(i, '(') || word(i, "USING")) {
		return ""
	}
	table := text[toks[from].start:toks[i-1].end]
	probe := text[:toks[on+1].start] + "pg_temp.tandem_clock_probe " + text[toks[i].start:]
	body := `
DECLARE clock pg_catalog.text[]; msg pg_catalog.text;
BEGIN
  BEGIN
` + clockSetupSQL + `
    -- A temporary table's DDL does not reach the peer (ddlGuardSQL): nothing to read twice
    -- (TestClockLiteralConcurrentIndexTempTableNotRefused).
    IF EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(` + quoteLiteral(table) + `)
        AND c.relpersistence OPERATOR(pg_catalog.=) 't') THEN
      RAISE EXCEPTION USING ERRCODE = 'TDM97';
    END IF;
    -- A role without the TEMPORARY privilege on the database may not make the probe's table:
    -- the session's user makes it, under the search path the role resolves
    -- (TestClockWordConcurrentIndexRoleWithoutTemp).
    IF NOT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY') THEN
      PERFORM pg_catalog.set_config('search_path', (SELECT COALESCE(pg_catalog.string_agg(pg_catalog.quote_ident(s.n), ', ' ORDER BY s.o), '')
        FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY s(n, o)), true);
      PERFORM ` + strings.TrimPrefix(asSessionUserSQL, "SELECT ") + `;
    END IF;
    EXECUTE ` + quoteLiteral("CREATE TEMP TABLE tandem_clock_probe (LIKE "+table+")") + `;
    EXECUTE ` + quoteLiteral(probe) + `;
    IF EXISTS (SELECT FROM pg_catalog.pg_index ix
        WHERE ix.indrelid OPERATOR(pg_catalog.=) 'pg_temp.tandem_clock_probe'::pg_catalog.regclass
          AND (` + clockHeldSQL("ix.indpred", "pg_catalog.pg_get_expr(ix.indpred, ix.indrelid)") + `
            OR ` + clockHeldSQL("ix.indexprs", "pg_catalog.pg_get_expr(ix.indexprs, ix.indrelid)") + `)) THEN
      RAISE EXCEPTION USING ERRCODE = 'TDM95';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'TDM97';
  EXCEPTION
    WHEN SQLSTATE 'TDM97' THEN NULL;
    WHEN SQLSTATE 'TDM95' THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = 'tandem: the index would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read, which the peer reads for itself',
        HINT = 'Write the date or time itself.';
    WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = pg_catalog.format('tandem: whether the index would hold the moment a date or time literal that reads the clock (''now'', ''today'', …) was read could not be told (%s): refused', msg),
        HINT = 'Write the date or time itself.';
  END;
END
`
	tag := "$tandem$"
	for strings.Contains(body, tag[:len(tag)-1]) {
		tag = tag[:len(tag)-1] + "_$"
	}
	return "DO " + tag + body + tag
}

// defaultSetColumns reads an ALTER TABLE statement: the names (folded) of the columns an
// ALTER [COLUMN] name SET DEFAULT action among its comma-separated actions names; all when one
// such action names its column in a way it does not read (U&"…"), or when it reads no table's
// name in a statement that says SET DEFAULT.
func defaultSetColumns(stmt string) (names []string, all bool) {
	st := sigTokens(stmt)
	toks, word, punct := st.toks, st.word, st.punct
	table, i := alterTableName(st)
	if table == "" {
		for j := range toks {
			if word(j, "SET") && word(j+1, "DEFAULT") {
				return nil, true
			}
		}
		return nil, false
	}
	set := false
	st.actions(i, func(j int) {
		if word(j, "SET") && word(j+1, "DEFAULT") {
			set = true
		}
	}, func(first, _ int) {
		defer func() { set = false }()
		if !set || !word(first, "ALTER") {
			return
		}
		j := first + 1
		if word(j, "COLUMN") {
			j++
		}
		if j < len(toks) && (toks[j].kind == tokWord || toks[j].kind == tokQuoted) && !punct(j+1, '&') {
			names = append(names, string(foldName(stmt[toks[j].start:toks[j].end], nil)))
		} else {
			all = true
		}
	})
	return names, all
}

// plainAddedColumns reads an ALTER TABLE statement: the names (folded) of the columns its ADD
// [COLUMN] [IF NOT EXISTS] name actions add with no default of their own — no DEFAULT or
// GENERATED word in the action, and no serial type (which is a default, nextval). A name
// written U&"…" is left out.
func plainAddedColumns(stmt string) []string {
	st := sigTokens(stmt)
	toks, word := st.toks, st.word
	table, i := alterTableName(st)
	if table == "" {
		return nil
	}
	var names []string
	defaulted := false
	st.actions(i, func(j int) {
		switch {
		case word(j, "DEFAULT") || word(j, "GENERATED"):
			defaulted = true
		case toks[j].kind == tokWord || toks[j].kind == tokQuoted:
			switch string(foldName(stmt[toks[j].start:toks[j].end], nil)) {
			case "smallserial", "serial", "bigserial", "serial2", "serial4", "serial8":
				defaulted = true
			}
		}
	}, func(first, end int) {
		defer func() { defaulted = false }()
		if j := st.addedColumn(first, end); j >= 0 && !defaulted {
			names = append(names, string(foldName(stmt[toks[j].start:toks[j].end], nil)))
		}
	})
	return names
}

// constAddedColumns reads an ALTER TABLE statement: the names (folded) of the columns its ADD
// [COLUMN] [IF NOT EXISTS] name actions add with a DEFAULT that is a constant written out
// (writtenConstant), of no serial type and not GENERATED. A name written U&"…" is left out.
func constAddedColumns(stmt string) []string {
	st := sigTokens(stmt)
	toks, word, punct := st.toks, st.word, st.punct
	table, i := alterTableName(st)
	if table == "" {
		return nil
	}
	var names []string
	st.actions(i, func(int) {}, func(first, end int) {
		j := st.addedColumn(first, end)
		if j < 0 {
			return
		}
		name := string(foldName(stmt[toks[j].start:toks[j].end], nil))
		depth := 0
		for k := j + 1; k < end; k++ {
			switch {
			case punct(k, '(') || punct(k, '['):
				depth++
			case punct(k, ')') || punct(k, ']'):
				depth--
			case depth != 0:
			case word(k, "GENERATED"):
				return
			case word(k, "DEFAULT"):
				if writtenConstant(st, k+1, end) {
					names = append(names, name)
				}
				return
			case toks[k].kind == tokWord || toks[k].kind == tokQuoted:
				switch string(foldName(stmt[toks[k].start:toks[k].end], nil)) {
				case "smallserial", "serial", "bigserial", "serial2", "serial4", "serial8":
					return
				}
			}
		}
	})
	return names
}

// writtenConstant tells whether tokens from..end-1 of st start with a constant written out: a
// number, a string that reads no clock ('now', 'today', … — each database's own moment once
// it is cast to a date or time type), NULL, TRUE or FALSE, signed, in parentheses, cast with
// :: — up to the end or a column constraint (NOT NULL, CHECK, …). Anything else, an operator
// or a function call, is not taken for one. A cast right after a string or NULL is the type's
// input, to any type; any other runs a cast's function, which a user's may make volatile (a
// CREATE CAST … WITH FUNCTION): taken only to a built-in type (builtinCastTypes,
// TestAddedColumnConstantCastVolatile).
func writtenConstant(st sigToks, from, end int) bool {
	toks, word, punct := st.toks, st.word, st.punct
	n := 0
	for k := from; k < end; k++ {
		text := st.stmt[toks[k].start:toks[k].end]
		switch {
		case toks[k].kind == tokString:
			if hasClockLiteral(text) {
				return false
			}
		case punct(k, ':') && punct(k+1, ':'):
			// A cast: the type's name, words and what a modifier may hold.
			input := k > from && (toks[k-1].kind == tokString || word(k-1, "NULL"))
			k += 2
			var name []string
			for k < end && (toks[k].kind == tokWord || toks[k].kind == tokQuoted || punct(k, '.') || punct(k, '[') || punct(k, ']')) {
				if constraintWord(st, k) {
					break
				}
				if toks[k].kind != tokByte {
					name = append(name, string(foldName(st.stmt[toks[k].start:toks[k].end], nil)))
				}
				k++
			}
			k--
			if !input {
				if len(name) > 1 && name[0] == "pg_catalog" {
					name = name[1:]
				}
				if !builtinCastTypes[strings.Join(name, " ")] {
					return false
				}
			}
		case toks[k].kind == tokByte && strings.IndexByte("0123456789.+-(),", text[0]) >= 0:
		case n == 0 && (word(k, "NULL") || word(k, "TRUE") || word(k, "FALSE")):
		case n > 0 && constraintWord(st, k):
			return true
		default:
			return false
		}
		n++
	}
	return n > 0
}

// constraintWord tells whether token k of st starts a column constraint (or COLLATE) after a
// default.
func constraintWord(st sigToks, k int) bool {
	for _, w := range []string{"NOT", "NULL", "CONSTRAINT", "CHECK", "UNIQUE", "PRIMARY", "REFERENCES", "COLLATE", "DEFERRABLE", "INITIALLY"} {
		if st.word(k, w) {
			return true
		}
	}
	return false
}

// builtinCastTypes are the names (folded, words joined by a space) of the built-in types whose
// casts from a number or a built-in type writtenConstant takes: no user may change those.
var builtinCastTypes = map[string]bool{
	"smallint": true, "int2": true, "integer": true, "int": true, "int4": true, "bigint": true, "int8": true,
	"numeric": true, "decimal": true, "real": true, "float4": true, "float8": true, "double precision": true,
	"float": true, "text": true, "varchar": true, "character varying": true, "char": true, "character": true,
	"bpchar": true, "boolean": true, "bool": true, "money": true, "oid": true,
}

// hasRowsSQL is PL/pgSQL that sets has_rows to whether the table rel (a regclass expression)
// has rows, each line indented by indent. It reads the table under row_security = off: a
// row-level security policy that applies to the client's role (on a table whose owner set
// FORCE ROW LEVEL SECURITY, or one the role does not own) hides rows that the statement checked
// rewrites all the same, and the table looked empty (TestAddedColumnRowsHiddenByPolicy).
// PostgreSQL refuses a query that a policy would affect under it (42501), as it does one on a
// table the role may not read: either is taken for rows — unless no file the query would read
// (the table's, or one of a table below it, partition or child) has a page: such a table has
// no row, and an owner under FORCE ROW LEVEL SECURITY altering an empty table (a fresh
// deployment's migrations) was refused as if it had some (TestAddedColumnEmptyTableUnderPolicy).
// A table of another kind (a foreign table) is taken for one with rows. The setting is taken
// back with the subtransaction, which always rolls back (PL/pgSQL variables keep their values).
func hasRowsSQL(rel, indent string) string {
	lines := []string{
		"BEGIN",
		"  PERFORM pg_catalog.set_config('row_security', 'off', true);",
		"  EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s)', " + rel + ") INTO has_rows;",
		"  RAISE EXCEPTION USING ERRCODE = 'TDM97';",
		"EXCEPTION",
		"  WHEN SQLSTATE 'TDM97' THEN NULL;",
		"  WHEN insufficient_privilege THEN",
		"    has_rows := EXISTS (WITH RECURSIVE tree(oid) AS (SELECT (" + rel + ")::pg_catalog.oid",
		"        UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.oid)",
		"      SELECT FROM tree JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tree.oid",
		"      WHERE c.relkind OPERATOR(pg_catalog.<>) ALL ('{r,p}'::pg_catalog.\"char\"[])",
		"        OR (c.relkind OPERATOR(pg_catalog.=) 'r' AND pg_catalog.pg_relation_size(c.oid) OPERATOR(pg_catalog.>) 0));",
		"END;",
	}
	return indent + strings.Join(lines, "\n"+indent) + "\n"
}

// notConstantSQL is the condition that the expression tree (a pg_node_tree) is not a constant
// to PostgreSQL: CURRENT_TIMESTAMP and its kind, nextval, or a call of a function or an
// operator that is not immutable. NULL (false) for a NULL tree.
func notConstantSQL(tree string) string {
	return `(` + tree + `::pg_catalog.text OPERATOR(pg_catalog.~) '\{(SQLVALUEFUNCTION|NEXTVALUEEXPR)'
        OR EXISTS (SELECT FROM pg_catalog.regexp_matches(` + tree + `::pg_catalog.text, ':(?:funcid|opfuncid) (\d+)', 'g') m
          JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) m[1]::pg_catalog.oid WHERE p.provolatile OPERATOR(pg_catalog.<>) 'i'))`
}

// holdsTimeSQL is the condition that the type typ (an oid) is a date or time type (date,
// time, timetz, timestamp, timestamptz), or is made of one (holdsTypeSQL).
func holdsTimeSQL(typ string) string {
	return holdsTypeSQL(typ, `'{1082,1083,1114,1184,1266}'`)
}

// holdsTypeSQL is the condition that the type typ (an oid) is one of oids (an oid[] literal) or
// is made of one: an array's element, a domain's base type, a range's or multirange's subtype,
// a composite type's attribute, at any depth.
func holdsTypeSQL(typ, oids string) string {
	return `EXISTS (WITH RECURSIVE ty(oid) AS (
            SELECT ` + typ + `
            UNION
            SELECT x.oid FROM ty JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) ty.oid
            CROSS JOIN LATERAL (
              SELECT t.typelem WHERE t.typelem OPERATOR(pg_catalog.<>) 0
              UNION ALL SELECT t.typbasetype WHERE t.typbasetype OPERATOR(pg_catalog.<>) 0
              UNION ALL SELECT rng.rngsubtype FROM pg_catalog.pg_range rng
                WHERE rng.rngtypid OPERATOR(pg_catalog.=) t.oid OR rng.rngmultitypid OPERATOR(pg_catalog.=) t.oid
              UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
                WHERE a.attrelid OPERATOR(pg_catalog.=) t.typrelid AND t.typrelid OPERATOR(pg_catalog.<>) 0
                  AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped) x(oid))
          SELECT FROM ty WHERE ty.oid OPERATOR(pg_catalog.=) ANY (` + oids + `::pg_catalog.oid[]))`
}

// clockWords are the special date and time inputs that read the clock: PostgreSQL turns each
// into the moment (or the day) it reads it.
var clockWords = []string{"now", "today", "tomorrow", "yesterday"}

// hasClockLiteral reports whether stmt holds a string literal with one of clockWords as a word
// of its own ('now', ' Today ', 'tomorrow 10:00').
func hasClockLiteral(stmt string) bool {
	found := false
	tokens(stmt, 0, len(stmt), func(k tokKind, s, e int) bool {
		if k != tokString {
			return true
		}
		words := strings.FieldsFunc(strings.ToLower(stmt[s:e]), func(r rune) bool { return r < 'a' || r > 'z' })
		for _, w := range words {
			for _, c := range clockWords {
				if w == c {
					found = true
					return false
				}
			}
		}
		return true
	})
	return found
}

// ALTER TABLE … ALTER COLUMN … TYPE … USING expr rewrites the rows there with expr, on the
// local database and again on the peer when it runs the statement; the rewrite is not decoded.
// An expression that is not immutable — random(), clock_timestamp(), now(), gen_random_uuid(),
// nextval(), a cast that depends on a setting — gives each database values of its own, so the
// shim refuses it (0A000) on a table that has rows, before it runs.
//
// PostgreSQL judges the expression, not the shim: it refuses a function that is not immutable
// in an index expression (42P17) while transforming it, before it looks up the index's
// operator class. So, in a subtransaction that always rolls back, the shim asks for an index
// on the expression with an operator class that does not exist: "does not exist" means
// PostgreSQL found the expression immutable, and no index is ever built. A role that may not
// create in the table's schema (42501; the owner of a table in PostgreSQL 15's public schema)
// has it judged as a stored generated column's instead, which only the table's owner may add,
// as the statement needs: ROW(expr) into an int4 column, refused (42804) once PostgreSQL found
// the expression immutable (42P17 before, "generation expression is not immutable"), so that
// no rewrite ever starts; the generated columns it names are read there as their expressions
// (a generated column may not read another). Any other error of either probe leaves the
// expression unjudged, and the statement is refused. The table's name and
// the expressions are read from the statement by the lexer (usingClauses); an expression or a
// name that PostgreSQL cannot take there is left to the statement itself to report. The table
// is locked as the statement would lock it first, so that the check and the statement take
// their locks in one step (two sessions upgrading a weaker lock would deadlock).
//
// An expression that reads a system column (xmin, xmax, cmin, cmax, ctid, tableoid) is
// immutable to PostgreSQL, yet its values differ between the databases: the lexer finds those
// (readsSystemColumn) and the shim refuses them too, on a table with rows; so are date or time
// literals that read the clock ('now'), which PostgreSQL makes constants of as the statement
// runs. A conversion without USING, the assignment cast, runs under the settings recorded with
// the statement (ddlSettings): refused only when it calls a volatile function (a cast a user
// made), which PostgreSQL tells by the plan of a subquery that converts (retypeCheckSQL). The
// USING expression and the cast that follows it are checked so too. Stable casts such as text
// to timestamptz in USING stay refused, although the peer runs
// the statement under the TimeZone and DateStyle recorded with it: their input reads the clock
// too ('now', 'today', 'tomorrow' are each database's moment of the rewrite), and casts of
// other types read settings that are not recorded (IntervalStyle, extra_float_digits, lc_*).

// retypeCheckSQL is the DO block that refuses stmt, an ALTER TABLE with ALTER COLUMN … TYPE,
// when its table has rows and one of its USING expressions is not immutable, or one of its
// conversions calls a volatile function; "" when the lexer finds no such action.
func retypeCheckSQL(stmt string) string {
	table, exprs := usingClauses(stmt)
	if table == "" {
		return ""
	}
	if setsLogged(stmt) {
		return setLoggedCheckSQL(table)
	}
	convs := retypeConversions(stmt)
	if len(convs) == 0 {
		return ""
	}
	lits, probes := make([]string, len(exprs)), make([]string, len(exprs))
	sys := ""
	for i, e := range exprs {
		lits[i] = quoteLiteral(e)
		probes[i] = enumCastsAsText(e)
		if sys == "" && readsSystemColumn(e) {
			sys = `
  RAISE EXCEPTION USING ERRCODE = '0A000',
    MESSAGE = pg_catalog.format('tandem: %s has rows, and USING %s would give them values that differ on the peer (it reads a system column: transaction ids, row places and table OIDs are each database''s own)', rel, ` + lits[i] + `),
    HINT = 'Add a column of the new type, fill it with UPDATE (its row changes reach both databases), then drop the old column and rename the new one.';`
		}
		if sys == "" && hasClockLiteral(e) {
			// A date or time literal that reads the clock is a constant to PostgreSQL, made as
			// the statement runs: each database's own moment (TestRetypeVolatileConversionRefused).
			// Refused whether or not it becomes a date or time (a string that merely holds the
			// word is refused too).
			sys = `
  RAISE EXCEPTION USING ERRCODE = '0A000',
    MESSAGE = pg_catalog.format('tandem: %s has rows, and USING %s would give them values that differ on the peer (it holds a date or time literal that reads the clock, ''now'', ''today'', …, each database''s own moment)', rel, ` + lits[i] + `),
    HINT = 'Write the date or time itself, or add a column of the new type, fill it with UPDATE (its row changes reach both databases), then drop the old column and rename the new one.';`
		}
	}
	convLits := make([]string, len(convs))
	for i, c := range convs {
		convLits[i] = quoteLiteral(c)
		// A conversion into an enum (an array of one, a domain over one) that a cast whose
		// function is not immutable targets — a user's (CREATE CAST … WITH FUNCTION … AS
		// ASSIGNMENT) — is judged by the immutability probe too, as the same cast written in
		// USING is (enumCastsAsText): the EXPLAIN below refuses only a volatile one, and a
		// stable one that reads the clock passed, without USING or after it
		// (TestRetypeEnumStableAssignmentCastRefused). The type is the one after the
		// conversion's last ") AS " (retypeConversions), which no type's name holds.
		// When what is converted is a column (no USING, or USING the column), only a cast from
		// its type (its elements' for an array) is the one taken: a stable cast from int into
		// the enum does not convert a text column (TestRetypeEnumOtherSourceCastNotRefused). A
		// column of a domain, or of an array of one, and an expression are judged by any cast.
		typ := c[strings.LastIndex(c, ") AS ")+len(") AS ") : len(c)-1]
		source := "true"
		if col, ok := plainColumn(c[len("CAST(("):strings.LastIndex(c, ") AS ")]); ok {
			source = `NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type st ON st.oid OPERATOR(pg_catalog.=) a.atttypid
                LEFT JOIN pg_catalog.pg_type se ON se.oid OPERATOR(pg_catalog.=) st.typelem
              WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attname OPERATOR(pg_catalog.=) ` + quoteLiteral(col) + `::pg_catalog.name AND NOT a.attisdropped
                AND st.typtype OPERATOR(pg_catalog.<>) 'd' AND se.typtype IS DISTINCT FROM 'd')
              OR k.castsource OPERATOR(pg_catalog.=) ANY (SELECT st.oid FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t1 ON t1.oid OPERATOR(pg_catalog.=) a.atttypid
                JOIN pg_catalog.pg_type st ON st.oid OPERATOR(pg_catalog.=) ANY (ARRAY[t1.oid, t1.typelem])
              WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attname OPERATOR(pg_catalog.=) ` + quoteLiteral(col) + `::pg_catalog.name AND NOT a.attisdropped)`
		}
		lits = append(lits, convLits[i])
		probes = append(probes, `CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_type t0 JOIN pg_catalog.pg_type t
          ON t.oid OPERATOR(pg_catalog.=) ANY (ARRAY[t0.oid, t0.typelem, t0.typbasetype])
        WHERE t0.oid OPERATOR(pg_catalog.=) pg_catalog.to_regtype(`+quoteLiteral(typ)+`) AND t.typtype OPERATOR(pg_catalog.=) 'e'
          AND EXISTS (SELECT FROM pg_catalog.pg_cast k JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) k.castfunc
            WHERE k.casttarget OPERATOR(pg_catalog.=) t.oid AND f.provolatile OPERATOR(pg_catalog.<>) 'i'
              AND (`+source+`))) THEN `+enumCastsAsText(c)+` END`)
	}
	// Each conversion, USING expr or the assignment cast, as PostgreSQL plans it in a subquery's
	// output: it pulls up no subquery whose output calls a volatile function (a cast's, an
	// input or output function's too), and a Subquery Scan is left in the plan. A stable one
	// runs under the settings recorded with the statement. A conversion it cannot plan is not
	// judged: refused (the statement would mostly fail the same way). Planned under row_security
	// on, in a subtransaction that always rolls back: under off, a policy that applies to the
	// role fails the plan (42501), where the statement reads no row through one
	// (TestRetypeUnderRowSecurityOff).
	conv := `
  FOREACH e IN ARRAY ARRAY[` + strings.Join(convLits, ", ") + `]::pg_catalog.text[] LOOP
    BEGIN
      PERFORM pg_catalog.set_config('row_security', 'on', true);
      FOR line IN EXECUTE pg_catalog.format('EXPLAIN (COSTS OFF) SELECT tandem_conv IS NULL FROM (SELECT %s AS tandem_conv FROM %s) tandem_conv', e, rel) LOOP
        IF pg_catalog.strpos(line, 'Subquery Scan') OPERATOR(pg_catalog.>) 0 THEN
          RAISE EXCEPTION USING ERRCODE = 'TDM96';
        END IF;
      END LOOP;
      RAISE EXCEPTION USING ERRCODE = 'TDM97';
    EXCEPTION
      WHEN SQLSTATE 'TDM97' THEN NULL;
      WHEN SQLSTATE 'TDM96' THEN
        RAISE EXCEPTION USING ERRCODE = '0A000',
          MESSAGE = pg_catalog.format('tandem: %s has rows, and converting them with %s would give them values each database computes for itself (it calls a volatile function)', rel, e),
          HINT = 'Add a column of the new type, fill it with UPDATE (its row changes reach both databases), then drop the old column and rename the new one.';
      WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        RAISE EXCEPTION USING ERRCODE = '0A000',
          MESSAGE = pg_catalog.format('tandem: %s has rows, and whether converting them with %s gives the same values on the peer could not be told (%s): refused', rel, e, msg),
          HINT = 'Add a column of the new type, fill it with UPDATE (its row changes reach both databases), then drop the old column and rename the new one.';
    END;
  END LOOP;`
	body := `
DECLARE rel pg_catalog.regclass; has_rows boolean; e pg_catalog.text; line pg_catalog.text; msg pg_catalog.text;
  detail pg_catalog.text; probe pg_catalog.text; g pg_catalog.record; k pg_catalog.int4; pe pg_catalog.text; what pg_catalog.text;
BEGIN
  BEGIN
    rel := pg_catalog.to_regclass(` + quoteLiteral(table) + `);
    -- A temporary table's DDL does not reach the peer (ddlGuardSQL): nothing to compute twice.
    IF rel IS NULL OR EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel AND c.relpersistence OPERATOR(pg_catalog.=) 't') THEN
      RETURN;
    END IF;
    EXECUTE pg_catalog.format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', rel);
` + hasRowsSQL("rel", "    ") + `  EXCEPTION WHEN OTHERS THEN
    RETURN;
  END;
  IF NOT has_rows THEN
    RETURN;
  END IF;` + sys + conv + `
  FOR k IN 1 .. ` + fmt.Sprint(len(lits)) + ` LOOP
    e := (ARRAY[` + strings.Join(lits, ", ") + `]::pg_catalog.text[])[k];
    -- The first are USING expressions, the rest conversions (the assignment cast without USING).
    what := CASE WHEN k OPERATOR(pg_catalog.<=) ` + fmt.Sprint(len(exprs)) + ` THEN 'USING ' ELSE 'the conversion ' END OPERATOR(pg_catalog.||) e;
    BEGIN
      pe := (ARRAY[` + strings.Join(probes, ", ") + `]::pg_catalog.text[])[k];
      CONTINUE WHEN pe IS NULL; -- a conversion not to judge so
      BEGIN
        EXECUTE pg_catalog.format('CREATE INDEX ON %s ((%s) tandem_no_such_opclass)', rel, pe);
        RAISE EXCEPTION USING ERRCODE = 'TDM98'; -- not reached: an operator class of that name
      EXCEPTION WHEN insufficient_privilege THEN
        -- A role that may not create in the table's schema (TestRetypeUsingOwnerWithoutCreate).
        -- A generated column may not read another (42P17 too): the generated columns the
        -- expression names (unquoted, lower case) are read as their own expressions, which are
        -- immutable (TestRetypeUsingGeneratedColumnWithoutCreate).
        probe := pe;
        FOR g IN SELECT a.attname::pg_catalog.text AS name, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS def
          FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) a.attrelid AND d.adnum OPERATOR(pg_catalog.=) a.attnum
          WHERE a.attrelid OPERATOR(pg_catalog.=) rel AND a.attgenerated OPERATOR(pg_catalog.<>) '' AND NOT a.attisdropped
            AND a.attname::pg_catalog.text OPERATOR(pg_catalog.~) '^[a-z_][a-z0-9_]*$'
        LOOP
          probe := pg_catalog.regexp_replace(probe, '\m' OPERATOR(pg_catalog.||) g.name OPERATOR(pg_catalog.||) '\M',
            '(' OPERATOR(pg_catalog.||) pg_catalog.replace(g.def, '\', '\\') OPERATOR(pg_catalog.||) ')', 'g');
        END LOOP;
        EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN tandem_immutable_probe pg_catalog.int4 GENERATED ALWAYS AS (ROW((%s))) STORED', rel, probe);
        RAISE EXCEPTION USING ERRCODE = 'TDM98'; -- not reached: a row is no int4
      END;
    EXCEPTION
      WHEN undefined_object OR indeterminate_collation OR datatype_mismatch THEN
        -- What PostgreSQL checks once it found the expression immutable: the operator class,
        -- the index's collation; the generated column's type.
        NULL;
      WHEN invalid_object_definition THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        IF detail OPERATOR(pg_catalog.<>) '' THEN
          -- A reference a generated column may not make (another generated column, the
          -- whole row), which PostgreSQL checks before it judges the expression: not judged.
          RAISE EXCEPTION USING ERRCODE = '0A000',
            MESSAGE = pg_catalog.format('tandem: %s has rows, and whether %s gives them the same values on the peer could not be told (%s): refused', rel, what, msg),
            HINT = 'Add a column of the new type, fill it with UPDATE (its row changes reach both databases), then drop the old column and rename the new one.';
        END IF;
        RAISE EXCEPTION USING ERRCODE = '0A000',
          MESSAGE = pg_catalog.format('tandem: %s has rows, and %s would give them values each database computes for itself (it is not immutable)', rel, what),
          HINT = 'Add a column of the new type, fill it with UPDATE (its row changes reach both databases), then drop the old column and rename the new one.';
      WHEN OTHERS THEN
        -- Any other error leaves the expression unjudged: refused, never taken for immutable.
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        RAISE EXCEPTION USING ERRCODE = '0A000',
          MESSAGE = pg_catalog.format('tandem: %s has rows, and whether %s gives them the same values on the peer could not be told (%s): refused', rel, what, msg),
          HINT = 'Add a column of the new type, fill it with UPDATE (its row changes reach both databases), then drop the old column and rename the new one.';
    END;
  END LOOP;
END
`
	tag := "$tandem$"
	for strings.Contains(body, tag[:len(tag)-1]) {
		tag = tag[:len(tag)-1] + "_$"
	}
	return "DO " + tag + body + tag
}

// plainColumn reads expr, what a retype converts (retypeConversions), as a column's name: an
// identifier, unquoted (folded to lower case) or quoted; ok false for anything else.
func plainColumn(expr string) (name string, ok bool) {
	st := sigTokens(expr)
	if len(st.toks) != 1 || strings.TrimSpace(expr) != expr[st.toks[0].start:st.toks[0].end] {
		return "", false
	}
	s := expr[st.toks[0].start:st.toks[0].end]
	switch st.toks[0].kind {
	case tokWord:
		for _, r := range s {
			if !(r == '_' || r == '$' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return "", false
			}
		}
		return strings.ToLower(s), true
	case tokQuoted:
		if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
			return "", false
		}
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`), true
	}
	return "", false
}

// enumCastsAsText is SQL that gives the text of expr, a USING expression, to judge by the
// immutability probe (retypeCheckSQL): with each cast written name::type or CAST(x AS type)
// (TestRetypeEnumCastSyntaxNotRefused) whose type is an enum
// (on the database it runs on) cast to text instead. PostgreSQL takes a string read into an
// enum (c::mood) for stable only — its input reads the enum's labels from the catalog, which
// the peer has the same, and reads no setting — and refused a text column's retype to an enum
// on a table with rows (TestRetypeSafeNotRefused). Text from a string is what the cast reads;
// a cast to an enum from anything else PostgreSQL refuses in the statement itself — unless a
// user made one (CREATE CAST … WITH FUNCTION, from text too), which calls its function: an
// enum that is the target of a cast in pg_cast whose function is not immutable is left as it
// is written (TestRetypeEnumUserCastRefused). One of immutable functions only reads as text:
// the probe judges the rest of the expression, and a cast from another type as that type's
// cast to text (TestRetypeEnumOtherCastNotRefused); a cast WITHOUT FUNCTION or WITH INOUT
// converts through the source's output, which its cast to text reads too.
func enumCastsAsText(expr string) string {
	st := sigTokens(expr)
	toks, word, punct := st.toks, st.word, st.punct
	// The casts' types, as spans of expr: name::type (a dotted name) and CAST(x AS type)
	// (everything from AS to the closing parenthesis), in the order they start.
	type span struct{ start, end int }
	var types []span
	for i := 0; i+2 < len(toks); i++ {
		if word(i, "CAST") && punct(i+1, '(') {
			// The last AS at the parentheses' own depth: x may hold AS only deeper.
			as, depth := -1, 0
			for j := i + 1; j < len(toks); j++ {
				switch {
				case punct(j, '(') || punct(j, '['):
					depth++
				case punct(j, ')') || punct(j, ']'):
					depth--
				case depth == 1 && word(j, "AS"):
					as = j
				}
				if depth == 0 {
					if as >= 0 && as+1 < j {
						types = append(types, span{toks[as+1].start, toks[j-1].end})
					}
					break
				}
			}
			continue // x is read on, for the casts it holds
		}
		if !punct(i, ':') || !punct(i+1, ':') || toks[i].end != toks[i+1].start {
			continue
		}
		j := i + 2
		from := j
		for j < len(toks) && (toks[j].kind == tokWord || toks[j].kind == tokQuoted) && !punct(j+1, '&') {
			if j++; !punct(j, '.') || j+1 >= len(toks) || (toks[j+1].kind != tokWord && toks[j+1].kind != tokQuoted) {
				break
			}
			j++
		}
		// NATIONAL CHARACTER [VARYING] is no enum, and to_regtype cannot read its first word
		// alone: a syntax error (TestRetypeNationalCharacterNotRefused).
		if j == from || (toks[from].kind == tokWord && strings.EqualFold(expr[toks[from].start:toks[from].end], "national")) {
			continue
		}
		types = append(types, span{toks[from].start, toks[j-1].end})
		i = j - 1
	}
	if len(types) == 0 {
		return quoteLiteral(expr)
	}
	// A CAST's type ends after the casts x holds, which start before it: in order of start.
	sort.Slice(types, func(a, b int) bool { return types[a].start < types[b].start })
	parts := []string{}
	last := 0
	for _, t := range types {
		typ := expr[t.start:t.end]
		parts = append(parts, quoteLiteral(expr[last:t.start]),
			`CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_type t WHERE t.oid OPERATOR(pg_catalog.=) pg_catalog.to_regtype(`+quoteLiteral(typ)+`)
          AND t.typtype OPERATOR(pg_catalog.=) 'e'
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_cast k JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) k.castfunc
            WHERE k.casttarget OPERATOR(pg_catalog.=) t.oid AND f.provolatile OPERATOR(pg_catalog.<>) 'i')) THEN 'pg_catalog.text' ELSE `+quoteLiteral(typ)+` END`)
		last = t.end
	}
	parts = append(parts, quoteLiteral(expr[last:]))
	return "pg_catalog.concat(" + strings.Join(parts, ", ") + ")"
}

// ALTER TABLE … SET LOGGED makes an UNLOGGED table's rows published from then on; the rows it
// had were never decoded (an unlogged table writes no WAL), so the peer's copy lacks them and
// the first update or delete of one there is refused — the peer out of step until resync. The
// shim refuses it on an unlogged table that has rows, before it runs (SQLSTATE 0A000).

// setsLogged reports whether stmt, an ALTER TABLE, has a SET LOGGED action.
func setsLogged(stmt string) bool {
	prevSet, found := false, false
	tokens(stmt, 0, len(stmt), func(k tokKind, s, e int) bool {
		switch {
		case k == tokComment || (k == tokByte && isSpace(stmt[s])):
			return true
		case k == tokWord && prevSet && strings.EqualFold(stmt[s:e], "LOGGED"):
			found = true
			return false
		}
		prevSet = k == tokWord && strings.EqualFold(stmt[s:e], "SET")
		return true
	})
	return found
}

// setLoggedCheckSQL is the DO block that refuses ALTER TABLE table … SET LOGGED when table is
// unlogged and has rows.
func setLoggedCheckSQL(table string) string {
	return `DO $tandem$
DECLARE rel pg_catalog.regclass; has_rows boolean;
BEGIN
  rel := pg_catalog.to_regclass(` + quoteLiteral(table) + `);
  IF rel IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel AND c.relpersistence OPERATOR(pg_catalog.=) 'u') THEN
    RETURN;
  END IF;
` + hasRowsSQL("rel", "  ") + `  IF has_rows THEN
    RAISE EXCEPTION USING ERRCODE = '0A000',
      MESSAGE = pg_catalog.format('tandem: %s is UNLOGGED and has rows, which never reached the peer: SET LOGGED would publish its changes from now on without them', rel),
      HINT = 'Make a logged table and fill it with INSERT ... SELECT through Tandem (its rows then reach both databases), or empty this one first.';
  END IF;
END
$tandem$`
}

// retypeConversions reads an ALTER TABLE statement: for each ALTER [COLUMN] name [SET DATA]
// TYPE type [COLLATE …] [USING expr] among its actions, how the rows there are converted, as
// SQL: CAST((expr) AS type), or CAST((name) AS type) without USING — an explicit cast, which
// takes the assignment cast's function where there is one (PostgreSQL refuses the statement
// where there is none).
func retypeConversions(stmt string) []string {
	st := sigTokens(stmt)
	toks, word, punct := st.toks, st.word, st.punct
	table, i := alterTableName(st)
	if table == "" {
		return nil
	}
	var convs []string
	st.actions(i, func(int) {}, func(first, end int) {
		if !word(first, "ALTER") {
			return
		}
		j := first + 1
		if word(j, "COLUMN") {
			j++
		}
		// The column's name runs to SET DATA TYPE or TYPE (a name may be U&"…", or be type).
		k := j + 1
		for k < end && !word(k, "TYPE") && !(word(k, "SET") && word(k+1, "DATA")) {
			k++
		}
		// One token, or U&"…" [UESCAPE '…'].
		if k >= end || (k != j+1 && !(word(j, "U") && punct(j+1, '&'))) {
			return
		}
		name := stmt[toks[j].start:toks[k-1].end]
		if word(k, "SET") {
			k += 2
		}
		if !word(k, "TYPE") {
			return
		}
		k++
		from, using, depth := k, -1, 0
		typeEnd := end
		for ; k < end; k++ {
			switch {
			case punct(k, '(') || punct(k, '['):
				depth++
			case punct(k, ')') || punct(k, ']'):
				depth--
			case depth == 0 && (word(k, "COLLATE") || word(k, "USING")):
				if typeEnd == end {
					typeEnd = k
				}
				if word(k, "USING") {
					using = k + 1
				}
			}
			if using >= 0 {
				break
			}
		}
		if typeEnd <= from {
			return
		}
		typ := stmt[toks[from].start:toks[typeEnd-1].end]
		if using >= 0 && using < end {
			name = stmt[toks[using].start:toks[end-1].end]
		}
		convs = append(convs, "CAST(("+name+") AS "+typ+")")
	})
	return convs
}

// systemColumns are the names of the system columns a USING expression may read: they hold, in
// each row, values of the database it is in (transaction and command ids, the row's place, the
// table's OID). No table column may have these names, so an identifier of one of them in the
// expression is the system column — or, rarely, a field of a composite value or a function of
// that name, refused all the same.
var systemColumns = []string{"xmin", "xmax", "cmin", "cmax", "ctid", "tableoid"}

// readsSystemColumn tells whether expr, a USING expression, names a system column: as an
// unquoted identifier (any case) or a quoted one (exactly), not in a string or a comment.
func readsSystemColumn(expr string) bool {
	found := false
	tokens(expr, 0, len(expr), func(k tokKind, s, e int) bool {
		for _, name := range systemColumns {
			if (k == tokWord && strings.EqualFold(expr[s:e], name)) || (k == tokQuoted && expr[s:e] == `"`+name+`"`) {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// sigToks is a statement's tokens but comments and blanks, with the tests the statement
// readers below (usingClauses, likeSources) make of them.
type sigToks struct {
	stmt string
	toks []sigTok
}

type sigTok struct {
	kind       tokKind
	start, end int
}

func sigTokens(stmt string) sigToks {
	st := sigToks{stmt: stmt}
	tokens(stmt, 0, len(stmt), func(k tokKind, s, e int) bool {
		if k != tokComment && !(k == tokByte && isSpace(stmt[s])) {
			st.toks = append(st.toks, sigTok{k, s, e})
		}
		return true
	})
	return st
}

// word tells whether token i is the keyword kw.
func (st sigToks) word(i int, kw string) bool {
	return i < len(st.toks) && st.toks[i].kind == tokWord && strings.EqualFold(st.stmt[st.toks[i].start:st.toks[i].end], kw)
}

// punct tells whether token i is the punctuation byte c.
func (st sigToks) punct(i int, c byte) bool {
	return i < len(st.toks) && st.toks[i].kind == tokByte && st.stmt[st.toks[i].start] == c
}

// usingClauses reads an ALTER TABLE statement: the table's name as written, and the
// expression of each ALTER [COLUMN] … TYPE … USING expr among its comma-separated actions.
// USING is a reserved word, so outside parentheses and brackets it can only start such a
// clause — or belong to ADD … EXCLUDE USING and ADD … USING INDEX, which are not ALTER
// actions.
func usingClauses(stmt string) (table string, exprs []string) {
	st := sigTokens(stmt)
	toks, word := st.toks, st.word
	table, i := alterTableName(st)
	if table == "" {
		return "", nil
	}
	typed, using := false, -1
	st.actions(i, func(j int) {
		switch {
		case word(j, "TYPE"):
			typed = true
		case word(j, "USING") && typed && using < 0:
			using = j + 1
		}
	}, func(first, j int) {
		if using >= 0 && using < j && word(first, "ALTER") {
			exprs = append(exprs, stmt[toks[using].start:toks[j-1].end])
		}
		typed, using = false, -1
	})
	return table, exprs
}

// addedColumn reads the action of tokens [first, end) of an ALTER TABLE: when it is ADD
// [COLUMN] [IF NOT EXISTS] name (not a constraint), the index of name's token, else -1 (also
// for a name written U&"…").
func (st sigToks) addedColumn(first, end int) int {
	j := first
	if !st.word(j, "ADD") {
		return -1
	}
	j++
	if st.word(j, "COLUMN") {
		j++
	} else if st.word(j, "CONSTRAINT") || st.word(j, "PRIMARY") || st.word(j, "UNIQUE") || st.word(j, "CHECK") ||
		st.word(j, "FOREIGN") || st.word(j, "EXCLUDE") {
		return -1
	}
	if st.word(j, "IF") && st.word(j+1, "NOT") && st.word(j+2, "EXISTS") {
		j += 3
	}
	if j >= end || (st.toks[j].kind != tokWord && st.toks[j].kind != tokQuoted) || st.punct(j+1, '&') {
		return -1
	}
	return j
}

// actions walks the comma-separated actions of an ALTER TABLE statement from token i (after
// the table's name), split at commas (and a semicolon) outside parentheses and brackets: at(j)
// for each other token outside them, end(first, j) at each action's end — first its first
// token, j the one after its last.
func (st sigToks) actions(i int, at func(j int), end func(first, j int)) {
	depth, first := 0, i
	for ; i < len(st.toks); i++ {
		switch {
		case st.punct(i, '(') || st.punct(i, '['):
			depth++
		case st.punct(i, ')') || st.punct(i, ']'):
			depth--
		case depth != 0:
		case st.punct(i, ',') || st.punct(i, ';'):
			end(first, i)
			first = i + 1
		default:
			at(i)
		}
	}
	end(first, len(st.toks))
}

// alterTableName reads the table's name as written in an ALTER TABLE statement ("" when it
// reads none, or the statement has nothing past it), and the index of the token its actions
// start at.
func alterTableName(st sigToks) (table string, next int) {
	toks, word, punct := st.toks, st.word, st.punct
	if !word(0, "ALTER") || !word(1, "TABLE") {
		return "", 0
	}
	i := 2
	if word(i, "IF") && word(i+1, "EXISTS") {
		i += 2
	}
	if word(i, "ONLY") {
		i++
	}
	// name [. name [. name]] [*], each part as written — but a part written U&"…" [UESCAPE
	// '…'], which to_regclass does not read, decoded and quoted: read as the name U, a table
	// that is not there, it had every check on the table pass (TestAlterTableUnicodeNameChecked).
	var parts []string
	for i < len(toks) && (toks[i].kind == tokWord || toks[i].kind == tokQuoted) {
		if toks[i].kind == tokWord && punct(i+1, '&') {
			if i+2 >= len(toks) || toks[i+2].kind != tokQuoted {
				return "", 0
			}
			u, uend := unicodeName(st.stmt, toks[i+2].start, toks[i+2].end)
			if u < 0 {
				return "", 0
			}
			parts = append(parts, sqlIdent(string(foldName(st.stmt[u:uend], nil))))
			for i < len(toks) && toks[i].start < uend {
				i++
			}
		} else {
			parts = append(parts, st.stmt[toks[i].start:toks[i].end])
			i++
		}
		if !punct(i, '.') {
			break
		}
		i++
	}
	if len(parts) == 0 || i >= len(toks) {
		return "", 0
	}
	if punct(i, '*') {
		i++
	}
	return strings.Join(parts, "."), i
}

// EXPLAIN ANALYZE runs the statement it explains, and of DDL it explains CREATE TABLE … AS,
// SELECT … INTO and CREATE MATERIALIZED VIEW, which make a table (or a materialized view)
// with rows. PostgreSQL runs those from EXPLAIN straight (ExplainOneUtility calls
// ExecCreateTableAs), not as utility commands: no event trigger fires for them. The shim
// recorded such a statement as it is, and nothing rewrote its record into the table's
// definition (ddl_ctas, an event trigger): the peer ran the EXPLAIN, whose query failed there
// when it read the session's temporary tables or ran its prepared statement (… AS EXECUTE),
// and shipping stopped. So the shim refuses it (0A000) before it runs, in every form the lexer
// reads (EXPLAIN ANALYZE [VERBOSE], EXPLAIN (ANALYZE …)); the statement without EXPLAIN
// ANALYZE ships as any DDL (TestExplainAnalyzeMakesTable).
//
// Inside another statement — EXECUTE 'EXPLAIN ANALYZE CREATE TABLE …' in a DO block, a
// function or a procedure — the shim does not see it, and no event trigger fires for the DDL
// guard (ddlGuardSQL) to refuse it: the table is made on the local database only, and nothing
// checks for it (a check at commit would cost every commit a look at pg_class). What follows
// (TestExplainAnalyzeMakesTableNested):
//   - rows written into a published table (logged, permanent) are decoded and shipped, and
//     the peer, which lacks the table, refuses them: a dual commit is rolled back on both
//     databases (the client gets the peer's error); one committed plainly first (a session
//     with temporary objects, a statement taken for a read, solo mode) is refused when it
//     ships, which stops shipping, and the peer needs resync;
//   - with no rows (WITH NO DATA, or a query that returns none), an UNLOGGED table or a
//     materialized view (whose rows are never decoded), nothing reaches the peer and nothing
//     fails: the relation is on the local database alone, until a write to it through the
//     shim is refused by the peer (a table), or for good (a materialized view, read only).
//
// PREPARE name AS SELECT … INTO a permanent table is refused too (0A000): EXECUTE name makes
// the table inside the EXECUTE, where the DDL guard refuses it, and EXPLAIN ANALYZE EXECUTE name
// makes it without an event trigger, the table on the local database only. So is EXPLAIN
// ANALYZE EXECUTE of a SELECT … INTO parsed in the extended protocol (which a Bind and Execute
// run as recorded DDL); one prepared where the shim does not see it (PREPARE run by a DO
// block or a function) is not.
const (
	prepareMakesRefusal = "tandem: PREPARE of SELECT ... INTO a table cannot be shipped to the peer (its EXECUTE makes the table inside another statement, which the shim does not record): refused"
	prepareMakesHint    = "Run SELECT ... INTO, or CREATE TABLE ... AS EXECUTE of a prepared SELECT, as a statement of its own."
	explainMakesRefusal = "tandem: EXPLAIN ANALYZE of CREATE TABLE ... AS, SELECT ... INTO or CREATE MATERIALIZED VIEW cannot be shipped to the peer (PostgreSQL fires no event trigger for the table it makes): refused"
	explainMakesHint    = "Run the statement without EXPLAIN ANALYZE (EXPLAIN without ANALYZE shows its plan)."
)

// CREATE TABLE … (LIKE name) copies the columns of the table it names as they are when the
// statement runs, and keeps no link to it. A session's temporary table hides a permanent one of
// the same name (its temporary schema is searched first) — or is named so, pg_temp.name: the
// local database copied the temporary table's columns, the peer, which lacks it, the permanent
// one's (or refused the statement), and the two tables differed (TestFidelityLikeTempTable).
// The shim refuses such a statement (0A000) before it runs, unless the table it makes is
// temporary too (its DDL is not shipped).

// likeSources reads a CREATE [FOREIGN] TABLE statement: the names (as written) after LIKE among
// its column list's elements, whether the statement says itself that the table it makes is
// temporary (TEMP, TEMPORARY, or a name in pg_temp), and whether that name is qualified; and,
// where it says IF NOT EXISTS, that name (as written).
func likeSources(stmt string) (names []string, temp, qualified bool, ifNotExists string) {
	st := sigTokens(stmt)
	toks, word, punct := st.toks, st.word, st.punct
	// part reads one part of a name from i: a word, a "quoted" one or a U&"…" [UESCAPE '…']
	// one; its end (i where none).
	part := func(i int) int {
		switch {
		case i+2 < len(toks) && (word(i, "U") && punct(i+1, '&') && toks[i+2].kind == tokQuoted &&
			toks[i].end == toks[i+1].start && toks[i+1].end == toks[i+2].start):
			i += 3
			if word(i, "UESCAPE") && i+1 < len(toks) && toks[i+1].kind == tokString {
				i += 2
			}
			return i
		case i < len(toks) && (toks[i].kind == tokWord || toks[i].kind == tokQuoted):
			return i + 1
		}
		return i
	}
	// name [. name [. name]] from i: its end, its first part (as written), and the name with
	// each part folded and quoted (to_regclass reads no U&"…").
	name := func(i int) (int, string, string) {
		start, first := i, ""
		var folded []string
		for {
			end := part(i)
			if end == i {
				break
			}
			text := stmt[toks[i].start:toks[end-1].end]
			if first == "" {
				first = text
			}
			folded = append(folded, sqlIdent(string(foldName(text, nil))))
			if i = end; !punct(i, '.') {
				break
			}
			i++
		}
		if i == start {
			return start, "", ""
		}
		return i, first, strings.Join(folded, ".")
	}
	if !word(0, "CREATE") {
		return nil, false, false, ""
	}
	// table reads [GLOBAL|LOCAL|TEMP|...] TABLE name (...) from i, just past a CREATE: it adds
	// the names after LIKE in its column list to names, and says where it ends and whether it
	// is one.
	table := func(i int) (end int, ok, temp, qualified bool) {
		for word(i, "GLOBAL") || word(i, "LOCAL") || word(i, "TEMP") || word(i, "TEMPORARY") || word(i, "UNLOGGED") || word(i, "FOREIGN") {
			temp = temp || word(i, "TEMP") || word(i, "TEMPORARY")
			i++
		}
		if !word(i, "TABLE") {
			return i, false, false, false
		}
		i++
		ine := word(i, "IF") && word(i+1, "NOT") && word(i+2, "EXISTS")
		if ine {
			i += 3
		}
		end, first, folded := name(i)
		if end == i {
			return i, false, false, false
		}
		if ine {
			ifNotExists = folded
		}
		qualified = punct(part(i), '.')
		if qualified && string(foldName(first, nil)) == "pg_temp" {
			temp = true
		}
		if i = end; !punct(i, '(') {
			return i, true, temp, qualified
		}
		depth := 0
		for ; i < len(toks); i++ {
			switch {
			case punct(i, '(') || punct(i, '['):
				depth++
			case punct(i, ')') || punct(i, ']'):
				depth--
			}
			if depth == 1 && (punct(i, '(') || punct(i, ',')) && word(i+1, "LIKE") {
				if end, _, folded := name(i + 2); end > i+2 {
					names = append(names, folded)
				}
			}
			if depth == 0 {
				break
			}
		}
		return i, true, temp, qualified
	}
	if word(1, "SCHEMA") {
		// CREATE SCHEMA … CREATE TABLE … (LIKE name): each table is made in the new schema,
		// and what it copies is looked for in the session's temporary schema first all the same
		// (TestFidelityLikeTempTableInCreateSchema).
		for i := 2; i < len(toks); i++ {
			if word(i, "CREATE") {
				if end, ok, _, _ := table(i + 1); ok {
					i = end
				}
			}
		}
		return names, false, true, ""
	}
	if _, ok, temp, qualified := table(1); ok {
		return names, temp, qualified, ifNotExists
	}
	return nil, false, false, ""
}

// likeTempCheckSQL is the DO block that refuses stmt, a CREATE TABLE … (LIKE name), when a name
// it copies is a temporary table and the table it makes is not; "" when the lexer finds no LIKE
// (or the statement says the table is temporary).
func likeTempCheckSQL(stmt string) string {
	names, temp, qualified, ine := likeSources(stmt)
	if len(names) == 0 || temp {
		return ""
	}
	lits := make([]string, len(names))
	for i, n := range names {
		lits[i] = quoteLiteral(n)
	}
	body := `
DECLARE n pg_catalog.text; rel pg_catalog.regclass; parts pg_catalog.text[];
BEGIN`
	if !qualified {
		// An unqualified name with pg_temp first in the search_path makes a temporary table.
		body += `
  IF COALESCE((pg_catalog.current_schemas(false))[1]::pg_catalog.text OPERATOR(pg_catalog.~~) 'pg\_temp\_%', false) THEN
    RETURN;
  END IF;`
	}
	if ine != "" {
		// IF NOT EXISTS of a table that is there makes nothing, on either database.
		ns := `(pg_catalog.current_schemas(false))[1]::pg_catalog.text`
		if qualified {
			ns = `parts[pg_catalog.array_upper(parts, 1) OPERATOR(pg_catalog.-) 1]`
		}
		body += `
  BEGIN
    parts := pg_catalog.parse_ident(` + quoteLiteral(ine) + `);
  EXCEPTION WHEN OTHERS THEN
    parts := NULL;
  END;
  IF EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace s ON s.oid OPERATOR(pg_catalog.=) c.relnamespace
      WHERE c.relname OPERATOR(pg_catalog.=) parts[pg_catalog.array_upper(parts, 1)] AND s.nspname OPERATOR(pg_catalog.=) ` + ns + `) THEN
    RETURN;
  END IF;`
	}
	body += `
  FOREACH n IN ARRAY ARRAY[` + strings.Join(lits, ", ") + `]::pg_catalog.text[] LOOP
    BEGIN
      rel := pg_catalog.to_regclass(n);
    EXCEPTION WHEN OTHERS THEN
      rel := NULL;
    END;
    IF EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) rel AND c.relpersistence OPERATOR(pg_catalog.=) 't') THEN
      RAISE EXCEPTION USING ERRCODE = '0A000',
        MESSAGE = pg_catalog.format('tandem: LIKE %s names a temporary table of this session, which the peer lacks: the table made there would not have its columns', n),
        HINT = 'Write out the columns, or copy them from a permanent table (qualify its name with its schema).';
    END IF;
  END LOOP;
END
`
	tag := "$tandem$"
	for strings.Contains(body, tag[:len(tag)-1]) {
		tag = tag[:len(tag)-1] + "_$"
	}
	return "DO " + tag + body + tag
}

// SET name FROM CURRENT in DDL (CREATE FUNCTION or PROCEDURE, ALTER FUNCTION, PROCEDURE or
// ROUTINE, ALTER ROLE or DATABASE) keeps the value the setting has in the session when the
// statement runs. The peer runs the statement in the apply's session, under the settings its
// tandem.ddl row took from the client's session: search_path resolved ("$user" left out, or
// the schema it named written in its place — the raw value would resolve otherwise where the
// apply's user names a schema), role, default_text_search_config and default_tablespace only
// where the peer has them, and every other setting (statement_timeout, work_mem, …) the
// apply's own. What the peer kept differed from what the local database kept, silently: the
// function behaved otherwise after a failover, and verify reported it
// (TestDDLSetFromCurrent). The shim refuses such a statement (0A000) before it runs, unless
// the setting is one the row records and the peer's run is always given as it was
// (fromCurrentShipped): the value written out (SET name = value) ships as it is.
const (
	fromCurrentRefusal = "tandem: %s with SET %s FROM CURRENT cannot be shipped to the peer (its run there would not take this session's value of %s): refused"
	fromCurrentHint    = "Write the value out in the statement: SET name = value (SHOW name gives this session's)."
)

// fromCurrentShipped are the settings the peer's run of DDL is given as the client's session
// had them (ddlSettings, set from the row as they are, never skipped).
var fromCurrentShipped = map[string]bool{
	"timezone": true, "datestyle": true, "intervalstyle": true, "extra_float_digits": true, "bytea_output": true,
	"lc_monetary": true, "xmloption": true, "array_nulls": true, "transform_null_equals": true,
	"timezone_abbreviations": true, "check_function_bodies": true, "password_encryption": true, "xmlbinary": true,
	"quote_all_identifiers": true,
}

// fromCurrentSetting is, for DDL statement st of sql, the first setting it says SET name FROM
// CURRENT of that the peer's run cannot take as the session had it (its name as PostgreSQL
// reads it), or "".
func fromCurrentSetting(sql string, st statement) string {
	if st.Kind != kindDDL || st.Temp {
		return ""
	}
	ts := sigTokens(sql[st.Start:st.End])
	toks, word, punct := ts.toks, ts.word, ts.punct
	// Only the commands that take the clause, and only their clauses: a function's body
	// (BEGIN ATOMIC …, RETURN expr) and anything in parentheses are SQL, where SET x FROM
	// CURRENT is a column set aliased x of a table current (CREATE VIEW, CREATE RULE too).
	create, args := word(0, "CREATE"), false
	switch {
	case create:
		at := 1
		if word(1, "OR") && word(2, "REPLACE") {
			at = 3
		}
		if !word(at, "FUNCTION") && !word(at, "PROCEDURE") {
			return ""
		}
	case word(0, "ALTER"):
		if !word(1, "FUNCTION") && !word(1, "PROCEDURE") && !word(1, "ROUTINE") && !word(1, "ROLE") && !word(1, "USER") && !word(1, "DATABASE") {
			return ""
		}
	default:
		return ""
	}
	depth := 0
	for i := range toks {
		switch {
		case punct(i, '(') || punct(i, '['):
			depth++
		case punct(i, ')') || punct(i, ']'):
			if depth--; depth == 0 {
				args = true
			}
		}
		if create && args && depth == 0 && (word(i, "BEGIN") || word(i, "RETURN")) {
			// The body, after the arguments (BEGIN and RETURN may name the function).
			break
		}
		if depth != 0 || !word(i, "SET") {
			continue
		}
		j := i + 1
		var name []string
		for j < len(toks) && (toks[j].kind == tokWord || toks[j].kind == tokQuoted) {
			name = append(name, string(foldName(ts.stmt[toks[j].start:toks[j].end], nil)))
			if j++; !punct(j, '.') {
				break
			}
			j++
		}
		if len(name) == 0 || !word(j, "FROM") || !word(j+1, "CURRENT") {
			continue
		}
		if n := strings.Join(name, "."); !fromCurrentShipped[strings.ToLower(n)] {
			return n
		}
	}
	return ""
}

// fromCurrentRefusalOf is the message refusing statement st of sql (fromCurrentSetting), or "".
func fromCurrentRefusalOf(sql string, st statement) string {
	name := fromCurrentSetting(sql, st)
	if name == "" {
		return ""
	}
	// The command: its first two words (four after CREATE OR REPLACE), upper case.
	ts := sigTokens(sql[st.Start:st.End])
	var w []string
	for i := 0; i < len(ts.toks) && len(w) < 4 && ts.toks[i].kind == tokWord; i++ {
		w = append(w, strings.ToUpper(ts.stmt[ts.toks[i].start:ts.toks[i].end]))
	}
	n := 2
	if len(w) > 2 && w[1] == "OR" {
		n = 4
	}
	return fmt.Sprintf(fromCurrentRefusal, strings.Join(w[:min(n, len(w))], " "), sqlIdent(name), sqlIdent(name))
}
