package txshim

import "testing"

// TestVerifyOwnersAndPrivileges: an owner or a privilege (GRANT, REVOKE) changed on one
// database only left every table alike, and verify called the databases identical; after a
// failover the applications' roles could no longer read, write or alter what they could
// before. Each is a difference; the same privileges granted otherwise are not, nor an owner
// or a grant naming a role the other cluster lacks.
func TestVerifyOwnersAndPrivileges(t *testing.T) {
	t.Parallel()
	const table = `CREATE TABLE t (id int PRIMARY KEY, v text)`
	cases := []verifyCase{
		{name: "table owner", want: []string{`table public.t is owned by `, ` on the local database but by acl_own on the peer`},
			both: []string{`CREATE ROLE acl_own`, table}, peer: []string{`ALTER TABLE t OWNER TO acl_own`}},
		{name: "table grant", want: []string{`table public.t: privilege acl_rd=r/`, `on the local database only`}, count: 1,
			both: []string{`CREATE ROLE acl_rd`, table}, local: []string{`GRANT SELECT ON t TO acl_rd`}},
		{name: "column grant", want: []string{`column v of table public.t: privilege acl_col=w/`, `on the peer database only`},
			both: []string{`CREATE ROLE acl_col`, table}, peer: []string{`GRANT UPDATE (v) ON t TO acl_col`}},
		{name: "function revoke", want: []string{`function public.f(): privilege =X/`, `on the peer database only`},
			both:  []string{`CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'`},
			local: []string{`REVOKE EXECUTE ON FUNCTION f() FROM PUBLIC`}},
		{name: "schema usage", want: []string{`schema s: privilege acl_use=U/`, `on the local database only`},
			both: []string{`CREATE ROLE acl_use`, `CREATE SCHEMA s`}, local: []string{`GRANT USAGE ON SCHEMA s TO acl_use`}},
		{name: "sequence and view", want: []string{`sequence public.q: privilege acl_seq=U/`, `view public.v: privilege acl_seq=r/`}, count: 2,
			both: []string{`CREATE ROLE acl_seq`, `CREATE SEQUENCE q`, table, `CREATE VIEW v AS SELECT id FROM t`},
			peer: []string{`GRANT USAGE ON SEQUENCE q TO acl_seq`, `GRANT SELECT ON v TO acl_seq`}},
		{name: "granted otherwise",
			both:  []string{`CREATE ROLE acl_same`, table},
			local: []string{`GRANT SELECT, INSERT ON t TO acl_same`, `GRANT UPDATE ON t TO acl_same`, `REVOKE UPDATE ON t FROM acl_same`},
			peer:  []string{`GRANT INSERT ON t TO acl_same`, `GRANT SELECT ON t TO acl_same`}},
		// Roles are the clusters': one the peer's lacks owns there what DDL through the shim
		// made under it as the apply's user (TestApplyDDLRole).
		{name: "owner the peer's cluster lacks",
			both: []string{table}, local: []string{`CREATE ROLE acl_lonely`, `ALTER TABLE t OWNER TO acl_lonely`, `GRANT SELECT ON t TO PUBLIC`},
			peer: []string{`GRANT SELECT ON t TO PUBLIC`}},
		// A column's privileges have the grantor of its table's: the owner, which on the peer is
		// the apply's user there; left out with the table's.
		{name: "column grant under an owner the peer's cluster lacks",
			both:  []string{table},
			local: []string{`CREATE ROLE acl_lonely_col`, `ALTER TABLE t OWNER TO acl_lonely_col`, `GRANT UPDATE (v) ON t TO PUBLIC`},
			peer:  []string{`GRANT UPDATE (v) ON t TO PUBLIC`}},
		{name: "default privileges written out", // NULL against the owner's defaults written out
			both: []string{`CREATE ROLE acl_dflt`, table}, local: []string{`GRANT SELECT ON t TO acl_dflt`, `REVOKE SELECT ON t FROM acl_dflt`}},
	}
	verifyCases(t, "acl", cases)
}
