package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	_ "github.com/lib/pq" // registers the "postgres" driver
)

// store holds the server's key-value data.
type store interface {
	Get(ctx context.Context, k string) (v string, ok bool, err error)
	Set(ctx context.Context, k, v string) error
	Del(ctx context.Context, k string) error
}

type memStore struct {
	mu sync.Mutex
	m  map[string]string
}

func newMemStore() *memStore { return &memStore{m: make(map[string]string)} }

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

func openPGStore(ctx context.Context, dsn string) (*pgStore, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// Behind Tandem the backup's database is read-only, where even CREATE
	// TABLE IF NOT EXISTS is refused: create the table only when it is missing.
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('wire_kv') IS NOT NULL`).Scan(&exists); err != nil {
		db.Close()
		return nil, fmt.Errorf("look for table wire_kv: %w", err)
	}
	const ddl = `CREATE TABLE IF NOT EXISTS wire_kv (k text PRIMARY KEY, v text NOT NULL, updated timestamptz NOT NULL DEFAULT now())`
	if exists {
		return &pgStore{db: db}, nil
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		db.Close()
		return nil, fmt.Errorf("create table wire_kv: %w", err)
	}
	return &pgStore{db: db}, nil
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
