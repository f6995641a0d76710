package main

import (
	"context"
	"database/sql"
	"net/url"
	"testing"
	"time"
)

// serveShim serves d's shim until the test ends and returns a client of it and its URL.
func serveShim(t *testing.T, d *database) (*sql.DB, string) {
	t.Helper()
	sctx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.shim.Serve(sctx) }()
	t.Cleanup(func() { // before dualSite2's cleanups (last-in first-out)
		stopServe()
		<-served
	})
	u, err := url.Parse(d.cfg.LocalDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = d.shim.Addr().String()
	client, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client, u.String()
}

// shortDrain makes a handover's drain wait d (drainBound) until the test ends, and returns d:
// the tests whose drains run out would otherwise wait out 37 s.
func shortDrain(t *testing.T, d time.Duration) time.Duration {
	f := drainBound
	t.Cleanup(func() { drainBound = f })
	drainBound = func(time.Duration) time.Duration { return d }
	return d
}

// runActive runs call in the background and returns once the local database shows a
// statement starting with prefix active; its channel gets call's error when it ends.
func runActive(t *testing.T, ctx context.Context, d *database, prefix string, call func() error) <-chan error {
	t.Helper()
	called := make(chan error, 1)
	go func() { called <- call() }()
	for {
		var n int
		if err := d.local.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE starts_with(query, $1) AND state = 'active'`, prefix).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return called
		}
		select {
		case err := <-called:
			t.Fatalf("%s… ended before the handover: %v", prefix, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
