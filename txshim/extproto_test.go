package txshim

import (
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// xstep is messages sent together, then replies read up to a message of one of the types in
// until (or, with until empty, until none comes for a while).
type xstep struct {
	msgs  []pgproto3.FrontendMessage
	until string
}

func (r *rawSession) runSteps(steps []xstep) string {
	out, _ := r.runStepsAtLeast(steps, nil)
	return out
}

// runStepsAtLeast is runSteps where a step read until silence (until empty) counts silence
// only once least[i] messages have come (bounded by 10 s, as a read until a type is): see
// compare. It returns the number of messages each step read.
func (r *rawSession) runStepsAtLeast(steps []xstep, least []int) (string, []int) {
	var out []string
	counts := make([]int, len(steps))
	for i, st := range steps {
		for _, m := range st.msgs {
			r.owed.sent(m)
			r.fe.Send(m)
		}
		r.conn.SetDeadline(time.Now().Add(15 * time.Second))
		if err := r.fe.Flush(); err != nil && st.until != "-" {
			r.t.Fatal(err)
		}
		if st.until == "-" {
			// Gone without reading: the database has what it got; give it time.
			r.conn.Close()
			time.Sleep(500 * time.Millisecond)
			out = append(out, "-")
			continue
		}
		atLeast := 0
		if i < len(least) {
			atLeast = least[i]
		}
		var got string
		got, counts[i] = r.readAtLeast(st.until, atLeast)
		out = append(out, got)
	}
	return strings.Join(out, "\n"), counts
}

// readAtLeast is readReplies that also stops when no message comes for 10 s, or, until empty,
// for settleWait once at least atLeast messages have come and the server owes no reply to
// what runSteps sent (r.owed): it then waits for the client, and only a reply it should not
// send can come (which shows, in this read or, later than settleWait, in the next step's).
// Silence before that is a reply not yet come: a commit through the shim (its rows shipped,
// PREPARE TRANSACTION on both databases, COMMIT PREPARED) outlasts any short wait on a loaded
// machine. It returns the number of messages read.
func (r *rawSession) readAtLeast(until string, atLeast int) (string, int) {
	r.t.Helper()
	return r.readSettled(until, atLeast, settleWait)
}

// readSettled is readAtLeast with settle for settleWait.
func (r *rawSession) readSettled(until string, atLeast int, settle time.Duration) (string, int) {
	r.t.Helper()
	var b strings.Builder
	for n := 0; ; n++ {
		idle := 10 * time.Second
		if until == "" && n >= atLeast && r.owed.settled() {
			idle = settle
		}
		r.conn.SetReadDeadline(time.Now().Add(idle))
		m, err := r.fe.Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if until != "" {
					b.WriteString("<timeout>")
				}
				return b.String(), n
			}
			r.owed.ended()
			b.WriteString("<" + err.Error() + ">")
			return b.String(), n
		}
		r.owed.received(m)
		enc, _ := m.Encode(nil)
		b.WriteByte(enc[0])
		switch m := m.(type) {
		case *pgproto3.DataRow:
			fmt.Fprintf(&b, "%q", m.Values)
		case *pgproto3.CommandComplete:
			fmt.Fprintf(&b, "(%s)", m.CommandTag)
		case *pgproto3.ErrorResponse:
			fmt.Fprintf(&b, "(%s %s)", m.Code, m.Message)
		case *pgproto3.NoticeResponse:
			fmt.Fprintf(&b, "(%s %s)", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			fmt.Fprintf(&b, "(%c)", m.TxStatus)
		}
		if until != "" && strings.IndexByte(until, enc[0]) >= 0 {
			return b.String(), n + 1
		}
		b.WriteByte(' ')
	}
}

func xq(q string) xstep {
	return xstep{msgs: []pgproto3.FrontendMessage{&pgproto3.Query{String: q}}, until: "Z"}
}

func xpbe(q string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{}}
}

func xpipe(qs ...string) xstep {
	var m []pgproto3.FrontendMessage
	for _, q := range qs {
		m = append(m, xpbe(q)...)
	}
	return xstep{msgs: append(m, &pgproto3.Sync{}), until: "Z"}
}

func xmsgs(until string, ms ...any) xstep {
	var out []pgproto3.FrontendMessage
	for _, m := range ms {
		switch m := m.(type) {
		case pgproto3.FrontendMessage:
			out = append(out, m)
		case []pgproto3.FrontendMessage:
			out = append(out, m...)
		case string:
			out = append(out, xpbe(m)...)
		}
	}
	return xstep{msgs: out, until: until}
}

// oracle is PostgreSQL itself beside an acceptance environment: database "oracle" on the
// local cluster, outside the publication, to which the *Compare tests send what they send the
// shim.
type oracle struct {
	e    *accEnv
	dsn  string
	db   *sql.DB
	conn *pgx.Conn // through the shim
}

// startOracle makes e's oracle database.
func startOracle(t *testing.T, e *accEnv) *oracle {
	t.Helper()
	if _, err := e.localDB.Exec(`CREATE DATABASE oracle`); err != nil {
		t.Fatal(err)
	}
	return &oracle{e: e, dsn: e.local.DSN("oracle"), db: e.local.Open(t, "oracle"), conn: e.connect(t)}
}

// both runs each statement on the oracle database and through the shim.
func (o *oracle) both(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := o.db.Exec(q); err != nil {
			t.Fatal(err)
		}
		if _, err := o.conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
}

// compare sends steps to PostgreSQL and through the shim, each on a session of its own, and
// reports where the replies differ. A step read until silence reads the shim's replies until
// as many as PostgreSQL gave have come and nothing is owed (readAtLeast), and only then waits
// for silence: through the shim a commit is a two-phase commit on both databases after its
// rows were shipped, which on a loaded machine outlasted a fixed wait (700 ms once): the
// replies, sent at the flush after the commit, were read with the next step's (commit and
// chain flushed, terminate). Replies beyond PostgreSQL's still show, in the step or the next
// one, and fewer show too (after 10 s); so do replies after the last step's, for lateWait.
func (o *oracle) compare(t *testing.T, steps []xstep) {
	t.Helper()
	o.compareThen(t, steps, nil)
}

// lateWait is how long compare waits, after the last step, for replies neither session
// should send, when a step was read until silence: those reads wait only settleWait for such
// a reply once nothing is owed (a later one shows in the next step's read, but the last step
// has no next one, and the steps after may end before it comes). They waited as long as this
// each, once.
const lateWait = 700 * time.Millisecond

// compareThen is compare, calling compared (when not nil) once the steps' replies are compared,
// before the wait for late ones.
func (o *oracle) compareThen(t *testing.T, steps []xstep, compared func()) {
	t.Helper()
	direct, shim := dialRawDSN(t, o.dsn), dialRaw(t, o.e.shim)
	direct.t, shim.t = t, t
	want, counts := direct.runStepsAtLeast(steps, nil)
	got, _ := shim.runStepsAtLeast(steps, counts)
	if got != want {
		t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
	}
	if compared != nil {
		compared()
	}
	var late [2]string
	var wg sync.WaitGroup
	for i, r := range []*rawSession{direct, shim} {
		wg.Go(func() { late[i] = r.lateReplies(steps) })
	}
	wg.Wait()
	if late[0] != late[1] {
		t.Errorf("after the last step's replies, through the shim: %q; PostgreSQL: %q", late[1], late[0])
	}
}

// lateReplies reads what comes within lateWait after steps ran on r, when one of them was
// read until silence and the connection is open; it returns "" otherwise.
func (r *rawSession) lateReplies(steps []xstep) string {
	silent := false
	for _, st := range steps {
		silent = silent || st.until == ""
	}
	if !silent || steps[len(steps)-1].until == "-" || r.owed.gone {
		return ""
	}
	late, _ := r.readSettled("", 0, lateWait)
	return late
}

// xcase is one comparison of compareCases: its steps on a table of its own.
type xcase struct {
	name  string
	steps func(tb string) []xstep
}

// compareCases compares the cases, each on its table (tables[i]), several at once: most of
// their time is waiting for replies. Not t.Parallel, whose limit is the CPU count. A case's
// wait for late replies (compareThen) leaves its running slot to the next case, within a
// bound on cases open at once (each holds sessions on the local cluster, and on the peer
// through the shim).
func (o *oracle) compareCases(t *testing.T, cases []xcase, tables []string) {
	t.Helper()
	var wg sync.WaitGroup
	running, open := make(chan struct{}, 6), make(chan struct{}, 12)
	for i, tc := range cases {
		open <- struct{}{}
		running <- struct{}{}
		wg.Go(func() {
			defer func() { <-open }()
			var once sync.Once
			free := func() { once.Do(func() { <-running }) }
			defer free()
			t.Run(tc.name, func(t *testing.T) { o.compareThen(t, tc.steps(tables[i]), free) })
		})
	}
	wg.Wait()
}

// sameRows reports where query's one value (text) differs between PostgreSQL and the shim's
// two databases.
func (o *oracle) sameRows(t *testing.T, what, query string) {
	t.Helper()
	get := func(db *sql.DB) string {
		var s sql.NullString
		if err := db.QueryRow(query).Scan(&s); err != nil {
			return "error: " + err.Error()
		}
		return s.String
	}
	if d, l, p := get(o.db), get(o.e.localDB), get(o.e.peerDB); d != l || d != p {
		t.Errorf("%s: PostgreSQL %q, shim's local %q, peer %q", what, d, l, p)
	}
}

// TestExtProtoCompare runs message sequences against PostgreSQL directly (an oracle database
// on the local cluster, outside the publication) and through the shim in dual mode, and
// compares the replies and the tables' contents on all three databases. Shapes the shim refuses
// on purpose (client PREPARE TRANSACTION and its kin, a Query inside an extended request, copy
// data ahead of an extended COPY's CopyInResponse) are left out.
func TestExtProtoCompare(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	ins := func(tb string, id int) string { return fmt.Sprintf("INSERT INTO %s VALUES (%d, 'v%d')", tb, id, id) }
	bigPad := strings.Repeat("x", 2000)
	dup := func(tb string, id int) string { return fmt.Sprintf("INSERT INTO %s VALUES (%d, 'v1')", tb, id) }
	copyData := func(rows ...string) []pgproto3.FrontendMessage {
		var m []pgproto3.FrontendMessage
		for _, r := range rows {
			m = append(m, &pgproto3.CopyData{Data: []byte(r + "\n")})
		}
		return m
	}
	var procSQL string
	cases := []xcase{
		{"implicit several writes", func(tb string) []xstep { return []xstep{xpipe(ins(tb, 1), ins(tb, 2))} }},
		{"implicit several writes, one fails", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), ins(tb, 1), ins(tb, 3))}
		}},
		{"implicit writes then commit", func(tb string) []xstep { return []xstep{xpipe(ins(tb, 1), "COMMIT", ins(tb, 2))} }},
		{"implicit writes then commit, later fails", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), "COMMIT", ins(tb, 2), "SELECT 1/0")}
		}},
		{"block commit named, reused", func(tb string) []xstep {
			return []xstep{
				xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Parse{Name: "c", Query: "COMMIT"}, &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", "BEGIN", ins(tb, 2), &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", ins(tb, 3), &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
			}
		}},
		{"describe portal of commit", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})}
		}},
		{"describe statement of commit", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Parse{Name: "c2", Query: "COMMIT"}, &pgproto3.Describe{ObjectType: 'S', Name: "c2"}, &pgproto3.Bind{PreparedStatement: "c2"}, &pgproto3.Execute{}, &pgproto3.Sync{})}
		}},
		{"commit and chain in a pipeline", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "COMMIT AND CHAIN", ins(tb, 2), "COMMIT")}
		}},
		{"commit and chain, then fail", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "COMMIT AND CHAIN", ins(tb, 2), "SELECT 1/0"), xq("ROLLBACK")}
		}},
		{"end and abort", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "END"), xpipe("BEGIN", ins(tb, 2), "ABORT"), xpipe("START TRANSACTION", ins(tb, 3), "end transaction")}
		}},
		{"row limit then commit", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", &pgproto3.Parse{Query: "INSERT INTO " + tb + " VALUES (1,'a'),(2,'b') RETURNING id"}, &pgproto3.Bind{}, &pgproto3.Execute{MaxRows: 1}, "COMMIT", &pgproto3.Sync{})}
		}},
		{"row limit implicit then commit", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Query: "INSERT INTO " + tb + " VALUES (1,'a'),(2,'b') RETURNING id"}, &pgproto3.Bind{}, &pgproto3.Execute{MaxRows: 1}, "COMMIT", &pgproto3.Sync{})}
		}},
		{"flush after commit", func(tb string) []xstep {
			return []xstep{xmsgs("", "BEGIN", ins(tb, 1), "COMMIT", &pgproto3.Flush{}), xmsgs("Z", &pgproto3.Sync{})}
		}},
		{"flush after implicit write", func(tb string) []xstep {
			return []xstep{xmsgs("", ins(tb, 1), &pgproto3.Flush{}), xmsgs("", ins(tb, 2), &pgproto3.Flush{}), xmsgs("Z", ins(tb, 3), &pgproto3.Sync{})}
		}},
		{"flush after implicit write then fail", func(tb string) []xstep {
			return []xstep{xmsgs("", ins(tb, 1), &pgproto3.Flush{}), xmsgs("Z", "SELECT 1/0", &pgproto3.Sync{})}
		}},
		{"error then commit before sync", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "SELECT 1/0", "COMMIT", ins(tb, 2)), xq("COMMIT")}
		}},
		{"implicit error then commit", func(tb string) []xstep { return []xstep{xpipe(ins(tb, 1), "SELECT 1/0", "COMMIT")} }},
		{"simple insert commit insert outside", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; COMMIT; " + ins(tb, 2))}
		}},
		{"simple begin insert commit insert", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; COMMIT; " + ins(tb, 2))}
		}},
		{"simple split", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1)), xq(ins(tb, 2) + "; COMMIT; " + ins(tb, 3) + "; SELECT 1/0")}
		}},
		{"simple commit chain", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; COMMIT AND CHAIN; " + ins(tb, 2) + "; ROLLBACK AND CHAIN; " + ins(tb, 3) + "; COMMIT")}
		}},
		{"do block", func(tb string) []xstep {
			return []xstep{xq("DO $$BEGIN " + ins(tb, 1) + "; END$$"), xpipe("DO $$BEGIN " + ins(tb, 2) + "; END$$")}
		}},
		{"do block commit inside", func(tb string) []xstep {
			return []xstep{xq("DO $$BEGIN " + ins(tb, 1) + "; COMMIT; " + ins(tb, 2) + "; END$$"), xpipe("DO $$BEGIN " + ins(tb, 3) + "; COMMIT; " + ins(tb, 4) + "; END$$")}
		}},
		{"two syncs at once", func(tb string) []xstep {
			s := xpipe("BEGIN", ins(tb, 1), "COMMIT")
			s2 := xpipe("BEGIN", ins(tb, 2), "COMMIT")
			return []xstep{{msgs: append(append([]pgproto3.FrontendMessage{}, s.msgs...), s2.msgs...), until: ""}}
		}},
		{"commit in failed block", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "SELECT 1/0"), xpipe("COMMIT"), xpipe(ins(tb, 2))}
		}},
		{"simple failing implicit", func(tb string) []xstep { return []xstep{xq(ins(tb, 1) + "; SELECT 1/0")} }},
		{"simple commit then fail", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; COMMIT; " + ins(tb, 2) + "; SELECT 1/0")}
		}},
		{"simple begin in implicit", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; BEGIN; " + ins(tb, 2) + "; COMMIT; " + ins(tb, 3))}
		}},
		{"simple begin in implicit, rollback", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; BEGIN; " + ins(tb, 2) + "; ROLLBACK; " + ins(tb, 3))}
		}},
		{"simple chain outside block", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; COMMIT AND CHAIN; " + ins(tb, 2)), xq(ins(tb, 3) + "; COMMIT AND CHAIN")}
		}},
		{"ext chain outside block", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), "COMMIT AND CHAIN", ins(tb, 2)), xpipe(ins(tb, 3), "COMMIT AND CHAIN"), xpipe("COMMIT AND CHAIN")}
		}},
		{"simple rollback in implicit", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; ROLLBACK; " + ins(tb, 2))}
		}},
		{"ext rollback in implicit", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), "ROLLBACK", ins(tb, 2))}
		}},
		{"ext begin in implicit", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), "BEGIN", ins(tb, 2), "COMMIT", ins(tb, 3))}
		}},
		{"ext begin in implicit, rollback", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), "BEGIN", ins(tb, 2), "ROLLBACK", ins(tb, 3))}
		}},
		{"multiple statements in parse", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1)), xpipe(ins(tb, 2) + "; COMMIT"), xq("COMMIT")}
		}},
		{"cte write", func(tb string) []xstep {
			w := "WITH x AS (INSERT INTO " + tb + " VALUES (%d, 'c') RETURNING id) SELECT * FROM x"
			return []xstep{xq(fmt.Sprintf(w, 1)), xpipe(fmt.Sprintf(w, 2)), xpipe(fmt.Sprintf(w, 3), "SELECT 1/0")}
		}},
		{"explain analyze write", func(tb string) []xstep {
			return []xstep{xq("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + ins(tb, 1)), xpipe("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+ins(tb, 2), "SELECT 1/0")}
		}},
		{"implicit flush then commit", func(tb string) []xstep {
			return []xstep{xmsgs("", ins(tb, 1), &pgproto3.Flush{}), xmsgs("Z", "COMMIT", ins(tb, 2), "SELECT 1/0", &pgproto3.Sync{})}
		}},
		{"deallocate all then writes", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1)), xq("DEALLOCATE ALL"), xpipe(ins(tb, 2)), xq(ins(tb, 3)), xpipe("DEALLOCATE ALL", ins(tb, 4)), xpipe(ins(tb, 5))}
		}},
		{"discard all then writes", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1)), xq("DISCARD ALL"), xpipe(ins(tb, 2)), xq(ins(tb, 3))}
		}},
		{"close shim names", func(tb string) []xstep {
			cl := func(n string) xstep {
				return xmsgs("Z", &pgproto3.Close{ObjectType: 'S', Name: n}, &pgproto3.Sync{})
			}
			return []xstep{xpipe(ins(tb, 1)), xq(ins(tb, 2)), cl("tandem_shim_kept_1"), cl("tandem_shim_kept_2"), cl("tandem_shim_begin"), cl("tandem_shim_internal"), xpipe(ins(tb, 3)), xq(ins(tb, 4))}
		}},
		{"client names like the shim's", func(tb string) []xstep {
			ps := func(name, q string) xstep {
				return xmsgs("Z", &pgproto3.Parse{Name: name, Query: q}, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
			}
			run := func(name string) xstep {
				return xmsgs("Z", &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
			}
			return []xstep{xpipe(ins(tb, 1)), xq(ins(tb, 2)),
				ps("tandem_shim_kept_1", "SELECT 41"), ps("tandem_shim_kept_2", "SELECT 42"), ps("tandem_shim_begin", "SELECT 43"), ps("tandem_shim_internal", "SELECT 44"),
				xpipe(ins(tb, 3)), xq(ins(tb, 4)), xmsgs("", ins(tb, 5), &pgproto3.Flush{}), xmsgs("Z", ins(tb, 6), &pgproto3.Sync{}),
				run("tandem_shim_kept_1"), run("tandem_shim_kept_2"), run("tandem_shim_begin"), run("tandem_shim_internal"),
				xmsgs("", &pgproto3.Bind{DestinationPortal: "tandem_shim_internal", PreparedStatement: "tandem_shim_kept_1"}, &pgproto3.Flush{}),
				xmsgs("Z", ins(tb, 7), &pgproto3.Execute{Portal: "tandem_shim_internal"}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Describe{ObjectType: 'S', Name: "tandem_shim_kept_1"}, &pgproto3.Close{ObjectType: 'S', Name: "tandem_shim_kept_1"}, &pgproto3.Sync{}),
				ps("tandem_shim_kept_1", "SELECT 45"), xpipe(ins(tb, 8)), run("tandem_shim_kept_1"), run("tandem_shim_begin")}
		}},
		{"begin read only write", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN READ ONLY", ins(tb, 1), "COMMIT"), xq("ROLLBACK"), xq("BEGIN ISOLATION LEVEL SERIALIZABLE; " + ins(tb, 2) + "; COMMIT")}
		}},
		{"bind error in write pipeline", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Parse{Query: "INSERT INTO " + tb + " VALUES ($1, 'p')"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("notint")}}, &pgproto3.Execute{}, "COMMIT", &pgproto3.Sync{}), xpipe("ROLLBACK")}
		}},
		{"deferred simple block", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; " + dup(tb, 2) + "; COMMIT; " + ins(tb, 3)), xq(ins(tb, 4))}
		}},
		{"deferred simple block alone", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; " + dup(tb, 2)), xq("COMMIT"), xq(ins(tb, 4))}
		}},
		{"deferred simple implicit", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; " + dup(tb, 2) + "; SELECT 5"), xq(ins(tb, 4))}
		}},
		{"deferred ext block", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), dup(tb, 2), "COMMIT", ins(tb, 3), "SELECT 6"), xpipe(ins(tb, 4))}
		}},
		{"deferred ext block, flush before commit", func(tb string) []xstep {
			return []xstep{xmsgs("", "BEGIN", ins(tb, 1), dup(tb, 2), &pgproto3.Flush{}), xmsgs("Z", "COMMIT", ins(tb, 3), &pgproto3.Sync{}), xpipe(ins(tb, 4))}
		}},
		{"deferred ext block, flush after commit", func(tb string) []xstep {
			return []xstep{xmsgs("", "BEGIN", ins(tb, 1), dup(tb, 2), "COMMIT", &pgproto3.Flush{}), xmsgs("Z", ins(tb, 3), &pgproto3.Sync{}), xpipe(ins(tb, 4))}
		}},
		{"deferred ext implicit", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), dup(tb, 2), "SELECT 7"), xpipe(ins(tb, 4))}
		}},
		{"deferred ext implicit, commit", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), dup(tb, 2), "COMMIT", ins(tb, 3)), xpipe(ins(tb, 4))}
		}},
		{"deferred ext chain", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), dup(tb, 2), "COMMIT AND CHAIN", ins(tb, 3)), xq("COMMIT"), xpipe(ins(tb, 4))}
		}},
		{"deferred simple chain", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; " + dup(tb, 2) + "; COMMIT AND CHAIN; " + ins(tb, 3)), xq("COMMIT"), xq(ins(tb, 4))}
		}},
		{"deferred simple chain alone", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; " + dup(tb, 2)), xq("COMMIT AND CHAIN"), xq(ins(tb, 3)), xq("COMMIT"), xq(ins(tb, 4))}
		}},
		{"deferred named commit reused", func(tb string) []xstep {
			return []xstep{
				xmsgs("Z", "BEGIN", ins(tb, 1), dup(tb, 2), &pgproto3.Parse{Name: "dc", Query: "COMMIT"}, &pgproto3.Bind{PreparedStatement: "dc"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xmsgs("Z", "BEGIN", ins(tb, 3), &pgproto3.Bind{PreparedStatement: "dc"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
			}
		}},
		{"deferred do block", func(tb string) []xstep {
			return []xstep{xq("DO $$BEGIN " + ins(tb, 1) + "; " + dup(tb, 2) + "; END$$"), xq(ins(tb, 4))}
		}},
		{"deferred copy", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("1\tv1", "2\tv1"), &pgproto3.CopyDone{}), xq(ins(tb, 4))}
		}},
		{"two queries at once", func(tb string) []xstep {
			return []xstep{xmsgs("", &pgproto3.Query{String: "BEGIN; " + ins(tb, 1)}, &pgproto3.Query{String: "COMMIT"}, &pgproto3.Query{String: ins(tb, 2)}, &pgproto3.Query{String: "SELECT 1/0"})}
		}},
		{"deferred two syncs at once", func(tb string) []xstep {
			a := xpipe("BEGIN", ins(tb, 1), dup(tb, 2), "COMMIT")
			b := xpipe(ins(tb, 3), "SELECT 1")
			return []xstep{{msgs: append(append([]pgproto3.FrontendMessage{}, a.msgs...), b.msgs...), until: ""}}
		}},
		{"deferred two queries at once", func(tb string) []xstep {
			return []xstep{xmsgs("", &pgproto3.Query{String: "BEGIN; " + ins(tb, 1) + "; " + dup(tb, 2)}, &pgproto3.Query{String: "COMMIT"}, &pgproto3.Query{String: ins(tb, 3)})}
		}},
		{"deferred two queries at once implicit", func(tb string) []xstep {
			return []xstep{xmsgs("", &pgproto3.Query{String: ins(tb, 1) + "; " + dup(tb, 2)}, &pgproto3.Query{String: ins(tb, 3)})}
		}},
		{"commit with row limit", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{MaxRows: 1}, &pgproto3.Execute{}, &pgproto3.Sync{})}
		}},
		{"empty query in write pipeline", func(tb string) []xstep {
			return []xstep{xpipe(ins(tb, 1), "", ins(tb, 2)), xq(ins(tb, 3) + ";;"), xq("")}
		}},
		{"begin twice", func(tb string) []xstep {
			return []xstep{xq("BEGIN; BEGIN; " + ins(tb, 1) + "; COMMIT"), xpipe("BEGIN", "BEGIN", ins(tb, 2), "COMMIT")}
		}},
		{"set transaction outside block", func(tb string) []xstep {
			return []xstep{xq("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; " + ins(tb, 1) + "; SHOW transaction_isolation"),
				xpipe("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", ins(tb, 2), "SHOW transaction_isolation"),
				xpipe(ins(tb, 3), "SET LOCAL work_mem = '7MB'", "SHOW work_mem"), xq("SHOW work_mem")}
		}},
		{"vacuum after write", func(tb string) []xstep {
			return []xstep{xq(ins(tb, 1) + "; VACUUM " + tb), xpipe(ins(tb, 2), "VACUUM "+tb), xpipe("VACUUM "+tb, ins(tb, 3))}
		}},
		{"call procedure", func(tb string) []xstep {
			return []xstep{xq("CALL xp_proc(1)"), xpipe("CALL xp_proc(3)"), xq("BEGIN; CALL xp_proc(5); COMMIT"), xpipe(ins(tb, 7), "CALL xp_proc(8)")}
		}},
		{"describe portal of write", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Query: "INSERT INTO " + tb + " VALUES (1,'a') RETURNING id"}, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})}
		}},
		{"flushed error then commit", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN"), xmsgs("", ins(tb, 1), ins(tb, 1), &pgproto3.Flush{}), xmsgs("Z", "COMMIT", &pgproto3.Sync{}), xq("ROLLBACK")}
		}},
		{"flushed error implicit then commit", func(tb string) []xstep {
			return []xstep{xmsgs("", ins(tb, 1), ins(tb, 1), &pgproto3.Flush{}), xmsgs("Z", ins(tb, 3), "COMMIT", ins(tb, 4), &pgproto3.Sync{}), xpipe(ins(tb, 5))}
		}},
		{"flushed error implicit, flush, writes", func(tb string) []xstep {
			return []xstep{xmsgs("", ins(tb, 1), ins(tb, 1), &pgproto3.Flush{}), xmsgs("", ins(tb, 3), &pgproto3.Flush{}), xmsgs("Z", ins(tb, 4), &pgproto3.Sync{}), xpipe(ins(tb, 5))}
		}},
		{"flushed begin, error, commit", func(tb string) []xstep {
			return []xstep{xmsgs("", "BEGIN", ins(tb, 1), &pgproto3.Flush{}), xmsgs("", ins(tb, 1), &pgproto3.Flush{}), xmsgs("Z", "COMMIT", &pgproto3.Sync{}), xq("ROLLBACK"), xpipe(ins(tb, 5))}
		}},
		{"flushed write, commit chain", func(tb string) []xstep {
			return []xstep{xmsgs("", "BEGIN", ins(tb, 1), &pgproto3.Flush{}), xmsgs("", "COMMIT AND CHAIN", ins(tb, 2), &pgproto3.Flush{}), xmsgs("Z", "COMMIT", &pgproto3.Sync{}), xpipe(ins(tb, 5))}
		}},
		{"unnamed commit parsed earlier", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1)), xmsgs("Z", &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Sync{}), xmsgs("Z", &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xpipe(ins(tb, 2)), xmsgs("Z", &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})}
		}},
		{"portal of commit bound earlier", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Sync{}),
				xmsgs("Z", ins(tb, 2), &pgproto3.Execute{Portal: "cp"}, ins(tb, 3), &pgproto3.Sync{}), xpipe(ins(tb, 4))}
		}},
		{"portal of commit executed twice", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Execute{Portal: "cp"},
				ins(tb, 2), &pgproto3.Execute{Portal: "cp"}, &pgproto3.Sync{}), xpipe(ins(tb, 3))}
		}},
		{"portal of commit after rollback", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Sync{}),
				xpipe("ROLLBACK", "BEGIN", ins(tb, 1)), xmsgs("Z", &pgproto3.Execute{Portal: "cp"}, &pgproto3.Sync{}), xq("ROLLBACK"), xpipe(ins(tb, 2))}
		}},
		{"portal of commit after rollback to savepoint", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", ins(tb, 1), "SAVEPOINT a", &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Sync{}),
				xmsgs("Z", "ROLLBACK TO a", ins(tb, 2), &pgproto3.Execute{Portal: "cp"}, &pgproto3.Sync{}), xq("ROLLBACK"), xpipe(ins(tb, 3))}
		}},
		{"portal of commit after simple commit", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Sync{}),
				xq("COMMIT; BEGIN; " + ins(tb, 1)), xmsgs("Z", &pgproto3.Execute{Portal: "cp"}, &pgproto3.Sync{}), xq("ROLLBACK"), xpipe(ins(tb, 2))}
		}},
		{"portal of commit in an implicit transaction, next request", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Sync{}),
				xmsgs("Z", "BEGIN", ins(tb, 1), &pgproto3.Execute{Portal: "cp"}, &pgproto3.Sync{}), xq("ROLLBACK"), xpipe(ins(tb, 2))}
		}},
		{"portal of commit kept across requests", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Sync{}),
				xpipe(ins(tb, 1)), xmsgs("Z", &pgproto3.Execute{Portal: "cp"}, &pgproto3.Sync{}), xpipe(ins(tb, 2))}
		}},
		{"unnamed portal of commit kept across requests", func(tb string) []xstep {
			return []xstep{xmsgs("Z", "BEGIN", &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Sync{}),
				xmsgs("Z", &pgproto3.Parse{Name: "xi", Query: ins(tb, 1)}, &pgproto3.Bind{DestinationPortal: "xip", PreparedStatement: "xi"}, &pgproto3.Execute{Portal: "xip"}, &pgproto3.Execute{}, &pgproto3.Sync{}),
				xpipe(ins(tb, 2))}
		}},
		{"portal of commit bound before a flush", func(tb string) []xstep {
			return []xstep{xmsgs("", "BEGIN", &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp"}, &pgproto3.Flush{}), xmsgs("Z", ins(tb, 1), &pgproto3.Execute{Portal: "cp"}, &pgproto3.Sync{}), xpipe(ins(tb, 2))}
		}},
		{"portal of begin from an ended transaction", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Bind{DestinationPortal: "bp"}, &pgproto3.Sync{}),
				xmsgs("Z", ins(tb, 1), &pgproto3.Execute{Portal: "bp"}, ins(tb, 2), &pgproto3.Sync{}), xpipe(ins(tb, 3)), xq("ROLLBACK"),
				xmsgs("Z", &pgproto3.Execute{Portal: "bp"}, ins(tb, 4), &pgproto3.Sync{}), xpipe(ins(tb, 5)), xq("ROLLBACK"),
				xmsgs("Z", &pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Bind{DestinationPortal: "bp2"}, &pgproto3.Sync{}), xmsgs("Z", ins(tb, 6), &pgproto3.Execute{Portal: "bp2"}, ins(tb, 7), &pgproto3.Sync{}), xq("ROLLBACK"),
				xq("BEGIN"), xmsgs("Z", &pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Bind{DestinationPortal: "bp3"}, &pgproto3.Sync{}), xmsgs("Z", ins(tb, 8), &pgproto3.Execute{Portal: "bp3"}, ins(tb, 9), &pgproto3.Sync{}), xq("COMMIT")}
		}},
		{"portal of begin isolation bound before a flush", func(tb string) []xstep {
			return []xstep{xmsgs("", &pgproto3.Parse{Query: "BEGIN ISOLATION LEVEL REPEATABLE READ"}, &pgproto3.Bind{DestinationPortal: "bp"}, &pgproto3.Flush{}),
				xmsgs("Z", &pgproto3.Parse{Name: "tw", Query: "TRUNCATE " + tb}, &pgproto3.Bind{DestinationPortal: "twp", PreparedStatement: "tw"}, &pgproto3.Execute{Portal: "bp"},
					&pgproto3.Execute{Portal: "twp"}, "SHOW transaction_isolation", ins(tb, 1), &pgproto3.Sync{}), xq("COMMIT"), xq("DEALLOCATE tw")}
		}},
		{"portal of start transaction bound before a flush", func(tb string) []xstep {
			return []xstep{xmsgs("", &pgproto3.Parse{Query: "START TRANSACTION"}, &pgproto3.Bind{DestinationPortal: "bp"}, &pgproto3.Flush{}),
				xmsgs("Z", ins(tb, 1), &pgproto3.Execute{Portal: "bp"}, ins(tb, 2), &pgproto3.Sync{}), xq("COMMIT")}
		}},
		{"portal of rollback from an ended transaction", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{DestinationPortal: "rp"}, &pgproto3.Sync{}),
				xmsgs("Z", ins(tb, 1), &pgproto3.Execute{Portal: "rp"}, ins(tb, 2), &pgproto3.Sync{}), xpipe(ins(tb, 3)), xq("ROLLBACK")}
		}},
		{"big block, error early, commit late", func(tb string) []xstep {
			qs := []string{"BEGIN", ins(tb, 1), "SELECT 1/0"}
			for i := 10; i <= 700; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", tb, i, bigPad))
			}
			return []xstep{xpipe(append(qs, "COMMIT", ins(tb, 2))...), xq("ROLLBACK"), xpipe(ins(tb, 3))}
		}},
		{"big implicit, error early, commit late", func(tb string) []xstep {
			qs := []string{ins(tb, 1), "SELECT 1/0"}
			for i := 10; i <= 700; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", tb, i, bigPad))
			}
			return []xstep{xpipe(append(qs, "COMMIT", ins(tb, 2))...), xpipe(ins(tb, 3))}
		}},
		{"big implicit, commit late, error after", func(tb string) []xstep {
			qs := []string{ins(tb, 1)}
			for i := 10; i <= 700; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", tb, i, bigPad))
			}
			return []xstep{xpipe(append(qs, "COMMIT", ins(tb, 2), "SELECT 1/0")...), xpipe(ins(tb, 3))}
		}},
		{"big block, commit chain across split", func(tb string) []xstep {
			qs := []string{"BEGIN", ins(tb, 1)}
			for i := 10; i <= 400; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", tb, i, bigPad))
			}
			qs = append(qs, "COMMIT AND CHAIN")
			for i := 1000; i <= 1400; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", tb, i, bigPad))
			}
			return []xstep{xpipe(append(qs, "SELECT 1/0")...), xq("ROLLBACK"), xpipe(ins(tb, 3))}
		}},
		{"big deferred block", func(tb string) []xstep {
			qs := []string{"BEGIN", ins(tb, 1), dup(tb, 2)}
			for i := 10; i <= 700; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%d%s')", tb, i, i, bigPad))
			}
			return []xstep{xpipe(append(qs, "COMMIT", ins(tb, 3))...), xpipe(ins(tb, 4))}
		}},
		{"flush after commit, terminate", func(tb string) []xstep {
			return []xstep{xmsgs("", "BEGIN", ins(tb, 1), "COMMIT", &pgproto3.Flush{}), xmsgs("", &pgproto3.Terminate{})}
		}},
		{"flush after implicit write, terminate", func(tb string) []xstep {
			return []xstep{xmsgs("", ins(tb, 1), &pgproto3.Flush{}), xmsgs("", &pgproto3.Terminate{})}
		}},
		{"commit and chain flushed, terminate", func(tb string) []xstep {
			return []xstep{xmsgs("", "BEGIN", ins(tb, 1), "COMMIT AND CHAIN", ins(tb, 2), &pgproto3.Flush{}), xmsgs("", &pgproto3.Terminate{})}
		}},
		{"commit then terminate unread", func(tb string) []xstep {
			return []xstep{xmsgs("-", &pgproto3.Query{String: "BEGIN; " + ins(tb, 1) + "; COMMIT"}, &pgproto3.Terminate{}), xmsgs("-", &pgproto3.Query{String: "SELECT 1"})}
		}},
		{"implicit then terminate unread", func(tb string) []xstep {
			return []xstep{xmsgs("-", ins(tb, 1), ins(tb, 2), &pgproto3.Sync{}, &pgproto3.Terminate{})}
		}},
		{"copy data pipelined simple", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}, copyData("1\ta", "2\tb"), &pgproto3.CopyDone{}), xq(ins(tb, 3))}
		}},
		{"copy data pipelined simple, block", func(tb string) []xstep {
			return []xstep{xq("BEGIN"), xmsgs("Z", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}, copyData("1\ta", "2\tb"), &pgproto3.CopyDone{}, &pgproto3.Query{String: "COMMIT"}), xmsgs("Z"), xq(ins(tb, 3))}
		}},
		{"lone syncs and flushes", func(tb string) []xstep {
			return []xstep{xmsgs("Z", &pgproto3.Sync{}), xmsgs("", &pgproto3.Flush{}), xpipe("BEGIN"), xmsgs("Z", &pgproto3.Sync{}), xpipe(ins(tb, 1), "SELECT 1/0"),
				xmsgs("Z", &pgproto3.Sync{}), xmsgs("", &pgproto3.Flush{}), xmsgs("Z", &pgproto3.Sync{}), xpipe("ROLLBACK"), xmsgs("Z", &pgproto3.Sync{})}
		}},
		{"failed block, simple commit then write", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 1) + "; SELECT 1/0"), xq("COMMIT; " + ins(tb, 2)), xq("BEGIN; SELECT 1/0"), xq("ROLLBACK; " + ins(tb, 3) + "; " + ins(tb, 4))}
		}},
		{"failed block, ext rollback then write", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "SELECT 1/0"), xpipe("ROLLBACK", ins(tb, 2)), xpipe("BEGIN", "SELECT 1/0"), xpipe("COMMIT", ins(tb, 3), "SELECT 1/0"), xpipe("END", ins(tb, 4))}
		}},
		{"failed block, flushed commit then write", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "SELECT 1/0"), xmsgs("", "COMMIT", &pgproto3.Flush{}), xmsgs("Z", ins(tb, 2), &pgproto3.Sync{})}
		}},
		{"savepoints", func(tb string) []xstep {
			return []xstep{xpipe("BEGIN", ins(tb, 1), "SAVEPOINT a", ins(tb, 2), "ROLLBACK TO a", ins(tb, 3), "RELEASE a", "COMMIT")}
		}},
		{"big implicit pipeline then fail", func(tb string) []xstep {
			var qs []string
			for i := 1; i <= 700; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", tb, i, bigPad))
			}
			s := xpipe(append(qs, "SELECT 1/0")...)
			return []xstep{s}
		}},
		{"big block pipeline commit", func(tb string) []xstep {
			qs := []string{"BEGIN"}
			for i := 1; i <= 700; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", tb, i, bigPad))
			}
			return []xstep{xpipe(append(qs, "COMMIT")...)}
		}},
		{"big implicit pipeline", func(tb string) []xstep {
			var qs []string
			for i := 1; i <= 700; i++ {
				qs = append(qs, fmt.Sprintf("INSERT INTO %s VALUES (%d, '%s')", tb, i, bigPad))
			}
			return []xstep{xpipe(qs...)}
		}},
	}
	cases = append(cases,
		xcase{"copy fail", func(tb string) []xstep {
			return []xstep{xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyFail{Message: "no"})}
		}},
		xcase{"copy in block then commit", func(tb string) []xstep {
			return []xstep{xq("BEGIN"), xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("1\ta", "2\tb"), &pgproto3.CopyDone{}), xq("COMMIT")}
		}},
		xcase{"copy in block, fail, rollback", func(tb string) []xstep {
			return []xstep{xq("BEGIN; " + ins(tb, 5)), xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN"}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyFail{Message: "no"}), xq("COMMIT")}
		}},
		xcase{"copy then commit in one query", func(tb string) []xstep {
			return []xstep{xq("BEGIN"), xmsgs("GZ", &pgproto3.Query{String: "COPY " + tb + " FROM STDIN; COMMIT"}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyDone{})}
		}},
		xcase{"extended copy implicit", func(tb string) []xstep {
			// The Sync ahead of the copy data is ignored in copy mode: nothing comes after the
			// CopyDone's CommandComplete until the next Sync.
			return []xstep{xmsgs("G", "COPY "+tb+" FROM STDIN", &pgproto3.Sync{}), xmsgs("", copyData("1\ta"), &pgproto3.CopyDone{}), xmsgs("Z", &pgproto3.Sync{})}
		}},
		xcase{"extended copy fail", func(tb string) []xstep {
			return []xstep{xmsgs("G", ins(tb, 7), "COPY "+tb+" FROM STDIN", &pgproto3.Sync{}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyFail{Message: "no"}, &pgproto3.Sync{})}
		}},
		xcase{"extended copy then commit", func(tb string) []xstep {
			return []xstep{xmsgs("G", "BEGIN", "COPY "+tb+" FROM STDIN", &pgproto3.Sync{}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyDone{}, &pgproto3.Sync{}), xpipe("COMMIT")}
		}},
		xcase{"extended copy no sync before", func(tb string) []xstep {
			return []xstep{xmsgs("G", ins(tb, 9), "COPY "+tb+" FROM STDIN", &pgproto3.Flush{}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyDone{}, &pgproto3.Sync{})}
		}},
		xcase{"extended copy no sync, then write", func(tb string) []xstep {
			return []xstep{xmsgs("G", "COPY "+tb+" FROM STDIN", &pgproto3.Flush{}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyDone{}, ins(tb, 2), "SELECT 1/0", &pgproto3.Sync{})}
		}},
		xcase{"extended copy no sync, then write ok", func(tb string) []xstep {
			return []xstep{xmsgs("G", "COPY "+tb+" FROM STDIN", &pgproto3.Flush{}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyDone{}, ins(tb, 2), &pgproto3.Sync{})}
		}},
		xcase{"extended copy fail, flush", func(tb string) []xstep {
			return []xstep{xmsgs("G", ins(tb, 7), "COPY "+tb+" FROM STDIN", &pgproto3.Flush{}), xmsgs("Z", copyData("1\ta"), &pgproto3.CopyFail{Message: "no"}, ins(tb, 8), &pgproto3.Sync{})}
		}},
	)
	tables := make([]string, len(cases))
	for i, tc := range cases {
		tables[i] = fmt.Sprintf("xp_%d", i)
		if tc.name == "call procedure" {
			procSQL = "CREATE PROCEDURE xp_proc(i int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO " + tables[i] + " VALUES (i, 'p'); COMMIT; INSERT INTO " + tables[i] + " VALUES (i+1, 'p'); END$$"
		}
		ddl := fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v text)", tables[i])
		if strings.Contains(tc.name, "deferred") {
			ddl = fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, v text UNIQUE DEFERRABLE INITIALLY DEFERRED)", tables[i])
		}
		o.both(t, ddl)
	}
	o.both(t, procSQL)
	before := e.shim.Stats()
	o.compareCases(t, cases, tables)
	e.settle(t, before)
	for i, tc := range cases {
		o.sameRows(t, tc.name, contentsSQL(tables[i]))
	}
}

// contentsSQL reads table tb (id int, v text) as one text value: ids and the start of values.
func contentsSQL(tb string) string {
	return "SELECT string_agg(id::text || ':' || left(v, 3), ',' ORDER BY id) FROM " + tb
}
