package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestWrappedExtCopyMidSyncReplies: an extended-protocol COPY FROM STDIN the shim wraps in its
// own transaction, whose client sends a bad row, then a Sync, before its CopyDone and Sync.
// PostgreSQL, out of copy-in once the row failed, answers that Sync with a ReadyForQuery, and
// the one after the CopyDone with another: a client that counts its Syncs' ReadyForQuery waits
// for both. The shim dropped the one in the middle and sent one fewer. Whether the client waits
// for the error first or pipelines everything, the replies must be PostgreSQL's, and the
// session must go on in step (the next query, a write the shim commits on both sides).
func TestWrappedExtCopyMidSyncReplies(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	base := 7000
	for _, tc := range []struct {
		name  string
		good  bool // the row before the mid-COPY Sync is good (PostgreSQL ignores that Sync)
		syncs int  // Syncs in the middle
		piped bool // everything after the CopyInResponse in one write
	}{
		{"bad", false, 1, false},
		{"bad/two", false, 2, false},
		{"bad/piped", false, 1, true},
		{"good", true, 1, false},
		{"good/piped", true, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]string
			for i, via := range []string{"PostgreSQL", "shim"} {
				base += 10
				r := dialVia(t, via, c, s)
				var out strings.Builder
				step := func(msgs ...pgproto3.FrontendMessage) {
					sendMsgs(t, r, msgs...)
					out.WriteString(r.quiet() + " | ")
				}
				startExtCopy(t, via, r)
				row := "bad\n"
				if tc.good {
					row = fmt.Sprintf("%d\t0\n", base)
				}
				mid := []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte(row)}}
				for j := 0; j < tc.syncs; j++ {
					mid = append(mid, &pgproto3.Sync{})
				}
				end := []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\t0\n", base+1))}, &pgproto3.CopyDone{}, &pgproto3.Sync{}}
				next := &pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", base+5)}
				if tc.piped {
					step(append(append(mid, end...), next)...)
				} else {
					step(mid...)
					step(end...)
					step(next)
				}
				step(&pgproto3.Query{String: "SELECT 42"})
				out.WriteString(r.stepsEnd())
				got[i] = strings.ReplaceAll(out.String(), " | ", "")
			}
			if got[0] != got[1] {
				t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
			}
			n := 1 // the INSERT after
			if tc.good {
				n++ // the COPY
			}
			checkDual(t, peer.take(), n)
		})
	}
}

// TestWrappedExtCopyMidSyncAnsweredAtOnce: PostgreSQL answers a Sync the client sends after a
// bad row of an extended COPY FROM STDIN at once, before the client ends the COPY: a client
// that waits for that ReadyForQuery before it goes on got it from the shim only after its
// CopyDone and Sync, which it would not send — it hung.
func TestWrappedExtCopyMidSyncAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for _, via := range []string{"PostgreSQL", "shim"} {
		r := dialVia(t, via, c, s)
		startExtCopy(t, via, r)
		sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{})
		r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := r.until('Z'); err != nil || got != "E(22P02)Z" {
			t.Fatalf("%s: after a bad row and a Sync: %q %v, want the error and a ReadyForQuery", via, got, err)
		}
		r.conn.SetReadDeadline(time.Time{})
		sendMsgs(t, r, &pgproto3.CopyDone{}, &pgproto3.Sync{})
		if got, st := r.ready(); got != "Z" || st != 'I' {
			t.Errorf("%s: the COPY's end: %q status %c, want Z status I", via, got, st)
		}
		if got := r.query("SELECT 42"); got != "TDCZ" {
			t.Errorf("%s: the next query's replies: %q, want TDCZ", via, got)
		}
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v for a COPY that failed", calls)
	}
}

// TestWrappedCopyAnsweredAtOnce: a simple Query's COPY FROM STDIN the shim wraps, whose row
// fails: PostgreSQL ends the Query at the error, its ReadyForQuery sent at once, before the
// client's CopyDone; the shim sent it only after that, and a client waiting for it hung.
// A Sync sent after the failure gets a ReadyForQuery of its own from PostgreSQL, which the
// shim dropped.
func TestWrappedCopyAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for _, via := range []string{"PostgreSQL", "shim"} {
		r := dialVia(t, via, c, s)
		sendMsgs(t, r, &pgproto3.Query{String: "COPY acct FROM STDIN"})
		if got, err := r.until('G'); err != nil {
			t.Fatalf("%s: COPY: %q %v", via, got, err)
		}
		sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("bad\n")})
		r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := r.until('Z'); err != nil || got != "E(22P02)Z" {
			t.Fatalf("%s: after a bad row: %q %v, want the error and a ReadyForQuery", via, got, err)
		}
		sendMsgs(t, r, &pgproto3.Sync{})
		if got, err := r.until('Z'); err != nil || got != "Z" {
			t.Fatalf("%s: a Sync after the failure: %q %v, want a ReadyForQuery", via, got, err)
		}
		r.conn.SetReadDeadline(time.Time{})
		sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("1\t0\n")}, &pgproto3.CopyDone{})
		if got := r.query("SELECT 42"); got != "TDCZ" {
			t.Errorf("%s: the next query's replies: %q, want TDCZ", via, got)
		}
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v for a COPY that failed", calls)
	}
}

// TestWrappedExtCopyQueryAfterFailure: told by PostgreSQL's ReadyForQuery that the failed COPY
// is over (a Sync after the bad row), a client sends its next query without a CopyDone, which
// PostgreSQL runs; the shim took it for the end of the COPY and waited for a Sync behind it.
func TestWrappedExtCopyQueryAfterFailure(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	base := 7500
	for _, via := range []string{"PostgreSQL", "shim"} {
		base += 10
		r := dialVia(t, via, c, s)
		startExtCopy(t, via, r)
		sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{})
		r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := r.until('Z'); err != nil || got != "E(22P02)Z" {
			t.Fatalf("%s: after a bad row and a Sync: %q %v, want the error and a ReadyForQuery", via, got, err)
		}
		sendMsgs(t, r, &pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", base)})
		if got, err := r.until('Z'); err != nil || got != "CZ" {
			t.Fatalf("%s: the next query's replies: %q %v, want CZ", via, got, err)
		}
		r.conn.SetReadDeadline(time.Time{})
	}
	checkDual(t, peer.take(), 1)
}
