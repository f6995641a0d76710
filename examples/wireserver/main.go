// Command wireserver is a toy WireServer: a line protocol over TCP that keeps
// a key-value map and a small bank (accounts and a ledger of transfers) in
// memory or in PostgreSQL, for Tandem's tests, demo and benchmarks.
//
// Commands, one per line, each answered with one line naming the server:
//
//	PING                          PONG <name>
//	WHO                           YOU <client address> <name>
//	SET <k> <v> | GET <k> | DEL <k>
//	XFER <id> <from> <to> <amount>  one transaction: ledger row and both balances
//	SINK <n> | SOURCE <n>         bulk bytes, for the proxy benchmark
//	QUIT
//
// Keys, values, transfer ids and accounts are UTF-8 text without NUL bytes, as PostgreSQL's
// text type holds them, keys, ids and accounts at most 1024 bytes (a PostgreSQL index entry's
// bound); another is answered with an ERR naming what is wrong, in either store.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wireserver:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:7000", "host:port to accept operators on")
	name := flag.String("name", "site1", "identity echoed in replies")
	dsn := flag.String("dsn", "", "PostgreSQL DSN; empty keeps the data in memory")
	proxy := flag.String("proxy", proxyOff, "PROXY protocol header: off | v1 | v2 | any (required unless off)")
	trusted := flag.String("proxy-trusted", defaultTrusted, "CIDRs or addresses, comma-separated, whose PROXY header is honoured; unless -proxy is off a connection from another is refused")
	level := flag.String("log-level", "info", "debug | info | warn | error")
	schema := flag.Bool("schema", false, "print the SQL that creates the server's tables (for both sites' databases) and exit")
	flag.Parse()
	if *schema {
		for _, t := range pgTables {
			fmt.Printf("%s;\n", t.ddl)
		}
		return nil
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level %q: %w", *level, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	switch *proxy {
	case proxyOff, proxyV1, proxyV2, proxyAny:
	default:
		return fmt.Errorf("-proxy %q: want off, v1, v2 or any", *proxy)
	}
	trustedPeers, err := parseTrusted(*trusted)
	if err != nil {
		return fmt.Errorf("-proxy-trusted: %w", err)
	}
	raiseNoFile(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var st store = newMemStore()
	if *dsn != "" {
		pg, err := openPGStore(*dsn)
		if err != nil {
			return err
		}
		defer pg.Close()
		st = pg
		// A database that is not reachable yet is no reason to stop: the commands that need it
		// are answered ERR until it is, as when it goes away later.
		pctx, cancel := context.WithTimeout(ctx, storeTimeout)
		if err := pg.prepare(pctx); err != nil {
			log.Warn("database not ready: commands that need it are answered ERR store failed until it is", "err", err)
		}
		cancel()
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("wireserver listening", "addr", ln.Addr().String(), "name", *name, "proxy", *proxy, "postgres", *dsn != "")
	err = serve(ctx, ln, options{name: *name, proxy: *proxy, trusted: trustedPeers, store: st, log: log})
	log.Info("wireserver stopped")
	return err
}

// raiseNoFile lifts the soft open-file limit to the hard one so the server
// can hold many thousands of idle operator connections.
func raiseNoFile(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("read RLIMIT_NOFILE", "err", err)
		return
	}
	if lim.Cur >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("raise RLIMIT_NOFILE", "err", err)
		return
	}
	log.Debug("raised RLIMIT_NOFILE", "limit", lim.Cur)
}
