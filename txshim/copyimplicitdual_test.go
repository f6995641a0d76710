package txshim

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestImplicitCopyDualPeer: a COPY FROM STDIN in an implicit transaction (a simple Query of
// the COPY and an INSERT, or an extended request of both) through a dual shim whose peer is a
// real database behind a Shipper: the rows the client was told committed are on both
// databases, those of a COPY that failed (CopyFail, a bad row, the INSERT after it failing)
// on neither, and the two end identical. Then the peer is killed: the shim goes on alone, the
// rows stay local until catch-up brings the peer in step, identical again.
func TestImplicitCopyDualPeer(t *testing.T) {
	t.Parallel()
	var downs atomic.Int64
	p, sh, shim := startShipPair(t, nil, Options{OnPeerDown: func() bool { downs.Add(1); return true }},
		`CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL)`)
	hold := catchUpToDual(t, sh, shim)
	if m, _ := shim.Mode(); m != ModeDual {
		t.Fatalf("mode %v after the first CatchUp, want dual", m)
	}
	r := dialRaw(t, shim)
	count := func(b int) (local, peer int) {
		q := fmt.Sprintf(`SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d`, b, b+9)
		return queryOne[int](t, p.ldb, q), queryOne[int](t, p.pdb, q)
	}
	settled := func() {
		waitForLong(t, "nothing left for the peer", 20*time.Second, func() bool {
			return sh.Backlog() == 0 && queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
				queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
		})
	}
	// run sends open, reads up to the CopyInResponse, sends data and reads up to the
	// ReadyForQuery.
	run := func(open, data []pgproto3.FrontendMessage) string {
		t.Helper()
		sendMsgs(t, r, open...)
		got, err := r.until('G')
		if err != nil {
			t.Fatalf("COPY: %q %v", got, err)
		}
		sendMsgs(t, r, data...)
		rest, st := r.ready()
		if st != 'I' {
			t.Fatalf("COPY: %q then %q, status %c", got, rest, st)
		}
		return rest
	}
	query := func(b, next int) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("COPY acct FROM STDIN; INSERT INTO acct VALUES (%d, 0)", next)}}
	}
	ext := func(b, next int) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}}
	}
	extTail := func(next int) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", next)}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
	}
	b := 0
	for _, tc := range []string{"query", "query/fail", "query/bad", "query/dup", "ext", "ext/fail", "ext/bad", "ext/dup"} {
		b += 100
		isExt := strings.HasPrefix(tc, "ext")
		next := b + 9
		if strings.HasSuffix(tc, "/dup") {
			next = b // the COPY's first row: the INSERT fails, and the COPY's rows go with it
		}
		data := []pgproto3.FrontendMessage{copyRow(b), copyRow(b + 1)}
		switch {
		case strings.HasSuffix(tc, "/fail"):
			data = append(data, &pgproto3.CopyFail{Message: "client gave up"})
		case strings.HasSuffix(tc, "/bad"):
			data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{})
		default:
			data = append(data, &pgproto3.CopyDone{})
		}
		open := query(b, next)
		if isExt {
			open = ext(b, next)
			data = append(data, extTail(next)...)
		}
		dual0 := shim.Stats().CommitsDual
		got := run(open, data)
		ok := !strings.Contains(tc, "/")
		if strings.Contains(got, "E") == ok {
			t.Errorf("%s: replies %q", tc, got)
		}
		settled()
		want, dual := 0, int64(0)
		if ok {
			want, dual = 3, 1
		}
		if n := shim.Stats().CommitsDual - dual0; n != dual {
			t.Errorf("%s: %d dual commits, want %d", tc, n, dual)
		}
		if l, pc := count(b); l != want || pc != want {
			t.Errorf("%s: %d rows on the local database, %d on the peer; want %d on both", tc, l, pc, want)
		}
	}
	requireSame(t, p)

	// The peer down: the shim goes on alone, and catch-up brings the rows to the peer.
	p.peer.Kill()
	for _, tc := range []string{"query", "ext", "query/fail"} {
		b += 100
		open, data := query(b, b+9), []pgproto3.FrontendMessage{copyRow(b), copyRow(b + 1)}
		if strings.HasPrefix(tc, "ext") {
			open = ext(b, b+9)
		}
		if strings.HasSuffix(tc, "/fail") {
			data = append(data, &pgproto3.CopyFail{Message: "client gave up"})
		} else {
			data = append(data, &pgproto3.CopyDone{})
		}
		if strings.HasPrefix(tc, "ext") {
			data = append(data, extTail(b+9)...)
		}
		got := run(open, data)
		ok := !strings.Contains(tc, "/")
		if strings.Contains(got, "E") == ok {
			t.Errorf("peer down, %s: replies %q", tc, got)
		}
		want := 0
		if ok {
			want = 3
		}
		if n := queryOne[int](t, p.ldb, fmt.Sprintf(`SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d`, b, b+9)); n != want {
			t.Errorf("peer down, %s: %d rows on the local database, want %d", tc, n, want)
		}
	}
	if m, _ := shim.Mode(); m != ModeSolo || downs.Load() != 1 {
		t.Fatalf("peer down: mode %v, OnPeerDown called %d times; want solo, once", m, downs.Load())
	}
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(capCtx(t, 60*time.Second), hold); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if m, _ := shim.Mode(); m != ModeDual {
		t.Fatalf("mode %v after catch-up, want dual", m)
	}
	settled()
	requireSame(t, p)
}
