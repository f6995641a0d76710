// Command tandem is the Tandem sidecar: it runs beside a server at each of two
// sites (or as a voting witness) and makes the pair behave as one system.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage: tandem <command> [flags]

commands:
  run -config FILE [-log-level LEVEL]
                            run the sidecar of one site (LEVEL: debug, info, warn or error)
  witness -config FILE [-log-level LEVEL]
                            run a witness: a gossip member that only votes
  check-config [-witness] FILE
                            print the resolved configuration, or every error (exit 1)
  status [-config FILE | -admin ADDR]
                            print this member's status (from its admin API)
  switchover [-config FILE | -admin ADDR] [SITE]
                            hand the master role over (to SITE, or to the best other site)
  promote -force [-config FILE | -admin ADDR]
                            let a site that started cold take control without seeing its peer
  promote -accept-loss TERM [-config FILE | -admin ADDR]
                            let a site take control though the lost master of TERM committed what it lacks
  clear-split-brain [-config FILE | -admin ADDR]
                            allow failback to a site again after its split brain was dealt with
  resync [-config FILE | -admin ADDR]
                            on the master: copy the application tables to the peer database
  install -config FILE      check and set up both databases for the txshim (idempotent)
  verify -config FILE       compare both databases' application tables (exit 1 on a difference,
                            2 when it could not compare)
  resolve -config FILE [-commit GID | -rollback GID] [-accept-unknown-outcome]
                            settle in-doubt transactions (exit 1 while some stay in doubt)
  help                      print this text

The admin commands (status, switchover, promote, clear-split-brain, resync) also take
-token-file FILE: the admin API's bearer token, when -config does not give it.
Flags go before the arguments. tandem COMMAND -h lists a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	return dispatch(args[0], args[1:], stdout, stderr)
}

func dispatch(cmd string, rest []string, stdout, stderr io.Writer) int {
	switch cmd {
	case "run":
		return cmdRun(rest, stderr, false)
	case "witness":
		return cmdRun(rest, stderr, true)
	case "check-config":
		return cmdCheckConfig(rest, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "switchover":
		return cmdSwitchover(rest, stdout, stderr)
	case "promote":
		return cmdPromote(rest, stdout, stderr)
	case "clear-split-brain":
		return cmdClearSplitBrain(rest, stdout, stderr)
	case "resync":
		return cmdResync(rest, stdout, stderr)
	case "install":
		return cmdInstall(rest, stdout, stderr)
	case "verify":
		return cmdVerify(rest, stdout, stderr)
	case "resolve":
		return cmdResolve(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tandem: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}
