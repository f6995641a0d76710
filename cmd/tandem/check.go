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
	// What tandem run checks beyond the file itself (fence_delay against the profile's timing):
	// a file check-config passes must not be one run refuses. Nothing is bound or saved.
	if _, err := gossip.New(cfg, gossip.Options{Store: checkStore{}, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		if errors.Is(err, gossip.ErrMetaTooLarge) { // the endpoints' names and addresses
			fmt.Fprintln(stderr, cfg.ErrorAt("server.endpoint", err.Error()))
			return 1
		}
		// A state file of data_dir's that gossip.New reads, as tandem run does: not in the file,
		// but named by data_dir's line as the file's errors are.
		for _, state := range []string{gossip.VoteFile, gossip.SplitBrainFile, gossip.TakenOverFile} {
			if strings.Contains(err.Error(), filepath.Join(cfg.DataDir, state)) {
				fmt.Fprintln(stderr, cfg.ErrorAt("data_dir", err.Error()))
				return 1
			}
		}
		fmt.Fprintf(stderr, "%s: %v\n", cfg.File, err)
		return 1
	}
	fmt.Fprint(stdout, cfg.Redacted())
	return 0
}

// checkStore stands in for the term record's store while check-config builds a node it never
// runs: it reads nothing and keeps nothing.
type checkStore struct{}

func (checkStore) Load() (gossip.TermRecord, error) { return gossip.TermRecord{}, nil }
func (checkStore) Save(gossip.TermRecord) error     { return nil }
