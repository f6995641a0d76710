package txshim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestLexerSettingPipelined: a statement pipelined behind one that turns
// standard_conforming_strings off (or client_encoding to a client-only encoding) reached the
// database before the shim saw the ParameterStatus that ends such a session: PostgreSQL parsed
// it under the new setting, the lexer under the old one, and a write hidden from the lexer in
// what it took for a string ran as a read — in read-only mode it committed. The shim now ends
// the session as soon as it reads such a SET (or set_config), before sending it.
func TestLexerSettingPipelined(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE FUNCTION tandem_w(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING i $$`)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)
	q, ext := rawQuery, rawPipeline
	// With standard_conforming_strings on the lexer reads one string; PostgreSQL, with it off,
	// a string and a call of tandem_w.
	hidden := func(id int) string { return fmt.Sprintf(`SELECT 'a\'', tandem_w(%d) --'`, id) }
	const rwOff = "SET default_transaction_read_only = off"
	const scsOff = "SET standard_conforming_strings = off"
	// The shim cannot tell what this sets: the next request waits for its reply.
	const scsOffUnsure = "SELECT set_config(n, 'off', false) FROM (VALUES ('standard_conforming_strings')) v(n)"
	cases := []struct {
		name string
		msgs func(id int) [][]pgproto3.FrontendMessage
	}{
		{"one extended request", func(id int) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext(rwOff, scsOff, hidden(id))}
		}},
		{"pipelined extended requests", func(id int) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext(rwOff), ext(scsOff), ext(hidden(id))}
		}},
		{"query, then extended", func(id int) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q(rwOff + "; " + scsOff), ext(hidden(id))}
		}},
		{"set_config, extended", func(id int) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext(rwOff, "SELECT set_config('standard_conforming_strings', 'off', false)", hidden(id))}
		}},
		{"set local, extended", func(id int) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext(rwOff, "SET LOCAL standard_conforming_strings TO 'off'", hidden(id))}
		}},
		{"set_config of a column, then a parse", func(id int) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext(rwOff, scsOffUnsure, hidden(id))}
		}},
		{"set_config of a column, pipelined", func(id int) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext(rwOff), ext(scsOffUnsure), ext(hidden(id))}
		}},
		{"pipelined queries", func(id int) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q(rwOff), q(scsOff), q(hidden(id))}
		}},
	}
	id := 100
	for _, mode := range []Mode{ModeReadOnly, ModeDual} {
		s.SetMode(mode, 1)
		for _, tc := range cases {
			id++
			runPipelined(t, s, c, mode.String()+"/"+tc.name, id, tc.msgs(id))
		}
	}
	// In dual mode a hidden write that commits plainly is no error of PostgreSQL's: the peer
	// must have been asked (a dual commit), or nothing committed.
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v: no write should have run", calls)
	}
	// What drivers send stays as it was: no session ended.
	t.Run("safe settings", func(t *testing.T) {
		r := dialRaw(t, s)
		r.t = t
		for _, m := range ext("SET client_encoding = 'UTF8'", "SET standard_conforming_strings = on", "SELECT set_config('application_name', 'x', false)", `SELECT 'a\'`) {
			r.fe.Send(m) // ext ends with its Sync
		}
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if got, st := r.ready(); got != "12C12C12DC12DCSZ" || st != 'I' {
			t.Fatalf("replies %s", got)
		}
		// Dollar-quoted arguments are read as they are written, whatever the settings.
		for _, q := range []string{
			"SELECT set_config($$standard_conforming_strings$$, $$on$$, false); RESET ALL; SELECT 1",
			`SET standard_conforming_strings = $x$on$x$; SELECT $$a\$$`,
		} {
			if got := r.query(q); strings.Contains(got, "E") || !strings.HasSuffix(got, "Z") {
				t.Fatalf("query %q: replies %s", q, got)
			}
		}
		if got := r.query("SELECT 1"); got != "TDCZ" {
			t.Fatalf("replies %s", got)
		}
	})
}

// runPipelined sends msgs at once and checks that the session ended with 0A000 and that the
// write of row id did not commit.
func runPipelined(t *testing.T, s *testShim, c *pgtest.Cluster, name string, id int, msgs [][]pgproto3.FrontendMessage) {
	t.Run(name, func(t *testing.T) {
		r := dialRaw(t, s)
		for _, req := range msgs {
			for _, m := range req {
				r.fe.Send(m)
			}
		}
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		got := drain(r)
		if n := rowCount(t, c, fmt.Sprintf("id = %d", id)); n != 0 {
			t.Fatalf("the hidden write committed (replies %s)", got)
		}
		if !strings.Contains(got, "E(0A000)") {
			t.Errorf("replies %s, want the session ended with 0A000", got)
		}
	})
}

// drain reads the session's replies until it ends (or a second passes without one) and tells
// them as rawSession.until does.
func drain(r *rawSession) string {
	var seen strings.Builder
	for {
		r.conn.SetReadDeadline(time.Now().Add(time.Second))
		m, err := r.fe.Receive()
		if err != nil {
			var ne net.Error
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !(errors.As(err, &ne) && ne.Timeout()) {
				seen.WriteString("<" + err.Error() + ">")
			}
			return seen.String()
		}
		b, _ := m.Encode(nil)
		seen.WriteByte(b[0])
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			seen.WriteString("(" + e.Code + ")")
		}
	}
}

func TestLexerSettingKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sql            string
		unsafe, unsure bool
	}{
		{"SET standard_conforming_strings = off", true, false},
		{"set SESSION standard_conforming_strings TO 'of'", true, false},
		{`SET LOCAL "standard_conforming_strings" = false`, true, false},
		{"SET standard_conforming_strings = 0", true, false},
		{"SET standard_conforming_strings = E'off'", false, true},
		{"SET standard_conforming_strings = on", false, false},
		{"SET standard_conforming_strings TO DEFAULT", false, false},
		{"SET standard_conforming_strings = 'DEFAULT'", false, false}, // no boolean: fails
		{"SET client_encoding = 'SJIS'", true, false},
		{"SET client_encoding TO win_932", true, false},
		{"SET NAMES 'Shift-JIS 2004'", true, false},
		{"SET NAMES 'UTF8'", false, false},
		{"SET client_encoding = 'LATIN1'", false, false},
		{"RESET ALL", false, false},
		{"DISCARD ALL", false, false},
		{"RESET standard_conforming_strings", false, false},
		{"SET search_path = off", false, false},
		{"UPDATE t SET client_encoding = 'SJIS'", false, false},
		{"SELECT set_config('standard_conforming_strings', 'off', false)", true, false},
		{"SELECT pg_catalog.set_config('client_encoding', 'big5', true)", true, false},
		{"SELECT set_config('standard_conforming_strings', 'on', false)", false, false},
		{"SELECT set_config('app.user', $1, false)", false, false},
		{"SELECT set_config($1, $2, false)", false, true},
		{"SELECT set_config('standard_conforming_strings', $1, false)", false, true},
		{"SELECT 'set_config($1, $2, false)'", false, false},
		{"DO $$BEGIN SET standard_conforming_strings = off; END$$", true, false},
		{"DO $x$BEGIN PERFORM set_config(n, 'off', false); END$x$", false, true},
		{"DO $$BEGIN PERFORM 1; END$$", false, false},
		{"SELECT 1", false, false},
		// Dollar quotes are read as written.
		{"SET standard_conforming_strings = $$off$$", true, false},
		{"SELECT set_config($$standard_conforming_strings$$, $t$off$t$, false)", true, false},
		{"SELECT set_config($$standard_conforming_strings$$, $$on$$, false)", false, false},
		{"SELECT set_config($$client_encoding$$, $$sjis$$, false)", true, false},
		{"SELECT set_config($a$client_encoding$b$, 'x', false)", false, true}, // unterminated
		{"DO $o$BEGIN PERFORM set_config($$standard_conforming_strings$$, $$off$$, false); END$o$", true, false},
	} {
		sts := splitStatements(tc.sql)
		if len(sts) != 1 {
			t.Fatalf("%q: %d statements", tc.sql, len(sts))
		}
		unsafe, unsure := lexerSetting(tc.sql, sts[0])
		if unsafe != tc.unsafe || unsure != tc.unsure {
			t.Errorf("%q: unsafe %v unsure %v, want %v %v", tc.sql, unsafe, unsure, tc.unsafe, tc.unsure)
		}
	}
}

// TestSessionEndAfterReplies: a request refused with an error that ends the session comes after
// the replies to the requests before it. The shim used to learn that the backend had answered
// them before the answer's ReadyForQuery reached the client, and could write its error (and
// close) first: the client lost that ReadyForQuery (the ready hook delays it to make that certain).
func TestSessionEndAfterReplies(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	var armed atomic.Bool
	s := startShim(t, c, Options{}, ModeSolo, 0)
	s.hooks.ready.set(func() {
		if armed.Load() {
			time.Sleep(300 * time.Millisecond)
		}
	})
	r := dialRaw(t, s)
	r.conn.SetDeadline(time.Now().Add(10 * time.Second))
	armed.Store(true)
	r.stmt("SELECT 1")
	r.fe.SendSync(&pgproto3.Sync{})
	// The shim cannot tell what this sets, and more follows it in the same Query.
	r.fe.Send(&pgproto3.Query{String: "SELECT set_config(n, 'on', false) FROM (VALUES ('standard_conforming_strings')) v(n); SELECT 1"})
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := drain(r); got != "12DCZE(0A000)" {
		t.Fatalf("replies %s, want the first request's, then 0A000", got)
	}
}
