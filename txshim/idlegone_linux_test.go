package txshim

import (
	"net"
	"testing"
	"time"
)

// TestIdleConnGone: the peek tells a connection with bytes or an end waiting from one with
// nothing, and returns at once while another read waits on the connection — as pgconn's
// background reader may after a large apply. Through the descriptor's read lock it waited for
// the peer's next bytes: the Shipper's next apply hung for as long.
func TestIdleConnGone(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	within := func(what string, c net.Conn) bool {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- idleConnGone(c) }()
		select {
		case g := <-done:
			return g
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: the peek has not returned after 2 s", what)
			return false
		}
	}

	c, s := pair()
	if within("nothing to read", c) {
		t.Error("a connection with nothing to read was taken for gone")
	}
	if _, err := s.Write([]byte("E")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if !within("a byte waiting", c) {
		t.Error("a connection with a byte waiting was taken for idle")
	}
	var b [1]byte
	if n, err := c.Read(b[:]); n != 1 || err != nil {
		t.Fatalf("the peeked byte was taken: read %d, %v", n, err)
	}

	c, s = pair()
	read := make(chan error, 1)
	go func() { _, err := c.Read(b[:]); read <- err }() // a read left waiting
	time.Sleep(50 * time.Millisecond)
	if within("another read waiting", c) {
		t.Error("a connection with nothing to read (another read waiting) was taken for gone")
	}
	s.Close()
	<-read
	if !within("the peer gone", c) {
		t.Error("a connection the peer closed was taken for idle")
	}
}
