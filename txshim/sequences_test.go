package txshim

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestSequences: concurrent inserts through a dual shim give the peer rows whose ids its own
// sequences never handed out. The Shipper copies sequence positions while the peer is synced;
// BumpSequences moves a lagging peer's sequences past every id in use (serial, identity, a
// shared nextval default, a descending sequence) and never moves one back; AlignSequences
// copies the master's positions.
func TestSequences(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t,
		`CREATE TABLE s_serial (id serial PRIMARY KEY, v int)`,
		`CREATE TABLE s_ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int)`,
		`CREATE SEQUENCE shared_seq`,
		`CREATE TABLE s_a (id bigint PRIMARY KEY DEFAULT nextval('shared_seq'), v int)`,
		`CREATE TABLE s_b (id bigint PRIMARY KEY DEFAULT nextval('shared_seq'), v int)`,
		`CREATE SEQUENCE down_seq INCREMENT -1 MAXVALUE -1 START -1`,
		`CREATE TABLE s_down (id int PRIMARY KEY DEFAULT nextval('down_seq'), v int)`)
	installPair(t, p)
	logger := quietLogger()
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 4,
		OpTimeout: 5 * time.Second, SequenceInterval: 150 * time.Millisecond, Logger: logger})
	sh.SetTerm(1)
	stopShipper := runShipper(t, sh)
	shim := startShim(t, p.local, Options{Peer: sh, Site: "a", Logger: logger}, ModeSolo, 1)
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	shim.SetMode(ModeDual, 1)

	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		conn := shim.connect(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for j := 0; j < each; j++ {
				tx, err := conn.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				for _, q := range []string{
					`INSERT INTO s_serial (v) VALUES ($1)`, `INSERT INTO s_ident (v) VALUES ($1)`, `INSERT INTO s_a (v) VALUES ($1)`,
					`INSERT INTO s_b (v) VALUES ($1)`, `INSERT INTO s_down (v) VALUES ($1)`,
				} {
					if _, err := tx.Exec(ctx, q, j); err != nil {
						tx.Rollback(ctx)
						errs <- err
						return
					}
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("insert through the shim: %v", err)
	}
	if st := shim.Stats(); st.CommitsDual != writers*each {
		t.Fatalf("dual commits %d, want %d", st.CommitsDual, writers*each)
	}
	waitFor(t, "the peer to have every row", func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM s_down`) == writers*each
	})
	requireSame(t, p)

	// The Shipper copies the positions while the peer is synced (ahead of them while the
	// sequences move: the lead).
	seqs := map[string]int64{"s_serial_id_seq": 1, "s_ident_id_seq": 1, "shared_seq": 1, "down_seq": -1}
	lastValue := `SELECT coalesce(last_value, 0) FROM pg_sequences WHERE sequencename = $1`
	waitFor(t, "the peer's sequences to follow", func() bool {
		for s, dir := range seqs {
			if d := queryOne[int64](t, p.pdb, lastValue, s) - queryOne[int64](t, p.ldb, lastValue, s); d*dir < 0 {
				return false
			}
		}
		return true
	})
	if sh.Stats().SeqSyncs == 0 {
		t.Error("no sequence syncs counted")
	}
	stopShipper()
	// A copy the Shipper sent before it stopped may still run on the peer (a cancelled query's
	// statement goes on until the backend notices): under load one landed after the setvals
	// below and moved the sequences on by its lead ("nextval(s_serial_id_seq) = 151, want it
	// right past 100").
	waitFor(t, "the Shipper's last statement on the peer to end", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
AND pid <> pg_backend_pid() AND state <> 'idle' AND backend_type = 'client backend'`) == 0
	})

	// A peer whose sequences lag (shipping off, or a stale copy): the next nextval would collide.
	for _, q := range []string{
		`SELECT setval('s_serial_id_seq', 1, false)`, `SELECT setval('shared_seq', 1, false)`,
		`SELECT setval('down_seq', -1, false)`, `ALTER TABLE s_ident ALTER COLUMN id RESTART WITH 100000`, // ahead: stays
	} {
		if _, err := p.pdb.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := 0; i < 2; i++ { // twice: the second changes nothing
		if err := BumpSequences(capCtx(t, 10*time.Second), p.peer.DSN("app")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		seq, maxQ string
		down      bool
	}{
		{"s_serial_id_seq", `SELECT max(id) FROM s_serial`, false},
		{"shared_seq", `SELECT greatest((SELECT max(id) FROM s_a), (SELECT max(id) FROM s_b))`, false},
		{"down_seq", `SELECT min(id) FROM s_down`, true},
	} {
		used := queryOne[int64](t, p.pdb, c.maxQ)
		next := queryOne[int64](t, p.pdb, fmt.Sprintf(`SELECT nextval('%s')`, c.seq))
		if (!c.down && next <= used) || (c.down && next >= used) {
			t.Errorf("after BumpSequences nextval(%s) = %d, but %d is in use", c.seq, next, used)
		}
		if !c.down && next != used+1 || c.down && next != used-1 {
			t.Errorf("nextval(%s) = %d, want it right past %d", c.seq, next, used)
		}
	}
	if next := queryOne[int64](t, p.pdb, `SELECT nextval('s_ident_id_seq')`); next != 100000 {
		t.Errorf("BumpSequences moved a sequence that was ahead: nextval = %d, want 100000", next)
	}

	// AlignSequences copies the master's positions, and leaves a peer sequence that is ahead.
	p.local.Exec(t, `SELECT nextval('shared_seq') FROM generate_series(1, 500)`)
	p.local.Exec(t, `SELECT nextval('down_seq') FROM generate_series(1, 50)`)
	if err := AlignSequences(capCtx(t, 10*time.Second), p.local.DSN("app"), p.peer.DSN("app")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"shared_seq", "down_seq"} {
		if lv, pv := queryOne[int64](t, p.ldb, lastValue, s), queryOne[int64](t, p.pdb, lastValue, s); lv != pv {
			t.Errorf("after AlignSequences %s is at %d locally, %d on the peer", s, lv, pv)
		}
	}
	if v := queryOne[int64](t, p.pdb, lastValue, "s_ident_id_seq"); v != 100000 {
		t.Errorf("AlignSequences moved the peer's s_ident_id_seq back to %d", v)
	}
}

// TestBumpSequencesPastBound: a value in use beyond its sequence's bound (written by hand)
// leaves the sequence at the bound, where nextval fails, instead of failing BumpSequences and
// with it the site's promotion.
func TestBumpSequencesPastBound(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `CREATE SEQUENCE small MAXVALUE 100`)
	c.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY DEFAULT nextval('small'))`)
	c.Exec(t, `CREATE SEQUENCE down INCREMENT -1 MINVALUE -50 MAXVALUE -1 START -1`)
	c.Exec(t, `CREATE TABLE d (id bigint PRIMARY KEY DEFAULT nextval('down'))`)
	c.Exec(t, `INSERT INTO t VALUES (DEFAULT), (500)`)
	c.Exec(t, `INSERT INTO d VALUES (DEFAULT), (-80)`)
	if err := BumpSequences(capCtx(t, 10*time.Second), c.DSN(c.Database())); err != nil {
		t.Fatalf("BumpSequences: %v", err)
	}
	db := c.Open(t, c.Database())
	for _, seq := range []string{"small", "down"} {
		var v int64
		if err := db.QueryRow(`SELECT nextval($1)`, seq).Scan(&v); err == nil {
			t.Errorf("nextval(%s) = %d after BumpSequences: want it at its bound", seq, v)
		}
	}
}

// TestBumpSequencesDomainsAndCycles: a column of a domain over an integer type takes its
// sequence's values like an integer column (it was left out, the sequence not moved past the
// rows there); a CYCLE sequence that has wrapped is left alone (moved to the highest value in
// use, it wrapped onto values in use at its next call).
func TestBumpSequencesDomainsAndCycles(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `CREATE DOMAIN id_t AS bigint`)
	c.Exec(t, `CREATE SEQUENCE dom_seq`)
	c.Exec(t, `CREATE TABLE dom (id id_t PRIMARY KEY DEFAULT nextval('dom_seq'))`)
	c.Exec(t, `INSERT INTO dom VALUES (1), (2), (3)`) // as an apply writes them: the sequence not moved
	c.Exec(t, `CREATE SEQUENCE cyc_seq MAXVALUE 10 CYCLE`)
	c.Exec(t, `CREATE TABLE cyc (id int PRIMARY KEY DEFAULT nextval('cyc_seq'))`)
	c.Exec(t, `INSERT INTO cyc SELECT g FROM generate_series(6, 10) g`)
	c.Exec(t, `INSERT INTO cyc SELECT g FROM generate_series(1, 3) g`)
	c.Exec(t, `SELECT setval('cyc_seq', 3)`) // wrapped: the next value, 4, is free
	if err := BumpSequences(capCtx(t, 10*time.Second), c.DSN(c.Database())); err != nil {
		t.Fatalf("BumpSequences: %v", err)
	}
	db := c.Open(t, c.Database())
	if next := queryOne[int64](t, db, `SELECT nextval('dom_seq')`); next != 4 {
		t.Errorf("nextval(dom_seq) = %d after BumpSequences, want 4: past the domain column's rows", next)
	}
	if next := queryOne[int64](t, db, `SELECT nextval('cyc_seq')`); next != 4 {
		t.Errorf("nextval(cyc_seq) = %d after BumpSequences, want 4: the wrapped sequence left alone", next)
	}
}

// TestBumpSequencesNestedDomain: a column of a domain over a domain over an integer type was
// left out — only one level of domain was looked through — so BumpSequences did not move its
// sequence past the rows there and a new master handed out their ids again.
func TestBumpSequencesNestedDomain(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `CREATE DOMAIN id_base AS bigint`)
	c.Exec(t, `CREATE DOMAIN id_t AS id_base CHECK (VALUE > 0)`)
	c.Exec(t, `CREATE SEQUENCE nest_seq`)
	c.Exec(t, `CREATE TABLE nest (id id_t PRIMARY KEY DEFAULT nextval('nest_seq'))`)
	c.Exec(t, `INSERT INTO nest VALUES (1), (2), (3)`) // as an apply writes them: the sequence not moved
	if err := BumpSequences(capCtx(t, 10*time.Second), c.DSN(c.Database())); err != nil {
		t.Fatalf("BumpSequences: %v", err)
	}
	db := c.Open(t, c.Database())
	if next := queryOne[int64](t, db, `SELECT nextval('nest_seq')`); next != 4 {
		t.Errorf("nextval(nest_seq) = %d after BumpSequences, want 4: past the nested domain column's rows", next)
	}
}

// TestBumpSequencesLocked: a table locked by another session (here LOCK TABLE in an open
// transaction) made BumpSequences — and the promotion that runs it, whose context has no
// deadline — wait for as long as the lock was held. It fails now after its lock_timeout,
// naming the sequence and the cause, and after its own bound when that comes first; once the
// lock is gone it bumps.
func TestBumpSequencesLocked(t *testing.T) {
	c := pgtest.Start(t)
	c.Exec(t, `CREATE TABLE locked_t (id serial PRIMARY KEY, v int)`)
	c.Exec(t, `INSERT INTO locked_t (id, v) SELECT g, g FROM generate_series(1, 1000) g`)
	db := c.Open(t, c.Database())
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`LOCK TABLE locked_t IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	bump := func(t *testing.T, within time.Duration) (error, time.Duration) {
		t.Helper()
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- BumpSequences(context.Background(), c.DSN(c.Database())) }()
		select {
		case err := <-done:
			return err, time.Since(start)
		case <-time.After(within):
			tx.Rollback() // lets the call end before the cluster stops
			<-done
			t.Fatalf("BumpSequences still waiting on the locked table after %v", within)
			return nil, 0
		}
	}

	// The lock timeout only has to fire: a second rather than the 5 s default (this test
	// does not run in parallel with others, which read the variable).
	oldLock, oldAll := bumpLockTimeout, bumpTimeout
	t.Cleanup(func() { bumpLockTimeout, bumpTimeout = oldLock, oldAll })
	bumpLockTimeout = time.Second
	err, took := bump(t, 30*time.Second)
	bumpLockTimeout = oldLock
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "locked by another session") || !strings.Contains(err.Error(), "locked_t_id_seq") {
		t.Fatalf("BumpSequences on a locked table: %v, want a lock_timeout error naming locked_t_id_seq", err)
	}

	// Its own bound, when that comes before the lock timeout.
	bumpLockTimeout, bumpTimeout = time.Minute, time.Second
	err, took = bump(t, 30*time.Second)
	bumpLockTimeout, bumpTimeout = oldLock, oldAll
	t.Logf("after %v: %v", took.Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "not done within 1s") {
		t.Fatalf("BumpSequences past its bound: %v, want an error saying it was not done within 1s", err)
	}

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err, _ := bump(t, 30*time.Second); err != nil {
		t.Fatalf("BumpSequences after the lock is gone: %v", err)
	}
	var next int64
	if err := db.QueryRow(`SELECT nextval('locked_t_id_seq')`).Scan(&next); err != nil || next <= 1000 {
		t.Fatalf("nextval after the bump = %d (%v), want past 1000", next, err)
	}
}

// TestBumpSequencesLateBound: a default that names its sequence as text — nextval('s'::text),
// or the old nextval(('s'::text)::regclass) — records no dependency on it, so BumpSequences
// did not know the column took values from the sequence and left it behind the rows there.
func TestBumpSequencesLateBound(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `CREATE SEQUENCE lb_seq`)
	c.Exec(t, `CREATE TABLE lb (id int PRIMARY KEY DEFAULT nextval('lb_seq'::text))`)
	c.Exec(t, `CREATE SCHEMA app`)
	c.Exec(t, `CREATE SEQUENCE app."Odd's"`)
	c.Exec(t, `CREATE TABLE lb_old (id bigint PRIMARY KEY DEFAULT nextval(('app."Odd''s"'::text)::regclass))`)
	// A generated column's expression refers to its table's columns: it cannot be printed
	// without its table, which the listing must not ask for (the listing failed, and with it
	// every promotion of a database that had one).
	c.Exec(t, `CREATE TABLE gen (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED)`)
	c.Exec(t, `INSERT INTO lb SELECT generate_series(1, 5)`) // as an apply writes them
	c.Exec(t, `INSERT INTO lb_old SELECT generate_series(1, 7)`)
	if err := BumpSequences(capCtx(t, 10*time.Second), c.DSN(c.Database())); err != nil {
		t.Fatalf("BumpSequences: %v", err)
	}
	db := c.Open(t, c.Database())
	if next := queryOne[int64](t, db, `SELECT nextval('lb_seq')`); next != 6 {
		t.Errorf("nextval(lb_seq) = %d after BumpSequences, want 6: past lb's rows", next)
	}
	if next := queryOne[int64](t, db, `SELECT nextval('app."Odd''s"')`); next != 8 {
		t.Errorf(`nextval(app."Odd's") = %d after BumpSequences, want 8: past lb_old's rows`, next)
	}
}

// TestSequenceLead: the Shipper's periodic copy sets each peer sequence ahead of the master's
// by twice its advance since the previous copy — a sequence the application calls itself is
// then not behind at an unplanned takeover, at a steady rate — except a CYCLE sequence, one
// moved back, and where the lead would pass the sequence's bound.
func TestSequenceLead(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t,
		`CREATE SEQUENCE up`,
		`CREATE SEQUENCE down INCREMENT -1 MAXVALUE -1 START -1`,
		`CREATE SEQUENCE cyc MAXVALUE 1000 CYCLE`,
		`CREATE SEQUENCE near MAXVALUE 115`,
		`CREATE SEQUENCE back`)
	calls := func(seq string, n int) {
		p.local.Exec(t, fmt.Sprintf(`SELECT nextval('%s') FROM generate_series(1, %d)`, seq, n))
	}
	for _, seq := range []string{"up", "down", "cyc", "near", "back"} {
		calls(seq, 100)
	}
	prev := map[string]int64{}
	if _, err := alignSequences(capCtx(t, 10*time.Second), p.ldb, p.pdb, prev); err != nil {
		t.Fatal(err)
	}
	peerAt := func(seq string) int64 {
		return queryOne[int64](t, p.pdb, `SELECT last_value FROM pg_sequences WHERE sequencename = $1`, seq)
	}
	// The first copy has no advance to go by.
	for seq, want := range map[string]int64{"up": 100, "down": -100, "cyc": 100, "near": 100, "back": 100} {
		if got := peerAt(seq); got != want {
			t.Errorf("first copy: peer %s at %d, want %d", seq, got, want)
		}
	}
	for _, seq := range []string{"up", "down", "cyc", "near"} {
		calls(seq, 10)
	}
	p.local.Exec(t, `SELECT setval('back', 50)`)
	if _, err := alignSequences(capCtx(t, 10*time.Second), p.ldb, p.pdb, prev); err != nil {
		t.Fatal(err)
	}
	for seq, want := range map[string]int64{
		"up": 130, "down": -130, // 110 and -110, and twice the advance of 10
		"cyc": 110, "near": 110, // no lead: a CYCLE sequence; 130 would pass MAXVALUE 115
		"back": 100, // moved back on the master: no lead, and the peer not moved back
	} {
		if got := peerAt(seq); got != want {
			t.Errorf("second copy: peer %s at %d, want %d", seq, got, want)
		}
	}
	if prev["public\x00up"] != 110 {
		t.Errorf("positions kept for the next copy: %v", prev)
	}
}

// TestSequenceCopyBackupQuiet: after a handover the old master's Shipper, now a backup's, still
// took its peer for synced and went on copying sequence positions — from the backup to the new
// master, with the lead. Each site then saw the other's lead as an advance of its own and
// passed it back, doubled: a few nextval calls on the new master sent the sequence up by a factor of
// about three a copy, to its bound, where the application's nextval fails. A backup's Shipper
// now copies nothing.
func TestSequenceCopyBackupQuiet(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SEQUENCE ids`)
	installPair(t, p)
	if err := Install(capCtx(t, 30*time.Second), "b", p.peer.DSN("app"), p.local.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	const every = 50 * time.Millisecond
	shipper := func(site, local, peer string, term uint64) *Shipper {
		sh := NewShipper(ShipperConfig{Site: site, LocalDSN: local, PeerDSN: peer, Conns: 1,
			OpTimeout: 5 * time.Second, SequenceInterval: every, Logger: quietLogger()})
		sh.SetTerm(term)
		runShipper(t, sh)
		if err := sh.CatchUp(capCtx(t, 30*time.Second), nil); err != nil {
			t.Fatal(err)
		}
		return sh
	}
	// Site a was master with its peer synced, then handed over to b.
	a := shipper("a", p.local.DSN("app"), p.peer.DSN("app"), 1)
	a.SetBackup(true)
	shipper("b", p.peer.DSN("app"), p.local.DSN("app"), 2)
	// The new master hands out ten ids, a moment later ten more; then nothing happens.
	p.peer.Exec(t, `SELECT nextval('ids') FROM generate_series(1, 10)`)
	time.Sleep(4 * every)
	p.peer.Exec(t, `SELECT nextval('ids') FROM generate_series(1, 10)`)
	time.Sleep(40 * every)
	onA := queryOne[int64](t, p.ldb, `SELECT last_value FROM pg_sequences WHERE sequencename = 'ids'`)
	onB := queryOne[int64](t, p.pdb, `SELECT last_value FROM pg_sequences WHERE sequencename = 'ids'`)
	t.Logf("after 20 nextval on the new master and 40 copy periods: ids at %d on the new master, %d on the backup", onB, onA)
	if onB > 20 || onA > 60 {
		t.Fatalf("ids ran away: %d on the new master, %d on the backup (20 handed out)", onB, onA)
	}
}

// TestAlignCycleWrapped: a CYCLE sequence that wrapped on the master is behind its copy on the
// peer, which the copy took for ahead and left: at a takeover the peer handed out the values
// up to the bound, then those the master handed out after it wrapped again. The peer's copy
// of a CYCLE sequence now takes the master's position as it is.
func TestAlignCycleWrapped(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SEQUENCE cyc MAXVALUE 100 CYCLE`)
	p.local.Exec(t, `SELECT nextval('cyc') FROM generate_series(1, 95)`)
	if _, err := alignSequences(capCtx(t, 10*time.Second), p.ldb, p.pdb, nil); err != nil {
		t.Fatal(err)
	}
	p.local.Exec(t, `SELECT nextval('cyc') FROM generate_series(1, 15)`) // 96..100, then 1..10
	if _, err := alignSequences(capCtx(t, 10*time.Second), p.ldb, p.pdb, nil); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for range 10 {
		got = append(got, queryOne[int64](t, p.pdb, `SELECT nextval('cyc')`))
	}
	t.Logf("the master wrapped and handed out 1 to 10; the peer hands out %v next", got)
	for _, v := range got {
		if v <= 10 {
			t.Fatalf("the peer hands out %v: %d was handed out on the master after it wrapped", got, v)
		}
	}
}

// TestAlignRestartedAhead: a peer sequence restarted ahead of the master's position (not called
// since: PostgreSQL shows it without a last_value) is left where it is; the copy set it back to
// the master's position, and its next values could collide with rows made after the restart.
func TestAlignRestartedAhead(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SEQUENCE ahead`, `CREATE SEQUENCE behind`, `CREATE SEQUENCE down INCREMENT -1 MAXVALUE -1 START -1`)
	p.local.Exec(t, `SELECT nextval('ahead'), nextval('behind'), nextval('down') FROM generate_series(1, 150)`)
	for _, q := range []string{`ALTER SEQUENCE ahead RESTART WITH 100000`, `ALTER SEQUENCE behind RESTART WITH 20`, `ALTER SEQUENCE down RESTART WITH -100000`} {
		if _, err := p.pdb.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := AlignSequences(capCtx(t, 10*time.Second), p.local.DSN("app"), p.peer.DSN("app")); err != nil {
		t.Fatal(err)
	}
	for seq, want := range map[string]int64{"ahead": 100000, "behind": 151, "down": -100000} {
		if next := queryOne[int64](t, p.pdb, fmt.Sprintf(`SELECT nextval('%s')`, seq)); next != want {
			t.Errorf("after AlignSequences the peer's %s hands out %d next, want %d", seq, next, want)
		}
	}
}

// TestBumpSequencesRowSecurity: the local DSN's user need not be a superuser, and row-level
// security applies to it on a table it owns with FORCE ROW LEVEL SECURITY (or one it does not
// own). BumpSequences read the highest value in use under its default row_security (on): the
// rows a policy hid from it were left out, the sequence not moved past them, and the new master
// handed out their ids again. It pins row_security = off (allRows): every row, or an error
// naming the policy.
func TestBumpSequencesRowSecurity(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `CREATE ROLE owner1 LOGIN`)
	c.Exec(t, `CREATE TABLE t (id serial PRIMARY KEY, tenant text)`)
	c.Exec(t, `INSERT INTO t (id, tenant) SELECT g, 't1' FROM generate_series(1, 10) g`) // as an apply writes them
	c.Exec(t, `ALTER TABLE t OWNER TO owner1`)
	c.Exec(t, `ALTER TABLE t ENABLE ROW LEVEL SECURITY`)
	c.Exec(t, `ALTER TABLE t FORCE ROW LEVEL SECURITY`)
	c.Exec(t, `CREATE POLICY own ON t USING (tenant = current_setting('app.tenant', true))`)
	dsn := strings.Replace(c.DSN(c.Database()), pgtest.Superuser+"@", "owner1@", 1)
	err := BumpSequences(capCtx(t, 10*time.Second), dsn)
	db := c.Open(t, c.Database())
	if next := queryOne[int64](t, db, `SELECT nextval('t_id_seq')`); next <= 10 && err == nil {
		t.Fatalf("nextval(t_id_seq) = %d after BumpSequences, which succeeded: a row holds it (hidden from owner1 by a policy)", next)
	}
	if err != nil && !strings.Contains(err.Error(), "row-level security") {
		t.Fatalf("BumpSequences: %v: want it to name row-level security", err)
	}
}
