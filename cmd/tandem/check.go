package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tandem-ha/tandem/config"
)

// cmdCheckConfig prints the resolved configuration (secrets redacted) or
// every error with its file and line.
func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	witness := fs.Bool("witness", false, "check the file as a witness configuration")
	if err := fs.Parse(args); err != nil {
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
	fmt.Fprint(stdout, cfg.Redacted())
	return 0
}
