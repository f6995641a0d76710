package txshim

import "testing"

// TestFidelityPasswordEncryption: a password given in CREATE ROLE or ALTER ROLE … PASSWORD is
// stored hashed after the session's password_encryption. Sent through the shim from a session
// that set md5 (for clients that cannot do SCRAM), the statement hashed it on the peer after
// the apply session's setting instead, and the role's stored password differed between the
// sites: after a failover those clients could no longer log in.
func TestFidelityPasswordEncryption(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{})
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, nil,
		`SET password_encryption = 'md5'`,
		`CREATE ROLE pw LOGIN PASSWORD 'secret'`,
		`RESET password_encryption`,
		`CREATE ROLE pw2 LOGIN PASSWORD 'secret'`,
	)
	const q = `SELECT string_agg(rolname || ':' || left(rolpassword, 14), ' ' ORDER BY rolname) FROM pg_authid WHERE rolname IN ('pw', 'pw2')`
	if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != r {
		t.Errorf("stored passwords: local %s, peer %s", l, r)
	}
}
