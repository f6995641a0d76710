package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/txshim"
)

// resolveSettle is how old a prepared transaction must be for tandem resolve to settle it: the
// longest a commit may wait for the peer and a handover's margin. A variable for the tests,
// which would otherwise wait it out (38 s).
var resolveSettle = func(commitTimeout time.Duration) time.Duration {
	return txshim.CommitWaitMax(commitTimeout) + drainMargin
}

// cmdResolve lists and settles in-doubt transactions (DESIGN §5.4): one
// resolver pass, or an operator's decision for one gid.
func cmdResolve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("resolve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the site's TOML file")
	commit := fs.String("commit", "", "commit this in-doubt gid on every database where it is prepared")
	rollback := fs.String("rollback", "", "roll this in-doubt gid back on every database where it is prepared")
	acceptUnknown := fs.Bool("accept-unknown-outcome", false, "with -commit or -rollback: decide a gid prepared only on the other site's database although its own site's database cannot tell whether it committed (check that database first)")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if !argsAtMost("resolve", fs.Args(), 0, stderr) {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "usage: tandem resolve -config FILE [-commit GID | -rollback GID] [-accept-unknown-outcome]")
		return 2
	}
	// An empty gid (a shell variable left empty) is no gid: taken for "not given", it turned a
	// decision on one transaction into a whole resolver pass.
	if empty := emptyFlag(fs, "commit", "rollback"); empty != "" {
		fmt.Fprintf(stderr, "tandem resolve: -%s needs the gid of a transaction in doubt (tandem resolve lists them)\n", empty)
		return 2
	}
	cfg, err := shimConfig("resolve", []string{"-config", *path}, stderr)
	if err != nil {
		return usageExit(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// This process cannot ask the running tandem which gids its shim is committing: it leaves
	// alone those prepared within the longest a commit may wait for the peer, and the margin a
	// handover gives commits in flight beyond that (a window of commit_timeout alone rolled back
	// commits still waiting for a decoder that was behind: a spurious failure for the client).
	// Nor can it know a transaction's size, whose apply on the peer may take a second per MiB
	// beyond that: an older one whose apply is still at work there is left alone too.
	settle := resolveSettle(cfg.TxShim.CommitTimeout)
	r := txshim.NewResolver(txshim.ResolverConfig{Site: cfg.Site, LocalDSN: cfg.TxShim.LocalDSN, PeerDSN: cfg.TxShim.PeerDSN,
		Logger: slog.New(slog.NewTextHandler(stderr, nil)), Settle: settle})
	switch {
	case *commit != "" && *rollback != "":
		fmt.Fprintln(stderr, "tandem resolve: -commit and -rollback exclude each other")
		return 2
	case *acceptUnknown && *commit == "" && *rollback == "":
		fmt.Fprintln(stderr, "tandem resolve: -accept-unknown-outcome goes with -commit or -rollback")
		return 2
	case *commit != "" || *rollback != "":
		gid, yes := *commit, true
		if gid == "" {
			gid, yes = *rollback, false
		}
		if err := r.DecideWith(ctx, gid, yes, txshim.DecideOptions{AcceptUnknownOwnOutcome: *acceptUnknown}); err != nil {
			fmt.Fprintln(stderr, "tandem resolve:", printableLines(err.Error()))
			return 1
		}
		fmt.Fprintf(stdout, "%s: done\n", printable(gid))
		return 0
	}
	sides := []struct{ name, dsn string }{{"local", cfg.TxShim.LocalDSN}, {"peer", cfg.TxShim.PeerDSN}}
	// What was prepared before the pass: a transaction prepared during it is a commit in flight.
	// A database not read now is reported after the pass if it does not answer then either; if
	// it does, what it holds then is not known to be younger than the pass (missed), and counts
	// as unsettled (TestResolveLateDatabaseUnsettled).
	before := map[string]bool{}
	missed := map[string]bool{}
	for _, side := range sides {
		gids, err := preparedGIDs(ctx, side.dsn)
		if err != nil {
			missed[side.name] = true
		}
		for _, g := range gids {
			before[side.name+" "+g] = true
		}
	}
	// A pass that failed on some gids still settled others: its report says what it did.
	rep, err := r.ResolveOnce(ctx)
	for _, g := range rep.Committed {
		fmt.Fprintln(stdout, "committed:", printable(g))
	}
	for _, g := range rep.RolledBack {
		fmt.Fprintln(stdout, "rolled back:", printable(g))
	}
	unsettled := len(rep.InDoubt) > 0
	doubt := map[string]bool{}
	for _, d := range rep.InDoubt {
		fmt.Fprintf(stdout, "in doubt: %s (%s side): %s\n", printable(d.GID), d.Side, printable(d.Reason))
		doubt[d.GID] = true
	}
	if err != nil {
		fmt.Fprintln(stderr, "tandem resolve:", printableLines(err.Error()))
		return 1
	}
	// The pass says nothing of what it could not see or left alone: a database it did not reach,
	// and transactions prepared less than Settle ago. Both are unsettled: exit 0 only when
	// neither database still holds a Tandem transaction from before the pass that it did not name.
	for _, side := range sides {
		gids, err := preparedGIDs(ctx, side.dsn)
		if err != nil {
			fmt.Fprintf(stdout, "%s database not reached: whatever is prepared there is unsettled; run tandem resolve again once it answers (%v)\n", side.name, err)
			unsettled = true
			continue
		}
		for _, g := range gids {
			if missed[side.name] && !doubt[g] {
				fmt.Fprintf(stdout, "unsettled: %s (%s side): that database did not answer before the pass, so it may have been prepared before it and left alone; run tandem resolve again\n",
					printable(g), side.name)
				unsettled = true
				continue
			}
			if before[side.name+" "+g] && !doubt[g] {
				fmt.Fprintf(stdout, "left alone: %s (%s side): prepared less than %v ago, or still being applied on the peer's database: a running tandem may still be committing it; run tandem resolve again\n",
					printable(g), side.name, settle)
				unsettled = true
			}
		}
	}
	if unsettled {
		return 1
	}
	// Said, not left to the exit code: a pass with nothing to settle printed nothing at all.
	fmt.Fprintln(stdout, "settled: no Tandem transaction left in doubt on either database")
	return 0
}

// printable is s as tandem resolve prints a gid, or what names one: as it is, unless it holds
// a character that is not printable — any role may prepare a transaction under a gid of its
// choosing that starts with tandem_, with a newline (a line of its own making in the output)
// or a terminal's control sequence in it — then quoted as Go quotes (TestResolveGIDNotPrintable);
// and unless it is not UTF-8, as a gid in a SQL_ASCII database may be: an invalid byte ranges as
// utf8.RuneError, printable, and a lone 0x9b is a terminal's CSI (TestPrintableInvalidUTF8).
func printable(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// printableLines is printable line by line: an error of the pass joins one line per failure.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}

// preparedGIDs lists the Tandem transactions prepared in dsn's database.
func preparedGIDs(ctx context.Context, dsn string) ([]string, error) {
	db, err := txshim.OpenDB(dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rows, err := db.QueryContext(qctx, `SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND starts_with(gid, 'tandem_') ORDER BY gid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var gids []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		gids = append(gids, g)
	}
	return gids, rows.Err()
}

// shimConfig parses -config for the database commands and returns the site's
// configuration, which must have a [txshim] table. None of them needs a secret file of the
// running sidecar (gossip key, admin token, the shim's users file and TLS pair): those are
// left unread, so that an operator who may not read them can still run the command. The
// files its connection strings name are read: the commands connect with them.
func shimConfig(name string, args []string, stderr io.Writer) (*config.Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the site's TOML file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if !argsAtMost(name, fs.Args(), 0, stderr) {
		return nil, errUsage
	}
	if *path == "" {
		fmt.Fprintf(stderr, "usage: tandem %s -config FILE\n", name)
		return nil, errUsage
	}
	cfg, err := config.LoadSecrets(*path, config.KindSite, 0)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, errUsage
	}
	if cfg.TxShim == nil {
		fmt.Fprintf(stderr, "tandem %s: %s has no [txshim] table\n", name, *path)
		return nil, errUsage
	}
	return cfg, nil
}

// cmdInstall checks and sets up both databases (idempotent; DESIGN §5.2).
func cmdInstall(args []string, stdout, stderr io.Writer) int {
	cfg, err := shimConfig("install", args, stderr)
	if err != nil {
		return usageExit(err)
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

// cmdVerify compares the application tables of both databases. Exit as diff(1): 0 identical,
// 1 a difference (each named), 2 no comparison (a database unreachable, a bad config), so that
// a script does not take "could not look" for "they differ" — or the other way round.
func cmdVerify(args []string, stdout, stderr io.Writer) int {
	cfg, err := shimConfig("verify", args, stderr)
	if err != nil {
		return usageExit(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	diffs, err := txshim.Verify(ctx, cfg.TxShim.LocalDSN, cfg.TxShim.PeerDSN)
	if err != nil {
		fmt.Fprintln(stderr, "tandem verify: not compared:", err)
		return 2
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
