package txshim

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// dialKeyed is dialVia that also returns the session's BackendKeyData: its backend's process
// id and secret key, which a CancelRequest names, and the address a cancel goes to.
func dialKeyed(t *testing.T, via string, c *pgtest.Cluster, s *testShim) (*rawSession, string, uint32, []byte) {
	t.Helper()
	if via == "PostgreSQL" {
		r, pid, key := dialRawDSNKeyed(t, c.DSN(c.Database()))
		return r, fmt.Sprintf("127.0.0.1:%d", c.Port()), pid, key
	}
	conn, fe := sendStartup(t, s, pgproto3.ProtocolVersionNumber, pgtest.Superuser)
	var pid uint32
	var key []byte
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := m.(*pgproto3.BackendKeyData); ok {
			pid, key = k.ProcessID, append([]byte(nil), k.SecretKey...)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	conn.SetDeadline(time.Time{})
	return &rawSession{t: t, conn: conn, fe: fe}, s.Addr().String(), pid, key
}

// sendCancelRequest sends a CancelRequest for the session pid, key to addr.
func sendCancelRequest(t *testing.T, addr string, pid uint32, key []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, err := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: key}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	// The server closes the connection once it has read the request.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	conn.Read(make([]byte, 1))
}

// awaitSleeping waits until the backend pid sleeps in pg_sleep.
func awaitSleeping(t *testing.T, c *pgtest.Cluster, pid uint32) {
	t.Helper()
	db := c.Open(t, c.Database())
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'", int(pid)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d never slept in pg_sleep", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCopyRequestCancelled: the client's CancelRequest lands on a statement of an extended
// request that went on past its COPY FROM STDIN's CopyDone, before its Sync — a simple Query
// (queryInRequest), a FunctionCall (callInRequest), a Parse/Bind/Execute (the request going on,
// relayUntilSync) — with the COPY wrapped by the shim or sent as a part (up to a Flush). As on
// PostgreSQL, the statement fails (57014), the COPY's rows are rolled back with it, and the
// session goes on: nothing is committed on either database, nothing is left prepared, and
// the shim's replies are PostgreSQL's.
func TestCopyRequestCancelled(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	var sleepOid uint32
	if err := c.Open(t, c.Database()).QueryRow("SELECT 'pg_sleep(float8)'::regprocedure::oid").Scan(&sleepOid); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []string{"wrap/query", "part/query", "wrap/fcall", "part/fcall", "wrap/execute", "part/execute", "block/part/query", "block/part/fcall"} {
		t.Run(tc, func(t *testing.T) {
			b := 7000 + 1000*i
			var got [2]string
			for j, via := range []string{"PostgreSQL", "shim"} {
				b += 100
				r, addr, pid, key := dialKeyed(t, via, c, s)
				r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				var out strings.Builder
				if strings.HasPrefix(tc, "block") {
					sendMsgs(t, r, &pgproto3.Query{String: "BEGIN"})
					seen, st := r.ready()
					out.WriteString(fmt.Sprintf("%s(%c) | ", seen, st))
				}
				end := &pgproto3.Sync{}
				if strings.Contains(tc, "part") {
					end = nil
				}
				cp := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}}
				if end != nil {
					cp = append(cp, end)
				} else {
					cp = append(cp, &pgproto3.Flush{})
				}
				sendMsgs(t, r, cp...)
				seen, err := r.until('G')
				if err != nil {
					t.Fatalf("%s: COPY: %q %v", via, seen, err)
				}
				out.WriteString(seen + " | ")
				msgs := []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyDone{}}
				switch {
				case strings.HasSuffix(tc, "/query"):
					msgs = append(msgs, &pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0); SELECT pg_sleep(60)", b+2)})
				case strings.HasSuffix(tc, "/fcall"):
					msgs = append(msgs, &pgproto3.FunctionCall{Function: sleepOid, Arguments: [][]byte{[]byte("60")}})
				case strings.HasSuffix(tc, "/execute"):
					msgs = append(msgs, &pgproto3.Parse{Query: "SELECT pg_sleep(60)"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
				}
				sendMsgs(t, r, msgs...)
				awaitSleeping(t, c, pid)
				sendCancelRequest(t, addr, pid, key)
				sendMsgs(t, r, &pgproto3.Sync{})
				if strings.HasPrefix(tc, "block") {
					sendMsgs(t, r, &pgproto3.Query{String: "COMMIT"})
				}
				sendMsgs(t, r, &pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)})
				out.WriteString(r.stepsEnd())
				got[j] = out.String()
				if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != 0 {
					t.Errorf("%s: %d rows committed, want none", via, n)
				}
			}
			if got[0] != got[1] {
				t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
			}
			if !strings.Contains(got[0], "57014") {
				t.Errorf("PostgreSQL sent %s: the cancel did not land", got[0])
			}
			checkDual(t, peer.take(), 0)
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
		})
	}
}

// TestCopyRequestCommitCancelled: a cancel (or statement_timeout) that lands on the shim's own
// COMMIT PREPARED of the block a request that went on past its COPY's CopyDone is committed in,
// at the end of a simple Query (queryInRequest) or a FunctionCall (callInRequest) there: the
// step is sent again, and the COPY's rows and the statement's are committed on both databases
// (one dual commit), nothing left prepared.
func TestCopyRequestCommitCancelled(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE FUNCTION fcc(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING i $$`)
	var oid uint32
	if err := c.Open(t, c.Database()).QueryRow("SELECT 'fcc(int)'::regprocedure::oid").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	defer s.hooks.ownStep.clear()
	for i, tc := range []string{"wrap/query", "part/query", "wrap/fcall", "part/fcall"} {
		t.Run(tc, func(t *testing.T) {
			b := 7000 + 100*i
			sent := cancelSteps(s.Shim, "COMMIT PREPARED", 1)
			r := dialVia(t, "shim", c, s)
			r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			cp := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
			if strings.HasPrefix(tc, "part") {
				cp[3] = &pgproto3.Flush{}
			}
			sendMsgs(t, r, cp...)
			if seen, err := r.until('G'); err != nil {
				t.Fatalf("COPY: %q %v", seen, err)
			}
			next := pgproto3.FrontendMessage(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)})
			if strings.HasSuffix(tc, "fcall") {
				next = &pgproto3.FunctionCall{Function: oid, Arguments: [][]byte{[]byte(fmt.Sprint(b + 2))}}
			}
			sendMsgs(t, r, copyRow(b+1), &pgproto3.CopyDone{}, next, &pgproto3.Sync{})
			got := r.stepsEnd()
			if strings.Contains(got, "E(") || sent.Load() != 2 {
				t.Errorf("replies %s, COMMIT PREPARED sent %d times: want no error, sent twice", got, sent.Load())
			}
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != 2 {
				t.Errorf("%d rows committed, want 2", n)
			}
			checkDual(t, peer.take(), 1)
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
		})
	}
}
