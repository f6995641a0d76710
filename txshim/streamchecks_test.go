package txshim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

func reg6CPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestDecoderIdleConfirm: the last confirmed position before a quiet period reaches the
// slot within statusInterval, the idle decoder does not spin, and a short wal_sender_timeout
// does not end the stream while idle or busy.
func TestDecoderIdleConfirm(t *testing.T) {
	p := startCapPair(t, pgtest.WithSetting("wal_sender_timeout", "2s"))
	ctx := capCtx(t, 90*time.Second)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	if err := Install(ctx, "a", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(p.local.DSN("app"), "a", nil)
	evs := runDecoder(t, d)
	slotAt := func() pglogrepl.LSN {
		got := queryOne[string](t, p.ldb, `SELECT coalesce(confirmed_flush_lsn::text, '0/0') FROM pg_replication_slots WHERE slot_name = 'tandem_a'`)
		lsn, _ := pglogrepl.ParseLSN(got)
		return lsn
	}
	pid := func() string {
		return queryOne[string](t, p.ldb, `SELECT coalesce(active_pid::text, '') FROM pg_replication_slots WHERE slot_name = 'tandem_a'`)
	}
	waitSlot := func(want pglogrepl.LSN, within time.Duration) time.Duration {
		start := time.Now()
		for {
			if slotAt() >= want {
				return time.Since(start)
			}
			if time.Since(start) > within {
				t.Fatalf("confirmed_flush_lsn = %s after %v, want %s", slotAt(), within, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Busy: commits back to back, each confirmed as its event comes.
	go func() {
		for i := 0; i < 300; i++ {
			p.local.Exec(t, `INSERT INTO kv VALUES (`+strconv.Itoa(i)+`, 'x')`)
		}
	}()
	var last pglogrepl.LSN
	for n := 0; n < 300; {
		ev := nextTxnEvent(t, evs)
		if ev.Txn != nil {
			n++
			last = ev.Pos
			d.Confirm(ev.Pos)
		}
	}
	lat := waitSlot(last, 1500*time.Millisecond)
	t.Logf("last commit of busy stream on the slot after %v", lat)

	// Idle: one commit, confirmed a little later (as the shipper would), then quiet.
	p0 := pid()
	time.Sleep(300 * time.Millisecond)
	p.local.Exec(t, `INSERT INTO kv VALUES (1000, 'y')`)
	ev := nextTxnEvent(t, evs)
	time.Sleep(5 * time.Millisecond)
	d.Confirm(ev.Pos)
	lat = waitSlot(ev.Pos, 1500*time.Millisecond)
	t.Logf("last commit before quiet on the slot after %v", lat)

	cpu0 := reg6CPU()
	time.Sleep(5 * time.Second)
	used := reg6CPU() - cpu0
	t.Logf("process CPU over 5 s idle: %v", used)
	if used > 500*time.Millisecond {
		t.Errorf("idle decoder used %v of CPU in 5 s", used)
	}
	if p1 := pid(); p1 != p0 || p1 == "" {
		t.Errorf("walsender pid %q -> %q: the stream ended while idle (wal_sender_timeout 2s)", p0, p1)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (1001, 'z')`)
	nextTxnEvent(t, evs)
}

// TestWriteHeader: writeHeader writes type and length for any fill of the buffer, any
// body size (larger than the buffer too), and a failing writer's error stays.
func TestWriteHeader(t *testing.T) {
	t.Parallel()
	for _, size := range []int{16, 17, 20, 64} {
		for pre := 0; pre <= size; pre++ {
			for _, n := range []int{0, 1, 3, 4, 5, 11, 15, 16, 17, 63, 64, 65, 1000} {
				var out bytes.Buffer
				w := bufio.NewWriterSize(&out, size)
				w.Write(bytes.Repeat([]byte{'p'}, pre))
				body := bytes.Repeat([]byte{'b'}, n)
				writeHeader(w, 'd', n)
				w.Write(body)
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				got := out.Bytes()
				want := append(bytes.Repeat([]byte{'p'}, pre), 'd')
				want = binary.BigEndian.AppendUint32(want, uint32(n+4))
				want = append(want, body...)
				if !bytes.Equal(got, want) {
					t.Fatalf("size %d pre %d n %d: %q, want %q", size, pre, n, got, want)
				}
			}
		}
	}
}

// TestRefusedChangeNamed: a refused apply names the change the peer refused, its kind and
// table, for each step that can fail (a first Parse, an Execute).
func TestRefusedChangeNamed(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY, v int)`, `CREATE TABLE u (id int PRIMARY KEY)`, `INSERT INTO t VALUES (1, 1), (2, 2)`)
	installPair(t, p)
	if _, err := p.pdb.Exec(`ALTER TABLE u DROP COLUMN id`); err != nil {
		t.Fatal(err)
	}
	s := startShipper(t, p)
	if _, err := p.pdb.Exec(`INSERT INTO t VALUES (3, 3); DELETE FROM t WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		stmts []string
		want  string
	}{
		{[]string{`INSERT INTO t VALUES (3, 3)`}, `change 1 (I on "public"."t")`},
		{[]string{`INSERT INTO t VALUES (5, 5)`, `UPDATE t SET v = 2 WHERE id = 5`, `DELETE FROM t WHERE id = 5`, `UPDATE t SET v = 3 WHERE id = 2`}, `change 4 (U on "public"."t")`},
		{[]string{`INSERT INTO t VALUES (6, 6)`, `INSERT INTO u VALUES (1)`}, `change 2 (I on "public"."u")`},
		{[]string{`DELETE FROM t WHERE id = 2`}, `change 1 (D on "public"."t")`},
	} {
		gid := gidFor("a", 1, uint64(i+1))
		prepareLocal(t, p.ldb, gid, c.stmts...)
		err := s.Prepare(capCtx(t, 10*time.Second), gid)
		t.Logf("%d: %v", i, err)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("case %d: Prepare = %v, want it to name %s", i, err, c.want)
		}
		p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(gid))
		s.Rollback(gid)
	}
}

// TestLargeMessagesThroughShim: messages larger than the session's buffers, each way
// (rows, CopyData out and in, a large Query and Bind), arrive whole.
func TestLargeMessagesThroughShim(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	c.Exec(t, "CREATE TABLE big (k int PRIMARY KEY, v text)")
	ctx := context.Background()
	conn := s.connect(t)
	big := strings.Repeat("abcdefghij", 30000) // 300 kB
	for i, n := range []int{1, 4, 5, 100, 8190, 8191, 8192, 32764, 32768, 65536, 300000} {
		v := big[:n]
		if _, err := conn.Exec(ctx, "INSERT INTO big VALUES ($1, $2)", i, v); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := conn.QueryRow(ctx, "SELECT v FROM big WHERE k = $1", i).Scan(&got); err != nil || got != v {
			t.Fatalf("extended read back %d: %d bytes, %v", n, len(got), err)
		}
		if err := conn.QueryRow(ctx, "SELECT '"+v+"'::text", pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil || got != v {
			t.Fatalf("simple read back %d: %d bytes, %v", n, len(got), err)
		}
	}
	var out bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &out, "COPY big TO STDOUT"); err != nil {
		t.Fatal(err)
	}
	in := out.String() // the same rows again, under other keys
	var rows []string
	for _, l := range strings.Split(strings.TrimSuffix(in, "\n"), "\n") {
		k, v, _ := strings.Cut(l, "\t")
		rows = append(rows, "1"+k+"00\t"+v)
	}
	if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(strings.Join(rows, "\n")+"\n"), "COPY big FROM STDIN"); err != nil {
		t.Fatal(err)
	}
	var same bool
	if err := conn.QueryRow(ctx, "SELECT (SELECT array_agg(v ORDER BY k) FROM big WHERE k < 100) = (SELECT array_agg(v ORDER BY k) FROM big WHERE k >= 100)").Scan(&same); err != nil || !same {
		t.Fatalf("COPY round trip: same %v %v", same, err)
	}
}
