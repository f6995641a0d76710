package txshim

import (
	"context"
	"fmt"
	"strings"
)

// clientSchema is what of the application schemas the apply's rows never meet, but the
// applications do once the other site is master: a table's columns' defaults, foreign keys,
// the triggers and rules that fire on the master only (the apply runs with
// session_replication_role = replica) and the order triggers fire in, row-level security and
// its policies, plain views, functions and procedures (what the applications call), and
// extensions; and the triggers and rules of plain views (INSTEAD OF), which only the
// applications' writes meet. Not the order of a table's columns: the apply and resync's copy map
// values by column name (TestApplyColumnOrder), a row type's order is compared where a column
// holds one (appObjectsSQL), and a view's columns where it is compared; two tables with their
// columns in another order hold and take the same rows. DDL through the shim keeps them alike;
// DDL that bypassed it on one database makes them differ, and the same application then
// behaves otherwise after a failover. Verify names such differences; install warns of them (it
// refuses only those that make the apply diverge: appTableFactsSQL).
type clientSchema struct {
	facts map[string][]string  // "schema.table" to its facts (clientTableFactsSQL)
	views map[string][2]string // "schema.view" to its query and options
	procs map[string]string    // "function schema.name(types)" (or procedure) to its definition's md5 ("trigger " before it: a trigger runs it)
	exts  map[string]string    // an extension's quoted name to its version and schema
}

// clientTableFactsSQL lists, per application table, the facts of clientSchema: its columns'
// defaults (not a generated column's expression: appColumn), its foreign keys (whether
// validated left out, as a CHECK's: a NOT VALID one checks new rows all the same), each
// trigger that fires on the master only or not at all (those firing in the apply are
// appTableFactsSQL's), with the md5 of its function's definition (CREATE TRIGGER names the
// function, not what it does), and each rule that does. Named by their definitions, not their
// names — but triggers for one event and timing fire in the order of their names: where a
// table has more than one, that order is a fact too. And its row-level security: whether it
// is enabled or forced, and each policy by its kind, command, roles and expressions (verify
// reads every row, and the apply writes them, with row_security off: a policy on one database
// only changes no row, but what the applications' users see or may write after a failover).
var clientTableFactsSQL = `SELECT n.nspname, c.relname,
  'column "' || replace(a.attname, '"', '""') || '" DEFAULT ' || pg_get_expr(d.adbin, d.adrelid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attrdef d ON d.adrelid = c.oid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.adnum AND NOT a.attisdropped
WHERE ` + appRelFilter + ` AND a.attgenerated = ''
UNION ALL
SELECT n.nspname, c.relname, 'constraint ' || regexp_replace(pg_get_constraintdef(con.oid), ' NOT VALID$', '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_constraint con ON con.conrelid = c.oid
WHERE ` + appRelFilter + ` AND con.contype = 'f'
UNION ALL
` + triggersAndRulesSQL(appRelFilter, " AND tg.tgenabled IN ('O', 'D')", " AND rw.ev_enabled IN ('O', 'D')") + `UNION ALL
SELECT n.nspname, c.relname, concat_ws(', ', 'row-level security ' || CASE WHEN c.relrowsecurity THEN 'enabled' ELSE 'disabled' END,
    CASE WHEN c.relforcerowsecurity THEN 'forced' END)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE ` + appRelFilter + ` AND (c.relrowsecurity OR c.relforcerowsecurity)
UNION ALL
SELECT n.nspname, c.relname, 'policy ' || CASE WHEN po.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END
    || ' FOR ' || CASE po.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
    || ' TO ' || (SELECT string_agg(x.role, ', ' ORDER BY x.role)
      FROM (SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END AS role FROM unnest(po.polroles) r) x)
    || coalesce(' USING (' || pg_get_expr(po.polqual, po.polrelid) || ')', '')
    || coalesce(' WITH CHECK (' || pg_get_expr(po.polwithcheck, po.polrelid) || ')', '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_policy po ON po.polrelid = c.oid
WHERE ` + appRelFilter + `
UNION ALL
` + triggersAndRulesSQL(appViewFilter, "", " AND rw.rulename <> '_RETURN'") + `ORDER BY 1, 2, 3`

// triggersAndRulesSQL lists, per relation of filter (on pg_class c / pg_namespace n), its
// triggers (their definitions and functions' md5, trigger the further condition on pg_trigger
// tg), the order of those firing on one event and timing, and its rules (rule the further
// condition on pg_rewrite rw): clientTableFactsSQL's for tables and for views alike.
func triggersAndRulesSQL(filter, trigger, rule string) string {
	return `SELECT n.nspname, c.relname, k.def || ' (function definition md5 ' || md5(pg_get_functiondef(tg.tgfoid)) || ')'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_trigger tg ON tg.tgrelid = c.oid,
  LATERAL (SELECT ` + triggerDefSQL + ` AS def) k
WHERE ` + filter + ` AND NOT tg.tgisinternal` + trigger + `
UNION ALL
SELECT n.nspname, c.relname, 'triggers fire in the order ' || string_agg(k.def, ', then ' ORDER BY tg.tgname) || ' on ' || e.ev
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_trigger tg ON tg.tgrelid = c.oid,
  (VALUES (4, 'INSERT'), (8, 'DELETE'), (16, 'UPDATE'), (32, 'TRUNCATE')) e(bit, ev),
  LATERAL (SELECT ` + triggerDefSQL + ` AS def) k
WHERE ` + filter + ` AND NOT tg.tgisinternal AND tg.tgtype::int & e.bit <> 0
GROUP BY n.nspname, c.relname, e.ev, tg.tgtype::int & 67
HAVING count(*) > 1
UNION ALL
SELECT n.nspname, c.relname,
  'rule' || CASE rw.ev_enabled WHEN 'D' THEN ' (DISABLED)' ELSE '' END || ': '
    || ltrim(substr(pg_get_ruledef(rw.oid), length('CREATE RULE ' || quote_ident(rw.rulename) || ' AS') + 1), E' \n')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_rewrite rw ON rw.ev_class = c.oid
WHERE ` + filter + rule + `
`
}

// appViewFilter restricts pg_class c / pg_namespace n to the plain views of the application
// schemas: the apply writes none, so each of their triggers (INSTEAD OF ones, whatever their
// enabled state) and rules (but the view's query, _RETURN) acts on the applications' writes
// only (TestVerifyViewTriggers).
const appViewFilter = `c.relkind = 'v' AND ` + appSchemaFilter

// triggerDefSQL is trigger tg's definition with its name cut out, and whether it is enabled.
const triggerDefSQL = `CASE WHEN tg.tgconstraint <> 0 THEN 'constraint trigger' ELSE 'trigger' END
    || CASE tg.tgenabled WHEN 'D' THEN ' (DISABLED)' WHEN 'A' THEN ' (ENABLE ALWAYS)' WHEN 'R' THEN ' (ENABLE REPLICA)' ELSE '' END
    || substr(pg_get_triggerdef(tg.oid), length(CASE WHEN tg.tgconstraint <> 0 THEN 'CREATE CONSTRAINT TRIGGER' ELSE 'CREATE TRIGGER' END
      || ' ' || quote_ident(tg.tgname)) + 1)`

// clientViewsSQL lists the plain views of the application schemas: query and options
// (check_option, security_barrier, security_invoker).
const clientViewsSQL = `SELECT n.nspname, c.relname, pg_get_viewdef(c.oid), coalesce(array_to_string(c.reloptions, ', '), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND ` + appSchemaFilter

// clientRoutinesSQL lists the functions and procedures of the application schemas (not
// aggregates, which pg_get_functiondef does not print) by signature, with the md5 of their
// definitions: body, language, volatility, security, settings. Not those of an extension: the
// extension's version is compared (an extension on one database only named once, not each of
// its functions). A function a trigger of an application table or view runs is marked
// ("trigger " before its md5): where one runs it on both databases its definition is compared
// with the trigger (its md5 among the table's or view's facts) rather than twice, and where a
// trigger runs it on one database only it is compared on its own — the trigger is named as on
// one side only, and once made on the other it would run another function there
// (TestVerifyTriggerFunctionOneSide) — and still on both, not named as on one only
// (TestVerifyViewTriggers).
var clientRoutinesSQL = `SELECT CASE p.prokind WHEN 'p' THEN 'procedure ' ELSE 'function ' END || p.oid::regprocedure::text,
  CASE WHEN EXISTS (SELECT FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE tg.tgfoid = p.oid AND NOT tg.tgisinternal AND c.relkind IN ('r', 'p', 'v') AND ` + appSchemaFilter + `)
  THEN 'trigger ' ELSE '' END || md5(pg_get_functiondef(p.oid))
FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace
WHERE p.prokind IN ('f', 'p', 'w') AND ` + procSchemaFilter + `
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
    AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')`

// procSchemaFilter is appSchemaFilter for the schema pn of a routine.
var procSchemaFilter = strings.ReplaceAll(appSchemaFilter, "n.nspname", "pn.nspname")

// clientExtensionsSQL lists the database's extensions: version and schema.
const clientExtensionsSQL = `SELECT e.extname, e.extversion || ' in schema ' || quote_ident(n.nspname)
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace`

// readClientSchema reads the clientSchema with query, in a session whose search_path is
// pg_catalog alone and whose spelling of definitions is pinned (readAppSchema).
func readClientSchema(ctx context.Context, query schemaQuery) (clientSchema, error) {
	s := clientSchema{facts: map[string][]string{}, views: map[string][2]string{},
		procs: map[string]string{}, exts: map[string]string{}}
	for _, q := range []struct {
		sql  string
		cols int
		add  func(name string, r []string)
	}{
		{clientTableFactsSQL, 3, func(name string, r []string) { s.facts[name] = append(s.facts[name], r[2]) }},
		{clientViewsSQL, 4, func(name string, r []string) { s.views[name] = [2]string{r[2], r[3]} }},
		{clientRoutinesSQL, 2, func(_ string, r []string) { s.procs[r[0]] = r[1] }},
		{clientExtensionsSQL, 2, func(_ string, r []string) { s.exts[sqlIdent(r[0])] = r[1] }},
	} {
		rows, err := query(ctx, q.sql)
		if err != nil {
			return clientSchema{}, fmt.Errorf("read application defaults, foreign keys, triggers and views: %w", err)
		}
		for _, r := range rows {
			if len(r) != q.cols {
				return clientSchema{}, fmt.Errorf("read application defaults, foreign keys, triggers and views: %d columns, want %d", len(r), q.cols)
			}
			name := ""
			if q.cols > 2 {
				name = sqlIdent(r[0]) + "." + sqlIdent(r[1])
			}
			q.add(name, r)
		}
	}
	return s, nil
}

// diffClientSchemas names every difference between the local and the peer clientSchema. A
// table on one side only is named by diffAppSchemas.
func diffClientSchemas(local, peer appSchema) []string {
	l, p := local.client, peer.client
	var diffs []string
	for _, t := range unionKeys(l.facts, p.facts) {
		if _, lv := l.views[t]; lv {
			if _, pv := p.views[t]; pv {
				// A view's triggers and rules (a view on one side only is named below).
				for _, d := range tableFactDiffs(t, l.facts[t], p.facts[t]) {
					diffs = append(diffs, "view"+strings.TrimPrefix(d, "table"))
				}
			}
			continue
		}
		if local.tables[t] == nil || peer.tables[t] == nil {
			continue
		}
		diffs = append(diffs, tableFactDiffs(t, l.facts[t], p.facts[t])...)
	}
	diffs = append(diffs, diffKeyed(l.views, p.views, func(v string) string { return "view " + v }, func(v string, lv, pv [2]string) []string {
		var d []string
		if lv[0] != pv[0] {
			d = append(d, fmt.Sprintf("view %s is defined by another query on each database", v))
		}
		if lv[1] != pv[1] {
			d = append(d, fmt.Sprintf("view %s has options (%s) on the local database but (%s) on the peer", v, lv[1], pv[1]))
		}
		return d
	})...)
	diffs = append(diffs, diffKeyed(l.procs, p.procs, func(f string) string { return f }, func(f, lp, pp string) []string {
		lmd5, ltrig := strings.CutPrefix(lp, "trigger ")
		pmd5, ptrig := strings.CutPrefix(pp, "trigger ")
		if lmd5 == pmd5 || ltrig && ptrig { // compared with the triggers that run it on both
			return nil
		}
		return []string{fmt.Sprintf("%s is defined otherwise on each database", f)}
	})...)
	diffs = append(diffs, diffKeyed(l.exts, p.exts, func(e string) string { return "extension " + e }, func(e, le, pe string) []string {
		if le == pe {
			return nil
		}
		return []string{fmt.Sprintf("extension %s is version %s on the local database but %s on the peer", e, le, pe)}
	})...)
	return diffs
}
