//go:build linux

package proxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDrainEndRequestReadAsCopyStopsEndsEarly: an operator's next request that the copy of its
// direction read as the drain ended — woken by the bytes, it read them after endDrain set its
// deadlines, and the write to the server then failed on its own — reaches no server and is no
// longer queued (operatorMovedOn) nor, having come before the drain's end, new (sentSince): the
// copy says it dropped them, and the operator, past its reply, is reset at the server's first
// pause, not at drainEndBound.
func TestDrainEndRequestReadAsCopyStopsEndsEarly(t *testing.T) {
	got := make(chan string, 2)
	a := lineBackend(t, got, func(c net.Conn, _ string) error {
		_, err := io.WriteString(c, "done\n")
		return err
	})
	// The read that finds the next request queued is held until the drain has ended.
	reading, ended := make(chan struct{}, 1), make(chan struct{})
	var held atomic.Bool
	hook := func(fd uintptr) {
		var b [5]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != nil || string(b[:n]) != "next\n" || !held.CompareAndSwap(false, true) {
			return
		}
		reading <- struct{}{}
		<-ended
	}
	wokenReadHook.Store(&hook)
	t.Cleanup(func() { wokenReadHook.Store(nil) })
	s, c := proxiedToSite1(t, a.addr)
	release := sync.OnceFunc(func() { close(ended) })
	t.Cleanup(release) // before the proxy's, which waits for the held copy
	askDuringDrain(t, s, c)
	if l := c.line(t); l != "done" {
		t.Fatalf("the operator read %q, want the reply", l)
	}
	if l := <-got; l != "GET report\n" {
		t.Fatalf("the server got %q", l)
	}
	if _, err := io.WriteString(c, "next\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reading:
	case <-time.After(5 * time.Second):
		t.Fatal("the copy to the server did not wake for the next request in 5s")
	}
	s.SetMaster(Target{Term: 1}) // the drain ended, the request's bytes queued and about to be read
	start := time.Now()
	release()
	resetAtFirstPause(t, c, start, "an operator past its reply, its next request read as the copy stopped,")
	select {
	case l := <-got:
		t.Errorf("the old master's server got %q, sent after its drain ended", l)
	default:
	}
}
