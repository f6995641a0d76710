package main

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

// procs owns every child process the benchmark starts; stopAll ends them.
type procs struct {
	dir string // temp dir for binaries, configs and logs

	mu       sync.Mutex
	children []*child
}

type child struct {
	name string
	cmd  *exec.Cmd
	log  string        // path of its combined stdout/stderr
	done chan struct{} // closed when the process has been reaped
	err  error         // from Wait; read after done
}

// start runs argv in its own process group with output to dir/name.log.
func (p *procs) start(name string, argv ...string) (*child, error) {
	logPath := filepath.Join(p.dir, name+".log")
	out, err := os.Create(logPath)
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
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
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

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the child has already gone, with its log tail.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited (%v); log tail:\n%s", c.name, c.err, c.tail())
	default:
		return nil
	}
}

func (c *child) tail() string {
	b, _ := os.ReadFile(c.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// stop ends the child's process group: SIGTERM, then SIGKILL after a grace.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	pgid := c.pid()
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.done
	}
}

func (p *procs) stopAll() {
	p.mu.Lock()
	children := p.children
	p.children = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range children {
		wg.Go(c.stop)
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

// build compiles pkg (e.g. ./cmd/tandem) of the module into dir.
func build(ctx context.Context, dir, pkg, name string) (string, error) {
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

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitServing polls addr with PING until a PONG from the named server comes
// back, the child dies or the timeout passes.
func waitServing(ctx context.Context, c *child, addr, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if err := c.exited(); err != nil {
			return err
		}
		reply, err := pingOnce(addr)
		if err == nil && reply == "PONG "+name {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected reply %q", reply)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not serving PING at %s after %v: %w; log tail:\n%s", c.name, addr, timeout, last, c.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func pingOnce(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
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

// waitMaster polls the admin API until GET /master answers 200.
func waitMaster(ctx context.Context, c *child, admin string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	last := errors.New("no answer yet")
	for {
		if err := c.exited(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/master", nil)
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
			return fmt.Errorf("tandem did not become master (GET http://%s/master: %v) within %v; log tail:\n%s", admin, last, timeout, c.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const tandemConfig = `site = "bench"
priority = 1
data_dir = %q
[gossip]
bind = "127.0.0.1:%d"
profile = "fast"
[server]
health = "tcp"
health_interval = "200ms"
[[server.endpoint]]
name = "operators"
address = %q
[proxy]
max_conns = %d
[[proxy.listener]]
endpoint = "operators"
listen = "127.0.0.1:%d"
[admin]
listen = "127.0.0.1:%d"
`

// haproxyConfig is a plain TCP forwarder: one frontend, one server, no
// health checks, no PROXY header (the tandem listener sends none either).
const haproxyConfig = `global
    maxconn %d
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen bench
    bind 127.0.0.1:%d
    server wire %s
`

// startTandem writes a single-site config that makes the site master of
// itself, starts `tandem run` and waits until it is master and forwards.
func startTandem(ctx context.Context, p *procs, bin, server, serverName string, maxConns int) (addr string, c *child, err error) {
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return "", nil, err
		}
	}
	gossipPort, proxyPort, adminPort := ports[0], ports[1], ports[2]
	dataDir := filepath.Join(p.dir, "tandem-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", nil, err
	}
	cfg := filepath.Join(p.dir, "tandem.toml")
	text := fmt.Sprintf(tandemConfig, dataDir, gossipPort, server, maxConns, proxyPort, adminPort)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return "", nil, err
	}
	c, err = p.start("tandem", bin, "run", "-config", cfg)
	if err != nil {
		return "", nil, err
	}
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	if err := waitMaster(ctx, c, admin, 30*time.Second); err != nil {
		return "", c, err
	}
	addr = fmt.Sprintf("127.0.0.1:%d", proxyPort)
	return addr, c, waitServing(ctx, c, addr, serverName, 10*time.Second)
}

func startHAProxy(ctx context.Context, p *procs, bin, server, serverName string, maxconn int) (addr string, c *child, err error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cfg := filepath.Join(p.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, maxconn, port, server), 0o600); err != nil {
		return "", nil, err
	}
	// -db: stay in the foreground as one process (no master/worker), so
	// the child's pid is the process whose memory we read.
	c, err = p.start("haproxy", bin, "-db", "-f", cfg)
	if err != nil {
		return "", nil, err
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	return addr, c, waitServing(ctx, c, addr, serverName, 10*time.Second)
}
