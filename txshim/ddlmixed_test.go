package txshim

import "testing"

// TestApplyDDLPeerInstallOlder: the local database set up by this version's install, the peer
// by an older one (install stopped there: another transaction held tandem.ddl, 55P03), whose
// tandem.ddl lacks the columns of the settings added since. The apply inserted the row on the
// peer with every column the local database's had: "column ... does not exist" (42703), and
// every DDL through the shim was rolled back as a divergence until install was run again.
func TestApplyDDLPeerInstallOlder(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY)`)
	for _, c := range []string{"quote_all_identifiers", "plpgsql.extra_errors", "default_tablespace", "default_text_search_config"} {
		if _, err := p.pdb.Exec(`ALTER TABLE tandem.ddl DROP COLUMN "` + c + `"`); err != nil {
			t.Fatal(err)
		}
	}
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"items", "made"},
		`SET quote_all_identifiers = on`,
		`CREATE TABLE made (id int PRIMARY KEY, n text DEFAULT quote_ident('abc'))`,
		`RESET quote_all_identifiers`,
		`INSERT INTO made (id) VALUES (1)`,
		`INSERT INTO items VALUES (1)`,
	)
}

// TestApplyDDLPeerInstallOlderRestated: as TestApplyDDLPeerInstallOlder, with DDL whose record
// is rewritten in its transaction (CREATE TABLE ... AS of a published table, ddl_ctas): the
// rewrite is an UPDATE of the tandem.ddl row, which the apply ran on the peer with every column
// of the local database's row, those the peer lacks too (42703); so is a DROP of temporary and
// permanent tables (ddl_restate_drop).
func TestApplyDDLPeerInstallOlderRestated(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY)`)
	for _, c := range []string{"quote_all_identifiers", "plpgsql.extra_errors", "default_tablespace", "default_text_search_config"} {
		if _, err := p.pdb.Exec(`ALTER TABLE tandem.ddl DROP COLUMN "` + c + `"`); err != nil {
			t.Fatal(err)
		}
	}
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"items", "made"},
		`CREATE TABLE made AS SELECT 1 AS id, 'a'::text AS n`,
		`INSERT INTO made VALUES (2, 'b')`,
		`INSERT INTO items VALUES (1)`,
		// A DROP of temporary and permanent tables is rewritten alike (ddl_restate_drop).
		`CREATE TABLE gone (id int PRIMARY KEY)`,
		`CREATE TEMP TABLE scratch (id int)`,
		`DROP TABLE scratch, gone`,
		`INSERT INTO items VALUES (2)`,
	)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_class WHERE relname = 'gone'`); n != 0 {
		t.Errorf("gone still on the peer")
	}
}
