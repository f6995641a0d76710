package txshim

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestDualWithShipper runs pgbench through the shim in dual mode with the real Peer (Shipper)
// and checks both databases end identical with nothing left prepared.
//
// Not parallel: its pgbench run commits dual through a real Shipper within the shim's 5 s commit
// timeout; beside other tests on a loaded 2-CPU machine it took ten times as long as alone.
func TestDualWithShipper(t *testing.T) {
	if testing.Short() {
		t.Skip("two clusters and pgbench")
	}
	local, peerDB := testCluster(t), testCluster(t)
	for _, c := range []*pgtest.Cluster{local, peerDB} {
		runCmd(t, "pgbench", "-i", "-s", "1", "-q", c.DSN(c.Database()))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := Install(ctx, "site1", local.DSN(local.Database()), peerDB.DSN(peerDB.Database()), logger); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pgtest.Cluster{local, peerDB} {
		if err := WriteTermRecord(ctx, c.Open(t, c.Database()), 1, "site1", true); err != nil {
			t.Fatal(err)
		}
	}
	sh := NewShipper(ShipperConfig{Site: "site1", LocalDSN: local.DSN(local.Database()), PeerDSN: peerDB.DSN(peerDB.Database()), Logger: logger})
	sh.SetTerm(1)
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	s := startShim(t, local, Options{Peer: sh, Logger: logger}, ModeDual, 1)
	start := time.Now()
	out := runCmd(t, "pgbench", "-M", "prepared", "-c", "4", "-t", "100", "-n", s.dsn(pgtest.Superuser))
	if !strings.Contains(out, "processed: 400/400") {
		t.Fatalf("pgbench:\n%s", out)
	}
	t.Logf("dual pgbench 400 transactions in %v; stats %+v", time.Since(start), s.Stats())
	if st := s.Stats(); st.CommitsDual != 400 || st.PeerErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	q := `SELECT (SELECT sum(abalance) FROM pgbench_accounts)::text || '/' || (SELECT count(*) FROM pgbench_history)::text ||
	  '/' || (SELECT count(*) FROM pg_prepared_xacts)::text`
	var want, got string
	deadline := time.Now().Add(10 * time.Second)
	for {
		local.Open(t, local.Database()).QueryRow(q).Scan(&want)
		peerDB.Open(t, peerDB.Database()).QueryRow(q).Scan(&got)
		if (want == got && strings.HasSuffix(got, "/400/0")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if want != got || !strings.HasSuffix(got, "/400/0") {
		t.Fatalf("local %s, peer %s (sum/history/prepared)", want, got)
	}
}
