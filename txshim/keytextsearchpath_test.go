package txshim

import (
	"slices"
	"testing"
	"time"
)

// TestApplyKeyTextCompareRegclass: a key compared by its text (a composite with a field of a
// domain with a CHECK, holding a NULL; or with a field of a domain with a constraint added NOT
// VALID) is spelled by the walsender under its search_path (pg_catalog) and by the apply
// session under the peer's: a regclass field is "public.t" in one and "t" in the other, and the
// peer found no row for an update that the typed compare found before 0e5015a and d6ed6cc (a
// NULL passes CHECK (VALUE > 0); 1 meets the NOT VALID constraint).
func TestApplyKeyTextCompareRegclass(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN posr AS int CHECK (VALUE > 0)`,
		`CREATE DOMAIN posv AS int`,
		`CREATE TABLE t (x int)`,
		`CREATE TYPE pr AS (r regclass, n posr)`,
		`CREATE TYPE pv AS (r regclass, n posv)`,
		`CREATE TABLE kr (k pr PRIMARY KEY, v int)`,
		`CREATE TABLE kv (k pv PRIMARY KEY, v int)`,
		`INSERT INTO kr VALUES (ROW('t', NULL), 0), (ROW('t', 1), 0)`,
		`INSERT INTO kv VALUES (ROW('t', 1), 0)`,
		`ALTER DOMAIN posv ADD CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE kr SET v = 1`,
		`UPDATE kv SET v = 1`)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kr WHERE v = 1`); n != 2 {
		t.Errorf("the peer's kr has %d rows updated, want 2", n)
	}
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// regObjectsSetup makes, in public, an object of each kind a reg* type names after the search
// path (a table, a type, functions, an operator, a text search configuration and dictionary, a
// collation), which the walsender (search_path pg_catalog) writes schema-qualified and a
// session whose search_path holds public does not.
var regObjectsSetup = []string{
	`CREATE TABLE t (x int)`,
	`CREATE TYPE e AS ENUM ('a')`,
	`CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS 'SELECT 1'`,
	`CREATE FUNCTION f2(int, int) RETURNS bool LANGUAGE sql AS 'SELECT true'`,
	`CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = f2)`,
	`CREATE TEXT SEARCH CONFIGURATION cfg (COPY = pg_catalog.simple)`,
	`CREATE TEXT SEARCH DICTIONARY dict (TEMPLATE = pg_catalog.simple)`,
	`CREATE COLLATION coll FROM "C"`,
	`CREATE TYPE regs AS (a regclass, b regtype, c regproc, d regprocedure, e regoper, f regoperator,
	  g regconfig, h regdictionary, i regcollation, j regnamespace, k regrole, l regclass[])`,
}

// regsValue is a value of regobjectsSetup's type regs naming its objects.
const regsValue = `ROW('t', 'e', 'f', 'f(int)', '###', '###(int,int)', 'cfg', 'dict', 'coll', 'public', CURRENT_USER, '{t,pg_class}')::regs`

// TestFullIdentityInnerDomainRegTypes: a REPLICA IDENTITY FULL row's value with a domain
// inside (pc.inner) is compared by its text, which the walsender wrote under search_path
// pg_catalog: each reg* type that spells a name after the search path (inside a composite, an
// array of one, a domain over an array of them) is "public.t" there and "t" in the apply
// session, whose text compare found no row for an update or a delete.
func TestFullIdentityInnerDomainRegTypes(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, append(slices.Clone(regObjectsSetup),
		`CREATE DOMAIN dn AS int`,
		`CREATE TYPE rd AS (r regs, n dn)`,
		`CREATE DOMAIN rca AS regclass[]`,
		`CREATE TABLE fr (c rd, y int)`, `ALTER TABLE fr REPLICA IDENTITY FULL`,
		`CREATE TABLE fa (c rd[], y int)`, `ALTER TABLE fa REPLICA IDENTITY FULL`,
		`CREATE TABLE fd (c rca[], y int)`, `ALTER TABLE fd REPLICA IDENTITY FULL`,
		`INSERT INTO fr VALUES (ROW(`+regsValue+`, 1), 1), (ROW(`+regsValue+`, 2), 2)`,
		`INSERT INTO fa VALUES (ARRAY[ROW(`+regsValue+`, 1)::rd], 1), (ARRAY[ROW(`+regsValue+`, 2)::rd], 2)`,
		`INSERT INTO fd VALUES (ARRAY['{t}'::rca], 1), (ARRAY['{t,pg_class}'::rca], 2)`)...)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE fr SET y = 10 WHERE y = 1`, `DELETE FROM fr WHERE y = 2`,
		`UPDATE fa SET y = 10 WHERE y = 1`, `DELETE FROM fa WHERE y = 2`,
		`UPDATE fd SET y = 10 WHERE y = 1`, `DELETE FROM fd WHERE y = 2`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// TestApplyKeptInnerDomainRegclass: an update by key leaves a column with a domain inside as it
// is (kept) by comparing the value's text with the one the walsender sent: with a regclass
// beside the domain the two were spelled after different search paths, and the value was
// written again, read in the column's type — refused for the constraint added NOT VALID that it
// does not meet.
func TestApplyKeptInnerDomainRegclass(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, append(slices.Clone(regObjectsSetup),
		`CREATE DOMAIN posv AS int`,
		`CREATE TYPE pv AS (r regs, n posv)`,
		`CREATE TABLE kp (id int PRIMARY KEY, c pv, y int)`,
		`INSERT INTO kp VALUES (1, ROW(`+regsValue+`, -1), 0)`,
		`ALTER DOMAIN posv ADD CHECK (VALUE > 0) NOT VALID`)...)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE kp SET y = 1`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// TestApplyKeyNotValidRegclass: a key with a field of a domain with a constraint added NOT VALID
// (or of a NOT NULL domain, holding a NULL) is compared by its text, not read in its type,
// which checks the domain; with a reg* type inside it too (pathText), 265ba70 read it in its
// type all the same, and the peer refused the update and delete of a row whose key does not
// meet the constraint.
func TestApplyKeyNotValidRegclass(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, append(slices.Clone(regObjectsSetup),
		`CREATE DOMAIN posv AS int`,
		`CREATE DOMAIN nn AS int NOT NULL`,
		`CREATE TYPE pv AS (r regs, n posv)`,
		`CREATE TYPE pn AS (r regclass, n nn)`,
		`CREATE TABLE src (x nn)`,
		`CREATE TABLE kv (k pv PRIMARY KEY, v int)`,
		`CREATE TABLE kn (k pn PRIMARY KEY, v int)`,
		`INSERT INTO kv VALUES (ROW(`+regsValue+`, -1), 0), (ROW(`+regsValue+`, -2), 0)`,
		`INSERT INTO kn SELECT ROW('t', (SELECT x FROM src))::pn, 0`,
		`INSERT INTO kn SELECT ROW('pg_class', (SELECT x FROM src))::pn, 0`,
		`ALTER DOMAIN posv ADD CHECK (VALUE > 0) NOT VALID`)...)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE kv SET v = 1 WHERE (k).n = -1`, `DELETE FROM kv WHERE (k).n = -2`,
		`UPDATE kn SET v = 1 WHERE (k).r = 't'::regclass`, `DELETE FROM kn WHERE (k).r = 'pg_class'::regclass`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// TestApplyKeyRegclassPeerInstallOlder: a peer set up by an install before tandem.catalog_text
// reads a key with a reg* type inside in its type, as before (it meets its domain), and finds
// a REPLICA IDENTITY FULL row without one by its text; install run again makes the function.
func TestApplyKeyRegclassPeerInstallOlder(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN posv AS int`,
		`CREATE TABLE t (x int)`,
		`CREATE TYPE pv AS (r regclass, n posv)`,
		`CREATE TYPE pd AS (a int[], n posv)`,
		`CREATE TABLE kv (k pv PRIMARY KEY, v int)`,
		`CREATE TABLE fd (c pd, y int)`, `ALTER TABLE fd REPLICA IDENTITY FULL`,
		`INSERT INTO kv VALUES (ROW('t', 1), 0)`,
		`INSERT INTO fd VALUES (ROW('{1}', -1), 0)`,
		`ALTER DOMAIN posv ADD CHECK (VALUE > 0) NOT VALID`)
	p.peer.Exec(t, `DROP FUNCTION tandem.catalog_text(anyelement)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE kv SET v = 1`, `UPDATE fd SET y = 1`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
	if err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	if !queryOne[bool](t, p.pdb, `SELECT to_regprocedure('tandem.catalog_text(anyelement)') IS NOT NULL`) {
		t.Error("install again did not make tandem.catalog_text on the peer")
	}
}
