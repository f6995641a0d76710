package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// (a) An operator connected through either site's proxy reaches site1's server.
func TestOperatorReachesMaster(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{})
	for _, s := range []*site{s1, s2} {
		o, err := dialOperator(s.proxy, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range [][2]string{{"PING", "PONG site1"}, {"SET k " + s.name, "OK site1"}, {"GET k", "VALUE site1 " + s.name}} {
			if got, err := o.do(step[0], 2*time.Second); err != nil || got != step[1] {
				t.Errorf("via %s proxy: %q -> %q, %v; want %q", s.name, step[0], got, err, step[1])
			}
		}
		o.close()
	}

	// The admin API and `tandem status` agree on who is master.
	out, err := exec.Command(bins.tandem, "status", "-config", s2.cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"role": "backup"`) || !strings.Contains(string(out), `"master": "site1"`) {
		t.Errorf("tandem status on site2: %v\n%s", err, out)
	}
	waitFor(t, 5*time.Second, "site1's on_promote hook", func() bool {
		b, _ := os.ReadFile(s1.hookLog)
		return string(b) == "site1 master 1\n"
	})
	if b, err := os.ReadFile(s2.hookLog); err == nil {
		t.Errorf("site2 ran on_promote as a backup: %q", b)
	}
	metrics := httpBody(t, s1.admin, "/metrics")
	for _, want := range []string{`tandem_role{role="master"} 1`, "tandem_members_alive 2", "tandem_proxy_connections_total 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("site1 /metrics lacks %q:\n%s", want, metrics)
		}
	}
}

// (b) kill -9 site1's server: new operator connections are served by site2's server.
// (d) site1's server back: control returns after failback_delay, and a
// connection to site2's server is cut when site2 loses the role.
func TestServerKillFailoverAndFailback(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{failbackDelay: "2s"})

	s1.server.kill(syscall.SIGKILL)
	killed := time.Now()
	took := servedBy(t, s2.proxy, "site2", 10*time.Second)
	t.Logf("server kill -9 -> first request served by site2: %v (target < 1s)", took)
	if took > 3*time.Second {
		t.Errorf("failover after server kill took %v", took)
	}
	_ = killed
	if got := ping(s1.proxy, 2*time.Second); got != "site2" {
		t.Errorf("via site1's proxy: served by %q, want site2", got)
	}

	// An operator session on site2's server, open while site1 comes back.
	held, err := dialOperator(s2.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.close()
	if got, err := held.do("PING", 2*time.Second); got != "PONG site2" {
		t.Fatalf("held session: %q %v", got, err)
	}

	s1.server.restart(t)
	back := time.Now()
	took = servedBy(t, s2.proxy, "site1", 15*time.Second)
	t.Logf("site1's server back -> served by site1 after %v (failback_delay 2s)", took)
	if took < 2*time.Second {
		t.Errorf("control returned after %v, before failback_delay", took)
	}
	// The held session to site2's server must have been cut.
	_ = held.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := held.r.ReadByte(); err == nil {
		t.Errorf("session to the old master still open (read %q)", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("session to the old master was not cut %v after failback", time.Since(back))
	}
}

// TestServerFrozenFailover: site1's server stops answering without closing anything (SIGSTOP:
// the kernel still accepts connections, so a bare connect check passes). With health_send and
// health_expect the check notices and site1 hands over; resumed, it gets control back.
func TestServerFrozenFailover(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{failbackDelay: "1s", healthProbe: true})
	// Timed from the freeze, not from a kill whose stop a loaded machine delays (sigstop).
	pid := s1.server.cmd.Process.Pid
	sigstop(t, pid)
	took := servedBy(t, s2.proxy, "site2", 10*time.Second)
	t.Logf("server frozen -> first request served by site2: %v", took)
	if took > 3*time.Second {
		t.Errorf("failover after the server froze took %v", took)
	}
	if got := ping(s1.proxy, 2*time.Second); got != "site2" {
		t.Errorf("via site1's proxy: served by %q, want site2", got)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	took = servedBy(t, s2.proxy, "site1", 15*time.Second)
	t.Logf("site1's server resumed -> served by site1 after %v (failback_delay 1s)", took)
	if took < time.Second {
		t.Errorf("control returned after %v, before failback_delay", took)
	}
}

// (c) kill -9 site1's tandem: the same, in < 2 s with the fast profile.
func TestTandemKillFailover(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{})
	s1.tandem.kill(syscall.SIGKILL)
	took := servedBy(t, s2.proxy, "site2", 10*time.Second)
	t.Logf("tandem kill -9 -> first request served by site2: %v (target < 2s)", took)
	if took > 4*time.Second {
		t.Errorf("failover after tandem kill took %v", took)
	}
	// site1's tandem returns: it catches up and takes control back after failback_delay.
	s1.tandem.restart(t)
	servedBy(t, s2.proxy, "site1", 20*time.Second)
}

// (d) with failback = "manual", control stays with site2 until tandem switchover.
func TestManualFailback(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{failback: "manual", failbackDelay: "1s"})
	s1.server.kill(syscall.SIGKILL)
	servedBy(t, s2.proxy, "site2", 10*time.Second)
	s1.server.restart(t)
	waitDial(t, s1.srv)
	time.Sleep(3 * time.Second) // well past failback_delay
	if got := ping(s2.proxy, 2*time.Second); got != "site2" {
		t.Fatalf("manual failback: served by %q before switchover, want site2", got)
	}
	// Asked of the backup: it forwards the request to the master.
	out, err := exec.Command(bins.tandem, "switchover", "-config", s1.cfg, "site1").CombinedOutput()
	if err != nil {
		t.Fatalf("tandem switchover: %v\n%s", err, out)
	}
	took := servedBy(t, s2.proxy, "site1", 10*time.Second)
	t.Logf("switchover -> served by site1 after %v", took)
}

// (e) PROXY v1 and v2 out: the server sees the operator's real address.
func TestProxyProtocolOut(t *testing.T) {
	for _, v := range []string{"v1", "v2"} {
		t.Run(v, func(t *testing.T) {
			s1, _ := cluster(t, clusterOpts{serverProxy: v, sendProxy: v})
			o, err := dialOperator(s1.proxy, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer o.close()
			got, err := o.do("WHO", 2*time.Second)
			want := fmt.Sprintf("YOU %s site1", o.conn.LocalAddr())
			if err != nil || got != want {
				t.Errorf("WHO = %q, %v; want %q", got, err, want)
			}
		})
	}
}

// (e) PROXY in: honoured from a trusted address, refused from another.
func TestProxyProtocolIn(t *testing.T) {
	// Only 127.0.0.2 may send a header; the server gets the result as v2.
	s1, _ := cluster(t, clusterOpts{serverProxy: "v2", sendProxy: "v2", acceptProxy: "optional", trusted: "127.0.0.2/32"})
	real := &net.TCPAddr{IP: net.ParseIP("10.9.8.7"), Port: 4242}
	header := func(local net.Addr) []byte {
		h := proxyproto.HeaderProxyFromAddrs(2, real, local)
		var b bytes.Buffer
		if _, err := h.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	dialFrom := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", s1.proxy)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Trusted source with a header: the server sees the header's address.
	c := dialFrom("127.0.0.2")
	c.Write(append(header(c.RemoteAddr()), "WHO\n"...))
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	reply, _ := readLine(c)
	c.Close()
	if want := "YOU 10.9.8.7:4242 site1"; reply != want {
		t.Errorf("trusted header: WHO = %q, want %q", reply, want)
	}

	// Untrusted source with a header: refused (closed, no reply).
	c = dialFrom("127.0.0.1")
	c.Write(append(header(c.RemoteAddr()), "WHO\n"...))
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	reply, err := readLine(c)
	c.Close()
	if err == nil || strings.HasPrefix(reply, "YOU") {
		t.Errorf("untrusted header: got reply %q (err %v), want the connection refused", reply, err)
	}

	// Untrusted source without a header (optional): served with its own address.
	c = dialFrom("127.0.0.1")
	c.Write([]byte("WHO\n"))
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	reply, _ = readLine(c)
	if want := fmt.Sprintf("YOU %s site1", c.LocalAddr()); reply != want {
		t.Errorf("no header: WHO = %q, want %q", reply, want)
	}
	c.Close()
}

func readLine(c net.Conn) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, one); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[0])
	}
}

// (f) SIGTERM on the master: the peer takes over without waiting for
// suspicion. The lan profile would need ~5 s to declare a silent member dead.
func TestGracefulStopHandsOver(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{profile: "lan", witness: true})
	// Not kill, which waits for the exit and forces it after 15 s: the takeover is timed from
	// the signal, and the exit must come of the signal alone.
	s1.tandem.signal(t, syscall.SIGTERM)
	took := servedBy(t, s2.proxy, "site2", 10*time.Second)
	t.Logf("SIGTERM on master -> served by site2 after %v", took)
	if took > 2500*time.Millisecond {
		t.Errorf("takeover after SIGTERM took %v: it waited for suspicion", took)
	}
	if !s1.tandem.exited(5 * time.Second) {
		t.Error("site1's tandem did not exit within 5 s of SIGTERM")
	}
}

// A hook that takes its time holds back neither the proxy nor the handover: asked to hand over
// while its on_promote hook still runs, site1's proxy cuts the connection to its own server
// and sends new ones to site2 at once.
func TestSlowHookDoesNotHoldProxy(t *testing.T) {
	gate := filepath.Join(tempDir(t, "e2e-"), "gate")
	// The hook waits for the gate (at most 30 s), which the test opens when it ends.
	s1, s2 := cluster(t, clusterOpts{failback: "manual",
		promoteHook: fmt.Sprintf("i=0; while [ ! -e %s ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done", gate)})
	t.Cleanup(func() { writeFile(t, gate, "") })
	waitFor(t, 5*time.Second, "site1's on_promote hook to start", func() bool {
		b, _ := os.ReadFile(s1.hookLog)
		return len(b) > 0
	})
	o, err := dialOperator(s1.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if got, err := o.do("PING", 2*time.Second); err != nil || got != "PONG site1" {
		t.Fatalf("before the switchover: %q, %v", got, err)
	}
	// site2 takes the role only once it holds site1's term record: until then the switchover
	// is refused ("not current").
	waitFor(t, 5*time.Second, "tandem switchover site2 to be accepted", func() bool {
		return exec.Command(bins.tandem, "switchover", "-config", s1.cfg, "site2").Run() == nil
	})
	took := servedBy(t, s1.proxy, "site2", 5*time.Second)
	t.Logf("switchover with site1's on_promote hook running -> site1's proxy serves site2 after %v", took)
	if got, err := o.do("PING", 2*time.Second); err == nil {
		t.Errorf("the connection to site1's server was not cut: %q", got)
	}
	if got := ping(s2.proxy, 2*time.Second); got != "site2" {
		t.Errorf("site2's proxy: served by %q, want site2", got)
	}
}
