package txshim

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// quiet reads what the server sends until nothing more comes for a while, and returns the
// messages' types (an error's with its code, a ReadyForQuery's with its status). The while is
// quietWait, or quietSettled once the server waits for the client: a CopyInResponse came last,
// or as many ReadyForQuery as requests were sent since the last quiet read. A reply later than
// the window shows in the next read (the tests compare the replies without their bounds).
func (r *rawSession) quiet() string {
	r.t.Helper()
	var seen strings.Builder
	wait, ready := quietWait, 0
	defer func() { r.asked = 0 }()
	for {
		r.conn.SetReadDeadline(time.Now().Add(wait))
		m, err := r.fe.Receive()
		if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
			r.conn.SetReadDeadline(time.Time{})
			return seen.String()
		}
		if err != nil {
			r.t.Fatalf("after %q: %v", seen.String(), err)
		}
		seen.WriteString(quietName(m))
		switch m.(type) {
		case *pgproto3.ReadyForQuery:
			ready++
			if ready >= r.asked {
				wait = quietSettled
			}
		case *pgproto3.CopyInResponse, *pgproto3.CopyBothResponse:
			wait = quietSettled
		default:
			wait = quietWait
		}
	}
}

// quietWait is how long quiet waits for a reply while one may still come; quietSettled, once
// the server waits for the client (nothing more comes but a late reply to an earlier step).
const (
	quietWait    = 250 * time.Millisecond
	quietSettled = 20 * time.Millisecond
)

// quietName is how quiet writes m: its type, an error's with its code, a ReadyForQuery's with
// its status, a CommandComplete's with its tag.
func quietName(m pgproto3.BackendMessage) string {
	b, _ := m.Encode(nil)
	name := string(b[:1])
	switch m := m.(type) {
	case *pgproto3.ErrorResponse:
		name += "(" + m.Code + ")"
	case *pgproto3.ReadyForQuery:
		name += "(" + string(m.TxStatus) + ")"
	case *pgproto3.CommandComplete:
		name += "(" + string(m.CommandTag) + ")"
	}
	return name
}

// stepsEnd sends, after a test's steps, a Sync and an empty query, and reads what the server
// sends up to that query's EmptyQueryResponse and ReadyForQuery, which come after every reply
// to the steps: those still to come when the steps' quiet reads returned (a slow one — a dual
// commit on a loaded machine, with the fsyncs of the local PREPARE TRANSACTION and COMMIT
// PREPARED and the peer's prepare in it, or PostgreSQL's own on the reference session — is
// late, not missing: TestPassedCopyStepsSlowCommit), then the Sync's and the query's, written as
// quiet writes them. The Sync ends a request that PostgreSQL skips up to its Sync after an
// error (the query would be skipped too); on an idle session it is answered at once. An empty
// query is answered so in every state of a session ready for a query, a failed transaction
// block's too. It fails t if that end does not come within stepsEndWait. The steps must end
// with a request of the client's ended (a Query, not a COPY FROM STDIN, or a Sync), and send
// no empty query of their own.
func (r *rawSession) stepsEnd() string {
	r.t.Helper()
	sendMsgs(r.t, r, &pgproto3.Sync{}, &pgproto3.Query{})
	defer r.conn.SetReadDeadline(time.Time{})
	r.conn.SetReadDeadline(time.Now().Add(stepsEndWait))
	var seen strings.Builder
	empty := false // the query's EmptyQueryResponse came
	for {
		m, err := r.fe.Receive()
		if err != nil {
			r.t.Errorf("after %q, no reply to the steps' end (a Sync, an empty query): %v", seen.String(), err)
			return seen.String()
		}
		seen.WriteString(quietName(m))
		switch m.(type) {
		case *pgproto3.EmptyQueryResponse:
			empty = true
		case *pgproto3.ReadyForQuery:
			if empty {
				return seen.String()
			}
		default:
			empty = false
		}
	}
}

// stepsEndWait bounds how long stepsEnd waits for the end of the replies: generous, as it is
// not a pause that ends the read.
const stepsEndWait = 60 * time.Second

// TestPassedCopyMidSync: an extended-protocol COPY FROM STDIN the shim passes through (in the
// client's own transaction block), whose client sends a Sync before its CopyDone and Sync.
// PostgreSQL ignores that Sync while it copies; once a bad row ended the COPY, it answers it
// with a ReadyForQuery (the request's), and the Sync after the CopyDone with one more, which
// the shim took for the reply to the client's next request (a COMMIT sent behind it): the
// session's status stayed that of the failed block, and a write after it ran unwrapped,
// committed on the local database alone. The client must get what PostgreSQL sends, whether it
// waits for the replies or sends on at once, and the writes after must be dual commits.
func TestPassedCopyMidSync(t *testing.T) {
	t.Parallel()
	c, peer, dual := dualShim(t)
	solo := startShim(t, c, Options{}, ModeSolo, 1)
	cases := []struct {
		name string
		good bool // the row before the mid-COPY Sync is good
		// piped: the mid-COPY Sync, CopyDone, Sync and the next queries go in one write (2), or
		// the replies to the row and the mid-COPY Sync are read first (1), or every step's (0).
		piped int
		shim  *testShim
	}{
		{"dual/bad", false, 0, dual},
		{"dual/bad/waited", false, 1, dual},
		{"dual/bad/piped", false, 2, dual},
		{"dual/good", true, 0, dual},
		{"dual/good/waited", true, 1, dual},
		{"dual/good/piped", true, 2, dual},
		{"solo/bad/waited", false, 1, solo},
		{"solo/good/waited", true, 1, solo},
	}
	base := 1000
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { // one after another: the peer's calls are the case's
			var got [2]string
			var calls []string
			for i, via := range []string{"PostgreSQL", "shim"} {
				base += 10
				r := dialVia(t, via, c, tc.shim)
				var out strings.Builder
				step := func(msgs ...pgproto3.FrontendMessage) {
					sendMsgs(t, r, msgs...)
					out.WriteString(r.quiet() + " | ")
				}
				step(&pgproto3.Query{String: "BEGIN"})
				step(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", base)})
				step(&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				row := "bad\n"
				if tc.good {
					row = fmt.Sprintf("%d\t0\n", base+1)
				}
				// The block's end: PostgreSQL answers it once the COPY's replies are out.
				next := []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}}
				switch tc.piped {
				case 2:
					step(append([]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte(row)}, &pgproto3.Sync{}, &pgproto3.CopyDone{}, &pgproto3.Sync{}}, next...)...)
				case 1:
					step(&pgproto3.CopyData{Data: []byte(row)}, &pgproto3.Sync{})
					step(append([]pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Sync{}}, next...)...)
				default:
					step(&pgproto3.CopyData{Data: []byte(row)}, &pgproto3.Sync{})
					step(&pgproto3.CopyDone{}, &pgproto3.Sync{})
					for _, m := range next {
						step(m)
					}
				}
				// A write after, which a dual shim commits on both sides, and reads.
				step(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", base+5)})
				step(&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)})
				step(&pgproto3.Parse{Query: "SELECT 7"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				out.WriteString(r.stepsEnd())
				got[i] = out.String()
				if via == "PostgreSQL" {
					continue
				}
				calls = peer.take()
			}
			// The steps' bounds are where replies paused (quiet), which the load may move.
			if strings.ReplaceAll(got[0], " | ", "") != strings.ReplaceAll(got[1], " | ", "") {
				t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
			}
			if tc.shim == dual {
				n := 1 // the INSERT after the block
				if tc.good {
					n++ // the COMMIT
				}
				checkDual(t, calls, n)
			}
		})
	}
}
