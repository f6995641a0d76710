package txshim

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestNoticeAtCommit: a notice or warning PostgreSQL raises while it commits — a deferred
// constraint trigger's RAISE, run at COMMIT — was dropped: the shim runs the commit itself
// (PREPARE TRANSACTION, or its own COMMIT) and swallowed every reply to it but the result. It
// now reaches the client where PostgreSQL puts it, before the COMMIT's CommandComplete (and
// before the last statement's of an implicit transaction, which PostgreSQL commits first). Each
// case's replies are compared with PostgreSQL's own, in dual and in solo mode.
func TestNoticeAtCommit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE TABLE noted (id int PRIMARY KEY);
CREATE FUNCTION noted_f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE WARNING 'committing %', NEW.id; RETURN NULL; END$$;
CREATE CONSTRAINT TRIGGER noted_t AFTER INSERT ON noted DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION noted_f()`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	q, ext := rawQuery, rawPipeline
	id := 0
	ins := func() string {
		id++
		return "INSERT INTO noted VALUES (" + strconv.Itoa(id) + ")"
	}
	// Each case: requests, the last of which commits; the replies to it are compared.
	cases := []struct {
		name string
		reqs func() [][]pgproto3.FrontendMessage
	}{
		{"query: begin, insert, commit", func() [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q("BEGIN; " + ins() + "; COMMIT")}
		}},
		{"commit alone", func() [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q("BEGIN; " + ins()), q("COMMIT")}
		}},
		{"query: implicit", func() [][]pgproto3.FrontendMessage { return [][]pgproto3.FrontendMessage{q(ins())} }},
		{"query: implicit, select after", func() [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q("BEGIN; " + ins() + "; COMMIT; SELECT 1")}
		}},
		{"pipeline: implicit", func() [][]pgproto3.FrontendMessage { return [][]pgproto3.FrontendMessage{ext(ins())} }},
		{"pipeline: block", func() [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext("BEGIN", ins(), "COMMIT")}
		}},
		{"chain", func() [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q("BEGIN; " + ins() + "; COMMIT AND CHAIN; COMMIT")}
		}},
	}
	for _, mode := range []Mode{ModeDual, ModeSolo} {
		s.SetMode(mode, 1)
		for _, tc := range cases {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				direct, shim := dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)
				shim.t, direct.t = t, t
				want := direct.exchange(tc.reqs())
				if got := shim.exchange(tc.reqs()); got != want {
					t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
				}
			})
		}
	}
}
