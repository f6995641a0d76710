package gossip

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	s := NewFileStore(dir)
	r, err := s.Load()
	if err != nil || r != (TermRecord{}) {
		t.Fatalf("Load of a missing file = %+v, %v; want zero record, nil", r, err)
	}
	want := TermRecord{Term: 7, Master: "site2", PeerSynced: true}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(TermRecord{Term: 8, Master: "site1"}); err != nil {
		t.Fatal(err)
	}
	want = TermRecord{Term: 8, Master: "site1"}
	// A new store on the same directory (a restart) reads what was saved.
	got, err := NewFileStore(dir).Load()
	if err != nil || got != want {
		t.Fatalf("Load after Save = %+v, %v; want %+v", got, err, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != StateFile {
		t.Fatalf("data dir holds %v, want only %s (no temporary files left)", entries, StateFile)
	}
	b, _ := os.ReadFile(s.Path())
	if !strings.Contains(string(b), `"term":8`) {
		t.Fatalf("state file %s: %s", s.Path(), b)
	}
}

func TestFileStoreCorrupt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileStore(dir).Load(); err == nil || !strings.Contains(err.Error(), StateFile) {
		t.Fatalf("Load of a corrupt file: err %v, want one naming the file", err)
	}
}
