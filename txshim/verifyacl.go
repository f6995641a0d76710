package txshim

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// appObjectsACLSQL lists the owner and each privilege of the application schemas' objects —
// their schemas; tables, views, materialized views, sequences and foreign tables; columns
// granted privileges of their own; functions, procedures and aggregates; domains, enums,
// ranges and composite types — by their description (pg_describe_object, qualified under
// verify's search path): the object, "owner" or "privilege", and the owner's name or an
// aclitem ("grantee=privileges/grantor", roles by name: the clusters' role OIDs differ). No
// privileges recorded (NULL) are the owner's defaults written out (acldefault), so the same
// privileges granted otherwise — at once or one by one, a grant revoked again — read alike.
// DDL through the shim keeps them alike (a GRANT ships; an object made under a role is the
// role's on both: TestApplyDDLRole); DDL that bypassed it on one database, or a role the peer
// lacks, makes them differ, and after a failover the applications' roles can no longer read,
// write or alter what they could (TestVerifyOwnersAndPrivileges). A column granted privileges
// of its own is listed with its relation ("column of"), whose owner grants them.
//
// The default privileges (ALTER DEFAULT PRIVILEGES) of a role, in an application schema or in
// every schema, are listed too, as objects with no owner: made on one database only, each
// table, sequence, function, type or schema made on the new master after a failover got other
// privileges than the old master gave it (TestVerifyDefaultPrivileges). A role's default
// privileges in every schema, where none are recorded, are the built-in ones; they are listed
// written out ("default privilege"), to stand for those of a database that records none.
//
// And the database's own privileges (GRANT … ON DATABASE), as "database": changed on one
// database only, the applications' roles could not connect to the new master after a
// failover, or make their schemas or temporary tables there (TestVerifyDatabasePrivileges).
// Each is named by its privilege and grantee alone, not as an aclitem: the two databases'
// names and owners may differ between the sites (the owner's own privileges are left out, and
// the privileges granted to the other database's owner: the application's role owning the
// database on one site and granted its privileges on the other uses them alike on both —
// TestVerifyDatabasePrivilegesOwnersDiffer). Nor is their grantor looked at: a privilege of
// one database granted by a role the other cluster lacks — its owner — is compared all the
// same (TestVerifyDatabasePrivilegesLonelyOwner).
var appObjectsACLSQL = `WITH objs AS (
  SELECT 'pg_class'::regclass AS cls, c.oid, 0 AS sub, c.relowner AS owner,
    coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't' AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_class'::regclass, c.oid, a.attnum, NULL, a.attacl
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relpersistence <> 't' AND a.attnum > 0 AND NOT a.attisdropped
    AND a.attacl IS NOT NULL AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_proc'::regclass, p.oid, 0, p.proowner, coalesce(p.proacl, acldefault('f'::"char", p.proowner))
  FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace WHERE ` + procSchemaFilter + `
  UNION ALL
  SELECT 'pg_namespace'::regclass, n.oid, 0, n.nspowner, coalesce(n.nspacl, acldefault('n'::"char", n.nspowner))
  FROM pg_namespace n WHERE ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_type'::regclass, t.oid, 0, t.typowner, coalesce(t.typacl, acldefault('T'::"char", t.typowner))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE (t.typtype IN ('d', 'e', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
    AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_default_acl'::regclass, d.oid, 0, NULL, d.defaclacl
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
  WHERE d.defaclnamespace = 0 OR (` + appSchemaFilter + `)
)
SELECT pg_describe_object(o.cls, o.oid, o.sub), 'owner', pg_get_userbyid(o.owner)::text, '', '' FROM objs o WHERE o.owner IS NOT NULL
UNION ALL
SELECT pg_describe_object(o.cls, o.oid, o.sub), 'column of', pg_describe_object(o.cls, o.oid, 0), '', '' FROM objs o WHERE o.sub <> 0
UNION ALL
SELECT pg_describe_object(o.cls, o.oid, o.sub), 'privilege', x.item::text, g.grantee, g.grantor
FROM objs o, unnest(o.acl) x(item),
  LATERAL (SELECT CASE WHEN e.grantee = 0 THEN '' ELSE pg_get_userbyid(e.grantee)::text END AS grantee, pg_get_userbyid(e.grantor)::text AS grantor
    FROM aclexplode(ARRAY[x.item]) e LIMIT 1) g
UNION ALL
SELECT pg_describe_object('pg_default_acl'::regclass, d.oid, 0), 'default privilege', x.item::text, g.grantee, g.grantor
FROM pg_default_acl d, unnest(acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END::"char", d.defaclrole)) x(item),
  LATERAL (SELECT CASE WHEN e.grantee = 0 THEN '' ELSE pg_get_userbyid(e.grantee)::text END AS grantee, pg_get_userbyid(e.grantor)::text AS grantor
    FROM aclexplode(ARRAY[x.item]) e LIMIT 1) g
WHERE d.defaclnamespace = 0
UNION ALL
SELECT DISTINCT 'database', 'privilege', e.privilege_type || CASE WHEN e.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
    || ' to ' || CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(e.grantee)) END,
  CASE WHEN e.grantee = 0 THEN '' ELSE pg_get_userbyid(e.grantee)::text END, ''
FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d'::"char", d.datdba))) e
WHERE d.datname = current_database() AND e.grantee <> d.datdba
UNION ALL
SELECT 'database', 'database owner', pg_get_userbyid(d.datdba)::text, '', '' FROM pg_database d WHERE d.datname = current_database()
UNION ALL
SELECT '', 'role', rolname::text, '', '' FROM pg_roles`

// appCommentsSQL lists the comments (COMMENT ON) of the application schemas' objects — their
// schemas; tables, views, materialized views, sequences and foreign tables, and their columns;
// functions, procedures and aggregates; domains, enums, ranges and composite types, and a
// composite type's columns (kept on its pg_class row, relkind 'c': TestVerifyComments);
// and indexes, constraints (of tables and domains), triggers, policies and rules
// (TestVerifyCommentsOnTableParts) — by the object's description (as appObjectsACLSQL), each
// quoted as a literal. Those of the last are named by their names, which DDL through the shim
// gives alike (it ships the statement); where DDL that bypassed it gave one otherwise on each
// (a constraint's default name), its comment shows on one side only on each. The objects are listed first and
// their comments found by pg_description's index: read the other way, pg_description's rows
// of each class filtered by a subplan per class, it was priced above jit_above_cost on a
// database of a few hundred objects and JIT-compiled at each verify, for ten times as long as
// it ran (TestVerifyCatalogQueriesBelowJIT).
var appCommentsSQL = `SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), 'comment', quote_literal(d.description), '', ''
FROM (
  SELECT 'pg_class'::regclass AS cls, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c', 'i', 'I') AND c.relpersistence <> 't' AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_constraint'::regclass, co.oid FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relpersistence <> 't' AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_constraint'::regclass, co.oid FROM pg_constraint co JOIN pg_type t ON t.oid = co.contypid JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_trigger'::regclass, tg.oid FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE NOT tg.tgisinternal AND c.relpersistence <> 't' AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_policy'::regclass, pol.oid FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relpersistence <> 't' AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_rewrite'::regclass, rw.oid FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE rw.rulename <> '_RETURN' AND c.relpersistence <> 't' AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p JOIN pg_namespace pn ON pn.oid = p.pronamespace WHERE ` + procSchemaFilter + `
  UNION ALL
  SELECT 'pg_type'::regclass, t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE t.typtype IN ('d', 'e', 'r', 'c') AND ` + appSchemaFilter + `
  UNION ALL
  SELECT 'pg_namespace'::regclass, n.oid FROM pg_namespace n WHERE ` + appSchemaFilter + `
) o JOIN pg_description d ON d.objoid = o.oid AND d.classoid = o.cls`

// objectFacts is what verify reads of the application objects beyond their definitions, by
// the objects' descriptions: their owners, their privileges (sorted) and comments; the
// relation of each column granted privileges of its own; and the cluster's roles.
type objectFacts struct {
	owners   map[string]string
	relOf    map[string]string // a column's relation
	privs    map[string][]objPriv
	roles    map[string]bool
	comments map[string]string // quoted as literals
	dbOwner  string            // the database's owner
	// dflt is, for each role's default privileges in every schema recorded (ALTER DEFAULT
	// PRIVILEGES without IN SCHEMA), the built-in ones they replace: a database recording none
	// has those.
	dflt map[string][]objPriv
}

// objPriv is a privilege (an aclitem, as text) and the roles it names: its grantee ("" for
// PUBLIC) and grantor.
type objPriv struct{ item, grantee, grantor string }

// readObjectFacts reads the objectFacts of the snapshot tx.
func readObjectFacts(ctx context.Context, tx *sql.Tx) (objectFacts, error) {
	f := objectFacts{owners: map[string]string{}, relOf: map[string]string{}, privs: map[string][]objPriv{}, roles: map[string]bool{}, comments: map[string]string{},
		dflt: map[string][]objPriv{}}
	// Two statements: as one (UNION ALL), the comments' part was planned otherwise and took a
	// hundred times as long.
	for _, q := range []string{appObjectsACLSQL, appCommentsSQL} {
		if err := f.read(ctx, tx, q); err != nil {
			return f, fmt.Errorf("read owners, privileges and comments: %w", err)
		}
	}
	for _, m := range []map[string][]objPriv{f.privs, f.dflt} {
		for _, p := range m {
			slices.SortFunc(p, func(a, b objPriv) int { return strings.Compare(a.item, b.item) })
		}
	}
	return f, nil
}

// read adds the rows of q (appObjectsACLSQL, appCommentsSQL) to f.
func (f *objectFacts) read(ctx context.Context, tx *sql.Tx, q string) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var obj, kind, v, grantee, grantor string
		if err := rows.Scan(&obj, &kind, &v, &grantee, &grantor); err != nil {
			return err
		}
		switch kind {
		case "owner":
			f.owners[obj] = v
		case "role":
			f.roles[v] = true
		case "column of":
			f.relOf[obj] = v
		case "comment":
			f.comments[obj] = v
		case "database owner":
			f.dbOwner = v
		case "default privilege":
			f.dflt[obj] = append(f.dflt[obj], objPriv{"privilege " + v, grantee, grantor})
		default:
			f.privs[obj] = append(f.privs[obj], objPriv{"privilege " + v, grantee, grantor})
		}
	}
	return rows.Err()
}

// diffObjectFacts names the owners, privileges and comments that differ between the local and the peer
// database, of the objects both hold (one on one side only is named as a definition, where it
// is compared; a column's privileges of its own are on one side only as well). Roles belong
// to the clusters, not to the databases verify compares: DDL through the shim under a role
// the peer's cluster lacks makes the object the apply's user's there (TestApplyDDLRole), and a
// grant to such a role cannot be made there at all. So an object whose owner is a role the
// other cluster lacks has its owner and privileges left out — its columns' too, which that
// owner granted on one database and the other's owner on the other, as the object's own —,
// and so is a privilege naming such a role (as grantee or grantor)
// (TestVerifyOwnersAndPrivileges: a column grant under an owner the peer's cluster lacks).
func diffObjectFacts(l, p objectFacts) []string {
	var diffs []string
	skip := map[string]bool{}
	for _, o := range unionKeys(l.owners, p.owners) {
		lo, lok := l.owners[o]
		po, pok := p.owners[o]
		switch {
		case lok != pok:
			skip[o] = true // the object is on one side only
		case !p.roles[lo] || !l.roles[po]:
			skip[o] = true
		case lo != po:
			diffs = append(diffs, fmt.Sprintf("%s is owned by %s on the local database but by %s on the peer", o, lo, po))
		}
	}
	shared := func(o string, privs []objPriv, other objectFacts) []string {
		var out []string
		for _, pr := range privs {
			if o == "database" && pr.grantee != "" && (pr.grantee == l.dbOwner || pr.grantee == p.dbOwner) {
				continue // an owner's own, on either database
			}
			// The database's privileges are named without their grantor (its owner, which
			// may be a role of one cluster alone: TestVerifyDatabasePrivilegesLonelyOwner).
			if (pr.grantee == "" || other.roles[pr.grantee]) && (o == "database" || other.roles[pr.grantor]) {
				out = append(out, pr.item)
			}
		}
		return out
	}
	// A role's default privileges in every schema recorded on one database only: the other's
	// are the built-in ones — where the other cluster has the role. Where it lacks it, they
	// are left out, as a privilege naming such a role is: the built-in ones stood for the
	// other's, naming the role (each one's grantor), and were kept where the recorded ones were
	// not (TestVerifyDefaultPrivilegesLonelyRole).
	l.privs, p.privs = maps.Clone(l.privs), maps.Clone(p.privs)
	for _, sides := range [][2]objectFacts{{l, p}, {p, l}} {
		for o, d := range sides[0].dflt {
			if _, ok := sides[1].privs[o]; !ok && len(d) > 0 && sides[1].roles[d[0].grantor] {
				sides[1].privs[o] = d
			}
		}
	}
	for _, o := range unionKeys(l.privs, p.privs) {
		if skip[o] || skip[l.relOf[o]] || skip[p.relOf[o]] {
			continue
		}
		for _, d := range tableFactDiffs(o, shared(o, l.privs[o], p), shared(o, p.privs[o], l)) {
			diffs = append(diffs, strings.TrimPrefix(d, "table "))
		}
	}
	// Comments, of objects on both sides (a column, not among the owners, on one side only is
	// named with its table).
	for _, o := range unionKeys(l.comments, p.comments) {
		_, lok := l.owners[o]
		_, pok := p.owners[o]
		lc, lcok := l.comments[o]
		pc, pcok := p.comments[o]
		switch {
		case lok != pok:
		case !pcok:
			diffs = append(diffs, fmt.Sprintf("comment on %s: %s on the local database only", o, lc))
		case !lcok:
			diffs = append(diffs, fmt.Sprintf("comment on %s: %s on the peer database only", o, pc))
		case lc != pc:
			diffs = append(diffs, fmt.Sprintf("comment on %s: %s on the local database but %s on the peer", o, lc, pc))
		}
	}
	return diffs
}
