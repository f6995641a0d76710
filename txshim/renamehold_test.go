package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// TestSchemaRenameHoldAfterSlotMadeAnew: a decoder holds the slot's reported position at the
// PREPARE of a schema rename until it is confirmed past the rename's finish (bd3d9ed), and the
// Shipper's next decoder takes that over. A slot made anew (resync of a lost slot) after the
// rename finished never streams that PREPARE nor its finish: the next decoder reported the
// old PREPARE's position for ever, below the new slot's, and the slot was never confirmed
// further — every WAL segment written since kept without bound.
func TestSchemaRenameHoldAfterSlotMadeAnew(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	ctx := capCtx(t, 60*time.Second)
	p.both(t, `CREATE SCHEMA s`, `CREATE TABLE s.t (id int PRIMARY KEY)`, `CREATE TABLE m (id int PRIMARY KEY)`)
	if err := Install(ctx, "a", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	d1 := NewDecoder(p.local.DSN("app"), "a", nil)
	ctx1, cancel1 := context.WithCancel(ctx)
	out1 := make(chan Event, 64)
	done1 := make(chan error, 1)
	go func() { done1 <- d1.Run(ctx1, out1) }()
	apply, err := p.ldb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer apply.Close()
	for _, q := range []string{
		`SELECT pg_replication_origin_create('tandem_b')`, `SELECT pg_replication_origin_session_setup('tandem_b')`,
		`BEGIN`, `INSERT INTO tandem.ddl (stmt) VALUES ('ALTER SCHEMA s RENAME TO s2')`, `ALTER SCHEMA s RENAME TO s2`,
		`PREPARE TRANSACTION 'g1'`,
	} {
		if _, err := apply.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	p.local.Exec(t, `INSERT INTO m VALUES (1)`)
	ev := nextTxnEvent(t, out1)
	d1.Confirm(ev.Pos)
	cancel1()
	<-done1

	// The rename finishes; the slot is made anew after (as a resync of a lost slot does, which
	// waits for no prepared transaction to be left).
	p.local.Exec(t, `COMMIT PREPARED 'g1'`)
	waitFor(t, "the slot to be free", func() bool {
		return !queryOne[bool](t, p.ldb, `SELECT active FROM pg_replication_slots WHERE slot_name = 'tandem_a'`)
	})
	p.local.Exec(t, `SELECT pg_drop_replication_slot('tandem_a')`)
	p.local.Exec(t, `SELECT pg_create_logical_replication_slot('tandem_a', 'pgoutput', false, true)`)

	d2 := NewDecoder(p.local.DSN("app"), "a", nil)
	d2.Confirm(d1.Confirmed())
	d2.inheritRenames(d1)
	ctx2, cancel2 := context.WithCancel(ctx)
	out2 := make(chan Event, 64)
	done2 := make(chan error, 1)
	go func() { done2 <- d2.Run(ctx2, out2) }()
	defer func() { cancel2(); <-done2 }()
	p.local.Exec(t, `INSERT INTO m VALUES (2)`)
	ev = nextTxnEvent(t, out2)
	d2.Confirm(ev.Pos)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, _ := pglogrepl.ParseLSN(queryOne[string](t, p.ldb, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'tandem_a'`))
		if got >= ev.Pos {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot confirmed at %s, want %s", got, ev.Pos)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
