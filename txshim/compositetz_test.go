package txshim

import "testing"

// TestApplyCompositeDomainFieldTimeZone: a composite column with a domain field and a
// timestamptz field, whose value a constraint of that domain added NOT VALID refuses, is left as
// it is on the peer by an update by key that does not change it, though the two databases'
// TimeZones differ: kept compares its text as the local walsender spelled it with the peer's,
// and under different TimeZones the same instant is spelled otherwise, so the unchanged value
// was written again, read in its type, and refused as the domain's.
func TestApplyCompositeDomainFieldTimeZone(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t,
		`CREATE DOMAIN posz AS int`,
		`CREATE TYPE tzc AS (at timestamptz, a posz)`,
		`CREATE TABLE cz (id int PRIMARY KEY, r tzc, y int)`,
		`INSERT INTO cz VALUES (1, ROW('2024-01-02 03:04:05+00', -1), 0)`,
		`ALTER DOMAIN posz ADD CHECK (VALUE > 0) NOT VALID`)
	p.local.Exec(t, `ALTER DATABASE app SET timezone = 'Europe/Berlin'`)
	p.peer.Exec(t, `ALTER DATABASE app SET timezone = 'Asia/Tokyo'`)
	installPair(t, p)
	s := startShipper(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.cz SET y = 1 WHERE id = 1`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
