package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// clientSession returns the shim's one session (the test's raw client).
func clientSession(t *testing.T, s *testShim) *session {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess := range s.sessions {
		return sess
	}
	t.Fatal("no session")
	return nil
}

// TestPortalsForgottenAtTransactionEnd: a session that binds many named portals and never
// closes them (PostgreSQL drops them when their transaction ends) keeps a bounded record of
// them; s.portals grew by one entry for each name, for as long as the session lasted.
func TestPortalsForgottenAtTransactionEnd(t *testing.T) {
	t.Parallel()
	_, _, s := dualShim(t)
	r := dialRaw(t, s)
	// 100 000 transactions: about 6 s alone under -race, twice that beside the other tests on
	// a loaded CI machine — past dialRaw's 10 s deadline for the whole connection.
	r.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	r.fe.SendParse(&pgproto3.Parse{Name: "s", Query: "SELECT 1"})
	if got, _ := r.sync(); got != "1Z" {
		t.Fatalf("Parse: %q", got)
	}
	const txns, batch = 100000, 500
	for i := 0; i < txns; i += batch {
		for j := i; j < i+batch; j++ {
			p := fmt.Sprintf("p%d", j)
			r.fe.SendBind(&pgproto3.Bind{DestinationPortal: p, PreparedStatement: "s"})
			r.fe.SendExecute(&pgproto3.Execute{Portal: p})
			r.fe.SendSync(&pgproto3.Sync{})
		}
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for j := i; j < i+batch; j++ {
			if got, st := r.ready(); got != "2DCZ" || st != 'I' {
				t.Fatalf("transaction %d: %q %c", j, got, st)
			}
		}
	}
	sess := clientSession(t, s)
	sess.mu.Lock()
	n := len(sess.portals)
	sess.mu.Unlock()
	if n > 10000 {
		t.Fatalf("the session records %d portals after %d transactions that each bound one, all gone", n, txns)
	}
	// A portal bound in a transaction block lasts to its end, whatever the session forgot.
	r.stmt("BEGIN")
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: "kept", PreparedStatement: "s"})
	if got, st := r.sync(); got != "12C2Z" || st != 'T' {
		t.Fatalf("BEGIN and Bind: %q %c", got, st)
	}
	for i := 0; i < 2000; i++ {
		r.fe.SendBind(&pgproto3.Bind{DestinationPortal: fmt.Sprintf("q%d", i), PreparedStatement: "s"})
	}
	r.fe.SendExecute(&pgproto3.Execute{Portal: "kept"})
	if got, st := r.sync(); got != strings.Repeat("2", 2000)+"DCZ" || st != 'T' {
		t.Fatalf("Execute of the portal bound before: %q %c", got, st)
	}
	sess.mu.Lock()
	_, kept := sess.portals["kept"]
	sess.mu.Unlock()
	if !kept {
		t.Fatal("the portal of the open transaction was forgotten")
	}
	r.stmt("COMMIT")
	if got, st := r.sync(); got != "12CZ" || st != 'I' {
		t.Fatalf("COMMIT: %q %c", got, st)
	}
	// A portal forgotten, gone with its transaction, fails as PostgreSQL fails it, COMMIT
	// and write alike, and the session goes on.
	r.fe.SendParse(&pgproto3.Parse{Name: "c", Query: "COMMIT"})
	r.fe.SendParse(&pgproto3.Parse{Name: "w", Query: "INSERT INTO acct VALUES (7, 0)"})
	r.stmt("BEGIN")
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: "oldc", PreparedStatement: "c"})
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: "oldw", PreparedStatement: "w"})
	r.stmt("COMMIT")
	if got, st := r.sync(); got != "1112C2212CZ" || st != 'I' {
		t.Fatalf("portals bound in a transaction: %q %c", got, st)
	}
	for i := 0; i < 4; i++ {
		for j := 0; j < 3000; j++ {
			r.fe.SendBind(&pgproto3.Bind{DestinationPortal: fmt.Sprintf("r%d_%d", i, j), PreparedStatement: "s"})
		}
		if got, _ := r.sync(); got != strings.Repeat("2", 3000)+"Z" {
			t.Fatalf("Binds: %q", got)
		}
	}
	sess.mu.Lock()
	_, known := sess.portals["oldc"]
	sess.mu.Unlock()
	if known {
		t.Fatal("portal oldc still recorded")
	}
	for _, shape := range [][]string{{"oldc"}, {"oldw"}} {
		r.stmt("BEGIN")
		r.fe.SendExecute(&pgproto3.Execute{Portal: shape[0]})
		if got, st := r.sync(); got != "12CE(34000)Z" || st != 'E' {
			t.Fatalf("Execute of %s gone: %q %c", shape[0], got, st)
		}
		r.stmt("ROLLBACK")
		if got, st := r.sync(); got != "12CZ" || st != 'I' {
			t.Fatalf("ROLLBACK: %q %c", got, st)
		}
		r.fe.SendExecute(&pgproto3.Execute{Portal: shape[0]})
		if got, st := r.sync(); got != "E(34000)Z" || st != 'I' {
			t.Fatalf("Execute of %s gone, outside a block: %q %c", shape[0], got, st)
		}
	}
	if got := r.query("SELECT count(*) FROM acct"); got != "TDCZ" {
		t.Fatalf("after: %q", got)
	}
}

// TestLongReservedNames: the client's names that begin with the shim's reserved prefix are
// renamed one byte longer, and PostgreSQL keeps 63 bytes of a name: two names of 63 bytes that
// differ only in their last byte became one (the second Parse failed with 42P05, a Close of one
// closed the other). Such names are refused; shorter ones work, Describe included.
func TestLongReservedNames(t *testing.T) {
	t.Parallel()
	_, _, s := dualShim(t)
	r := dialRaw(t, s)
	long := reservedPrefix + strings.Repeat("x", 63-len(reservedPrefix)-1)
	a, b := long+"a", long+"b"
	r.fe.SendParse(&pgproto3.Parse{Name: a, Query: "SELECT 'a'"})
	r.fe.SendParse(&pgproto3.Parse{Name: b, Query: "SELECT 'b'"})
	if got, st := r.sync(); got != "E(42501)Z" || st != 'I' {
		t.Fatalf("Parse of two statements named past 62 bytes: %q %c, want E(42501)Z I", got, st)
	}
	r.fe.SendParse(&pgproto3.Parse{Name: "s", Query: "SELECT 'a' AS col"})
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: a, PreparedStatement: "s"})
	if got, st := r.sync(); got != "1E(42501)Z" || st != 'I' {
		t.Fatalf("Bind of a portal named past 62 bytes: %q %c, want 1E(42501)Z I", got, st)
	}
	for _, m := range []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: a}, &pgproto3.Describe{ObjectType: 'P', Name: b}, &pgproto3.Execute{Portal: a}} {
		r.fe.Send(m)
		if got, st := r.sync(); got != "E(42501)Z" || st != 'I' {
			t.Fatalf("%#v: %q %c, want E(42501)Z I", m, got, st)
		}
	}
	// 62 bytes: renamed to 63.
	short := long[:len(long)-1] + "y"
	r.fe.SendParse(&pgproto3.Parse{Name: short, Query: "SELECT 'b' AS col"})
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: short, PreparedStatement: short})
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: long[:len(long)-1] + "z", PreparedStatement: "s"})
	r.fe.SendDescribe(&pgproto3.Describe{ObjectType: 'P', Name: short})
	r.fe.SendExecute(&pgproto3.Execute{Portal: short})
	r.fe.SendExecute(&pgproto3.Execute{Portal: long[:len(long)-1] + "z"})
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'S', Name: short})
	r.fe.SendSync(&pgproto3.Sync{})
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := r.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.RowDescription:
			got = append(got, "desc "+string(m.Fields[0].Name))
		case *pgproto3.DataRow:
			got = append(got, string(m.Values[0]))
		case *pgproto3.ErrorResponse:
			got = append(got, "error "+m.Code+": "+m.Message)
		case *pgproto3.CloseComplete:
			got = append(got, "closed")
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if strings.Join(got, ",") != "desc col,b,a,closed" {
		t.Fatalf("names of 62 bytes: %q, want desc col,b,a,closed", got)
	}
}

// TestReservedPortalNamesSQL: SQL's FETCH, MOVE and CLOSE of a portal the client bound in the
// extended protocol with a name the shim renames (tandem_shim_p reaches PostgreSQL as
// tandem_shim_cp) cannot name it, as its EXECUTE and DEALLOCATE of a statement cannot: they are
// refused (42501) as those are, where they failed with "cursor does not exist" (34000), or named
// the shim's own portal (tandem_shim_internal).
func TestReservedPortalNamesSQL(t *testing.T) {
	t.Parallel()
	_, _, s := dualShim(t)
	r := dialRaw(t, s)
	r.stmt("BEGIN")
	r.fe.SendParse(&pgproto3.Parse{Name: "s", Query: "SELECT generate_series(1, 3)"})
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: "tandem_shim_p", PreparedStatement: "s"})
	r.fe.SendExecute(&pgproto3.Execute{Portal: "tandem_shim_p", MaxRows: 1})
	if got, st := r.sync(); got != "12C12DsZ" || st != 'T' {
		t.Fatalf("BEGIN, Bind and Execute of one row: %q %c", got, st)
	}
	for _, q := range []string{`FETCH 1 FROM tandem_shim_p`, `MOVE NEXT IN "tandem_shim_p"`, `fetch tandem_shim_internal`, `CLOSE tandem_shim_p`} {
		if got := r.query(q); got != "E(42501)Z" {
			t.Errorf("%s: %q, want E(42501)Z", q, got)
		}
		r.query("ROLLBACK")
		r.stmt("BEGIN")
		r.fe.SendBind(&pgproto3.Bind{DestinationPortal: "tandem_shim_p", PreparedStatement: "s"})
		if got, _ := r.sync(); got != "12C2Z" {
			t.Fatalf("BEGIN and Bind: %q", got)
		}
	}
	// The portal itself, in the extended protocol, is the client's.
	r.fe.SendExecute(&pgproto3.Execute{Portal: "tandem_shim_p"})
	if got, st := r.sync(); got != "DDDCZ" || st != 'T' {
		t.Fatalf("Execute of the portal: %q %c", got, st)
	}
	for _, q := range []string{`FETCH 1 FROM c`, `CLOSE c`, `CLOSE ALL`} {
		if q == `FETCH 1 FROM c` {
			r.query(`DECLARE c CURSOR FOR SELECT 1`)
		}
		if got := r.query(q); strings.Contains(got, "E") {
			t.Errorf("%s: %q", q, got)
		}
	}
	r.query("ROLLBACK")
}

// TestUnnamedCloseAndFailedPipeline: a Close of the unnamed statement or portal, and a
// pipeline of several Syncs with an error in the middle, go as PostgreSQL runs them.
func TestUnnamedCloseAndFailedPipeline(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	r.fe.SendParse(&pgproto3.Parse{Query: "SELECT 1"})
	r.fe.SendBind(&pgproto3.Bind{})
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'P'})
	r.fe.SendExecute(&pgproto3.Execute{})
	if got, st := r.sync(); got != "123E(34000)Z" || st != 'I' {
		t.Fatalf("Execute of the unnamed portal closed: %q %c", got, st)
	}
	r.fe.SendParse(&pgproto3.Parse{Query: "INSERT INTO acct VALUES (1, 0)"})
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'S'})
	r.fe.SendBind(&pgproto3.Bind{})
	r.fe.SendExecute(&pgproto3.Execute{})
	if got, st := r.sync(); got != "13E(26000)Z" || st != 'I' {
		t.Fatalf("Bind of the unnamed statement closed: %q %c", got, st)
	}
	if rowCount(t, c, "id = 1") != 0 || len(peer.take()) != 0 {
		t.Fatal("the write of the closed statement ran")
	}
	// Three Syncs, the second's part failing: the first and third commit on both.
	r.stmt("INSERT INTO acct VALUES (1, 0)")
	r.fe.SendSync(&pgproto3.Sync{})
	r.stmt("INSERT INTO acct VALUES (2, 1/0)")
	r.stmt("INSERT INTO acct VALUES (4, 0)")
	r.fe.SendSync(&pgproto3.Sync{})
	r.stmt("INSERT INTO acct VALUES (3, 0)")
	r.fe.SendSync(&pgproto3.Sync{})
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < 3; i++ {
		g, st := r.ready()
		got = append(got, g+string(st))
	}
	if strings.Join(got, " ") != "12CZI 1E(22012)ZI 12CZI" {
		t.Fatalf("pipeline: %q", got)
	}
	checkDual(t, peer.take(), 2)
	if rowCount(t, c, "id IN (1, 3)") != 2 || rowCount(t, c, "id IN (2, 4)") != 0 {
		t.Fatal("rows of the pipeline wrong")
	}
	// The same in a transaction block: the error aborts it, the COMMIT rolls it back.
	r.stmt("BEGIN")
	r.stmt("INSERT INTO acct VALUES (5, 0)")
	r.fe.SendSync(&pgproto3.Sync{})
	r.stmt("SELECT 1/0")
	r.fe.SendSync(&pgproto3.Sync{})
	r.stmt("INSERT INTO acct VALUES (6, 0)")
	r.fe.SendSync(&pgproto3.Sync{})
	r.stmt("COMMIT")
	r.fe.SendSync(&pgproto3.Sync{})
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for i := 0; i < 4; i++ {
		g, st := r.ready()
		got = append(got, g+string(st))
	}
	if strings.Join(got, " ") != "12C12CZT 1E(22012)ZE E(25P02)ZE 12CZI" {
		t.Fatalf("pipeline in a block: %q", got)
	}
	if calls := peer.take(); len(calls) != 0 || rowCount(t, c, "id IN (5, 6)") != 0 || preparedCount(t, c) != 0 {
		t.Fatalf("the failed block committed: peer %v", calls)
	}
}

// TestClosedStatementsForgotten: statements the client parses and closes in the same request,
// each with a new name, leave no record once closed.
func TestClosedStatementsForgotten(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	// A Close skipped after an error: PostgreSQL still holds w, a write, which the session's
	// record must keep through the forgetting of the others.
	r.fe.SendParse(&pgproto3.Parse{Name: "w", Query: "INSERT INTO acct VALUES (1, 0)"})
	if got, _ := r.sync(); got != "1Z" {
		t.Fatalf("Parse w: %q", got)
	}
	r.stmt("SELECT 1/0")
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'S', Name: "w"})
	if got, _ := r.sync(); got != "1E(22012)Z" {
		t.Fatalf("error, then Close w: %q", got)
	}
	const reqs, batch = 20000, 500
	for i := 0; i < reqs; i += batch {
		for j := i; j < i+batch; j++ {
			name := fmt.Sprintf("s%d", j)
			r.fe.SendParse(&pgproto3.Parse{Name: name, Query: "SELECT 1"})
			r.fe.SendBind(&pgproto3.Bind{PreparedStatement: name})
			r.fe.SendExecute(&pgproto3.Execute{})
			r.fe.SendClose(&pgproto3.Close{ObjectType: 'S', Name: name})
			r.fe.SendSync(&pgproto3.Sync{})
		}
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for j := i; j < i+batch; j++ {
			if got, st := r.ready(); got != "12DC3Z" || st != 'I' {
				t.Fatalf("request %d: %q %c", j, got, st)
			}
		}
	}
	sess := clientSession(t, s)
	sess.mu.Lock()
	n := len(sess.stmts)
	sess.mu.Unlock()
	if n > reqs/10 {
		t.Fatalf("the session records %d statements after %d requests that each parsed and closed one", n, reqs)
	}
	r.fe.SendParse(&pgproto3.Parse{Name: "w", Query: "SELECT 1"})
	if got, _ := r.sync(); got != "E(42P05)Z" {
		t.Fatalf("Parse of w again: %q", got)
	}
	r.fe.SendBind(&pgproto3.Bind{PreparedStatement: "w"})
	r.fe.SendExecute(&pgproto3.Execute{})
	if got, _ := r.sync(); got != "2CZ" {
		t.Fatalf("Bind and Execute of w: %q", got)
	}
	checkDual(t, peer.take(), 1)
	if rowCount(t, c, "id = 1") != 1 {
		t.Fatal("the row of w is missing")
	}
}
