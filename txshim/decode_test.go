package txshim

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// runDecoder runs d until the test ends and returns its event channel.
func runDecoder(t *testing.T, d *Decoder) <-chan Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Event, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Run(ctx, out); err != nil && ctx.Err() == nil {
			t.Errorf("decoder: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

// nextTxnEvent returns the next event that is not a bare position.
func nextTxnEvent(t *testing.T, evs <-chan Event) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.Txn != nil || ev.Finish != nil {
				return ev
			}
		case <-timeout:
			t.Fatal("no event from the decoder within 10s")
		}
	}
}

func TestDecoderTwoPhaseAndPlain(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	ctx := capCtx(t, 60*time.Second)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text, g int GENERATED ALWAYS AS (k * 2) STORED)`)
	if err := Install(ctx, "a", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(p.local.DSN("app"), "a", nil)
	evs := runDecoder(t, d)

	p.local.Exec(t, `BEGIN; INSERT INTO kv (k, v) VALUES (1, 'one'), (2, NULL); UPDATE kv SET v = 'uno' WHERE k = 1; DELETE FROM kv WHERE k = 2; PREPARE TRANSACTION 'g1'`)
	ev := nextTxnEvent(t, evs)
	tx := ev.Txn
	if tx == nil || !tx.Prepared || tx.GID != "g1" || len(tx.Changes) != 4 {
		t.Fatalf("first event = %+v, want prepared g1 with 4 changes", ev)
	}
	if tx.EndLSN == 0 || ev.Pos != tx.EndLSN {
		t.Errorf("positions: end %s, event pos %s", tx.EndLSN, ev.Pos)
	}
	ins := tx.Changes[0]
	if ins.Kind != ChangeInsert || ins.Rel.Name != "kv" || len(ins.Rel.Columns) != 2 {
		t.Fatalf("insert = %+v (generated columns must not be published)", ins)
	}
	if !ins.Rel.Columns[0].Key || ins.Rel.Columns[1].Key {
		t.Errorf("key flags = %+v", ins.Rel.Columns)
	}
	if string(ins.New[0].Data) != "1" || string(ins.New[1].Data) != "one" {
		t.Errorf("insert values = %q %q", ins.New[0].Data, ins.New[1].Data)
	}
	if tx.Changes[1].New[1].Kind != ValueNull {
		t.Errorf("NULL decoded as %q", tx.Changes[1].New[1].Kind)
	}
	if u := tx.Changes[2]; u.Kind != ChangeUpdate || u.Old != nil || string(u.New[1].Data) != "uno" {
		t.Errorf("update = %+v", u)
	}
	if del := tx.Changes[3]; del.Kind != ChangeDelete || string(del.Old[0].Data) != "2" || del.OldFull {
		t.Errorf("delete = %+v", del)
	}

	p.local.Exec(t, `COMMIT PREPARED 'g1'`)
	ev = nextTxnEvent(t, evs)
	if ev.Finish == nil || ev.Finish.GID != "g1" || !ev.Finish.Committed || ev.Pos <= tx.EndLSN {
		t.Fatalf("after COMMIT PREPARED: %+v", ev)
	}
	p.local.Exec(t, `BEGIN; INSERT INTO kv (k) VALUES (9); PREPARE TRANSACTION 'g2'`)
	nextTxnEvent(t, evs)
	p.local.Exec(t, `ROLLBACK PREPARED 'g2'`)
	if ev = nextTxnEvent(t, evs); ev.Finish == nil || ev.Finish.Committed || ev.Finish.GID != "g2" {
		t.Fatalf("after ROLLBACK PREPARED: %+v", ev)
	}
	p.local.Exec(t, `UPDATE kv SET k = 10 WHERE k = 1`)
	ev = nextTxnEvent(t, evs)
	if ev.Txn == nil || ev.Txn.Prepared || ev.Txn.GID != "" || len(ev.Txn.Changes) != 1 {
		t.Fatalf("plain commit = %+v", ev)
	}
	if u := ev.Txn.Changes[0]; u.Old == nil || string(u.Old[0].Data) != "1" || string(u.New[0].Data) != "10" {
		t.Errorf("key-changing update: old %v new %v", u.Old, u.New)
	}

	// The slot's confirmed position follows Confirm.
	d.Confirm(ev.Pos)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := queryOne[string](t, p.ldb, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'tandem_a'`)
		if lsn, _ := pglogrepl.ParseLSN(got); lsn == ev.Pos {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("confirmed_flush_lsn = %s, want %s", got, ev.Pos)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestParseTwoPhase(t *testing.T) {
	t.Parallel()
	mk := func(typ byte, flags bool, nums []uint64, xid uint32, gid string) []byte {
		b := []byte{typ}
		if flags {
			b = append(b, 0)
		}
		for _, n := range nums {
			b = binary.BigEndian.AppendUint64(b, n)
		}
		b = binary.BigEndian.AppendUint32(b, xid)
		return append(append(b, gid...), 0)
	}
	cases := []struct {
		data         []byte
		lsn, end     pglogrepl.LSN
		xid          uint32
		gid          string
		wantErr      bool
		wantRollback bool
	}{
		{data: mk('b', false, []uint64{100, 200, 5}, 7, "g"), lsn: 100, end: 200, xid: 7, gid: "g"},
		{data: mk('P', true, []uint64{100, 200, 5}, 7, "tandem_a_1_7"), lsn: 100, end: 200, xid: 7, gid: "tandem_a_1_7"},
		{data: mk('K', true, []uint64{300, 400, 5}, 8, "x"), lsn: 300, end: 400, xid: 8, gid: "x"},
		{data: mk('r', true, []uint64{200, 500, 5, 6}, 9, "y"), lsn: 200, end: 500, xid: 9, gid: "y"},
		{data: mk('P', true, []uint64{1, 2, 3}, 7, "g")[:20], wantErr: true},
		{data: append(mk('K', true, []uint64{1, 2, 3}, 7, "g")[:31], 'z'), wantErr: true}, // gid unterminated
		{data: []byte{'Z', 0}, wantErr: true},
	}
	for i, c := range cases {
		m, err := parseTwoPhase(c.data)
		if (err != nil) != c.wantErr {
			t.Errorf("case %d: err = %v, want error %v", i, err, c.wantErr)
			continue
		}
		if err == nil && (m.LSN != c.lsn || m.EndLSN != c.end || m.XID != c.xid || m.GID != c.gid) {
			t.Errorf("case %d: got %+v", i, m)
		}
	}
	// The rollback message's time is the rollback time (the second timestamp).
	m, _ := parseTwoPhase(mk('r', true, []uint64{1, 2, 5_000_000, 6_000_000}, 1, "g"))
	if want := pgEpoch.Add(6 * time.Second); !m.Time.Equal(want) {
		t.Errorf("rollback time %v, want %v", m.Time, want)
	}
}

func FuzzParseTwoPhase(f *testing.F) {
	f.Add([]byte("P\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x07g\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseTwoPhase(b) // must not panic
	})
}

// TestParseEmptyInsert: the Insert of a row of no column is 7 bytes after its type, which
// pglogrepl alone refuses; other Inserts still go to pglogrepl.
func TestParseEmptyInsert(t *testing.T) {
	t.Parallel()
	m, err := parseMessage([]byte{'I', 0, 0, 0x40, 0x01, 'N', 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := m.(*pglogrepl.InsertMessage)
	if !ok || ins.RelationID != 0x4001 || ins.Tuple == nil || len(ins.Tuple.Columns) != 0 {
		t.Fatalf("parsed %#v", m)
	}
	m, err = parseMessage([]byte{'I', 0, 0, 0, 7, 'N', 0, 1, 'n'})
	if ins, ok := m.(*pglogrepl.InsertMessage); err != nil || !ok || ins.RelationID != 7 || len(ins.Tuple.Columns) != 1 {
		t.Fatalf("parsed %#v, %v", m, err)
	}
}

// TestParseMalformed: a truncated or malformed pgoutput message is an error, not a panic that
// ends the process (pglogrepl's decoders index without length checks), and a Truncate naming
// more relations than it holds, or none, is refused before pglogrepl allocates for its count.
func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{
		{},
		{'I', 0, 0, 0, 7, 'N', 0, 1, 't', 0, 0, 0, 9, 'x'},
		{'D', 0, 0, 0, 7},
		{'U', 0, 0, 0, 7, 'K', 0, 1, 'n'},
		{'R', 0, 0, 0, 7},
		{'T', 0xff, 0xff, 0xff, 0xff, 0},
		{'T', 0, 0, 0, 0, 0},
		{'T', 0, 0, 0, 2, 0, 0, 0, 0, 7},
	} {
		if m, err := parseMessage(b); err == nil {
			t.Errorf("parseMessage(%q) = %#v, want an error", b, m)
		}
	}
	m, err := parseMessage([]byte{'T', 0, 0, 0, 1, 0, 0, 0, 0, 7})
	if tr, ok := m.(*pglogrepl.TruncateMessage); err != nil || !ok || len(tr.RelationIDs) != 1 || tr.RelationIDs[0] != 7 {
		t.Errorf("a well-formed Truncate: %#v, %v", m, err)
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte{'I', 0, 0, 0, 7, 'N', 0, 1, 't', 0, 0, 0, 1, 'x'})
	f.Add([]byte{'T', 0, 0, 0, 1, 0, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseMessage(b) // must not panic
	})
}
