package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// session is one client connection speaking the toy server's line protocol.
type session struct {
	c  net.Conn
	br *bufio.Reader
}

func openSession(addr string) (*session, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &session{c: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

func (s *session) Close() error { return s.c.Close() }

// line reads one reply line and checks its first word.
func (s *session) line(want string) error {
	l, err := s.br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if !bytes.HasPrefix(l, []byte(want)) {
		return fmt.Errorf("reply %q, want %s…", l, want)
	}
	return nil
}

// runWorkers starts n workers under ctx and returns the first error.
func runWorkers(ctx context.Context, n int, work func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := work(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// throughput moves blocks of size block over conns connections for dur and
// returns MB/s (10^6 bytes). upload uses SINK, download SOURCE.
func throughput(ctx context.Context, addr string, conns int, dur time.Duration, block int, upload bool) (float64, error) {
	sessions := make([]*session, conns)
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.Close()
			}
		}
	}()
	for i := range sessions {
		s, err := openSession(addr)
		if err != nil {
			return 0, err
		}
		sessions[i] = s
	}
	var total int64
	var mu sync.Mutex
	start := time.Now()
	deadline := start.Add(dur)
	err := runWorkers(ctx, conns, func(ctx context.Context, i int) error {
		s := sessions[i]
		stop := context.AfterFunc(ctx, func() { s.c.SetDeadline(time.Now()) })
		defer stop()
		buf := make([]byte, 256<<10)
		var moved int64
		defer func() { mu.Lock(); total += moved; mu.Unlock() }()
		cmd := fmt.Appendf(nil, "SINK %d\n", block)
		if !upload {
			cmd = fmt.Appendf(nil, "SOURCE %d\n", block)
		}
		for time.Now().Before(deadline) {
			if _, err := s.c.Write(cmd); err != nil {
				return err
			}
			if upload {
				for left := block; left > 0; {
					n, err := s.c.Write(buf[:min(left, len(buf))])
					if err != nil {
						return err
					}
					left -= n
				}
				if err := s.line("OK"); err != nil {
					return err
				}
			} else {
				if err := s.line("DATA"); err != nil {
					return err
				}
				for left := block; left > 0; {
					n, err := s.br.Read(buf[:min(left, len(buf))])
					left -= n
					if err != nil {
						return err
					}
				}
			}
			moved += int64(block)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds() / 1e6, nil
}

// latencies times total PING round trips spread over conns connections,
// each after a short warm-up, and returns every sample and the wall time.
func latencies(ctx context.Context, addr string, conns, total int) ([]time.Duration, time.Duration, error) {
	per := max(total/conns, 1)
	samples := make([][]time.Duration, conns)
	var start time.Time
	ready := make(chan struct{})
	var once sync.Once
	var warm sync.WaitGroup
	warm.Add(conns)
	go func() { warm.Wait(); once.Do(func() { start = time.Now(); close(ready) }) }()
	err := runWorkers(ctx, conns, func(ctx context.Context, i int) error {
		s, err := openSession(addr)
		if err != nil {
			warm.Done()
			return err
		}
		defer s.Close()
		stop := context.AfterFunc(ctx, func() { s.c.SetDeadline(time.Now()) })
		defer stop()
		ping := []byte("PING\n")
		rt := func() error {
			if _, err := s.c.Write(ping); err != nil {
				return err
			}
			return s.line("PONG")
		}
		for range 500 {
			if err := rt(); err != nil {
				warm.Done()
				return err
			}
		}
		warm.Done()
		select {
		case <-ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		out := make([]time.Duration, 0, per)
		for range per {
			t0 := time.Now()
			if err := rt(); err != nil {
				return err
			}
			out = append(out, time.Since(t0))
		}
		samples[i] = out
		return nil
	})
	once.Do(func() { start = time.Now(); close(ready) })
	if err != nil {
		return nil, 0, err
	}
	wall := time.Since(start)
	return slices.Concat(samples...), wall, nil
}

// percentile of sorted samples, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// memStat is a process's memory as the kernel accounts it, in KiB.
type memStat struct {
	rss, pss int64
	fds      int
}

func readMem(pid int) (memStat, error) {
	var m memStat
	var err error
	if m.rss, err = procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:"); err != nil {
		return m, err
	}
	if m.pss, err = procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:"); err != nil {
		return m, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return m, err
	}
	m.fds = len(fds)
	return m, nil
}

// procField reads a "Key:   1234 kB" line from a /proc file.
func procField(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s line", path, key)
}

// idleResult is the proxy's memory before and after holding n idle connections.
type idleResult struct {
	n             int
	before, after memStat
}

func (r idleResult) kibPerConn() (rss, pss float64) {
	n := float64(r.n)
	return float64(r.after.rss-r.before.rss) / n, float64(r.after.pss-r.before.pss) / n
}

// idleMemory opens n connections through addr, sends one PING on each so the
// proxy has dialed the server and carried traffic, lets them sit idle for
// settle, and reads the proxy process's memory before and after.
func idleMemory(ctx context.Context, addr string, pid, n int, settle time.Duration) (idleResult, error) {
	res := idleResult{n: n}
	if err := sleep(ctx, settle); err != nil {
		return res, err
	}
	var err error
	if res.before, err = readMem(pid); err != nil {
		return res, err
	}
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	const dialers = 32
	err = runWorkers(ctx, dialers, func(ctx context.Context, w int) error {
		buf := make([]byte, 64)
		for i := w; i < n; i += dialers {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return fmt.Errorf("idle connection %d: %w", i, err)
			}
			conns[i] = c
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte("PING\n")); err != nil {
				return fmt.Errorf("idle connection %d: %w", i, err)
			}
			if _, err := io.ReadAtLeast(c, buf, len("PONG \n")); err != nil {
				return fmt.Errorf("idle connection %d: PING: %w", i, err)
			}
			c.SetDeadline(time.Time{})
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if err := sleep(ctx, settle); err != nil {
		return res, err
	}
	if res.after, err = readMem(pid); err != nil {
		return res, err
	}
	// Every connection is still there: a proxy that cut some would look cheaper than it is.
	err = runWorkers(ctx, dialers, func(ctx context.Context, w int) error {
		buf := make([]byte, 64)
		for i := w; i < n; i += dialers {
			c := conns[i]
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte("PING\n")); err != nil {
				return fmt.Errorf("idle connection %d gone after the reading: %w", i, err)
			}
			if _, err := io.ReadAtLeast(c, buf, len("PONG \n")); err != nil {
				return fmt.Errorf("idle connection %d gone after the reading: %w", i, err)
			}
		}
		return nil
	})
	return res, err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
