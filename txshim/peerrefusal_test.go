package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestPeerRefusalSettingsCheck: a CHECK whose result depends on a session setting (f::text
// under extra_float_digits) passes on the master, for a client at extra_float_digits = 0, and
// fails on the peer (23514). The commit is rolled back on both and nothing differs: shipping
// goes on, and the next write commits on both. The client was told "the sites have
// diverged", which they had not; it hears that the peer refused the transaction, rolled back
// on both.
func TestPeerRefusalSettingsCheck(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE gchk (id int PRIMARY KEY, f float8 CHECK (f::text <> '0.30000000000000004'))`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	ctx := capCtx(t, 60*time.Second)
	if _, err := conn.Exec(ctx, `SET extra_float_digits = 0`); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, `INSERT INTO gchk VALUES (1, 0.1::float8 + 0.2::float8)`)
	if err == nil {
		t.Fatal("the row the peer refuses was committed")
	}
	if pgCode(err) != "XX000" || strings.Contains(err.Error(), "diverged") || !strings.Contains(err.Error(), "rolled back on both") {
		t.Errorf("peer refusal: %v, want XX000 saying it was rolled back on both, not that the sites diverged", err)
	}
	fidelityStep(t, p, sh, conn, []string{"gchk"}, `RESET extra_float_digits`, `INSERT INTO gchk VALUES (2, 1)`)
	for _, db := range []string{"local", "peer"} {
		c := p.ldb
		if db == "peer" {
			c = p.pdb
		}
		var n int
		if err := c.QueryRow(`SELECT count(*) FROM gchk WHERE id = 1`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s database: %d refused rows (%v)", db, n, err)
		}
	}
	requireSame(t, p)
}
