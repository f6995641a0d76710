package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tandem-ha/tandem/bench/internal/benchproc"
)

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
func startTandem(ctx context.Context, p *benchproc.Set, bin, server, serverName string, maxConns int) (addr string, c *benchproc.Child, err error) {
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = benchproc.FreePort(); err != nil {
			return "", nil, err
		}
	}
	gossipPort, proxyPort, adminPort := ports[0], ports[1], ports[2]
	dataDir := filepath.Join(p.Dir, "tandem-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", nil, err
	}
	cfg := filepath.Join(p.Dir, "tandem.toml")
	text := fmt.Sprintf(tandemConfig, dataDir, gossipPort, server, maxConns, proxyPort, adminPort)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		return "", nil, err
	}
	c, err = p.Start("tandem", bin, "run", "-config", cfg)
	if err != nil {
		return "", nil, err
	}
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	if err := benchproc.WaitAdmin(ctx, c, admin, "/master", 30*time.Second); err != nil {
		return "", c, err
	}
	addr = fmt.Sprintf("127.0.0.1:%d", proxyPort)
	return addr, c, benchproc.WaitServing(ctx, c, addr, serverName, 10*time.Second)
}

func startHAProxy(ctx context.Context, p *benchproc.Set, bin, server, serverName string, maxconn int) (addr string, c *benchproc.Child, err error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return "", nil, err
	}
	cfg := filepath.Join(p.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, maxconn, port, server), 0o600); err != nil {
		return "", nil, err
	}
	// -db: stay in the foreground as one process (no master/worker), so
	// the child's pid is the process whose memory we read.
	c, err = p.Start("haproxy", bin, "-db", "-f", cfg)
	if err != nil {
		return "", nil, err
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	return addr, c, benchproc.WaitServing(ctx, c, addr, serverName, 10*time.Second)
}
