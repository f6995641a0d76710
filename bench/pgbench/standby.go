package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// standby is a physical streaming standby of a pgtest cluster, made with pg_basebackup -R.
// pgtest cannot start a cluster from an existing data directory, so the benchmark runs this
// one itself: same binaries, same OS user (postgres when running as root), own process group.
type standby struct {
	dir     string // holds data/, the unix socket and postgres.log
	port    int
	primary int // the primary's port
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startStandby copies primary with pg_basebackup -R and starts the copy as a hot standby that
// streams from it. The caller must close it.
func startStandby(ctx context.Context, primary *pgtest.Cluster) (_ *standby, err error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgbench-standby-")
	if err != nil {
		return nil, err
	}
	sb := &standby{dir: dir, primary: primary.Port()}
	defer func() {
		if err != nil {
			sb.close()
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("chown %s to postgres: %w", dir, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	// -R writes standby.signal and primary_conninfo; -X stream copies the WAL made meanwhile.
	bb := exec.CommandContext(ctx, filepath.Join(bin, "pg_basebackup"),
		"-d", primary.DSN("postgres"),
		"-D", filepath.Join(dir, "data"), "-R", "-X", "stream", "-c", "fast", "--no-sync")
	bb.Dir = dir
	bb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := bb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pg_basebackup from port %d: %w\n%s", primary.Port(), err, out)
	}
	for attempt := 0; ; attempt++ {
		if sb.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = sb.start(bin, cred); err == nil {
			return sb, nil
		}
		if attempt == 2 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// start runs postgres on the copied data directory. The copied pgtest.conf names the
// primary's port and socket directory; command-line settings take precedence over it.
func (sb *standby) start(bin string, cred *syscall.Credential) error {
	logf, err := os.OpenFile(filepath.Join(sb.dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(sb.dir, "data"),
		"-c", "port="+strconv.Itoa(sb.port), "-c", "unix_socket_directories="+sb.dir,
		// The primary knows its synchronous standby by application_name (see makeSynchronous).
		"-c", fmt.Sprintf("primary_conninfo=host=127.0.0.1 port=%d user=%s application_name=standby1", sb.primary, pgtest.Superuser))
	cmd.Dir = sb.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start standby postgres: %w", err)
	}
	sb.cmd, sb.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(sb.exited)
	}()
	db, err := sql.Open("postgres", fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", pgtest.Superuser, sb.port))
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err = db.Ping(); err == nil {
			return nil
		}
		select {
		case <-sb.exited:
			sb.cmd = nil
			return fmt.Errorf("standby postgres exited during start-up on port %d:\n%s", sb.port, sb.logTail())
		default:
		}
		if time.Now().After(deadline) {
			sb.stop()
			return fmt.Errorf("standby on port %d not ready: %w\n%s", sb.port, err, sb.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the standby down (fast shutdown; SIGKILL of its process group after 15 s).
func (sb *standby) stop() {
	if sb.cmd == nil {
		return
	}
	_ = sb.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-sb.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-sb.cmd.Process.Pid, syscall.SIGKILL)
		<-sb.exited
	}
	sb.cmd = nil
}

// close stops the standby and removes its directory; safe to call more than once.
func (sb *standby) close() {
	sb.stop()
	if sb.dir != "" {
		os.RemoveAll(sb.dir)
		sb.dir = ""
	}
}

func (sb *standby) logTail() string {
	b, _ := os.ReadFile(filepath.Join(sb.dir, "postgres.log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// makeSynchronous turns synchronous replication on at the primary and waits until a standby
// is attached as the synchronous one.
func makeSynchronous(ctx context.Context, primary *pgtest.Cluster) error {
	db, err := sql.Open("postgres", primary.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{
		"ALTER SYSTEM SET synchronous_standby_names = 'standby1'",
		"ALTER SYSTEM SET synchronous_commit = 'on'",
		"SELECT pg_reload_conf()",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("primary: %s: %w", q, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var state string
		err := db.QueryRowContext(ctx, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'").Scan(&state)
		if err == nil && state == "sync" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("standby1 not attached as synchronous standby after 30s (sync_state %q, %v)", state, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// postgresBin finds the directory of the server binaries the way pgtest does: beside initdb on
// PATH, else the newest /usr/lib/postgresql/<version>/bin.
func postgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(real), "pg_basebackup")); err == nil {
				return filepath.Dir(real), nil
			}
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestV := "", -1.0
	for _, m := range matches {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(m)), 64)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(m, "pg_basebackup")); err == nil && v > bestV {
			best, bestV = m, v
		}
	}
	if best == "" {
		return "", fmt.Errorf("pg_basebackup not found on PATH or under /usr/lib/postgresql/*/bin")
	}
	return best, nil
}

// runAs is the credential the server runs under: the OS user postgres when we are root.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the OS user postgres to run the standby: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("OS user postgres has odd ids %s", strings.Join([]string{u.Uid, u.Gid}, "/"))
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
