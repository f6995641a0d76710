package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// TestApplyAfterSchemaRename: ALTER SCHEMA … RENAME TO … through the shim changes no table, so
// PostgreSQL invalidates none and pgoutput sends no new Relation message for the schema's
// tables: their changes after it still named the schema as it was. On the peer, where the
// statement renamed it too, that table no longer exists: the next write to it was refused
// (42P01) as a divergence. Quoted and U& names, in its own transaction, in one with writes
// before and after it; and with those transactions spilled (spill.go).
func TestApplyAfterSchemaRename(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) { t.Parallel(); schemaRenameSteps(t, nil) })
	t.Run("spilled", func(t *testing.T) {
		t.Parallel()
		schemaRenameSteps(t, func(c *ShipperConfig) { c.SpillBytes = 1 })
	})
}

func schemaRenameSteps(t *testing.T, cfg func(*ShipperConfig)) {
	p, sh, shim := startShipPair(t, cfg, Options{},
		`CREATE SCHEMA s`,
		`CREATE TABLE s.t (id int PRIMARY KEY, v text)`,
		`CREATE TABLE s.f (a int, v text)`,
		`CREATE SCHEMA "Odd ""S"""`,
		`CREATE TABLE "Odd ""S""".t (id int PRIMARY KEY)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, nil,
		`INSERT INTO s.t VALUES (1, 'a')`,
		`INSERT INTO s.f VALUES (1, 'a')`,
		`ALTER SCHEMA s RENAME TO s2`,
		`INSERT INTO s2.t VALUES (2, 'b')`,
		`UPDATE s2.t SET v = 'x'`,
		`UPDATE s2.f SET v = 'y'`,
		`BEGIN; INSERT INTO s2.t VALUES (3, 'c'); /* moved */ ALTER SCHEMA "s2" RENAME TO "S 3"; INSERT INTO "S 3".t VALUES (4, 'd'); DELETE FROM "S 3".f; COMMIT`,
		`UPDATE "S 3".t SET v = 'z'`,
		`INSERT INTO "Odd ""S""".t VALUES (1)`,
		`ALTER SCHEMA "Odd ""S""" RENAME TO U&"\00e9t\00e9"`,
		`INSERT INTO "été".t VALUES (2)`,
		`DELETE FROM "été".t WHERE id = 1`,
	)
}

// TestSchemaRename: the statements schemaRename takes for a schema's rename, and its names.
func TestSchemaRename(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stmt, from, to string
		ok             bool
	}{
		{`ALTER SCHEMA s RENAME TO s2`, "s", "s2", true},
		{`alter schema S rename to "S2";`, "s", "S2", true},
		{` -- c
ALTER /* x */ SCHEMA "a""b" RENAME TO U&"d!0061t!+000061" UESCAPE '!'`, `a"b`, "data", true},
		{`ALTER SCHEMA s OWNER TO r`, "", "", false},
		{`ALTER SCHEMA s RENAME TO s2; DROP TABLE x`, "", "", false},
		{`ALTER TABLE s RENAME TO s2`, "", "", false},
		{`ALTER SCHEMA s RENAME TO`, "", "", false},
	} {
		from, to, ok := schemaRename(tc.stmt)
		if from != tc.from || to != tc.to || ok != tc.ok {
			t.Errorf("schemaRename(%q) = %q, %q, %v; want %q, %q, %v", tc.stmt, from, to, ok, tc.from, tc.to, tc.ok)
		}
	}
}

// TestApplySchemaRenameConcurrent: a transaction that renames a schema holds no lock on its
// tables, so another session writes into them by the old name while the rename is prepared on
// the local database and not yet committed there (its apply on the peer still under way). That
// write reaches the peer before the rename is committed there, where only the old name finds
// the table: the decoder takes the new name for other transactions from the rename's COMMIT
// PREPARED on, not from its PREPARE.
func TestApplySchemaRenameConcurrent(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE SCHEMA s`,
		`CREATE TABLE s.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO s.t VALUES (1, 'a')`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	// A session on the peer holds row 1 for about a second (until the apply's watchdog ends
	// it): the rename's apply, which updates row 1 after it, is under way there meanwhile.
	blocker, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	for _, q := range []string{"BEGIN", "SELECT * FROM s.t WHERE id = 1 FOR UPDATE"} {
		if _, err := blocker.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	renamer, other := shim.connect(t), shim.connect(t)
	done := make(chan error, 1)
	go func() {
		_, err := renamer.Exec(ctx, `BEGIN; ALTER SCHEMA s RENAME TO s2; UPDATE s2.t SET v = 'b' WHERE id = 1; COMMIT`, pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	waitFor(t, "the rename prepared on the local database", func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) > 0
	})
	if _, err := other.Exec(ctx, `INSERT INTO s.t VALUES (2, 'c')`); err != nil {
		t.Fatalf("a write by the old name while the rename is prepared: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the rename: %v", err)
	}
	fidelityStep(t, p, sh, other, []string{"s2.t"}, `INSERT INTO s2.t VALUES (3, 'd')`, `UPDATE s2.t SET v = v || '!'`)
}

// TestSchemaRenameAcrossDecoders: a backup's decoder takes the peer's applied transactions
// (they carry a replication origin) for done at once, so the slot was confirmed past the
// PREPARE of an applied rename while its COMMIT PREPARED was still to come — for as long as it
// stays in doubt there, over a failover and its sidecar's restart. A decoder started meanwhile
// (the Shipper starts a new one for each stream; a new sidecar) never saw that PREPARE: a
// write by the old name in between (pgoutput sends its Relation message then) left the table
// named so after the COMMIT PREPARED, and the site's own writes to it, master now, were
// refused by the peer (42P01).
func TestSchemaRenameAcrossDecoders(t *testing.T) {
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
	var before string
	for _, q := range []string{
		`SELECT pg_replication_origin_create('tandem_b')`, `SELECT pg_replication_origin_session_setup('tandem_b')`,
		`BEGIN`, `INSERT INTO tandem.ddl (stmt) VALUES ('ALTER SCHEMA s RENAME TO s2')`, `ALTER SCHEMA s RENAME TO s2`,
	} {
		if _, err := apply.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := apply.QueryRowContext(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if _, err := apply.ExecContext(ctx, `PREPARE TRANSACTION 'g1'`); err != nil {
		t.Fatal(err)
	}
	p.local.Exec(t, `INSERT INTO m VALUES (1)`)
	ev := nextTxnEvent(t, out1)
	if ev.Txn == nil || len(ev.Txn.Changes) != 1 || ev.Txn.Changes[0].Rel.Name != "m" {
		t.Fatalf("first event = %+v, want the insert into m (the rename's skipped)", ev)
	}
	// All of it done, as the Shipper takes it.
	d1.Confirm(ev.Pos)
	prepared, _ := pglogrepl.ParseLSN(before)
	waitFor(t, "the decoder to report a position", func() bool {
		got := queryOne[string](t, p.ldb, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'tandem_a'`)
		lsn, _ := pglogrepl.ParseLSN(got)
		return lsn >= prepared
	})
	cancel1()
	<-done1

	p.local.Exec(t, `INSERT INTO s.t VALUES (1)`)
	p.local.Exec(t, `COMMIT PREPARED 'g1'`)
	p.local.Exec(t, `INSERT INTO s2.t VALUES (2)`)
	afterRename := func(d *Decoder) {
		t.Helper()
		out := make(chan Event, 64)
		dctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			// Again while the last stream's walsender still holds the slot (55006).
			for d.Run(dctx, out) != nil && dctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
			done <- nil
		}()
		defer func() { cancel(); <-done }()
		for {
			ev := nextTxnEvent(t, out)
			if ev.Txn == nil || ev.Txn.Changes[0].Rel.Name != "t" {
				continue
			}
			c := ev.Txn.Changes[0]
			if string(c.New[0].Data) == "2" {
				if got := c.Rel.QualifiedName(); got != `"s2"."t"` {
					t.Errorf("write after the rename committed named %s, want \"s2\".\"t\"", got)
				}
				return
			}
			if got := c.Rel.QualifiedName(); got != `"s"."t"` {
				t.Errorf("write by the old name before the rename committed named %s", got)
			}
		}
	}
	// The Shipper's next stream: a new decoder, confirmed where the last one was.
	d2 := NewDecoder(p.local.DSN("app"), "a", nil)
	d2.Confirm(ev.Pos)
	d2.inheritRenames(d1)
	t.Log("new decoder")
	afterRename(d2)
	t.Log("new sidecar")
	// A new sidecar's: from the slot's confirmed position, knowing nothing.
	afterRename(NewDecoder(p.local.DSN("app"), "a", nil))
}
