//go:build unix

package gossip

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestCheckerExecArgvSecret: a password written in the health command's own arguments, which
// check-config shows as "redacted", was in the failed check's error (logged) when the command
// wrote it out — under set -x, or printing what it runs: only $PGPASSWORD was masked. Each
// secret check-config hides is masked too.
func TestCheckerExecArgvSecret(t *testing.T) {
	c := NewChecker(config.Server{
		Health: config.HealthExec, HealthTimeout: 5 * time.Second,
		HealthCommand: []string{"sh", "-xc", "MYSQL_PWD=pw-s3cret-1 false || { : --token tok-s3cret-2 ; exit 1; }"},
	}, nil)
	err := c.checkExec(t.Context())
	if err == nil {
		t.Fatal("a health command that exits 1 passed")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "<redacted>") {
		t.Errorf("the failed check's error, which is logged: %v; want the command's secrets masked as <redacted>", err)
	}
}

// TestCheckerExecArgvSecretQuoted: a secret written in the health command's arguments is
// masked in the failed check's error as bash's set -x quotes it too (each quote in it
// closed, escaped and opened again), as $PGPASSWORD is.
func TestCheckerExecArgvSecretQuoted(t *testing.T) {
	c := NewChecker(config.Server{
		Health: config.HealthExec, HealthTimeout: 5 * time.Second,
		HealthCommand: []string{"bash", "-xc", `: --password "it's-s3cret-1"; exit 1`},
	}, nil)
	err := c.checkExec(t.Context())
	if err == nil {
		t.Fatal("a health command that exits 1 passed")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "<redacted>") {
		t.Errorf("the failed check's error, which is logged: %v; want the command's secrets masked as <redacted>", err)
	}
}
