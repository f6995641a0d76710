package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/lib/pq" // also registers the "postgres" driver

	"github.com/tandem-ha/tandem/config"
)

// store holds the server's data: a key-value map, and accounts with a ledger
// of transfers between them.
type store interface {
	Get(ctx context.Context, k string) (v string, ok bool, err error)
	Set(ctx context.Context, k, v string) error
	Del(ctx context.Context, k string) error
	// Transfer moves amount from one account to another and records it in
	// the ledger under id, all or nothing. Accounts start at 0 when first
	// used and may go negative, so the balances always sum to zero. A
	// reused id is errDuplicate; a balance it would take beyond an int64
	// (PostgreSQL's bigint) is errOutOfRange, and nothing changes.
	Transfer(ctx context.Context, id, from, to string, amount int64) error
}

var (
	errDuplicate  = errors.New("duplicate transfer id")
	errOutOfRange = errors.New("balance out of range")
)

type memStore struct {
	mu       sync.Mutex
	m        map[string]string
	balances map[string]int64
	ledger   map[string]bool
}

func newMemStore() *memStore {
	return &memStore{m: make(map[string]string), balances: make(map[string]int64), ledger: make(map[string]bool)}
}

func (s *memStore) Transfer(_ context.Context, id, from, to string, amount int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ledger[id] {
		return errDuplicate
	}
	f, okF := add(s.balances[from], -amount)
	t, okT := add(s.balances[to], amount)
	if amount == math.MinInt64 || !okF || !okT {
		return errOutOfRange
	}
	s.ledger[id] = true
	s.balances[from], s.balances[to] = f, t
	return nil
}

// add is a+b, and false when that is beyond an int64.
func add(a, b int64) (int64, bool) {
	sum := a + b
	return sum, (sum >= a) == (b >= 0)
}

func (s *memStore) Get(_ context.Context, k string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memStore) Set(_ context.Context, k, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func (s *memStore) Del(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

// pgStore keeps the data in tables of a PostgreSQL database.
type pgStore struct {
	db *sql.DB
	// prepared: the tables are there (prepare). Until they are, every command looks again.
	prepared atomic.Bool
	// preparing holds the one prepare at a time; a command waits for it no longer than its own
	// context (a sync.Mutex held across a connection to a stalled database held every command
	// behind it past its timeout).
	preparing chan struct{}
}

// maxDBConns bounds the server's sessions on its database: commands beyond wait for one (within
// storeTimeout) rather than open a session each, past what the database, or Tandem's shim in
// front of it, serves (SQLSTATE 53300, which failed them).
const maxDBConns = 16

// openPGStore opens the database dsn names, without connecting: the database may be down (its
// sidecar's shim not up yet) when the server starts, as it may go away later, and the server
// answers ERR until it is back (prepare). Only a connection string no client can read is an
// error.
func openPGStore(dsn string) (*pgStore, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("-dsn: %w", config.RedactDSNError(dsn, err)) // not the password it may quote
	}
	// lib/pq bounds a connection's start-up by connect_timeout alone, not by the context: a
	// database that takes the connection and never answers (a stalled server) would hold the
	// command, and its session slot, for good.
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = storeTimeout
	}
	conn, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("-dsn: %w", config.RedactDSNError(dsn, err))
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxDBConns)
	return &pgStore{db: db, preparing: make(chan struct{}, 1)}, nil
}

// prepare creates the server's tables that are missing, once the database is reachable; each
// command calls it first, and it returns at once after it succeeded.
func (s *pgStore) prepare(ctx context.Context) error {
	if s.prepared.Load() {
		return nil
	}
	select {
	case s.preparing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for the tables to be looked for: %w", ctx.Err())
	}
	defer func() { <-s.preparing }()
	if s.prepared.Load() {
		return nil
	}
	// Behind Tandem the backup's database is read-only, where even CREATE
	// TABLE IF NOT EXISTS is refused: create a table only when it is missing.
	for _, t := range pgTables {
		var exists bool
		if err := s.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, t.name).Scan(&exists); err != nil {
			return fmt.Errorf("look for table %s: %w", t.name, err)
		}
		if exists {
			continue
		}
		if _, err := s.db.ExecContext(ctx, t.ddl); err != nil {
			return fmt.Errorf("create table %s: %w", t.name, err)
		}
	}
	s.prepared.Store(true)
	return nil
}

// pgTables are the server's tables (Tandem's tests create them on both sites' databases first).
var pgTables = []struct{ name, ddl string }{
	{"wire_kv", `CREATE TABLE IF NOT EXISTS wire_kv (k text PRIMARY KEY, v text NOT NULL, updated timestamptz NOT NULL DEFAULT now())`},
	{"wire_accounts", `CREATE TABLE IF NOT EXISTS wire_accounts (id text PRIMARY KEY, balance bigint NOT NULL)`},
	{"wire_ledger", `CREATE TABLE IF NOT EXISTS wire_ledger (id text PRIMARY KEY, src text NOT NULL, dst text NOT NULL,
		amount bigint NOT NULL, at timestamptz NOT NULL DEFAULT now())`},
}

// Transfer is one explicit transaction: the ledger row, then both accounts in
// id order (so concurrent transfers do not deadlock).
func (s *pgStore) Transfer(ctx context.Context, id, from, to string, amount int64) error {
	if err := s.prepare(ctx); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("transfer %q: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO wire_ledger (id, src, dst, amount) VALUES ($1, $2, $3, $4)`,
		id, from, to, amount); err != nil {
		if pe, ok := err.(*pq.Error); ok && pe.Code == "23505" {
			return errDuplicate
		}
		return fmt.Errorf("transfer %q: %w", id, err)
	}
	moves := [][2]any{{from, -amount}, {to, amount}}
	if to < from {
		moves[0], moves[1] = moves[1], moves[0]
	}
	for _, m := range moves {
		if _, err := tx.ExecContext(ctx, `INSERT INTO wire_accounts (id, balance) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET balance = wire_accounts.balance + excluded.balance`, m[0], m[1]); err != nil {
			if pe, ok := err.(*pq.Error); ok && pe.Code == "22003" { // numeric_value_out_of_range
				return errOutOfRange
			}
			return fmt.Errorf("transfer %q: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("transfer %q: commit: %w", id, err)
	}
	return nil
}

func (s *pgStore) Close() error { return s.db.Close() }

func (s *pgStore) Get(ctx context.Context, k string) (string, bool, error) {
	if err := s.prepare(ctx); err != nil {
		return "", false, err
	}
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT v FROM wire_kv WHERE k = $1`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get %q: %w", k, err)
	}
	return v, true, nil
}

func (s *pgStore) Set(ctx context.Context, k, v string) error {
	if err := s.prepare(ctx); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO wire_kv (k, v) VALUES ($1, $2)
		ON CONFLICT (k) DO UPDATE SET v = excluded.v, updated = now()`, k, v)
	if err != nil {
		return fmt.Errorf("set %q: %w", k, err)
	}
	return nil
}

func (s *pgStore) Del(ctx context.Context, k string) error {
	if err := s.prepare(ctx); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM wire_kv WHERE k = $1`, k); err != nil {
		return fmt.Errorf("del %q: %w", k, err)
	}
	return nil
}
