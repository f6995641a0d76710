package txshim

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// largeObjectsSQL lists a database's large objects in OID order, each with a digest of its
// contents — its page count and two sums of 64-bit halves of each page's md5 (of its number
// and data), as checksum sums a table's rows — or "" where withContents is false. Read page by
// page through pg_largeobject's index, never a whole object at once. An object written with
// holes (pages never written, which read as zeros) digests otherwise than the same bytes
// written in full: such a pair is named as differing. Then each one's owner and privileges
// (none recorded: the owner's defaults written out; in one order, whatever order they were
// granted in), by the roles' names: a copy made by hand on the other database may be owned or
// granted otherwise, and after a failover the applications' roles could not read or write it
// (TestVerifyLargeObjectPrivileges). Every privilege revoked, the owner's too, is an empty
// list, not NULL, which no string scans (TestVerifyLargeObjectNoPrivileges). The privileges
// are a JSON array of [aclitem, grantee ("" for PUBLIC), grantor]: as for the other objects
// (diffObjectFacts), an owner the other cluster lacks leaves the object's owner and privileges
// out, and a privilege naming such a role is left out
// (TestVerifyLargeObjectPrivilegesLonelyRole).
func largeObjectsSQL(withContents bool) string {
	contents := "''"
	if withContents {
		contents = `coalesce((SELECT count(*) || ':' || sum(('x' || substr(x.h, 1, 16))::bit(64)::bigint::numeric)
      || ':' || sum(('x' || substr(x.h, 17, 16))::bit(64)::bigint::numeric)
    FROM (SELECT md5(int4send(l.pageno) || l.data) AS h FROM pg_largeobject l WHERE l.loid = m.oid) x), '')`
	}
	return `SELECT m.oid::bigint, ` + contents + `, pg_get_userbyid(m.lomowner)::text,
  coalesce((SELECT json_agg(json_build_array(a::text, e.grantee, e.grantor) ORDER BY a::text)
    FROM unnest(coalesce(m.lomacl, acldefault('L'::"char", m.lomowner))) a,
    LATERAL (SELECT CASE WHEN x.grantee = 0 THEN '' ELSE pg_get_userbyid(x.grantee)::text END AS grantee,
      pg_get_userbyid(x.grantor)::text AS grantor FROM aclexplode(ARRAY[a]) x LIMIT 1) e)::text, '[]')
FROM pg_largeobject_metadata m ORDER BY m.oid`
}

// diffLargeObjects compares the large objects of both snapshots: they live in the catalog
// pg_largeobject, which no publication can hold, so those written through the shim are on
// the local database alone (README), and a failover loses them. It returns one line naming up
// to diffKeysMax objects by OID that exist on one database only or, where verify's user may
// read pg_largeobject on both (a superuser, or lo_compat_privileges), whose contents differ;
// "" when none.
func diffLargeObjects(ctx context.Context, snaps [2]*sql.Tx) (_ string, err error) {
	withContents := true
	for i, tx := range snaps {
		var readable bool
		if err := tx.QueryRowContext(ctx, `SELECT has_table_privilege('pg_catalog.pg_largeobject', 'SELECT')`).Scan(&readable); err != nil {
			return "", fmt.Errorf("verify: large objects on the %s database: %w", sideName(i), err)
		}
		withContents = withContents && readable
	}
	// Each cluster's roles, for the owners and privileges naming a role the other lacks.
	var roles [2]map[string]bool
	for i, tx := range snaps {
		if roles[i], err = readRoles(ctx, tx); err != nil {
			return "", fmt.Errorf("verify: large objects on the %s database: %w", sideName(i), err)
		}
	}
	q := largeObjectsSQL(withContents)
	var rows [2]*sql.Rows
	for i, tx := range snaps {
		r, err := tx.QueryContext(ctx, q)
		if err != nil {
			return "", fmt.Errorf("verify: large objects on the %s database: %w", sideName(i), err)
		}
		defer r.Close()
		rows[i] = r
	}
	type object struct {
		oid                  int64
		digest, owner, privs string
		ok                   bool
	}
	next := func(i int) (object, error) {
		var o object
		if !rows[i].Next() {
			if err := rows[i].Err(); err != nil {
				return o, fmt.Errorf("verify: large objects on the %s database: %w", sideName(i), err)
			}
			return o, nil
		}
		o.ok = true
		return o, rows[i].Scan(&o.oid, &o.digest, &o.owner, &o.privs)
	}
	var out []string
	l, err := next(0)
	if err != nil {
		return "", err
	}
	p, err := next(1)
	if err != nil {
		return "", err
	}
	for (l.ok || p.ok) && len(out) <= diffKeysMax {
		var what string
		switch {
		case p.ok && (!l.ok || p.oid < l.oid):
			what = strconv.FormatInt(p.oid, 10) + " only on the peer"
			p, err = next(1)
		case l.ok && (!p.ok || l.oid < p.oid):
			what = strconv.FormatInt(l.oid, 10) + " only on the local database"
			l, err = next(0)
		default:
			if l.digest != p.digest {
				what = strconv.FormatInt(l.oid, 10) + " differs"
			} else if same, perr := sameLargeObjectPrivs(l.owner, p.owner, l.privs, p.privs, roles); perr != nil {
				return "", fmt.Errorf("verify: large object %d: %w", l.oid, perr)
			} else if !same {
				what = strconv.FormatInt(l.oid, 10) + "'s owner or privileges differ"
			}
			if l, err = next(0); err == nil {
				p, err = next(1)
			}
		}
		if err != nil {
			return "", err
		}
		if what != "" {
			if len(out) == diffKeysMax {
				out = append(out, "and more")
				break
			}
			out = append(out, what)
		}
	}
	if len(out) == 0 {
		return "", nil
	}
	return "large objects differ: " + strings.Join(out, ", "), nil
}

// readRoles reads the names of the cluster's roles.
func readRoles(ctx context.Context, tx *sql.Tx) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT rolname::text FROM pg_roles`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	roles := map[string]bool{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		roles[r] = true
	}
	return roles, rows.Err()
}

// sameLargeObjectPrivs tells whether a large object's owners and privileges (largeObjectsSQL's
// JSON) on the local and the peer database are alike, leaving out, as diffObjectFacts does,
// an owner the other cluster lacks (the owner and privileges both) and a privilege naming
// such a role.
func sameLargeObjectPrivs(lowner, powner, lprivs, pprivs string, roles [2]map[string]bool) (bool, error) {
	if !roles[1][lowner] || !roles[0][powner] {
		return true, nil
	}
	if lowner != powner {
		return false, nil
	}
	var items [2][]string
	for i, js := range []string{lprivs, pprivs} {
		var privs [][3]string
		if err := json.Unmarshal([]byte(js), &privs); err != nil {
			return false, fmt.Errorf("privileges %q: %w", js, err)
		}
		other := roles[1-i]
		for _, pr := range privs {
			if (pr[1] == "" || other[pr[1]]) && other[pr[2]] {
				items[i] = append(items[i], pr[0])
			}
		}
	}
	return slices.Equal(items[0], items[1]), nil
}
