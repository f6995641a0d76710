package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
)

// cmdCheckConfig prints the resolved configuration (a file that loads again, secrets not shown)
// or every error with its file and line.
func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	witness := fs.Bool("witness", false, "check the file as a witness configuration")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if !argsAtMost("check-config", fs.Args(), 1, stderr) {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: tandem check-config [-witness] FILE")
		return 2
	}
	kind := config.KindSite
	if *witness {
		kind = config.KindWitness
	}
	cfg, err := config.Load(fs.Arg(0), kind)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// What tandem run checks beyond the file itself: a file check-config passes must not be one
	// run refuses.
	if msg, _ := nodeCheck(cfg); msg != "" {
		fmt.Fprintln(stderr, msg)
		return 1
	}
	fmt.Fprint(stdout, cfg.Redacted())
	return 0
}

// nodeCheck builds the gossip node tandem run makes of cfg, binding and saving nothing, and
// returns what gossip.New refuses (the metadata its endpoints make too large, fence_delay
// against the profile's timing), named as the file's errors are, or "". inFile says whether
// it comes from the file: tandem run exits 2 on it as on the file's other errors
// (TestRunMetaTooLargeExitsTwo). A state file of data_dir's that gossip.New reads (a vote, a
// split-brain mark) is not in the file, though named by data_dir's line.
func nodeCheck(cfg *config.Config) (msg string, inFile bool) {
	_, err := gossip.New(cfg, gossip.Options{Store: checkStore{}, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		return "", false
	}
	if errors.Is(err, gossip.ErrMetaTooLarge) { // the endpoints' names and addresses
		return cfg.ErrorAt("server.endpoint", err.Error()).Error(), true
	}
	for _, state := range []string{gossip.VoteFile, gossip.SplitBrainFile, gossip.TakenOverFile} {
		if strings.Contains(err.Error(), filepath.Join(cfg.DataDir, state)) {
			return cfg.ErrorAt("data_dir", err.Error()).Error(), false
		}
	}
	return fmt.Sprintf("%s: %v", cfg.File, err), true
}

// checkStore stands in for the term record's store while check-config builds a node it never
// runs: it reads nothing and keeps nothing.
type checkStore struct{}

func (checkStore) Load() (gossip.TermRecord, error) { return gossip.TermRecord{}, nil }
func (checkStore) Save(gossip.TermRecord) error     { return nil }
