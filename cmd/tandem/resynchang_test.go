package main

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestResyncSilentMemberBounded: tandem resync waits as long as the copy takes (no timeout on
// its request), so asked of an admin address that accepts connections and never answers (a
// frozen member: its kernel still accepts; another program on that port) it waited for ever,
// where every other admin command gives up after cliTimeout with exit 1. It must first find
// that the member answers at all, within the other commands' bound.
func TestResyncSilentMemberBounded(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	defer func() { // lets a command still waiting go: its connection ends
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"resync", "-admin", ln.Addr().String()}, &stdout, &stderr) }()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), "tandem resync:") {
			t.Errorf("resync of a member that never answers: exit %d, stderr %q; want exit 1 saying it could not be reached", code, stderr.String())
		}
	case <-time.After(cliTimeout + 10*time.Second):
		t.Errorf("resync of a member that never answers still waits after %v; want exit 1 within cliTimeout (%v)", cliTimeout+10*time.Second, cliTimeout)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		<-done
	}
}
