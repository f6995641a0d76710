package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/txshim"
)

// TestResolveStaleTermLoggedOnce: a pass refused for a newer master's term (ErrStaleTerm)
// is refused again at every pass for as long as that lasts — the periodic one and catch-up's,
// every 2 s while the shim is solo (a master in the same term as another, whose database
// refuses it, stays so until an operator acts). Each refusal was a warning: one line every
// 2 s. The same refusal is warned of once.
func TestResolveStaleTermLoggedOnce(t *testing.T) {
	t.Parallel()
	c, db, _ := installedSite(t, "site2")
	db.Close()
	dsn := c.DSN(c.Database())
	var logs syncBuffer
	cfg := &config.Config{Kind: config.KindSite, Site: "site2", DataDir: t.TempDir(),
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: dsn, PeerDSN: dsn, PeerDown: config.PeerDownContinue,
			MaxMessage: config.DefaultMaxMessage, CommitTimeout: time.Second}}
	d, err := newDatabase(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d.shim.Serve(ctx)
		d.close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := txshim.WriteTermRecord(ctx, d.local, 10, "site1", true); err != nil {
		t.Fatal(err)
	}
	warned := func() int {
		n := 0
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "resolver pass") {
				n++
			}
		}
		return n
	}
	for range 3 {
		d.resolve(ctx, 5)
	}
	if n := warned(); n != 1 {
		t.Fatalf("three passes of term 5 refused by the database's term 10: %d warnings, want 1:\n%s", n, logs.String())
	}
	// Once a pass goes through, the next refusal is news again.
	if _, err := d.local.ExecContext(ctx, `DELETE FROM tandem.state`); err != nil {
		t.Fatal(err)
	}
	d.resolve(ctx, 5)
	if err := txshim.WriteTermRecord(ctx, d.local, 10, "site1", true); err != nil {
		t.Fatal(err)
	}
	d.resolve(ctx, 5)
	if n := warned(); n != 2 {
		t.Errorf("a refusal after a pass that went through: %d warnings in all, want 2:\n%s", n, logs.String())
	}
}
