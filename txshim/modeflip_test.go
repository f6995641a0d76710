package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestModeFlipsUnderLoad: sessions that connect, read and write while the mode changes under
// them every few milliseconds (read-only, dual, solo, as a site starting up or failing over
// goes through them) get an answer to every request: a result, or an SQL error (a write refused
// with 25006) — never a hang nor a lost connection. A session that got no reply is what an e2e
// server waiting on its first query through a backup's shim had looked like.
func TestModeFlipsUnderLoad(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)

	stop := make(chan struct{})
	var flips sync.WaitGroup
	flips.Add(1)
	go func() {
		defer flips.Done()
		modes := []Mode{ModeReadOnly, ModeDual, ModeSolo, ModeDual, ModeReadOnly}
		term := uint64(1)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+i%7) * time.Millisecond):
			}
			if m := modes[i%len(modes)]; m == ModeDual {
				term++
				s.SetMode(m, term)
			} else {
				s.SetMode(m, term)
			}
		}
	}()

	var ops, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	deadline := time.Now().Add(6 * time.Second)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			round := modeFlipRound
			if w%2 == 1 {
				round = modeFlipRoundPQ // lib/pq, as the example server uses
			}
			for i := 0; time.Now().Before(deadline); i++ {
				if err := round(s, w, i, &ops, &refused); err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	flips.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d requests answered, %d writes refused while read-only", ops.Load(), refused.Load())
	if ops.Load() < 100 {
		t.Errorf("only %d requests answered in 6 s", ops.Load())
	}
	// Settled in dual mode, a fresh session writes, and the write is a dual commit.
	s.SetMode(ModeDual, 1000)
	peer.take()
	conn := s.connect(t)
	if _, err := conn.Exec(context.Background(), "INSERT INTO acct VALUES (-1, 0)"); err != nil {
		t.Fatalf("write in dual mode after the flips: %v", err)
	}
	if calls := peer.take(); len(calls) != 2 || !strings.HasPrefix(calls[0], "prepare tandem_site1_1000_") || calls[1] != "commit "+strings.TrimPrefix(calls[0], "prepare ") {
		t.Fatalf("peer calls %v; want the prepare and commit of one transaction of term 1000", calls)
	}
}

// modeFlipRound is one session of TestModeFlipsUnderLoad: connect, then a read with an argument
// (extended protocol), a simple-protocol read, and an explicit write transaction. Each request
// must be answered within 10 s; an SQL error is an answer.
func modeFlipRound(s *testShim, w, i int, ops, refused *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	answered := answerer(s, ops, refused)
	var n int
	if err := answered("read", conn.QueryRow(ctx, "SELECT count(*) FROM acct WHERE id > $1", -5).Scan(&n)); err != nil {
		return err
	}
	if err := answered("simple read", conn.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&n)); err != nil {
		return err
	}
	id := w*1_000_000 + i
	_, err = conn.Exec(ctx, fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 0); COMMIT", id))
	if err := answered("write", err); err != nil {
		return err
	}
	// The session is usable after whatever the write met.
	return answered("read after the write", conn.QueryRow(ctx, "SELECT 1").Scan(&n))
}

// modeFlipRoundPQ is modeFlipRound through lib/pq, whose extended protocol differs from pgx's
// (Parse, Describe and Sync, then Bind, Execute and Sync).
func modeFlipRoundPQ(s *testShim, w, i int, ops, refused *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// lib/pq waits for a reply past its context (it sends a cancel and reads on): the socket's
	// own deadline bounds a request that gets none.
	connector, err := pq.NewConnector(s.dsn(pgtest.Superuser))
	if err != nil {
		return err
	}
	connector.Dialer(deadlineDialer{10 * time.Second})
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	answered := answerer(s, ops, refused)
	var n int
	if err := answered("read", conn.QueryRowContext(ctx, "SELECT count(*) FROM acct WHERE id > $1", -5).Scan(&n)); err != nil {
		return err
	}
	id := w*1_000_000 + i
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return answered("begin", err)
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO acct VALUES ($1, 0)", id)
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	if err := answered("write", err); err != nil {
		return err
	}
	return answered("read after the write", conn.QueryRowContext(ctx, "SELECT 1").Scan(&n))
}

// answerer returns the check of one request of TestModeFlipsUnderLoad: nil for a result or an
// SQL error (counted, and counted as refused for 25006), else the error, named by what, with
// the shim's sessions and goroutines at that moment.
func answerer(s *testShim, ops, refused *atomic.Int64) func(what string, err error) error {
	return func(what string, err error) error {
		var pe *pgconn.PgError
		var qe *pq.Error
		switch {
		case err == nil:
		case errors.As(err, &pe):
			if pe.Code == "25006" {
				refused.Add(1)
			}
		case errors.As(err, &qe):
			if qe.Code == "25006" {
				refused.Add(1)
			}
		default:
			// What the sessions wait for now, while the one that got no answer still is.
			return fmt.Errorf("%s: %w\nsessions:\n%s\nlocal database:\n%s\nshim goroutines:\n%s", what, err, s.sessionQueues(), pgtest.Activity(s.c.DSN(s.c.Database())), shimStacks())
		}
		ops.Add(1)
		return nil
	}
}

// deadlineDialer dials TCP connections that end all I/O after its duration.
type deadlineDialer struct{ d time.Duration }

func (d deadlineDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialTimeout(network, address, d.d)
}

func (d deadlineDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err == nil {
		err = c.SetDeadline(time.Now().Add(d.d))
	}
	return c, err
}
