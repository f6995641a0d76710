package txshim

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// How queryCut ends the session of the next connection that sends a query.
const (
	cutNone      int32 = iota
	cutDrop            // both sockets closed: the connection lost
	cutTerminate       // pg_terminate_backend: the server's FATAL 57P01, then its close
	cutStall           // the query kept from the server: no answer until the client gives up
)

// queryCut is a TCP relay to a database (start-up without SSL, trust authentication) that, once
// armed, ends one session when its client sends a query (Query, Parse): the connection made,
// its query lost.
type queryCut struct {
	ln     net.Listener
	target string
	admin  *sql.DB // a direct connection, for pg_terminate_backend
	mode   atomic.Int32
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func startQueryCut(t *testing.T, c *pgtest.Cluster) *queryCut {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	q := &queryCut{ln: ln, target: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port())), admin: c.Open(t, c.Database()), conns: map[net.Conn]struct{}{}}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			q.wg.Add(1)
			go func() {
				defer q.wg.Done()
				q.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		q.mu.Lock()
		q.closed = true
		for conn := range q.conns {
			conn.Close()
		}
		q.mu.Unlock()
		q.wg.Wait()
	})
	return q
}

func (q *queryCut) track(conns ...net.Conn) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, conn := range conns {
		if q.closed {
			conn.Close()
		} else {
			q.conns[conn] = struct{}{}
		}
	}
	return !q.closed
}

// readMsg reads one typed message (type, length, body) whole.
func readMsg(r *bufio.Reader) ([]byte, error) {
	head := make([]byte, 5)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	msg := make([]byte, 1+int(binary.BigEndian.Uint32(head[1:])))
	copy(msg, head)
	_, err := io.ReadFull(r, msg[5:])
	return msg, err
}

func (q *queryCut) serve(client net.Conn) {
	server, err := net.Dial("tcp", q.target)
	if err != nil {
		client.Close()
		return
	}
	defer client.Close()
	defer server.Close()
	if !q.track(client, server) {
		return
	}
	// Server to client, noting the backend's pid (BackendKeyData, before ReadyForQuery).
	var pid atomic.Uint32
	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		defer client.Close()
		r := bufio.NewReader(server)
		for {
			msg, err := readMsg(r)
			if err != nil {
				return
			}
			if msg[0] == 'K' && len(msg) >= 9 {
				pid.Store(binary.BigEndian.Uint32(msg[5:9]))
			}
			if _, err := client.Write(msg); err != nil {
				return
			}
		}
	}()
	defer func() { <-serverDone }()
	r := bufio.NewReader(client)
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		return
	}
	startup := make([]byte, binary.BigEndian.Uint32(head))
	copy(startup, head)
	if _, err := io.ReadFull(r, startup[4:]); err != nil {
		return
	}
	if _, err := server.Write(startup); err != nil {
		return
	}
	for {
		msg, err := readMsg(r)
		if err != nil {
			server.Close()
			return
		}
		query := msg[0] == 'Q' || msg[0] == 'P' // not a Terminate (X) of a session closing
		if mode := q.mode.Load(); query && mode != cutNone && q.mode.CompareAndSwap(mode, cutNone) {
			switch mode {
			case cutDrop:
				client.Close()
				server.Close()
			case cutTerminate:
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				q.admin.ExecContext(ctx, `SELECT pg_terminate_backend($1, 5000)`, int(pid.Load()))
				cancel()
				<-serverDone // the server's FATAL reaches the client, then its close
			case cutStall:
				io.Copy(io.Discard, r) // until the client closes
			}
			return
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
	}
}

// TestFitSessionsQueryLost: the session cap's fitting (fitSessions) took any error of its query,
// once connected, for the local database's refusal, which asking again would not change, and
// never asked again: a connection lost there — the database restarting, its backend terminated
// (pg_terminate_backend), a query that ran out of its 5 s — left the cap at 256 for the life of
// the shim, and clients through it could take every connection of a database with
// max_connections = 20, the sidecar's own refused. Only an error the server gave for the query
// itself is a refusal; after the others, the next session start asks again (fitIfPending), as
// after a refused connection.
func TestFitSessionsQueryLost(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.WithSetting("max_connections", "20"))
	relay := startQueryCut(t, c)
	ctx := capCtx(t, 60*time.Second)
	for _, tc := range []struct {
		name string
		mode int32
	}{{"connection lost", cutDrop}, {"backend terminated", cutTerminate}, {"no answer", cutStall}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(config.TxShim{Listen: "127.0.0.1:0", LocalDSN: withHost(t, c.DSN(c.Database()), relay.ln.Addr().String()),
				CommitTimeout: 2 * time.Second}, Options{Site: "a", Logger: quietLogger(), StartupTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			s.fitPending.Store(true) // as Serve's start does
			relay.mode.Store(tc.mode)
			s.fitIfPending(ctx)
			if relay.mode.Load() != cutNone {
				t.Fatal("the fitting sent no query")
			}
			if !s.fitPending.Load() {
				t.Errorf("%s at the fitting's query: the cap (%d) is not to be fitted any more", tc.name, s.slots.limit())
			}
			s.fitIfPending(ctx) // a later session's start
			if n, want := s.slots.limit(), 20-3-ownConnections; n != want {
				t.Errorf("sessions capped at %d after the database answered, want %d (max_connections 20)", n, want)
			}
		})
	}
}
