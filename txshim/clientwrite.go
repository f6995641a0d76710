package txshim

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// clientStall: how long a write to the client stays blocked before clientWriter first looks
// whether the client reads (connTaken); stallRecheck, how long it waits before it looks again
// and, the client having taken nothing, asks whether the session's backend has ended — and
// asks again twice as long after each time, up to stallRecheckMax (each question may take a
// connection of the shim's own to the local database).
const (
	clientStall     = 10 * time.Second
	stallRecheck    = clientStall / 2
	stallRecheckMax = time.Minute
)

// clientTakes: a client that took anything written to it (connTaken moved, or a chunk's
// write went through) less than clientTakes ago reads. The kernel frees room for a blocked
// writer only in large steps — a whole skb of a Unix socket, a window update of MSS size on
// loopback, up to a chunk — which a client reading a few KB/s takes longer than stallRecheck
// to read (TestSlowerReaderAfterBackendEnd).
const clientTakes = 4 * stallRecheck

// clientChunk is the most clientWriter hands the connection at once: a write's progress is
// seen between chunks.
const clientChunk = 64 << 10

// clientWriter is what a session writes to its client through (session.cw). A client that
// stops reading blocks the write, and the session's relay with it: nothing more is read from
// the backend, whose end (pg_terminate_backend, idle_session_timeout, a FATAL) the session
// would then see only at the client's — holding its slot (MaxSessions) and its memory for as
// long as the client keeps its connection open. PostgreSQL's own connection ends with its
// backend; the session's ends once a write to the client has been blocked for clientStall,
// the client has taken nothing of it between two looks (connTaken, stallRecheck apart at
// first) and the backend has ended (ended). A client that reads, however slowly, still gets
// what the backend said before its end, as the kernel would deliver a backend's last replies
// (TestSlowReaderAfterBackendEnd).
type clientWriter struct {
	conn net.Conn
	// stall is clientStall, or the tests' shorter one (Options.clientStall); stallRecheck and
	// clientTakes scale with it (times).
	stall time.Duration
	// ended and gone are set once the session has its backend (startSession): ended tells
	// whether the backend has ended, gone ends the session.
	ended func() bool
	gone  func()

	mu      sync.Mutex
	writing bool
	since   time.Time // when the chunk being written was handed to conn
	recheck time.Duration
	timer   *time.Timer
	// taken is connTaken's count at the last look at the chunk being written (looked): a
	// client whose count moved since reads, however slowly.
	taken  uint64
	looked bool
	moved  time.Time // when the client last took anything: connTaken moved, or a chunk went through
}

func (w *clientWriter) Write(p []byte) (int, error) {
	if w.gone == nil {
		return w.conn.Write(p) // in startup: its deadline bounds the write
	}
	n := 0
	for n < len(p) {
		w.mu.Lock()
		stall, recheck, _ := w.times()
		w.writing, w.since, w.recheck, w.looked = true, time.Now(), recheck, false
		if w.timer == nil {
			w.timer = time.AfterFunc(stall, w.stalled)
		} else {
			w.timer.Reset(stall)
		}
		w.mu.Unlock()
		k, err := w.conn.Write(p[n:min(len(p), n+clientChunk)])
		w.mu.Lock()
		w.writing = false
		w.timer.Stop()
		w.mu.Unlock()
		n += k
		if k > 0 {
			w.mu.Lock()
			w.moved = time.Now()
			w.mu.Unlock()
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// times returns clientStall, stallRecheck and clientTakes, or the tests' shorter ones.
func (w *clientWriter) times() (stall, recheck, takes time.Duration) {
	if w.stall <= 0 {
		return clientStall, stallRecheck, clientTakes
	}
	return w.stall, w.stall / 2, 2 * w.stall
}

// stalled runs when a write may have been blocked for clientStall.
func (w *clientWriter) stalled() {
	stall, _, takes := w.times()
	w.mu.Lock()
	if !w.writing {
		w.mu.Unlock()
		return
	}
	if left := stall - time.Since(w.since); left > 0 {
		w.timer.Reset(left) // a later chunk's write, not blocked that long yet
		w.mu.Unlock()
		return
	}
	since, last, looked, moved := w.since, w.taken, w.looked, w.moved
	w.mu.Unlock()
	// A client that reads slowly keeps the kernel's buffers full, and a chunk's write may wait
	// longer than clientStall for the room it needs: one that took anything since the last
	// look, or less than clientTakes ago, reads, and gets the rest of what the backend said,
	// ended or not. The first look at a chunk only counts.
	taken, known := connTaken(w.conn)
	now := time.Now()
	if known && looked && taken != last {
		moved = now
	}
	reads := known && (!looked || taken != last || now.Sub(moved) < takes)
	ended := !reads && w.ended() // not under mu: a write that goes on meanwhile must not wait for it
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.writing || w.since != since {
		return
	}
	w.taken, w.looked = taken, known
	if moved.After(w.moved) {
		w.moved = moved
	}
	if ended {
		w.gone()
		return
	}
	w.timer.Reset(w.recheck)
	if !reads {
		w.recheck = min(2*w.recheck, stallRecheckMax)
	}
}

// backendEnded tells whether the backend with process id pid, on connection c, has ended: c
// says so (connEnded: a Unix socket at once; a TCP connection only once what the backend sent
// before its end has been read, which a session blocked on its client does not do), or the
// local database, asked on a connection of the shim's own, no longer has the process. When
// the database cannot be asked (or another session's question is under way), the backend is
// taken to live on. The connection goes where c goes, whichever of local_dsn's hosts that is
// (as forwardCancel's request): another host would have no process of that id
// (TestStalledClientOtherHost).
func (s *Shim) backendEnded(ctx context.Context, c net.Conn, pid uint32) bool {
	if connEnded(c) {
		return true
	}
	// One question at a time: many clients that pause together must not take the local
	// database's last connections from the shim's own work.
	if !s.stallCheck.TryLock() {
		return false
	}
	defer s.stallCheck.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg := s.ownCfg.Copy()
	if to, dial := c.RemoteAddr(), cfg.DialFunc; to != nil && dial != nil {
		cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, to.Network(), to.String())
		}
	}
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		s.log.Debug("txshim: cannot ask the local database whether a stalled session's backend lives", "err", err)
		return false
	}
	defer conn.Close(context.WithoutCancel(cctx))
	// The function behind pg_stat_activity, which a database may keep from its users.
	rr := conn.ExecParams(cctx, "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_get_activity($1::pg_catalog.int4)",
		[][]byte{[]byte(strconv.FormatUint(uint64(pid), 10))}, nil, nil, nil).Read()
	if rr.Err != nil || len(rr.Rows) != 1 {
		s.log.Debug("txshim: cannot ask the local database whether a stalled session's backend lives", "err", rr.Err)
		return false
	}
	return string(rr.Rows[0][0]) == "0"
}
