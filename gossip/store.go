package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
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
	Seq        uint64 `json:"seq,omitempty"`
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
	b, err := json.Marshal(fileRecord(r))
	if err != nil {
		return fmt.Errorf("save term record: %w", err)
	}
	if err := WriteStateFile(s.dir, StateFile, b); err != nil {
		return fmt.Errorf("save term record: %w", err)
	}
	return nil
}

// WriteStateFile replaces dir/name, a file of the data directory, with b (and a newline) so
// that a crash leaves the old content or the new: a temporary file, fsync, rename, fsync of
// the directory. dir is created when missing. A crash before the rename leaves the temporary
// file (name.DIGITS.tmp): RemoveStaleTemps removes it at the next start.
func WriteStateFile(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// SplitBrainFile keeps, in the data directory, the split brain this site was found in
// (DESIGN §3, see SplitBrain), so that a restart does not forget it.
const SplitBrainFile = "split-brain.json"

// splitBrainMark is SplitBrainFile's content: the term, and whether an operator cleared it
// (a cleared term is not reported again).
type splitBrainMark struct {
	Term    uint64 `json:"term"`
	Cleared bool   `json:"cleared,omitempty"`
}

func loadSplitBrain(dir string) (splitBrainMark, error) {
	var m splitBrainMark
	b, err := os.ReadFile(filepath.Join(dir, SplitBrainFile))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("load split-brain mark: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("load split-brain mark from %s: %w", filepath.Join(dir, SplitBrainFile), err)
	}
	return m, nil
}

func saveSplitBrain(dir string, m splitBrainMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := WriteStateFile(dir, SplitBrainFile, b); err != nil {
		return fmt.Errorf("save split-brain mark: %w", err)
	}
	return nil
}

// VoteFile keeps, in the data directory, this member's latest vote (with a witness): a voter
// votes once per term, and a restart must not let it vote again, for another site, in a term
// whose winner it no longer sees.
const VoteFile = "vote.json"

type voteMark struct {
	Term uint64 `json:"term"`
	For  string `json:"for"`
}

func loadVote(dir string) (voteMark, error) {
	var m voteMark
	b, err := os.ReadFile(filepath.Join(dir, VoteFile))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("load vote: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("load vote from %s: %w", filepath.Join(dir, VoteFile), err)
	}
	return m, nil
}

func saveVote(dir string, m voteMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := WriteStateFile(dir, VoteFile, b); err != nil {
		return fmt.Errorf("save vote: %w", err)
	}
	return nil
}

// staleTempAge is how old a temporary file of WriteStateFile must be for RemoveStaleTemps to
// take it for one a crash left: a write takes milliseconds, and a younger one may be another
// process's in progress (a second sidecar started on this data_dir by mistake), whose rename
// would fail without it.
const staleTempAge = time.Minute

// RemoveStaleTemps removes from dir the temporary files WriteStateFile left for the files
// named (name.DIGITS.tmp, as os.CreateTemp makes them) that are older than staleTempAge: a
// crash between their write and their rename left them, and nothing else removes them. It
// returns the names removed, and the first error met.
func RemoveStaleTemps(dir string, names ...string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var first error
	for _, e := range entries {
		if !e.Type().IsRegular() || !isStateTemp(e.Name(), names) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && first == nil {
				first = err
			}
			continue
		}
		if time.Since(info.ModTime()) < staleTempAge {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			if !errors.Is(err, fs.ErrNotExist) && first == nil {
				first = err
			}
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, first
}

// isStateTemp tells whether file is a temporary file of WriteStateFile's for one of names.
func isStateTemp(file string, names []string) bool {
	for _, n := range names {
		rest, ok := strings.CutPrefix(file, n+".")
		if !ok {
			continue
		}
		digits, ok := strings.CutSuffix(rest, ".tmp")
		if ok && digits != "" && strings.Trim(digits, "0123456789") == "" {
			return true
		}
	}
	return false
}

// TakenOverFile keeps, in the data directory, the term record this site held when it took its
// latest term (Node.TookOver), so that a restart does not forget what that term was taken over.
const TakenOverFile = "taken-over.json"

// takenOverMark is TakenOverFile's content: the term this site took, and the term of the
// record it held then; and so of the term it took before, for a promotion that failed before
// its term was saved (or a crash between the two saves) leaves this site's record in that one.
type takenOverMark struct {
	Term     uint64 `json:"term"`
	Over     uint64 `json:"over"`
	PrevTerm uint64 `json:"prev_term,omitempty"`
	PrevOver uint64 `json:"prev_over,omitempty"`
}

// next returns the mark after this site took term over over. saved says whether the term the
// mark holds was saved (the promotion that took it got its term record kept): one that was
// not (the store refused it, or the process died between the two saves) left this site's
// record in the term before it, the mark's previous one, which is kept then; taking its place,
// two such failures in a row made what the record held was taken over unknown, and the next
// promotion was refused for an older term of the other site's that it did take over
// (TestTookOverKeptAfterFailedPromotions).
func (m takenOverMark) next(term, over uint64, saved bool) takenOverMark {
	if m.Term == term || !saved {
		return takenOverMark{Term: term, Over: over, PrevTerm: m.PrevTerm, PrevOver: m.PrevOver}
	}
	return takenOverMark{Term: term, Over: over, PrevTerm: m.Term, PrevOver: m.Over}
}

// over returns what term was taken over, 0 when the mark does not know.
func (m takenOverMark) over(term uint64) uint64 {
	switch term {
	case 0:
		return 0
	case m.Term:
		return m.Over
	case m.PrevTerm:
		return m.PrevOver
	}
	return 0
}

func loadTakenOver(dir string) (takenOverMark, error) {
	var m takenOverMark
	b, err := os.ReadFile(filepath.Join(dir, TakenOverFile))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("load the term taken over: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("load the term taken over from %s: %w", filepath.Join(dir, TakenOverFile), err)
	}
	return m, nil
}

func saveTakenOver(dir string, m takenOverMark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := WriteStateFile(dir, TakenOverFile, b); err != nil {
		return fmt.Errorf("save the term taken over: %w", err)
	}
	return nil
}
