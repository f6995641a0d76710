package txshim

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// clusterTLSOnly turns TLS on in c, with a self-signed certificate for 127.0.0.1 whose path
// it returns (for sslrootcert), and makes TLS connections over TCP authenticate with
// SCRAM-SHA-256 as the superuser with password pw; plain TCP stays trusted, for the tests'
// own handles.
func clusterTLSOnly(t *testing.T, c *pgtest.Cluster, pw string) string {
	t.Helper()
	der, key := selfSignedCert(t)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The server reads its files as the cluster's user (pgtest's, when the tests run as root)
	// and takes a key only when others cannot read it.
	fi, err := os.Stat(filepath.Join(c.Dir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	certPath, keyPath, hba := filepath.Join(c.Dir(), "tls.crt"), filepath.Join(c.Dir(), "tls.key"), filepath.Join(c.Dir(), "data", "pg_hba.conf")
	for _, f := range []struct {
		path string
		body []byte
	}{
		{certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})},
		{keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})},
		{hba, []byte("local all all trust\nlocal replication all trust\n" +
			"hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl replication all 127.0.0.1/32 scram-sha-256\n" +
			"hostnossl all all 127.0.0.1/32 trust\nhostnossl replication all 127.0.0.1/32 trust\n")},
	} {
		if err := os.WriteFile(f.path, f.body, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f.path, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	c.Exec(t, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", pgtest.Superuser, pw))
	c.Exec(t, fmt.Sprintf("ALTER SYSTEM SET ssl_cert_file = '%s'", certPath))
	c.Exec(t, fmt.Sprintf("ALTER SYSTEM SET ssl_key_file = '%s'", keyPath))
	c.Exec(t, "ALTER SYSTEM SET ssl = on")
	c.Exec(t, "SELECT pg_reload_conf()")
	dsn := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=verify-full&sslrootcert=%s", pgtest.Superuser, pw, c.Port(), c.Database(), certPath)
	waitForLong(t, "TLS on the cluster", 10*time.Second, func() bool {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			conn.Close(context.Background())
		}
		return err == nil
	})
	return certPath
}

// TestBackendTLSVerifyFullSCRAM: with local_dsn and peer_dsn reaching clusters over TLS
// (sslmode=verify-full) that take TLS connections with SCRAM-SHA-256 only (the server offers
// SCRAM-SHA-256-PLUS: channel binding), install, the decoder, the dual commit, a commit the
// decoder ships, the control connections (OpenDB) with a statement their context cancels, a
// client's cancel request through the shim and a half-closed client's replies all work as over
// plain TCP.
func TestBackendTLSVerifyFullSCRAM(t *testing.T) {
	t.Parallel()
	const pw = "pw-s3cret"
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`, `INSERT INTO acct VALUES (1, 100)`)
	lca, pca := clusterTLSOnly(t, p.local, pw), clusterTLSOnly(t, p.peer, pw)
	tlsDSN := func(c *pgtest.Cluster, ca string) string {
		return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=verify-full&sslrootcert=%s", pgtest.Superuser, pw, c.Port(), c.Database(), ca)
	}
	local, peer := tlsDSN(p.local, lca), tlsDSN(p.peer, pca)
	ctx := capCtx(t, 60*time.Second)
	if err := Install(ctx, "a", local, peer, quietLogger()); err != nil {
		t.Fatal(err)
	}
	odb, err := OpenDB(local)
	if err != nil {
		t.Fatal(err)
	}
	defer odb.Close()
	if err := WriteTermRecord(ctx, odb, 1, "a", true); err != nil {
		t.Fatalf("term record through OpenDB over TLS: %v", err)
	}
	if err := WriteTermRecord(ctx, p.pdb, 1, "a", true); err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = odb.ExecContext(qctx, "SELECT pg_sleep(5)")
	qcancel()
	if err == nil {
		t.Fatal("a control statement outlived its context")
	}
	var one int
	if err := odb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("OpenDB after a cancelled statement: %v", err)
	}

	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: local, PeerDSN: peer, Conns: 1, OpTimeout: 3 * time.Second,
		SequenceInterval: -1, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	shim := startShimDSN(t, p.local, local, Options{Peer: sh, Site: "a", Logger: quietLogger()}, ModeSolo, 1)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("the session's backend connection: ssl %v, %v", ssl, err)
	}
	if _, err := conn.Exec(ctx, "UPDATE acct SET balance = balance - 1 WHERE id = 1"); err != nil {
		t.Fatalf("dual commit: %v", err)
	}
	if _, err := conn.Exec(ctx, "BEGIN; CREATE TEMP TABLE tt (x int); INSERT INTO acct VALUES (2, 5); COMMIT"); err != nil {
		t.Fatalf("a commit the decoder ships: %v", err)
	}
	if st := shim.Stats(); st.CommitsDual != 1 || st.Unwrapped != 1 {
		t.Errorf("stats %+v, want one dual commit and one unwrapped", st)
	}
	var sum int
	waitForLong(t, "the peer's rows", 10*time.Second, func() bool {
		return p.pdb.QueryRowContext(ctx, "SELECT sum(balance) FROM acct").Scan(&sum) == nil && sum == 104
	})
	cancelSleep(t, conn, "cancel request to a backend over TLS")

	r, raw := dialRawTCP(t, shim.Addr().String(), p.local.Database(), 10*time.Second)
	defer raw.Close()
	r.simple("SELECT pg_sleep(0.3), 42")
	r.pipeline("SELECT 1")
	raw.CloseWrite()
	a, err1 := r.until('Z')
	b, err2 := r.until('Z')
	if got := fmt.Sprintf("%s %v, %s %v", a, err1, b, err2); strings.Contains(got, "E") || err1 != nil || err2 != nil {
		t.Fatalf("half-closed client through a TLS backend: %s", got)
	}
	waitForLong(t, "the half-closed session's end", 5*time.Second, func() bool { return shim.Stats().SessionsActive == 1 })
	if diffs, err := Verify(ctx, local, peer); err != nil || len(diffs) > 0 {
		t.Errorf("verify: %v %v", diffs, err)
	}
}

// TestClientSSLNegotiationEdges: a client stalled after the shim's 'S' holds up no other
// session and is ended at the startup timeout; bytes sent after SSLRequest before the
// handshake, or no handshake after 'S', end the connection; channel binding, which the shim
// does not offer, is refused with the same 28P01 for a known user and an unknown one, and a
// client that requires it refuses the shim, one that prefers it gets in.
func TestClientSSLNegotiationEdges(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	const timeout = 2 * time.Second
	s := startShim(t, c, Options{TLS: selfSignedTLS(t), Users: map[string]string{"app": "s3cret"}, StartupTimeout: timeout}, ModeSolo, 0)
	ctx := context.Background()
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn
	}
	ended := func(conn net.Conn, what string) {
		t.Helper()
		b, err := io.ReadAll(conn)
		var ne net.Error
		if len(b) > 0 || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: read %q, %v; want the connection closed", what, b, err)
		}
	}
	ssl, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	one := make([]byte, 1)
	stalled := dial()
	start := time.Now()
	stalled.Write(ssl)
	if _, err := io.ReadFull(stalled, one); err != nil || one[0] != 'S' {
		t.Fatalf("SSLRequest answered %q, %v", one, err)
	}
	dsn := fmt.Sprintf("postgres://app:s3cret@%s/%s?sslmode=require", s.Addr(), c.Database())
	for _, q := range []string{"", "&channel_binding=prefer"} {
		conn, err := pgx.Connect(ctx, dsn+q)
		if err != nil {
			t.Fatalf("connect %q beside a stalled handshake: %v", q, err)
		}
		conn.Close(ctx)
	}
	if _, err := pgx.Connect(ctx, dsn+"&channel_binding=require"); err == nil || !strings.Contains(err.Error(), "channel binding") {
		t.Fatalf("channel_binding=require: %v, want refused for want of SCRAM-SHA-256-PLUS", err)
	}
	injected := dial()
	injected.Write(append(append([]byte{}, ssl...), "\x00\x00\x00\x08\x04\xd2\x16\x2f"...))
	ended(injected, "bytes after SSLRequest")
	noTLS := dial()
	noTLS.Write(ssl)
	io.ReadFull(noTLS, one)
	noTLS.Write([]byte("\x00\x00\x00\x08\x04\xd2\x16\x2f"))
	ended(noTLS, "plaintext after 'S'")
	ended(stalled, "stalled after 'S'")
	if d := time.Since(start); d < timeout-100*time.Millisecond || d > timeout+3*time.Second {
		t.Fatalf("stalled handshake ended after %v, want the startup timeout %v", d, timeout)
	}
	for _, tc := range []struct{ mech, data string }{
		{"SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc"},
		{"SCRAM-SHA-256", "p=tls-server-end-point,,n=,r=abc"},
	} {
		var replies []string
		for _, user := range []string{"app", "nobody"} {
			conn := dial()
			fe := pgproto3.NewFrontend(conn, conn)
			fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": user, "database": c.Database()}})
			fe.Flush()
			if m, err := fe.Receive(); err != nil {
				t.Fatal(err)
			} else if _, ok := m.(*pgproto3.AuthenticationSASL); !ok {
				t.Fatalf("want AuthenticationSASL, got %T", m)
			}
			fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: tc.mech, Data: []byte(tc.data)})
			fe.Flush()
			m, err := fe.Receive()
			e, ok := m.(*pgproto3.ErrorResponse)
			if !ok || e.Code != "28P01" {
				t.Fatalf("%s %s as %s: %#v %v, want 28P01", tc.mech, tc.data, user, m, err)
			}
			replies = append(replies, strings.Replace(e.Message, user, "U", 1))
			ended(conn, tc.mech+" refused")
		}
		if replies[0] != replies[1] {
			t.Fatalf("a known and an unknown user told apart: %q", replies)
		}
	}
	if n := s.Stats().SessionsActive; n != 0 {
		t.Fatalf("%d sessions active, want 0", n)
	}
}
