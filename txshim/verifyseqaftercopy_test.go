package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestVerifyCatchUpNextvalAfterCopy: catch-up copies the master's sequence positions to the
// peer, with commits held, and then takes the snapshots to verify; the sequences' positions,
// which no snapshot holds, were read after that. A nextval on the master in between — a call
// the hold does not stop (SELECT nextval, a transaction not yet committing) — left the peer
// one behind what verify read, and the verification logged "the databases differ": a false
// report, the next copy of the positions moves the peer past it. The master's positions are
// read before the copy, the peer's after it.
func TestVerifyCatchUpNextvalAfterCopy(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, func(c *ShipperConfig) { c.VerifyCatchUp = true }, Options{}, `CREATE SEQUENCE s`)
	p.local.Exec(t, `SELECT setval('s', 10)`)
	sh.hooks.aligned.set(func() { p.local.Exec(t, `SELECT nextval('s')`) })
	var w *bankWriters
	if err := sh.CatchUp(capCtx(t, 30*time.Second), gateHold(sh, shim, &w, nil)); err != nil {
		t.Fatal(err)
	}
	sh.verifying.Wait()
	r, ok := sh.LastVerify()
	if !ok || r.Err != nil || len(r.Diffs) > 0 {
		t.Fatalf("verify after catch-up: done %v, err %v, differences:\n%s\nwant none", ok, r.Err, strings.Join(r.Diffs, "\n"))
	}
}
