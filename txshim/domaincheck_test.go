package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestApplyFullRowDomainNotValid: a REPLICA IDENTITY FULL row holding a value that a domain
// constraint added NOT VALID refuses is updated and deleted on the peer as on the local
// database: the peer read the old values in the domain (checking the constraint) and set
// unchanged columns again, and refused both as a divergence.
func TestApplyFullRowDomainNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN pos AS int`,
		`CREATE TABLE fd (x pos, y int)`, `ALTER TABLE fd REPLICA IDENTITY FULL`,
		`INSERT INTO fd VALUES (-1, 0), (-2, 0), (3, 0)`,
		`ALTER DOMAIN pos ADD CONSTRAINT pos_check CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `DELETE FROM public.fd WHERE x = -2`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE public.fd SET y = 1`, `UPDATE public.fd SET y = y`)
	dualCommit(t, p, s, gidFor("a", 1, 3), `UPDATE public.fd SET x = 4 WHERE x = 3`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// TestApplyKeyedDomainNotValid: a row of a table with a key, holding a value that a domain
// constraint added NOT VALID refuses, is updated on the peer as on the local database when the
// update leaves that column as it was — by the key, and moved by a GENERATED ALWAYS identity
// column's new value. The peer, which gets every column's new value of an update by key, wrote
// the old value again and refused it (value for domain pos violates check constraint). A value
// the update writes is checked there still.
func TestApplyKeyedDomainNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN pos AS int`,
		`CREATE TABLE kd (id int PRIMARY KEY, x pos, y int)`,
		`INSERT INTO kd VALUES (1, -1, 0), (2, -2, 0), (3, 3, 0), (4, NULL, 0)`,
		`CREATE TABLE kdi (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, x pos, y int)`,
		`INSERT INTO kdi (x, y) VALUES (-1, 0), (-2, 0)`,
		`ALTER DOMAIN pos ADD CONSTRAINT pos_check CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.kd SET y = 1 WHERE id = 1`, `UPDATE public.kd SET y = 1 WHERE id = 4`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE public.kd SET id = 10 WHERE id = 2`, `UPDATE public.kd SET x = 5 WHERE id = 1`, `UPDATE public.kd SET x = NULL WHERE id = 3`)
	dualCommit(t, p, s, gidFor("a", 1, 3), `UPDATE public.kdi SET id = DEFAULT WHERE id = 1`, `UPDATE public.kdi SET id = DEFAULT, x = 7 WHERE id = 2`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
	// A value written is checked: here the local database took one the peer's domain refuses.
	gid := gidFor("a", 1, 4)
	p.peer.Exec(t, `ALTER DOMAIN pos ADD CONSTRAINT pos_small CHECK (VALUE < 100) NOT VALID`)
	prepareLocal(t, p.ldb, gid, `UPDATE public.kd SET x = 100 WHERE id = 10`)
	if err := s.Prepare(capCtx(t, 10*time.Second), gid); err == nil || !strings.Contains(err.Error(), "pos_small") {
		t.Errorf("Prepare of a value the peer's domain refuses = %v, want its refusal", err)
	}
	p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(gid))
	s.Rollback(gid)
}

// TestApplyDomainArrayNotValid: rows holding an array of a domain with an element that a
// constraint added NOT VALID refuses are updated and deleted on the peer as on the local
// database, by key and as REPLICA IDENTITY FULL rows: the peer read the array in the domain's
// array type — the update by key's unchanged value, a full row's old value — checking every
// element, and refused them (value for domain pos violates check constraint).
func TestApplyDomainArrayNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN pos AS int`,
		`CREATE TABLE ka (id int PRIMARY KEY, x pos[], y int)`,
		`INSERT INTO ka VALUES (1, '{-1,2}', 0), (2, '{-2}', 0)`,
		`CREATE TABLE fa (x pos[], y int)`, `ALTER TABLE fa REPLICA IDENTITY FULL`,
		`INSERT INTO fa VALUES ('{-1,2}', 0), ('{-2}', 0), ('{-3}', 0)`,
		`ALTER DOMAIN pos ADD CONSTRAINT pos_check CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.ka SET y = 1 WHERE id = 1`, `UPDATE public.ka SET id = 3 WHERE id = 2`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE public.fa SET y = 1 WHERE x[1] = -1`, `DELETE FROM public.fa WHERE x[1] = -2`,
		`UPDATE public.fa SET x = '{5}' WHERE x[1] = -3`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
