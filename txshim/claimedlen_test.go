package txshim

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestClaimedLengthTakesNoMemory: a message's length word is only a claim: the shim took memory
// for the whole claimed length (up to max_message, 1 GiB by default) before a byte of the body
// came, so a few clients each sending a five-byte header took gigabytes of the sidecar's heap
// (and, as the freed buffers were reused and zeroed, of its resident memory). Memory now follows
// the bytes that come; a large message that does come whole is read as before.
func TestClaimedLengthTakesNoMemory(t *testing.T) {
	c := testCluster(t)
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{}, ModeSolo, 0, func(cfg *config.TxShim) { cfg.MaxMessage = 0 })
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	const claims = 4
	var rs []*rawSession
	for range claims {
		r := dialRaw(t, s)
		r.conn.Write([]byte{'Q', 0x3f, 0xff, 0xff, 0xf0, 'S', 'E', 'L'}) // 1 GiB - 16 claimed
		rs = append(rs, r)
	}
	time.Sleep(time.Second)
	runtime.ReadMemStats(&ms)
	if grew := (int64(ms.HeapAlloc) - int64(before)) >> 20; grew > 256 {
		t.Errorf("the shim's heap grew by %d MB for %d clients that each claimed a 1 GiB message and sent 3 bytes of it", grew, claims)
	}
	for _, r := range rs {
		r.conn.Close()
	}
	// A large message sent whole, slowly, arrives whole.
	r := dialRaw(t, s)
	q := "SELECT length('" + strings.Repeat("x", 5<<20) + "')"
	msg := append([]byte{'Q', 0, 0, 0, 0}, q...)
	msg = append(msg, 0)
	n := len(msg) - 1
	msg[1], msg[2], msg[3], msg[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	r.conn.SetDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < len(msg); i += 700 << 10 {
		if _, err := r.conn.Write(msg[i:min(i+700<<10, len(msg))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, err := r.until('Z'); err != nil || got != "TDCZ" {
		t.Fatalf("a 5 MB query: %q %v", got, err)
	}
	if got := r.query(fmt.Sprintf("SELECT %d", 1)); got != "TDCZ" {
		t.Fatalf("after it: %q", got)
	}
}
