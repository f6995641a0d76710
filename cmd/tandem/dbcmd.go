package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/txshim"
)

// shimConfig parses -config for the database commands and returns the site's
// configuration, which must have a [txshim] table.
func shimConfig(name string, args []string, stderr io.Writer) (*config.Config, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the site's TOML file")
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if *path == "" {
		fmt.Fprintf(stderr, "usage: tandem %s -config FILE\n", name)
		return nil, false
	}
	cfg, err := config.Load(*path, config.KindSite)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	if cfg.TxShim == nil {
		fmt.Fprintf(stderr, "tandem %s: %s has no [txshim] table\n", name, *path)
		return nil, false
	}
	return cfg, true
}

// cmdInstall checks and sets up both databases (idempotent; DESIGN §5.2).
func cmdInstall(args []string, stdout, stderr io.Writer) int {
	cfg, ok := shimConfig("install", args, stderr)
	if !ok {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if err := txshim.Install(ctx, cfg.Site, cfg.TxShim.LocalDSN, cfg.TxShim.PeerDSN, logger); err != nil {
		fmt.Fprintln(stderr, "tandem install:", err)
		return 1
	}
	fmt.Fprintf(stdout, "installed: %s and its peer are ready for site %s\n",
		config.RedactDSN(cfg.TxShim.LocalDSN), cfg.Site)
	return 0
}

// cmdVerify compares the application tables of both databases; exit 1 on a difference.
func cmdVerify(args []string, stdout, stderr io.Writer) int {
	cfg, ok := shimConfig("verify", args, stderr)
	if !ok {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	diffs, err := txshim.Verify(ctx, cfg.TxShim.LocalDSN, cfg.TxShim.PeerDSN)
	if err != nil {
		fmt.Fprintln(stderr, "tandem verify:", err)
		return 1
	}
	if len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintln(stdout, "differs:", d)
		}
		return 1
	}
	fmt.Fprintln(stdout, "identical: every application table matches")
	return 0
}
