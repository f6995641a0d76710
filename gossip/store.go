package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// RecordStore keeps the term record a member holds across restarts
// (DESIGN §3). Implementations must make Save durable before returning.
type RecordStore interface {
	Load() (TermRecord, error)
	Save(TermRecord) error
}

// StateFile is the name of the file FileStore keeps in the data directory.
const StateFile = "state.json"

// FileStore keeps the term record in dir/state.json, replaced atomically
// (temporary file, fsync, rename, fsync of the directory).
type FileStore struct {
	dir string
	mu  sync.Mutex
}

// NewFileStore returns a store in dir; dir is created on the first Save.
func NewFileStore(dir string) *FileStore {
	return &FileStore{dir: dir}
}

// Path is the state file's path.
func (s *FileStore) Path() string { return filepath.Join(s.dir, StateFile) }

type fileRecord struct {
	Term       uint64 `json:"term"`
	Master     string `json:"master"`
	PeerSynced bool   `json:"peer_synced"`
}

// Load returns the stored record, or the zero record when there is none yet.
func (s *FileStore) Load() (TermRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return TermRecord{}, nil
	}
	if err != nil {
		return TermRecord{}, fmt.Errorf("load term record: %w", err)
	}
	var r fileRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return TermRecord{}, fmt.Errorf("load term record from %s (corrupt? remove it only if the cluster's term is known elsewhere): %w", s.Path(), err)
	}
	return TermRecord(r), nil
}

// Save replaces the stored record durably.
func (s *FileStore) Save(r TermRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("save term record: %w", err)
	}
	b, err := json.Marshal(fileRecord(r))
	if err != nil {
		return fmt.Errorf("save term record: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, StateFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("save term record: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save term record to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save term record: fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save term record: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.Path()); err != nil {
		return fmt.Errorf("save term record: %w", err)
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("save term record: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save term record: fsync %s: %w", s.dir, err)
	}
	return nil
}
