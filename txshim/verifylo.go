package txshim

import (
	"context"
	"database/sql"
	"fmt"
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
// list, not NULL, which no string scans (TestVerifyLargeObjectNoPrivileges).
func largeObjectsSQL(withContents bool) string {
	contents := "''"
	if withContents {
		contents = `coalesce((SELECT count(*) || ':' || sum(('x' || substr(x.h, 1, 16))::bit(64)::bigint::numeric)
      || ':' || sum(('x' || substr(x.h, 17, 16))::bit(64)::bigint::numeric)
    FROM (SELECT md5(int4send(l.pageno) || l.data) AS h FROM pg_largeobject l WHERE l.loid = m.oid) x), '')`
	}
	return `SELECT m.oid::bigint, ` + contents + `, pg_get_userbyid(m.lomowner)::text || ' ' ||
  coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(coalesce(m.lomacl, acldefault('L'::"char", m.lomowner))) a), '')
FROM pg_largeobject_metadata m ORDER BY m.oid`
}

// diffLargeObjects compares the large objects of both snapshots: they live in the catalog
// pg_largeobject, which no publication can hold, so those written through the shim are on
// the local database alone (README), and a failover loses them. It returns one line naming up
// to diffKeysMax objects by OID that exist on one database only or, where verify's user may
// read pg_largeobject on both (a superuser, or lo_compat_privileges), whose contents differ;
// "" when none.
func diffLargeObjects(ctx context.Context, snaps [2]*sql.Tx) (string, error) {
	withContents := true
	for i, tx := range snaps {
		var readable bool
		if err := tx.QueryRowContext(ctx, `SELECT has_table_privilege('pg_catalog.pg_largeobject', 'SELECT')`).Scan(&readable); err != nil {
			return "", fmt.Errorf("verify: large objects on the %s database: %w", sideName(i), err)
		}
		withContents = withContents && readable
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
		oid         int64
		digest, acl string
		ok          bool
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
		return o, rows[i].Scan(&o.oid, &o.digest, &o.acl)
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
			} else if l.acl != p.acl {
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
