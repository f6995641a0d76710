package txshim

import (
	"slices"
	"testing"
)

// TestApplyQuoteAllIdentifiers: the apply compares a value with a reg* type beside a domain
// inside (a REPLICA IDENTITY FULL row's, a kept column's) by its text, as the walsender wrote
// it, with the peer's (tandem.catalog_text): a database whose default is
// quote_all_identifiers = on, local or peer, spelled every name quoted ("public"."t") where the
// other spells it bare, and the peer found no row for an update or a delete (divergence).
func TestApplyQuoteAllIdentifiers(t *testing.T) {
	t.Parallel()
	for _, side := range []string{"local", "peer"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			p := startCapPair(t)
			p.both(t, append(slices.Clone(regObjectsSetup),
				`CREATE DOMAIN dn AS int`,
				`CREATE TYPE rd AS (r regs, n dn)`,
				`CREATE TABLE fr (c rd, y int)`, `ALTER TABLE fr REPLICA IDENTITY FULL`,
				`INSERT INTO fr VALUES (ROW(`+regsValue+`, 1), 1), (ROW(`+regsValue+`, 2), 2)`)...)
			db := p.ldb
			if side == "peer" {
				db = p.pdb
			}
			if _, err := db.Exec(`ALTER DATABASE app SET quote_all_identifiers = on`); err != nil {
				t.Fatal(err)
			}
			installPair(t, p)
			s := startShipper(t, p)
			dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE fr SET y = 10 WHERE y = 1`, `DELETE FROM fr WHERE y = 2`)
			requireSame(t, p)
			if err := s.Err(); err != nil {
				t.Errorf("shipper: %v", err)
			}
		})
	}
}
