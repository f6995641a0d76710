package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/lib/pq" // also registers the "postgres" driver
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
	// reused id is errDuplicate.
	Transfer(ctx context.Context, id, from, to string, amount int64) error
}

var errDuplicate = errors.New("duplicate transfer id")

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
	s.ledger[id] = true
	s.balances[from] -= amount
	s.balances[to] += amount
	return nil
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

// pgStore keeps the data in table wire_kv of a PostgreSQL database.
type pgStore struct{ db *sql.DB }

// maxDBConns bounds the server's sessions on its database: commands beyond wait for one (within
// storeTimeout) rather than open a session each, past what the database, or Tandem's shim in
// front of it, serves (SQLSTATE 53300, which failed them).
const maxDBConns = 16

func openPGStore(ctx context.Context, dsn string) (*pgStore, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(maxDBConns)
	// Behind Tandem the backup's database is read-only, where even CREATE
	// TABLE IF NOT EXISTS is refused: create a table only when it is missing.
	for _, t := range pgTables {
		var exists bool
		if err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, t.name).Scan(&exists); err != nil {
			db.Close()
			return nil, fmt.Errorf("look for table %s: %w", t.name, err)
		}
		if exists {
			continue
		}
		if _, err := db.ExecContext(ctx, t.ddl); err != nil {
			db.Close()
			return nil, fmt.Errorf("create table %s: %w", t.name, err)
		}
	}
	return &pgStore{db: db}, nil
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
	_, err := s.db.ExecContext(ctx, `INSERT INTO wire_kv (k, v) VALUES ($1, $2)
		ON CONFLICT (k) DO UPDATE SET v = excluded.v, updated = now()`, k, v)
	if err != nil {
		return fmt.Errorf("set %q: %w", k, err)
	}
	return nil
}

func (s *pgStore) Del(ctx context.Context, k string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM wire_kv WHERE k = $1`, k); err != nil {
		return fmt.Errorf("del %q: %w", k, err)
	}
	return nil
}
