package txshim

import (
	"context"
	"testing"
	"time"
)

// TestProcHoldLockCycle: a procedure running in solo mode waits for a row lock held by a
// transaction whose COMMIT arrives while catch-up asks for its hold. The hold waits for the
// procedure (it entered the gate for its whole run), the procedure waits for the transaction's
// lock, and the transaction's COMMIT waits at the gate for the hold: nothing moves until the
// hold's timeout (5 s in cmd/tandem), catch-up fails, and every write commit of the site
// stalled meanwhile.
func TestProcHoldLockCycle(t *testing.T) {
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `INSERT INTO acct VALUES (1, 0)`)
	c.Exec(t, `CREATE PROCEDURE bump() LANGUAGE plpgsql AS $$ BEGIN UPDATE acct SET bal = bal + 1 WHERE id = 1; COMMIT; END $$`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
	ctx := capCtx(t, 60*time.Second)

	b := s.connect(t)
	if _, err := b.Exec(ctx, "BEGIN; UPDATE acct SET bal = bal + 10 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	procDone := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, "CALL bump()")
		procDone <- err
	}()
	db := c.Open(t, c.Database())
	waitForLong(t, "the procedure waiting for the row lock", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL bump()' AND wait_event_type = 'Lock'`) == 1
	})
	type held struct {
		release func()
		err     error
		took    time.Duration
	}
	holdDone := make(chan held, 1)
	go func() {
		start := time.Now()
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second) // cmd/tandem's holdTimeout
		defer cancel()
		r, err := s.HoldCommits(hctx)
		holdDone <- held{r, err, time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond) // the hold is asked for
	commitDone := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, "COMMIT")
		commitDone <- err
	}()
	h := <-holdDone
	if h.err != nil {
		t.Errorf("catch-up's hold, asked while a procedure waited for a lock of a transaction about to commit: %v (after %v)", h.err, h.took.Round(time.Millisecond))
	} else {
		h.release()
	}
	if err := <-commitDone; err != nil {
		t.Fatal(err)
	}
	if err := <-procDone; err != nil {
		t.Fatal(err)
	}
}

// TestLongProcDoesNotStallWrites: a procedure that runs longer than catch-up's hold timeout
// (a batch job) makes each catch-up attempt fail, and stops every write commit of the site for
// the whole wait.
//
// A write stopped so is let through only once the hold gives up (its timeout): that the write
// returned while the hold still waited for the procedure tells it was not stopped, however
// slowly a loaded machine ran it, so the test runs beside others.
func TestLongProcDoesNotStallWrites(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `INSERT INTO acct VALUES (1, 0), (2, 0)`)
	c.Exec(t, `CREATE PROCEDURE batch() LANGUAGE plpgsql AS $$ BEGIN UPDATE acct SET bal = bal + 1 WHERE id = 1; COMMIT; PERFORM pg_sleep(8); END $$`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
	ctx := capCtx(t, 60*time.Second)
	procDone := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, "CALL batch()")
		procDone <- err
	}()
	db := c.Open(t, c.Database())
	waitForLong(t, "the procedure sleeping after its commit", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL batch()' AND wait_event = 'PgSleep'`) == 1
	})
	if _, slow, _, _ := s.gate.counts(); slow != 1 {
		t.Fatalf("the running procedure is not counted in the commit gate (slow = %d)", slow)
	}
	w := s.connect(t)
	holdErr := make(chan error, 1)
	go func() {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		r, err := s.HoldCommits(hctx)
		if err == nil {
			r()
		}
		holdErr <- err
	}()
	waitForLong(t, "the hold waiting for the procedure", 10*time.Second, s.gate.pausingNow)
	start := time.Now()
	if _, err := w.Exec(ctx, "UPDATE acct SET bal = bal + 1 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if !s.gate.pausingNow() {
		t.Errorf("an unrelated autocommit write returned after %v, once the hold stopped waiting for the running procedure: stopped while the hold waited", took.Round(time.Millisecond))
	}
	t.Logf("write: %v; hold: %v", took.Round(time.Millisecond), <-holdErr)
	<-procDone
}

// pausingNow reports whether a hold waits for procedures (pausing).
func (g *commitGate) pausingNow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pausing
}

func ownRefusalOf(sql string) string {
	got := ""
	for _, st := range splitStatements(sql) {
		if r := ownObjectRefusal(sql, st); r != "" {
			got = r
		}
	}
	return got
}

// TestOwnObjectTableNamedTandem: an application table (or alias) named tandem, its columns
// qualified by its name in DDL, was refused (42501) as if tandem.id were an object of schema
// tandem.
func TestOwnObjectTableNamedTandem(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		`CREATE VIEW v AS SELECT tandem.id FROM tandem`,
		`CREATE INDEX ON tandem ((tandem.id + 1))`,
		`ALTER TABLE tandem ADD CHECK (tandem.id > 0)`,
		`CREATE TABLE t2 AS SELECT tandem.id FROM tandem`,
		`CREATE VIEW v2 AS SELECT tandem.id FROM items tandem`,
		`INSERT INTO items (a, tandem) SELECT 1, tandem.x FROM tandem`,
		`UPDATE items SET v = tandem.v FROM tandem WHERE tandem.id = items.id`,
	} {
		if got := ownRefusalOf(sql); got != "" {
			t.Errorf("%s: refused: %s", sql, got)
		}
	}
}

// TestOwnObjectDDLReadingTandemRefused: DDL that names one of Tandem's objects is refused
// (42501) even where it only reads it (a status view, LIKE, CREATE TABLE AS, SELECT INTO, a
// default calling tandem.f()): the lexer does not tell the object a DDL form changes from those
// it reads, and an application object depending on Tandem's would stand in the way of their
// upgrade (README).
func TestOwnObjectDDLReadingTandemRefused(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		`CREATE VIEW tandem_status AS SELECT term, master FROM tandem.state`,
		`CREATE TABLE t3 (LIKE tandem.ddl)`,
		`CREATE TABLE snap AS SELECT * FROM tandem.decisions`,
		`SELECT * INTO snap FROM tandem.state`,
		`CREATE FUNCTION f() RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT term FROM tandem.state)`,
		`ALTER TABLE items ADD COLUMN t bigint DEFAULT tandem.f()`,
	} {
		if got := ownRefusalOf(sql); got == "" {
			t.Errorf("%s: not refused", sql)
		}
	}
}

// TestReadOnlyChainKeepsReadWrite: COMMIT AND CHAIN starts the next transaction with the
// characteristics of the one it ended. In a read-only mode the commit check now sets
// transaction_read_only on in the ending transaction, and the chained one inherits it: a
// transaction the client began READ WRITE chains into a READ ONLY one, whose writes fail
// (25006 from PostgreSQL) even once the site is master again. (A client cannot make a
// transaction read-write in a read-only mode, TestReadOnlyClientMadeReadWrite: this one began
// while the site was master.)
func TestReadOnlyChainKeepsReadWrite(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
	ctx := capCtx(t, 30*time.Second)
	conn := s.connect(t)
	pc := conn.PgConn()
	if _, err := pc.Exec(ctx, "BEGIN READ WRITE; SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	s.SetMode(ModeReadOnly, 1)
	if _, err := pc.Exec(ctx, "COMMIT AND CHAIN").ReadAll(); err != nil {
		t.Fatal(err)
	}
	var ro string
	if err := conn.QueryRow(ctx, "SHOW transaction_read_only").Scan(&ro); err != nil {
		t.Fatal(err)
	}
	if ro != "off" {
		t.Errorf("the transaction COMMIT AND CHAIN began after a READ WRITE one: transaction_read_only = %s, want off", ro)
	}
	s.SetMode(ModeDual, 2)
	if _, err := pc.Exec(ctx, "INSERT INTO acct VALUES (7, 1); COMMIT").ReadAll(); err != nil {
		t.Errorf("a write in the chained READ WRITE transaction once master: %v", err)
	}
}
