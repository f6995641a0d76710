package main

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestParsePgbench(t *testing.T) {
	out := `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 10
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 86943
number of failed transactions: 3 (0.003%)
latency average = 1.840 ms
initial connection time = 21.532 ms
tps = 4347.512345 (without initial connection time)
`
	r, err := parsePgbench(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.tps != 4347.512345 || r.latencyMS != 1.84 || r.txns != 86943 || r.failed != 3 {
		t.Fatalf("got %+v", r)
	}
	if _, err := parsePgbench("pgbench: error: connection refused\n"); err == nil {
		t.Fatal("no error for output without a summary")
	}
}

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (postgres: a (b)) S 4000 4242 4242 0 -1 4194560 100 0 0 0 150 25 7 3 20 0 1 0 100 0 0"
	ppid, self, kids, ok := parseStat(line)
	if !ok || ppid != 4000 || self != 175*clockTick || kids != 10*clockTick {
		t.Fatalf("ppid %d self %v kids %v ok %v", ppid, self, kids, ok)
	}
	if _, _, _, ok := parseStat("4242 (short) S 1"); ok {
		t.Fatal("short line accepted")
	}
}

func TestProcessKind(t *testing.T) {
	for title, want := range map[string]string{
		"postgres: walsender postgres 127.0.0.1(40404) START_REPLICATION": "walsender",
		"postgres: walwriter ":                                        "walwriter",
		"postgres: postgres app 127.0.0.1(40000) idle":                "backend",
		"postgres: autovacuum worker app":                             "autovacuum worker",
		"/usr/lib/postgresql/15/bin/postgres":                         "other",
		"postgres: background writer ":                                "background writer",
		"postgres: postgres app 127.0.0.1(40000) PREPARE TRANSACTION": "backend",
	} {
		if got := processKind(title); got != want {
			t.Errorf("processKind(%q) = %q, want %q", title, got, want)
		}
	}
}

func TestBlockedIn(t *testing.T) {
	prof := `--- contention:
cycles/second=1000000000
3000000 10 @ 0x1 0x2 0x3
#	0x1	runtime.selectgo+0x10	/go/src/runtime/select.go:1
#	0x2	github.com/tandem-ha/tandem/txshim.(*Shipper).waitForPrepare+0x20	/x/ship.go:330
#	0x3	github.com/tandem-ha/tandem/txshim.(*Shipper).Prepare+0x30	/x/ship.go:279

2000000 5 @ 0x1 0x4
#	0x1	runtime.selectgo+0x10	/go/src/runtime/select.go:1
#	0x4	github.com/tandem-ha/tandem/txshim.(*session).wait+0x40	/x/session.go:540
`
	got, err := blockedIn(prof, []string{"waitForPrepare", "(*Shipper).Prepare", "(*session).wait", "selectgo", "absent"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{
		"waitForPrepare":     3 * time.Millisecond,
		"(*Shipper).Prepare": 3 * time.Millisecond,
		"(*session).wait":    2 * time.Millisecond,
		"selectgo":           5 * time.Millisecond,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	if got["absent"] != 0 {
		t.Errorf("absent: %v", got["absent"])
	}
	if _, err := blockedIn("nothing", nil); err == nil {
		t.Error("no error without header")
	}
}

// TestCountProxy relays a scripted frontend to a loopback server and checks both the bytes
// that arrive and the counts: four requests sent before any reply are one turn, a request
// after the reply another.
func TestCountProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var frontend []byte
	frontend, _ = (&pgproto3.SSLRequest{}).Encode(frontend)
	frontend, _ = (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "postgres", "database": "app"}}).Encode(frontend)
	frontend, _ = (&pgproto3.Query{String: "SELECT 1"}).Encode(frontend)
	for range 3 {
		frontend, _ = (&pgproto3.Parse{Query: "SELECT $1"}).Encode(frontend)
		frontend, _ = (&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}}).Encode(frontend)
		frontend, _ = (&pgproto3.Execute{}).Encode(frontend)
		frontend, _ = (&pgproto3.Sync{}).Encode(frontend)
	}
	second, _ := (&pgproto3.Sync{}).Encode(nil)

	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, int64(len(frontend))))
		c.Write([]byte("reply"))
		more, _ := io.ReadAll(io.LimitReader(c, int64(len(second))))
		c.Write([]byte("again"))
		got <- append(b, more...)
	}()

	p, err := newCountProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Odd-sized writes: message boundaries must not depend on the writes.
	for rest := frontend; len(rest) > 0; {
		n := min(7, len(rest))
		if _, err := c.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	reply := make([]byte, 5)
	if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "reply" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	if _, err := c.Write(second); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "again" {
		t.Fatalf("second reply %q, %v", reply, err)
	}
	if b, want := <-got, append(frontend, second...); !bytes.Equal(b, want) {
		t.Fatalf("server got %d bytes, want the %d sent unchanged", len(b), len(want))
	}
	if p.syncs.Load() != 4 || p.queries.Load() != 1 || p.requests() != 5 || p.turns.Load() != 2 || p.msgs.Load() != 14 || p.conns.Load() != 1 {
		t.Fatalf("syncs %d queries %d turns %d msgs %d conns %d", p.syncs.Load(), p.queries.Load(), p.turns.Load(), p.msgs.Load(), p.conns.Load())
	}
	c.Close()
	p.Close() // must return: every relay goroutine ends
}
