package txshim

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestSlowerReaderAfterBackendEnd is TestSlowReaderAfterBackendEnd with a client on the shim's
// Unix socket that reads slower than the kernel frees room for a blocked writer between two of
// clientWriter's looks stallRecheck apart (a whole skb at once, up to a 64 KiB chunk): 24 KB/s
// with the tests' time scale (testStall: looks 1 s apart, clientTakes 4 s), as 4 KB/s with
// clientStall's. It still reads, and PostgreSQL gives it the whole row. (Over TCP on loopback
// a window update waits for an MSS of 64 KiB read, which at a quarter of this rate takes longer
// than clientTakes: not covered.)
func TestSlowerReaderAfterBackendEnd(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	sock := filepath.Join(t.TempDir(), ".s.PGSQL.6432")
	startShimDSN(t, c, c.DSN(c.Database()), Options{clientStall: testStall}, ModeSolo, 0, func(cfg *config.TxShim) { cfg.MaxMessage, cfg.Listen = 0, sock })
	const size = 4 << 20
	for _, to := range []struct{ name, network, addr string }{
		{"postgres", "tcp", fmt.Sprintf("127.0.0.1:%d", c.Port())},
		{"shimunix", "unix", sock},
	} {
		t.Run(to.name, func(t *testing.T) {
			t.Parallel()
			r, nc := dialRawNet(t, to.network, to.addr, c.Database(), 3*time.Minute)
			defer nc.Close()
			r.simple(fmt.Sprintf("SELECT repeat('x', %d)", size))
			readsSlowly(t, nc, size, 24<<10, 14*time.Second)
		})
	}
}
