package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestReadOnlyLargeObjectPastKeptCalls: the lexer keeps a statement's first 32 call names; a
// large-object writer after them (which PostgreSQL 15 runs in a read-only transaction) was not
// seen, the read ran unwrapped, and a large object was made on the read-only site.
func TestReadOnlyLargeObjectPastKeptCalls(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeReadOnly, 1)
	conn := s.connect(t)
	q := loPastKeptCalls(4242)
	_, err := conn.Exec(capCtx(t, 20*time.Second), q)
	if pgCode(err) != "25006" {
		t.Errorf("read-only mode, a large-object writer past 32 calls: %v, want 25006", err)
	}
	if n := queryOne[int](t, c.Open(t, c.Database()), `SELECT count(*) FROM pg_largeobject_metadata`); n != 0 {
		t.Errorf("%d large object(s) made on the read-only site", n)
	}
}

// TestReadOnlyLargeObjectPreparedBeforeFlip: a named statement parsed in dual mode with a
// large-object writer past the kept calls, executed after the site became read-only, must be
// refused as one parsed in read-only mode is: the site must not make a large object.
func TestReadOnlyLargeObjectPreparedBeforeFlip(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	conn := s.connect(t)
	q := loPastKeptCalls(4243)
	ctx := capCtx(t, 20*time.Second)
	if _, err := conn.Prepare(ctx, "lo", q); err != nil {
		t.Fatalf("prepare in dual mode: %v", err)
	}
	s.SetMode(ModeReadOnly, 1)
	_, err := conn.Exec(ctx, "lo")
	if pgCode(err) != "25006" {
		t.Errorf("read-only mode, a statement parsed in dual mode with a large-object writer past 32 calls: %v, want 25006", err)
	}
	if n := queryOne[int](t, c.Open(t, c.Database()), `SELECT count(*) FROM pg_largeobject_metadata`); n != 0 {
		t.Errorf("%d large object(s) made on the read-only site", n)
	}
}

// loPastKeptCalls is a read whose large-object writer, making object oid, comes after the
// 32 call names the lexer keeps.
func loPastKeptCalls(oid int) string {
	var calls []string
	for i := 0; i < 33; i++ {
		calls = append(calls, fmt.Sprintf("abs(%d)", i))
	}
	return "SELECT " + strings.Join(calls, ", ") + fmt.Sprintf(", lo_create(%d)", oid)
}
