package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestExtCopyErrorSentAtOnce: an extended-protocol COPY FROM STDIN the shim wraps in its own
// transaction (Parse, Bind, Execute and Sync, as tokio-postgres sends it) that fails on a bad
// row: PostgreSQL sends the error at once (it flushes every error), so a client streaming data
// can stop; the shim held it until the client's Sync after its CopyDone.
func TestExtCopyErrorSentAtOnce(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for _, via := range []string{"PostgreSQL", "shim"} {
		extCopyBadRow(t, via, dialVia(t, via, c, s))
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v for a COPY that failed", calls)
	}
}

func extCopyBadRow(t *testing.T, via string, r *rawSession) {
	t.Helper()
	startExtCopy(t, via, r)
	sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("bad\n")})
	r.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	m, err := r.fe.Receive()
	if e, ok := m.(*pgproto3.ErrorResponse); !ok || err != nil || e.Code != "22P02" {
		t.Fatalf("%s: after a bad row, before CopyDone: %T %v; want the ErrorResponse 22P02", via, m, err)
	}
	r.conn.SetReadDeadline(time.Time{})
	sendMsgs(t, r, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	if got, err := r.until('Z'); err != nil || got != "Z" {
		t.Fatalf("%s: the failed COPY's end: %q %v", via, got, err)
	}
	if got := r.query("SELECT 42"); got != "TDCZ" {
		t.Errorf("%s: the next query's replies: %q, want TDCZ", via, got)
	}
}

// dialVia opens a raw session for t straight to PostgreSQL (c's database) when via is
// "PostgreSQL", or else through the shim s: the reference leg and the leg under test.
func dialVia(t *testing.T, via string, c *pgtest.Cluster, s *testShim) *rawSession {
	t.Helper()
	var r *rawSession
	if via == "PostgreSQL" {
		r = dialRawDSN(t, c.DSN(c.Database()))
	} else {
		r = dialRaw(t, s)
	}
	r.t = t
	return r
}

// startExtCopy sends an extended-protocol COPY acct FROM STDIN (Parse, Bind, Execute and Sync)
// on r and reads its replies up to the CopyInResponse.
func startExtCopy(t *testing.T, via string, r *rawSession) {
	t.Helper()
	sendMsgs(t, r, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got, err := r.until('G'); err != nil {
		t.Fatalf("%s: COPY: %q %v", via, got, err)
	}
}
