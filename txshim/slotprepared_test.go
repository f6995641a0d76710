package txshim

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestBackupSlotLostWhilePrepared: a backup's slot is dropped while a transaction is prepared
// on its database (a dual commit its site left in doubt as master, as is likely around a role
// change). The slot holds nothing to ship, so it is to be made anew — but PostgreSQL's slot
// creation waits for every transaction in progress, the prepared one too, and the first try
// ran out of time: the backup then recorded that the peer needs resync, for good, although
// the slot it made anew once the transaction was settled had lost nothing. Its next master
// term's catch-up would refuse until an operator ran tandem resync.
func TestBackupSlotLostWhilePrepared(t *testing.T) {
	t.Parallel()
	p, bk, logs := backupLogged(t)
	prepareLocal(t, p.ldb, "tandem_a_1_77", `INSERT INTO kv VALUES (77, 'in doubt')`)
	settled := false
	defer func() {
		if !settled {
			p.local.Exec(t, `ROLLBACK PREPARED 'tandem_a_1_77'`)
		}
	}()
	dropSlot(t, p)
	// The slot's creation waits for the prepared transaction: two tries run out (each takes
	// slotTimeout, then the loop waits 5 s), the first recording, before the fix, that the peer
	// needs resync.
	waitForLong(t, "two failed tries to make the slot anew", 2*slotTimeout+5*time.Second+20*time.Second, func() bool {
		tries, _ := renewFailures(logs)
		return tries >= 2
	})
	info, err := ReadSlot(context.Background(), p.ldb, SlotName("a"))
	t.Logf("while prepared: slot %+v (%v), backup Err %v", info, err, bk.Err())
	p.local.Exec(t, `ROLLBACK PREPARED 'tandem_a_1_77'`) // the resolver settles it
	settled = true
	waitForLong(t, "the backup's slot made anew", 30*time.Second, func() bool {
		info, err := ReadSlot(context.Background(), p.ldb, SlotName("a"))
		return err == nil && info.Exists && !info.Lost()
	})
	if err := bk.Err(); err != nil {
		t.Fatalf("backup Err = %v, want nil: its slot held nothing to ship, and it was made anew", err)
	}
	if tries, errors := renewFailures(logs); tries < 2 || errors != 1 {
		t.Fatalf("%d failed tries to make the slot anew logged, %d at Error; want 2 or more, one at Error:\n%s", tries, errors, logs.String())
	}
}

// TestBackupSlotLostAgainSaidAtError: a backup's slot is lost while a transaction is prepared
// (its renewal fails, said at Error), is then made anew by someone else (tandem install, an
// operator) and streamed, and is lost again later the same way: that second loss's failed
// renewal is a new matter, to be said at Error too — not at Debug as a retry of the first.
func TestBackupSlotLostAgainSaidAtError(t *testing.T) {
	t.Parallel()
	p, _, logs := backupLogged(t)
	streaming := func() bool {
		var active bool
		err := p.ldb.QueryRow(`SELECT active FROM pg_replication_slots WHERE slot_name = $1`, SlotName("a")).Scan(&active)
		return err == nil && active
	}
	waitForLong(t, "the backup streaming its slot", 30*time.Second, streaming)
	for round, gid := range []string{"tandem_a_1_77", "tandem_a_1_78"} {
		prepareLocal(t, p.ldb, gid, fmt.Sprintf(`INSERT INTO kv VALUES (%d, 'in doubt')`, 77+round))
		dropSlot(t, p)
		waitForLong(t, "a failed renewal of the lost slot", slotTimeout+20*time.Second, func() bool {
			tries, _ := renewFailures(logs)
			return tries > round
		})
		// Settled, and the slot made anew by hand before the backup tries again (5 s on) —
		// once the failed try's creation, which PostgreSQL ends within a second of its client's
		// going (client_connection_check_interval), is over: it would make the slot itself
		// once the transaction is settled. Should the backup's own renewal win all the same,
		// the slot stands made anew, its counter reset the other way.
		time.Sleep(1500 * time.Millisecond)
		p.local.Exec(t, fmt.Sprintf(`ROLLBACK PREPARED '%s'`, gid))
		if _, err := p.ldb.Exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, true)`, SlotName("a")); err != nil && pgErrCode(err) != "42710" {
			t.Fatal(err)
		}
		waitForLong(t, "the backup streaming the slot made by hand", 30*time.Second, streaming)
	}
	if tries, errors := renewFailures(logs); errors != 2 {
		t.Fatalf("%d failed tries to make the slot anew logged, %d at Error; want one at Error for each of the 2 losses:\n%s", tries, errors, logs.String())
	}
}

// backupLogged is a capture pair with table kv, installed, and a running Shipper of site "a"
// as a backup (every transaction of its database a bypass) logging at Debug into logs.
func backupLogged(t *testing.T) (p *capPair, bk *Shipper, logs *logBuffer) {
	t.Helper()
	p = startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	logs = new(logBuffer)
	bk = NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 2 * time.Second, SequenceInterval: -1, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	bk.SetBackup(true)
	bk.SetBypassFrom(0)
	runShipper(t, bk)
	return p, bk, logs
}

// renewFailures counts the failed renewals of a lost slot in logs, and those said at Error.
func renewFailures(logs *logBuffer) (tries, errors int) {
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "cannot be made anew yet") {
			tries++
			if strings.Contains(line, "level=ERROR") {
				errors++
			}
		}
	}
	return tries, errors
}
