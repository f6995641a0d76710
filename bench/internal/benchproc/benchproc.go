// Package benchproc starts, watches and stops the child processes of the
// benchmarks under bench/: builds of the module's binaries, the toy server,
// tandem and the baselines, each in its own process group, all ended on exit.
package benchproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Set owns every child process a benchmark starts; StopAll ends them.
type Set struct {
	Dir string // where each child's log goes

	mu       sync.Mutex
	children []*Child
}

// Child is one started process.
type Child struct {
	Name string
	cmd  *exec.Cmd
	log  string        // path of its combined stdout/stderr
	done chan struct{} // closed when the process has been reaped
	err  error         // from Wait; read after done
}

// Start runs argv in its own process group with output appended to
// Dir/name.log.
func (p *Set) Start(name string, argv ...string) (*Child, error) {
	logPath := filepath.Join(p.Dir, name+".log")
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group so we can end the child's whole group by its id;
	// Pdeathsig ends it even when the benchmark itself is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{Name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		out.Close()
		close(c.done)
	}()
	p.mu.Lock()
	p.children = append(p.children, c)
	p.mu.Unlock()
	return c, nil
}

// Pid is the child's process id (and its process group's).
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Signal sends sig to the child's process group.
func (c *Child) Signal(sig syscall.Signal) error { return syscall.Kill(-c.Pid(), sig) }

// Wait blocks until the child has been reaped or d has passed, and reports
// whether it has.
func (c *Child) Wait(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Exited reports whether the child has already gone, with its log tail.
func (c *Child) Exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited (%v); log tail:\n%s", c.Name, c.err, c.Tail())
	default:
		return nil
	}
}

// Tail is the end of the child's log, indented.
func (c *Child) Tail() string {
	b, _ := os.ReadFile(c.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// Stop ends the child's process group: SIGCONT (a stopped child cannot act
// on SIGTERM) and SIGTERM, then SIGKILL after a grace.
func (c *Child) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	c.Signal(syscall.SIGCONT)
	c.Signal(syscall.SIGTERM)
	if !c.Wait(3 * time.Second) {
		c.Signal(syscall.SIGKILL)
		<-c.done
	}
}

// StopAll stops every child started and not yet stopped by it.
func (p *Set) StopAll() {
	p.mu.Lock()
	children := p.children
	p.children = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range children {
		wg.Go(c.Stop)
	}
	wg.Wait()
}

// moduleRoot is the directory of the go.mod the benchmark is run within.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the tandem module (go env GOMOD: %q, %v); run from the repository or pass the binary paths", gomod, err)
	}
	return filepath.Dir(gomod), nil
}

// Build compiles pkg (e.g. ./cmd/tandem) of the module into dir/name.
func Build(ctx context.Context, dir, pkg, name string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, strings.TrimSpace(out.String()))
	}
	return bin, nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Ping opens a connection to addr, sends PING and returns the reply line.
func Ping(addr string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte("PING\n")); err != nil {
		return "", err
	}
	buf := make([]byte, 128)
	n := 0
	for !bytes.Contains(buf[:n], []byte("\n")) && n < len(buf) {
		m, err := conn.Read(buf[n:])
		n += m
		if err != nil {
			return string(buf[:n]), err
		}
	}
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	return line, nil
}

// WaitServing polls addr with PING until a PONG from the named server comes
// back, the child dies or the timeout passes.
func WaitServing(ctx context.Context, c *Child, addr, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if err := c.Exited(); err != nil {
			return err
		}
		reply, err := Ping(addr, 2*time.Second)
		if err == nil && reply == "PONG "+name {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected reply %q", reply)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not serving PING at %s after %v: %w; log tail:\n%s", c.Name, addr, timeout, last, c.Tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitAdmin polls tandem's admin API until GET path answers 200.
func WaitAdmin(ctx context.Context, c *Child, admin, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	last := errors.New("no answer yet")
	for {
		if err := c.Exited(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET http://%s%s: %v, still after %v; log tail of %s:\n%s", admin, path, last, timeout, c.Name, c.Tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
