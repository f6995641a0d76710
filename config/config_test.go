package config

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const good = `
site = "site1"
priority = 1
data_dir = "/var/lib/tandem"

[gossip]
bind = "127.0.0.1:7946"
join = ["127.0.0.1:7947", "127.0.0.1:7948"]
profile = "fast"
failback = "manual"
failback_delay = "5s"
witness = true

[server]
health = "exec"
health_command = ["/bin/true"]
health_interval = "200ms"

[[server.endpoint]]
name = "operators"
address = "127.0.0.1:7000"

[[server.endpoint]]
name = "admin"
address = "127.0.0.1:7001"

[proxy]
trusted_cidrs = ["127.0.0.0/8", "10.1.2.3", "::ffff:10.9.0.0/112", "::ffff:10.8.0.1", "2001:db8::/32"]
connect_timeout = "3s"

[[proxy.listener]]
endpoint = "operators"
listen = "127.0.0.1:7100"
accept_proxy = "optional"
send_proxy = "v2"

[[proxy.listener]]
endpoint = "admin"
listen = "127.0.0.1:7101"

[txshim]
listen = "127.0.0.1:6432"
local_dsn = "postgres://tandem:s3cret@127.0.0.1:5432/wire"
peer_dsn = "host=10.0.0.2 user=tandem password='p w' dbname=wire"
max_message = "1MiB"
verify_after_catchup = false

[admin]
listen = "127.0.0.1:7180"

[hooks]
on_promote = ["/bin/echo", "promoted"]
`

func TestParseGood(t *testing.T) {
	c, err := Parse("good.toml", []byte(good), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"site", c.Site, "site1"},
		{"priority", c.Priority, 1},
		{"profile", c.Gossip.Profile, ProfileFast},
		{"failback", c.Gossip.Failback, FailbackManual},
		{"failback_delay", c.Gossip.FailbackDelay, 5 * time.Second},
		{"witness", c.Gossip.Witness, true},
		{"health", c.Server.Health, HealthExec},
		{"health_interval", c.Server.HealthInterval, 200 * time.Millisecond},
		{"health_timeout default", c.Server.HealthTimeout, DefaultHealthTimeout},
		{"health_failures default", c.Server.HealthFailures, DefaultHealthFailures},
		{"endpoints", len(c.Server.Endpoints), 2},
		{"listeners", len(c.Proxy.Listeners), 2},
		{"accept_proxy", c.Proxy.Listeners[0].AcceptProxy, ProxyOptional},
		{"send_proxy default", c.Proxy.Listeners[1].SendProxy, ProxyOff},
		{"cidr from bare IP", c.Proxy.TrustedCIDRs[1].String(), "10.1.2.3/32"},
		{"IPv4-mapped cidr as IPv4", c.Proxy.TrustedCIDRs[2].String(), "10.9.0.0/16"},
		{"IPv4-mapped IP as IPv4", c.Proxy.TrustedCIDRs[3].String(), "10.8.0.1/32"},
		{"IPv6 cidr", c.Proxy.TrustedCIDRs[4].String(), "2001:db8::/32"},
		{"connect_timeout", c.Proxy.ConnectTimeout, 3 * time.Second},
		{"max_conns default", c.Proxy.MaxConns, DefaultMaxConns},
		{"max_message", c.TxShim.MaxMessage, int64(1 << 20)},
		{"peer_down default", c.TxShim.PeerDown, PeerDownContinue},
		{"verify_after_catchup", c.TxShim.VerifyCatchUp, false},
		{"hook timeout default", c.Hooks.Timeout, DefaultHookTimeout},
		{"fence_delay default with a witness, fast profile", c.Gossip.FenceDelay, 2 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if d, err := Parse("good.toml", []byte(strings.Replace(good, "verify_after_catchup = false\n", "", 1)), KindSite); err != nil || !d.TxShim.VerifyCatchUp {
		t.Errorf("verify_after_catchup left out: %v; want true by default", err)
	}
	out := c.Redacted()
	for _, secret := range []string{"s3cret", "p w"} {
		if strings.Contains(out, secret) {
			t.Errorf("Redacted output shows a secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "operators") || !strings.Contains(out, "redacted") {
		t.Errorf("Redacted output lacks expected content:\n%s", out)
	}
}

// TestCheckConfigAcceptance is the issue's case: an unknown key, a bad duration
// and a listener pointing at a missing endpoint are all reported with their lines.
func TestCheckConfigAcceptance(t *testing.T) {
	_, err := Load("testdata/bad.toml", KindSite)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []struct {
		line int
		key  string
		msg  string
	}{
		{4, "colour", "unknown key"},
		{8, "gossip.failback_delay", "not a duration"},
		{20, "proxy.listener[1].endpoint", `"admin" names no [[server.endpoint]]`},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		e := errs[i]
		if e.Line != w.line || e.Key != w.key || !strings.Contains(e.Msg, w.msg) || e.File != "testdata/bad.toml" {
			t.Errorf("error %d = %q, want line %d key %s msg ~%q", i, e.Error(), w.line, w.key, w.msg)
		}
	}
	if !strings.HasPrefix(errs[0].Error(), "testdata/bad.toml:4: colour: ") {
		t.Errorf("error text %q does not lead with file:line: key", errs[0].Error())
	}
}

func TestParseErrors(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	cases := []struct {
		name, src string
		line      int
		key, msg  string
	}{
		{"syntax", "site = \n", 1, "", ""},
		{"type", strings.Replace(base, `"s1"`, `3`, 1), 1, "site", "incompatible types"},
		{"missing site", "data_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n", 0, "site", "required"},
		{"bad site", strings.Replace(base, `"s1"`, `"s 1"`, 1), 1, "site", "letters"},
		{"bad bind", strings.Replace(base, `127.0.0.1:1`, `localhost`, 1), 4, "gossip.bind", "is not host:port: missing port in address"},
		{"bad port", strings.Replace(base, `127.0.0.1:2`, `127.0.0.1:99999`, 1), 8, "server.endpoint[0].address", "port"},
		{"priority range", base + "priority = -1\n", 9, "priority", ""}, // priority after a table header belongs to server.endpoint
		{"profile", base + "[proxy]\n" + "connect_timeout = \"0s\"\n", 10, "proxy.connect_timeout", "greater than zero"},
		{"duration too short", strings.Replace(base, "[server]\n", "[server]\nhealth_interval = \"1ns\"\n", 1), 6, "server.health_interval", `"1ns": at least 1ms`},
		{"duration too long", base + "[hooks]\ntimeout = \"2562047h\"\n", 10, "hooks.timeout", `"2562047h": at most 720h0m0s`},
		{"dup endpoint", base + "[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:3\"\n", 10, "server.endpoint[1].name", "twice"},
		{"accept without cidrs", base + "[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:4\"\naccept_proxy = \"required\"\n", 12, "proxy.listener[0].accept_proxy", "trusted_cidrs"},
		{"bad enum", base + "[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:4\"\nsend_proxy = \"v3\"\n", 12, "proxy.listener[0].send_proxy", "one of"},
		{"bad cidr", base + "[proxy]\ntrusted_cidrs = [\"nope\"]\n", 10, "proxy.trusted_cidrs[0]", "CIDR"},
		{"bad size", base + "[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\nmax_message = \"lots\"\n", 13, "txshim.max_message", "size"},
		{"size over PostgreSQL's limit", base + "[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\nmax_message = \"2GiB\"\n", 13, "txshim.max_message", "16KiB..1GiB"},
		{"size too small for a session", base + "[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\nmax_message = \"100B\"\n", 13, "txshim.max_message", "16KiB..1GiB"},
		{"bool as string", base + "[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\nverify_after_catchup = \"yes\"\n", 13, "txshim.verify_after_catchup", "incompatible types"},
		{"unparsable dsn", base + "[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a:pa#ss@b/c\"\npeer_dsn = \"postgres://a@d/c\"\n", 11, "txshim.local_dsn", "percent-encode"},
		{"missing dsn", base + "[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n", 9, "txshim.peer_dsn", "required"},
		{"open shim", base + "[txshim]\nlisten = \"0.0.0.0:6432\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\n", 10, "txshim.listen", "beyond loopback"},
		{"open shim by name", base + "[txshim]\nlisten = \"db1.example:6432\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\n", 10, "txshim.listen", "beyond loopback"},
		{"send without expect", base + "health_send = \"PING\\n\"\n", 9, "server.endpoint[0].health_send", "needs health_expect"},
		{"expect with exec", strings.Replace(base, "[server]\n", "[server]\nhealth = \"exec\"\nhealth_command = [\"true\"]\n", 1) + "health_expect = \"PONG\"\n", 11, "server.endpoint[0].health_expect", "only used by the tcp check"},
		// A health_command without health = "exec" was taken and never run: the tcp check ran
		// instead, and a server the command would find down passed as healthy.
		{"command without exec", strings.Replace(base, "[server]\n", "[server]\nhealth_command = [\"/usr/local/bin/check\"]\n", 1), 6, "server.health_command", "only used by the exec check"},
		{"command with tcp", strings.Replace(base, "[server]\n", "[server]\nhealth = \"tcp\"\nhealth_command = [\"/usr/local/bin/check\"]\n", 1), 7, "server.health_command", "only used by the exec check"},
		{"exec without command", strings.Replace(base, "[server]\n", "[server]\nhealth = \"exec\"\n", 1), 5, "server.health_command", "required"},
		{"hook timeout zero", base + "[hooks]\non_promote = [\"/bin/true\"]\ntimeout = \"0s\"\n", 11, "hooks.timeout", "greater than zero"},
		{"open admin", base + "[admin]\nlisten = \"0.0.0.0:7180\"\n", 10, "admin.listen", "token_file"},
		{"open admin by name", base + "[admin]\nlisten = \"site1.example:7180\"\n", 10, "admin.listen", "token_file"},
		{"unknown in an inline table", strings.Replace(base, "[gossip]\nbind = \"127.0.0.1:1\"\n", "gossip = { bind = \"127.0.0.1:1\", bogus = 1 }\n", 1), 3, "gossip.bogus", "unknown key"},
		{"gossip bind by name", strings.Replace(base, `127.0.0.1:1`, `localhost:1`, 1), 4, "gossip.bind", "IP address"},
		{"gossip bind ::", strings.Replace(base, `127.0.0.1:1`, `[::]:1`, 1), 4, "gossip.bind", "gossip.advertise"},
		{"gossip advertise by name", strings.Replace(base, "bind = \"127.0.0.1:1\"\n", "bind = \"127.0.0.1:1\"\nadvertise = \"site1.example:1\"\n", 1), 5, "gossip.advertise", "IP address"},
		{"gossip advertise 0.0.0.0", strings.Replace(base, "bind = \"127.0.0.1:1\"\n", "bind = \"0.0.0.0:1\"\nadvertise = \"0.0.0.0:1\"\n", 1), 5, "gossip.advertise", "reach"},
		{"gossip advertise port 0", strings.Replace(base, "bind = \"127.0.0.1:1\"\n", "bind = \"0.0.0.0:1\"\nadvertise = \"10.0.0.1:0\"\n", 1), 5, "gossip.advertise", "reach"},
		{"empty health command", strings.Replace(base, "[server]\n", "[server]\nhealth = \"exec\"\nhealth_command = [\"\", \"-c\"]\n", 1), 7, "server.health_command", "program"},
		{"empty hook", base + "[hooks]\non_demote = [\"\"]\n", 10, "hooks.on_demote", "program"},
		{"fence_delay 0 with a witness", strings.Replace(base, "bind = \"127.0.0.1:1\"\n", "bind = \"127.0.0.1:1\"\nwitness = true\nfence_delay = \"0s\"\n", 1), 6, "gossip.fence_delay", "greater than zero"},
		{"fence_delay shorter than the profile's fencing", strings.Replace(base, "bind = \"127.0.0.1:1\"\n", "bind = \"127.0.0.1:1\"\nwitness = true\nprofile = \"fast\"\nfence_delay = \"500ms\"\n", 1), 7, "gossip.fence_delay", "shorter than the 750ms"},
		{"join self", strings.Replace(base, "bind = \"127.0.0.1:1\"\n", "bind = \"127.0.0.1:1\"\njoin = [\"127.0.0.2:1\", \"127.0.0.1:1\"]\n", 1), 5, "gossip.join[1]", "own gossip address"},
		{"join self by localhost", strings.Replace(base, "bind = \"127.0.0.1:1\"\n", "bind = \"127.0.0.1:1\"\njoin = [\"localhost:1\"]\n", 1), 5, "gossip.join[0]", "own gossip address"},
		{"join self, wildcard bind", strings.Replace(base, "bind = \"127.0.0.1:1\"\n", "bind = \"0.0.0.0:1\"\njoin = [\"127.0.0.1:1\"]\n", 1), 5, "gossip.join[0]", "own gossip address"},
		{"bare duration", base + "[hooks]\ntimeout = 30\n", 10, "hooks.timeout", `want a duration in quotes, in Go syntax ("500ms", "30s", "2m")`},
		{"bare size", base + "[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\nmax_message = 1048576\n", 13, "txshim.max_message", `want a size in quotes ("64MiB", "512KiB", "1048576")`},
		{"quoted unknown key", base + "[admin]\nlisten = \"127.0.0.1:7180\"\n\"token file\" = \"/t\"\n", 11, `admin."token file"`, "unknown key"},
		{"multi-line array then unknown", base + "[proxy]\ntrusted_cidrs = [\n  \"127.0.0.1\",\n  \"127.0.0.2\", # [x]\n]\nbogus = 1\n", 14, "proxy.bogus", "unknown"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tc.src), KindSite)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("want Errors, got %v", err)
			}
			if tc.name == "priority range" {
				// "priority" after [[server.endpoint]] is a key of that table: unknown there.
				if !strings.Contains(err.Error(), "server.endpoint[0].priority: unknown key") {
					t.Fatalf("got %v", err)
				}
				return
			}
			if strings.Contains(err.Error(), "pa#ss") {
				t.Errorf("the error shows a password: %v", err)
			}
			e := errs[0]
			if e.Line != tc.line || (tc.key != "" && e.Key != tc.key) || !strings.Contains(e.Msg, tc.msg) || e.File != "f.toml" {
				t.Errorf("got %q (line %d key %q), want line %d key %q msg ~%q", e.Error(), e.Line, e.Key, tc.line, tc.key, tc.msg)
			}
		})
	}
}

func TestWitness(t *testing.T) {
	src := "site = \"w\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\njoin = [\"127.0.0.1:2\"]\n"
	c, err := Parse("w.toml", []byte(src), KindWitness)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Gossip.Witness || c.Kind != KindWitness {
		t.Errorf("witness config not marked: %+v", c.Gossip)
	}
	// Read as a site's (check-config without -witness), it says how to check it.
	if _, err := Parse("w.toml", []byte(src), KindSite); err == nil || !strings.Contains(err.Error(), "check-config -witness") {
		t.Errorf("a witness's file read as a site's: want a pointer to check-config -witness, got %v", err)
	}
	_, err = Parse("w.toml", []byte(src+"[server]\n"), KindWitness)
	if err == nil || !strings.Contains(err.Error(), "w.toml:6: server: a witness has no [server]") {
		t.Errorf("want a witness-with-server error on line 6, got %v", err)
	}
	// A site's file given to tandem witness says what it is for, as a witness's read as a site's does.
	if err == nil || !strings.Contains(err.Error(), "tandem check-config (without -witness)") {
		t.Errorf("a site's file read as a witness's: want a pointer to check-config without -witness, got %v", err)
	}
	// Keys a witness would ignore are refused with their lines.
	_, err = Parse("w.toml", []byte("priority = 7\n"+strings.Replace(src, "[gossip]\n", "[gossip]\nwitness = true\n", 1)+"[hooks]\ntimeout = \"5s\"\n"), KindWitness)
	for _, want := range []string{"w.toml:1: priority:", "w.toml:5: gossip.witness:", "w.toml:8: hooks:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q among the errors, got %v", want, err)
		}
	}
	// Failback is decided by the master site with its own settings: a witness's are never read.
	_, err = Parse("w.toml", []byte(strings.Replace(src, "[gossip]\n", "[gossip]\nfailback = \"manual\"\nfailback_delay = \"1m\"\n", 1)), KindWitness)
	for _, want := range []string{"w.toml:4: gossip.failback:", "w.toml:5: gossip.failback_delay:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q among the errors, got %v", want, err)
		}
	}
	if out := c.Redacted(); strings.Contains(out, "failback") || strings.Contains(out, "priority") {
		t.Errorf("a witness's resolved configuration shows settings it has no use for:\n%s", out)
	}
}

func TestSecretKey(t *testing.T) {
	dir := t.TempDir()
	base := "site = \"s\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\nsecret_key_file = %q\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("k64", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n") // base64 of 32 bytes
	c, err := Parse("f.toml", []byte(strings.Replace(base, "%q", `"`+good+`"`, 1)), KindSite)
	if err != nil || len(c.Gossip.SecretKey) != 32 {
		t.Fatalf("base64 key: err=%v len=%d", err, len(c.Gossip.SecretKey))
	}
	if strings.Contains(c.Redacted(), "MDEy") || strings.Contains(c.Redacted(), "0123456789") {
		t.Error("Redacted shows the key")
	}
	bad := write("short", "tooshort")
	_, err = Parse("f.toml", []byte(strings.Replace(base, "%q", `"`+bad+`"`, 1)), KindSite)
	if err == nil || !strings.Contains(err.Error(), "f.toml:5: gossip.secret_key_file:") || !strings.Contains(err.Error(), "16, 24 or 32") {
		t.Errorf("short key: got %v", err)
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db?sslmode=disable": "postgres://u:redacted@h:5432/db?sslmode=disable",
		"postgres://u@h/db?password=pw":             "postgres://u@h/db?password=redacted",
		"host=h password=pw user=u":                 "host=h password=redacted user=u",
		"host=h password='a b' user=u":              "host=h password=redacted user=u",
		// An unquoted value takes a backslash-escaped space (libpq and lib/pq read "a b c").
		`host=h password=a\ b\ c user=u`: "host=h password=redacted user=u",
		`host=h password=a\\ user=u`:     "host=h password=redacted user=u",
		"postgres://u@h/db":              "postgres://u@h/db",
		// net/url cannot read these (a '#' or a bad '%' escape in the password): still hidden.
		"postgres://u@h/db?sslpassword=pw&sslkey=k": "postgres://u@h/db?sslkey=k&sslpassword=redacted",
		"host=h sslpassword=pw":                     "host=h sslpassword=redacted",
		"postgres://u:p#ss@h/db":                    "postgres://redacted@h/db",
		"postgres://u:p%zz@h/db":                    "postgres://redacted@h/db",
		"postgres://u:12#x@h/db":                    "postgres://redacted@h/db",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.toml")
	for _, f := range files {
		kind := KindSite
		if strings.Contains(filepath.Base(f), "witness") {
			kind = KindWitness
		}
		if _, err := Load(f, kind); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// FuzzParse feeds arbitrary bytes to the loader: errors, never panics, and
// every error names the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	b, _ := os.ReadFile("testdata/bad.toml")
	f.Add(b)
	f.Add([]byte("[[a]]\n[[a.b]]\nx = \"\"\"\n]\n\"\"\"\n"))
	// Type errors on table headers and in inline tables spanning lines.
	f.Add([]byte("colour = 1\n[[gossip]]\nbind = 1\n[[gossip]]\n[proxy.listener]\nlisten = 2\n[[server]]\n[server.endpoint]\n"))
	f.Add([]byte("[server]\nendpoint = [ { name = 5,\n  address = 6 }, { name = \"a\", address = 7 } ]\ngossip = { bind = 1, join = [\n 2 ] }\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, kind := range []Kind{KindSite, KindWitness} {
			c, err := Parse("fuzz.toml", src, kind)
			if err != nil {
				var errs Errors
				if !errors.As(err, &errs) || len(errs) == 0 {
					t.Fatalf("error is not Errors: %v", err)
				}
				for _, e := range errs {
					if e.File != "fuzz.toml" {
						t.Fatalf("error without the file name: %v", e)
					}
				}
				continue
			}
			_ = c.Redacted()
		}
	})
}

func TestHealthProbe(t *testing.T) {
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\nhealth_send = \"PING\\n\"\nhealth_expect = \"PONG\"\n"
	c, err := Parse("f.toml", []byte(src), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Server.Endpoints[0]; e.HealthSend != "PING\n" || e.HealthExpect != "PONG" {
		t.Errorf("endpoint %+v, want health_send \"PING\\n\" and health_expect \"PONG\"", e)
	}
	if out := c.Redacted(); !strings.Contains(out, `health_expect = "PONG"`) {
		t.Errorf("check-config output lacks health_expect:\n%s", out)
	}
}

// TestSecretFiles: the gossip key and the admin token are read only from a small regular file
// that other users cannot read; anything else is an error, given at once.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	src := "site = \"s\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\nsecret_key_file = %q\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n[admin]\ntoken_file = %q\n"
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	key := write("key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", 0o600)
	token := write("token", "t0ken\n", 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Whatever a test leaves blocked opening the FIFO is let go at the end.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	parse := func(t *testing.T, keyFile, tokenFile string) error {
		done := make(chan error, 1)
		go func() {
			_, err := Parse("f.toml", []byte(fmt.Sprintf(src, keyFile, tokenFile)), KindSite)
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(3 * time.Second):
			t.Fatalf("Parse with secret_key_file %s, token_file %s still running after 3s", keyFile, tokenFile)
			return nil
		}
	}
	if err := parse(t, key, token); err != nil {
		t.Fatalf("good files: %v", err)
	}
	open := strings.Replace(src, "[admin]\n", "[admin]\nlisten = \"0.0.0.0:7180\"\n", 1)
	if _, err := Parse("f.toml", []byte(fmt.Sprintf(open, key, token)), KindSite); err != nil {
		t.Errorf("admin beyond loopback with a token: %v", err)
	}
	for _, tc := range []struct {
		name, key, token, want string
	}{
		{"world-readable key", write("key644", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", 0o644), token, "f.toml:5: gossip.secret_key_file: "},
		{"world-readable token", key, write("token644", "t0ken\n", 0o644), "f.toml:11: admin.token_file: "},
		{"group-writable key", write("key660", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n", 0o660), token, "writable by its group"},
		{"fifo key", fifo, token, "f.toml:5: gossip.secret_key_file: "},
		{"directory token", key, dir, "f.toml:11: admin.token_file: "},
		{"huge key", write("huge", strings.Repeat("k", 1<<20), 0o600), token, "f.toml:5: gossip.secret_key_file: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parse(t, tc.key, tc.token)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error ~%q", err, tc.want)
			}
		})
	}
}

// TestAddressConflicts: two of this member's listening addresses that cannot both be bound, or
// a proxy listener on its own server's address (it would forward to itself), are errors.
func TestAddressConflicts(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n"
	listener := func(addr string) string {
		return fmt.Sprintf("[[proxy.listener]]\nendpoint = \"op\"\nlisten = %q\n", addr)
	}
	for _, tc := range []struct {
		name, src string
		line      int
		key       string
	}{
		{"listener on the server's address", base + listener("127.0.0.1:7000"), 11, "proxy.listener[0].listen"},
		{"wildcard listener on the server's port", base + listener("0.0.0.0:7000"), 11, "proxy.listener[0].listen"},
		{"listener on the gossip port", base + listener("0.0.0.0:7946"), 11, "proxy.listener[0].listen"},
		{"two listeners, one wildcard", base + listener("127.0.0.1:7100") + listener("0.0.0.0:7100"), 14, "proxy.listener[1].listen"},
		{"admin on the gossip address", base + "[admin]\nlisten = \"127.0.0.1:7946\"\n", 10, "admin.listen"},
		// localhost is loopback, as the other conflicts take 127.0.0.1: the server beside the
		// sidecar is often written so (README: "a loopback address (or localhost)").
		{"listener on the server's address, named localhost", strings.Replace(base, "127.0.0.1:7000", "localhost:7000", 1) + listener("127.0.0.1:7000"), 11, "proxy.listener[0].listen"},
		{"wildcard listener on the server's port, named localhost", strings.Replace(base, "127.0.0.1:7000", "localhost:7000", 1) + listener("0.0.0.0:7000"), 11, "proxy.listener[0].listen"},
		{"listener on localhost and the admin port", base + listener("localhost:7180"), 11, "proxy.listener[0].listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tc.src), KindSite)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Fatalf("want one error, got %v", err)
			}
			if e := errs[0]; e.Line != tc.line || e.Key != tc.key {
				t.Errorf("got %q, want line %d key %s", e.Error(), tc.line, tc.key)
			}
		})
	}
	// Distinct ports, a server on another host and port 0 (any free port) are fine.
	ok := base + listener("0.0.0.0:7100") + listener("127.0.0.1:0") + "[admin]\nlisten = \"127.0.0.1:0\"\n"
	if _, err := Parse("f.toml", []byte(ok), KindSite); err != nil {
		t.Errorf("distinct addresses: %v", err)
	}
	remote := strings.Replace(base, "127.0.0.1:7000", "10.9.9.9:7100", 1) + listener("0.0.0.0:7100")
	if _, err := Parse("f.toml", []byte(remote), KindSite); err != nil {
		t.Errorf("server on another host: %v", err)
	}
}

// TestLoopbackEndpointRemoteGossip: an endpoint on loopback is refused at its address's line
// when the site's gossip address is not loopback (the sites on two hosts) and the sites run
// proxies: the other site's proxy dials the endpoint as written when this site is master, and
// reached its own host. Both sites on one machine (gossip on loopback) keep loopback endpoints,
// and so does a site without a proxy (operators routed otherwise: its endpoints serve its own
// health check only).
func TestLoopbackEndpointRemoteGossip(t *testing.T) {
	file := func(gossip, address string) string {
		return "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\n" + gossip + "join = [\"10.0.0.2:7946\"]\n" +
			"[proxy]\n[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"10.0.0.1:7100\"\n" +
			"[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"" + address + "\"\n"
	}
	noProxy := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"10.0.0.1:7946\"\njoin = [\"10.0.0.2:7946\"]\n" +
		"[server]\n[[server.endpoint]]\nname = \"pg\"\naddress = \"127.0.0.1:5432\"\n[hooks]\non_promote = [\"true\"]\n"
	if _, err := Parse("f.toml", []byte(noProxy), KindSite); err != nil {
		t.Errorf("a site without a proxy, endpoint on loopback: %v", err)
	}
	for _, tc := range []struct {
		gossip, address string
		refused         bool
	}{
		{"bind = \"10.0.0.1:7946\"\n", "127.0.0.1:5432", true},
		{"bind = \"10.0.0.1:7946\"\n", "127.0.0.2:5432", true},
		{"bind = \"10.0.0.1:7946\"\n", "localhost:5432", true},
		{"bind = \"10.0.0.1:7946\"\n", "[::1]:5432", true},
		{"bind = \"10.0.0.1:7946\"\n", "0.0.0.0:5432", true}, // a connect to it reaches loopback
		{"bind = \"10.0.0.1:7946\"\n", "[::]:5432", true},
		{"bind = \"0.0.0.0:7946\"\n", "127.0.0.1:5432", true}, // memberlist advertises an address beyond loopback
		{"bind = \"0.0.0.0:7946\"\nadvertise = \"10.0.0.1:7946\"\n", "127.0.0.1:5432", true},
		{"bind = \"10.0.0.1:7946\"\n", "10.0.0.1:5432", false},
		{"bind = \"10.0.0.1:7946\"\n", "db1.example:5432", false},
		{"bind = \"127.0.0.1:7946\"\n", "127.0.0.1:5432", false},
		{"bind = \"0.0.0.0:7946\"\nadvertise = \"127.0.0.1:7946\"\n", "localhost:5432", false},
	} {
		src := file(tc.gossip, tc.address)
		_, err := Parse("f.toml", []byte(src), KindSite)
		if !tc.refused {
			if err != nil {
				t.Errorf("%q, endpoint %s: %v", tc.gossip, tc.address, err)
			}
			continue
		}
		line := strings.Count(src, "\n") // address is the last line
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "server.endpoint[0].address" || errs[0].Line != line || !strings.Contains(errs[0].Msg, "loopback") {
			t.Errorf("%q, endpoint %s: got %v, want one error at f.toml:%d server.endpoint[0].address about loopback", tc.gossip, tc.address, err, line)
		}
	}
}

// TestEndpointZoneRemote: a server endpoint written with an IPv6 zone ([fe80::1%eth0]:5432) was
// taken where the other site's proxy dials it: the zone names an interface of this host, and the
// other site dialled the address through its own interface of that name, or failed on a name it
// does not have. It is refused there, at its line and key; where only this host dials it (no
// proxy, or gossip on loopback: both sites on this host) it stays accepted.
func TestEndpointZoneRemote(t *testing.T) {
	file := func(gossip, address string) string {
		return "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\n" + gossip + "join = [\"10.0.0.2:7946\"]\n" +
			"[proxy]\n[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"10.0.0.1:7100\"\n" +
			"[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"" + address + "\"\n"
	}
	for _, address := range []string{"[fe80::1%eth0]:5432", "[fd00::1%2]:5432"} {
		src := file("bind = \"10.0.0.1:7946\"\n", address)
		_, err := Parse("f.toml", []byte(src), KindSite)
		line := strings.Count(src, "\n") // address is the last line
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "server.endpoint[0].address" || errs[0].Line != line || !strings.Contains(errs[0].Msg, "zone") {
			t.Errorf("endpoint %s, gossip beyond loopback: got %v, want one error at f.toml:%d server.endpoint[0].address about the zone", address, err, line)
		}
	}
	if _, err := Parse("f.toml", []byte(file("bind = \"127.0.0.1:7946\"\n", "[fe80::1%eth0]:5432")), KindSite); err != nil {
		t.Errorf("endpoint with a zone, both sites on this host: %v", err)
	}
	noProxy := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"10.0.0.1:7946\"\njoin = [\"10.0.0.2:7946\"]\n" +
		"[server]\n[[server.endpoint]]\nname = \"pg\"\naddress = \"[fe80::1%eth0]:5432\"\n[hooks]\non_promote = [\"true\"]\n"
	if _, err := Parse("f.toml", []byte(noProxy), KindSite); err != nil {
		t.Errorf("endpoint with a zone, a site without a proxy: %v", err)
	}
}

// TestLoopbackEndpointNoListeners: a site whose operators reach no proxy listener of its own —
// no [proxy] table, or one with settings but no [[proxy.listener]] — runs no proxy, and keeps
// its loopback endpoints whatever its gossip address. check-config prints every site with a
// [proxy] table (its defaults filled in), so its output for a site without one did not load
// again: the empty table was taken for a proxy.
func TestLoopbackEndpointNoListeners(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"10.0.0.1:7946\"\njoin = [\"10.0.0.2:7946\"]\n" +
		"[server]\n[[server.endpoint]]\nname = \"pg\"\naddress = \"127.0.0.1:5432\"\n"
	c, err := Parse("f.toml", []byte(base), KindSite)
	if err != nil {
		t.Fatalf("a site without a proxy, endpoint on loopback: %v", err)
	}
	if _, err := Parse("again.toml", []byte(c.Redacted()), KindSite); err != nil {
		t.Errorf("check-config's output of a site without a proxy does not load again: %v\n%s", err, c.Redacted())
	}
	if _, err := Parse("f.toml", []byte(base+"[proxy]\nconnect_timeout = \"5s\"\n"), KindSite); err != nil {
		t.Errorf("a [proxy] table without listeners, endpoint on loopback: %v", err)
	}
}

// TestRedactedWildcardBind: check-config printed gossip.advertise as the bind address when the
// file set none, and a wildcard bind (0.0.0.0, where memberlist advertises an address of the
// host's) or port 0 is no address to advertise: the output did not load again.
func TestRedactedWildcardBind(t *testing.T) {
	for _, bind := range []string{"0.0.0.0:7946", "127.0.0.1:0", "127.0.0.1:7946"} {
		src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"" + bind + "\"\n" +
			"[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"10.0.0.1:7000\"\n"
		c1, err := Parse("f.toml", []byte(src), KindSite)
		if err != nil {
			t.Fatalf("bind %s: %v", bind, err)
		}
		c2, err := Parse("again.toml", []byte(c1.Redacted()), KindSite)
		if err != nil {
			t.Errorf("bind %s: check-config's output does not load again: %v", bind, err)
			continue
		}
		if cmp.Or(c2.Gossip.Advertise, c2.Gossip.Bind) != cmp.Or(c1.Gossip.Advertise, c1.Gossip.Bind) {
			t.Errorf("bind %s: loaded again, advertise %q, bind %q", bind, c2.Gossip.Advertise, c2.Gossip.Bind)
		}
	}
}

// TestLinesAfterMultilineStrings: keys after a multi-line string have their own lines. In a
// """…""" string an escaped quote before two more (\""") was taken for the string's end, and
// the real end for the start of another string, and a closing run of four quotes left one
// that opened a string: the keys after either were given the table's line, or none.
func TestLinesAfterMultilineStrings(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\n"
	for _, send := range []string{
		"\"\"\"\nsay \\\"\"\"\nk=v\"\"\"",            // an escaped quote, then two: not the end
		"\"\"\"\nsay \\\"\"\" [\nk=v\"\"\"",          // and a bracket after them, inside the string
		"\"\"\"PING\\\\\"\"\"",                       // an escaped backslash, then the end
		"\"\"\"PING\"\"\"\" # one quote more: \"[\"", // the end is the last three of four quotes
		"\"\"\"PING\"\"\"\"\"",                       // or of five
		"'''\nsay \\'''",                             // a literal string has no escapes: \''' ends it
		"'''PING'''' # \"[\"",
	} {
		src := base + "health_send = " + send + "\nhealth_expect = \"ok\"\naddress = \"bad\"\n"
		_, err := Parse("f.toml", []byte(src), KindSite)
		var errs Errors
		line := strings.Count(src, "\n") // address is the last line
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "server.endpoint[0].address" || errs[0].Line != line {
			t.Errorf("health_send = %s: got %v, want one error at f.toml:%d server.endpoint[0].address", send, err, line)
		}
	}
}

// TestEndpointPortZero: an endpoint on port 0 is refused at its address's line. Port 0 takes any
// free port to listen on, but an endpoint is dialled (by the health check and the proxies): it
// loaded, and the site could never serve.
func TestEndpointPortZero(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, addr := range []string{"127.0.0.1:0", "10.0.0.1:00", "[::1]:0", "db1.example:0"} {
		_, err := Parse("f.toml", []byte(strings.Replace(base, "127.0.0.1:2", addr, 1)), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "server.endpoint[0].address" || errs[0].Line != 8 || !strings.Contains(errs[0].Msg, "port 0") {
			t.Errorf("%s: got %v, want one error at f.toml:8 server.endpoint[0].address about port 0", addr, err)
		}
	}
}

// TestTypeErrorsAll: a value of the wrong type does not hide the file's other errors.
func TestTypeErrorsAll(t *testing.T) {
	src := "site = 3\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\njoin = [\n  1,\n  2]\nprofile = \"slow\"\n" +
		"[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n[[server.endpoint]]\nname = 5\naddress = \"127.0.0.1:3\"\nbogus = 1\n" +
		// A listener naming the endpoint whose name is in error is not an error of its own.
		"[[proxy.listener]]\nendpoint = \"5\"\nlisten = \"127.0.0.1:4\"\n"
	_, err := Parse("f.toml", []byte(src), KindSite)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		"f.toml:1: site: incompatible types",
		"f.toml:5: gossip.join: incompatible types",
		"f.toml:8: gossip.profile: \"slow\"",
		"f.toml:14: server.endpoint[1].name: incompatible types",
		"f.toml:16: server.endpoint[1].bogus: unknown key",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want ~%q", i, errs[i].Error(), w)
		}
	}
}

// TestTypeErrorKeepsOthersRequired: a key of the wrong type in one table of an array hides no
// other table's "required" error for that key. The blanked key's own "required" was dropped
// by the key's name without its index, so a second listener without listen was not reported.
func TestTypeErrorKeepsOthersRequired(t *testing.T) {
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[[proxy.listener]]\nendpoint = \"op\"\nlisten = 5\n" +
		"[[proxy.listener]]\nendpoint = \"op\"\n"
	_, err := Parse("f.toml", []byte(src), KindSite)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		"f.toml:11: proxy.listener[0].listen: incompatible types",
		"f.toml:12: proxy.listener[1].listen: required",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want ~%q", i, errs[i].Error(), w)
		}
	}
}

// TestShimUsersAndTLS: txshim.users_file gives the shim's SCRAM users (and lets it listen
// beyond loopback), tls_cert_file and tls_key_file its TLS; bad files are errors that show no
// password, and check-config prints neither passwords nor the key.
func TestShimUsersAndTLS(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certPEM, keyPEM := selfSignedPEM(t)
	cert, key := write("cert.pem", certPEM, 0o644), write("key.pem", keyPEM, 0o600)
	users := write("users", "# clients\napp:s3cret-pw\n\nreport:other:pw\n", 0o600)
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"0.0.0.0:6432\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\n"
	c, err := Parse("f.toml", []byte(base+fmt.Sprintf("users_file = %q\ntls_cert_file = %q\ntls_key_file = %q\n", users, cert, key)), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.TxShim.Users; len(got) != 2 || got["app"] != "s3cret-pw" || got["report"] != "other:pw" {
		t.Errorf("users %v", got)
	}
	if c.TxShim.TLSCert == nil {
		t.Error("no TLS certificate loaded")
	}
	if out := c.Redacted(); strings.Contains(out, "s3cret") || !strings.Contains(out, "client users: 2") {
		t.Errorf("check-config output shows a password or not the users:\n%s", out)
	}

	for _, tc := range []struct {
		name, extra, key, msg string
	}{
		{"bad line", fmt.Sprintf("users_file = %q\n", write("bad", "app:pw\nnocolon-s3cret\n", 0o600)), "txshim.users_file", ":2: want user:password"},
		{"twice", fmt.Sprintf("users_file = %q\n", write("twice", "a:1\na:2\n", 0o600)), "txshim.users_file", "twice"},
		{"readable by all", fmt.Sprintf("users_file = %q\n", write("open", "a:1\n", 0o644)), "txshim.users_file", "every user"},
		{"cert without key", fmt.Sprintf("users_file = %q\ntls_cert_file = %q\n", users, cert), "txshim.tls_cert_file", "together"},
		{"key readable by all", fmt.Sprintf("users_file = %q\ntls_cert_file = %q\ntls_key_file = %q\n", users, cert, write("key2.pem", keyPEM, 0o644)), "txshim.tls_key_file", "every user"},
		{"not a pair", fmt.Sprintf("users_file = %q\ntls_cert_file = %q\ntls_key_file = %q\n", users, key, key), "txshim.tls_cert_file", ""},
	} {
		_, err := Parse("f.toml", []byte(base+tc.extra), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, tc.msg) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: got %v, want one %s error saying %q and no password", tc.name, err, tc.key, tc.msg)
		}
	}
}

// TestDSNUnusable: a DSN the database clients cannot read is refused with its key and line (tandem
// run, install and verify refuse it later, or the peer's applies fail on it at every commit), and
// the error never shows its password.
func TestDSNUnusable(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n"
	for _, dsn := range []string{
		`host=10.0.0.2 port=abc password=hunter2`,
		`host=10.0.0.2 sslmode=verify-ful password=hunter2`,
		`postgres://a:hunter2@10.0.0.2/c?sslmode=bogus`,
		`postgres://a:hunter2@10.0.0.2/c?connect_timeout=soon`,
		`host=10.0.0.2 password=hunter2 dbname='wire`,
		`host=10.0.0.2 password hunter2`,
	} {
		_, err := Parse("f.toml", []byte(base+"peer_dsn = \""+strings.ReplaceAll(dsn, `"`, `\"`)+"\"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 {
			t.Errorf("%s: want one error, got %v", dsn, err)
			continue
		}
		if e := errs[0]; e.Key != "txshim.peer_dsn" || e.Line != 12 {
			t.Errorf("%s: got %q, want line 12 key txshim.peer_dsn", dsn, e.Error())
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", dsn, err)
		}
	}
}

// TestDSNErrorHidesPassword: the error about a DSN the clients refuse quotes nothing of it, for
// every kind of failure. The reason was pgconn's own, which quotes pieces of the string: for a
// passphrase left unquoted (password=correct horsebatterystaple) its second word, and the
// value of a setting it refused.
func TestDSNErrorHidesPassword(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n"
	for _, tc := range []struct{ dsn, msg string }{
		{"host=10.0.0.2 user=tandem password=correct horsebatterystaple dbname=wire", "single-quoted"},
		{"host=10.0.0.2 pass horsebatterystaple=x", "single-quoted"},
		{"host=10.0.0.2 password='horsebatterystaple", "single-quoted"},
		{"host=10.0.0.2 target_session_attrs=horsebatterystaple", "target_session_attrs: want"},
		{"host=10.0.0.2 min_protocol_version=horsebatterystaple", "min_protocol_version: want"},
		{"host=10.0.0.2 sslcertmode=horsebatterystaple", "sslcertmode: want"},
		{"host=10.0.0.2 require_auth=horsebatterystaple", "require_auth: want"},
		{"host=10.0.0.2 channel_binding=horsebatterystaple", "channel_binding: want"},
		{"host=10.0.0.2 connect_timeout=horsebatterystaple", "connect_timeout: want"},
		{"host=10.0.0.2 sslnegotiation=horsebatterystaple", "sslnegotiation: want"},
		{"host=10.0.0.2 sslmode=verify-full sslrootcert=/nonexistent/horsebatterystaple", "sslrootcert: the file does not exist"},
		{"host=10.0.0.2 sslcert=/nonexistent/horsebatterystaple sslkey=/nonexistent/horsebatterystaple", "does not exist"},
		{"postgres://tandem:horsebatterystaple@[10.0.0.2/wire", "percent-encode"},
	} {
		_, err := Parse("f.toml", []byte(base+"peer_dsn = \""+tc.dsn+"\"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.peer_dsn" || errs[0].Line != 12 || !strings.Contains(errs[0].Msg, tc.msg) {
			t.Errorf("%s: got %v, want one error at f.toml:12 txshim.peer_dsn saying %q", tc.dsn, err, tc.msg)
		}
		if err != nil && strings.Contains(err.Error(), "horsebattery") {
			t.Errorf("%s: the error shows part of the string: %v", tc.dsn, err)
		}
	}
}

// TestURLPasswordUnencoded: a URL whose password holds an unencoded '/' or '?' after digits is
// refused, and RedactDSN hides it. It was read as host "tandem", port 2024 and database
// "Summer@10.0.0.1/wire": the file loaded, and check-config printed the password as part of the
// database's name.
func TestURLPasswordUnencoded(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\npeer_dsn = \"host=10.0.0.2 dbname=wire\"\n"
	for _, dsn := range []string{
		"postgres://tandem:2024/Summer@10.0.0.1/wire",
		"postgres://tandem:2024?Summer@10.0.0.1/wire",
		"postgres://tandem:2024/Summer/x@10.0.0.1:5432/wire?sslmode=disable",
	} {
		_, err := Parse("f.toml", []byte(base+"local_dsn = \""+dsn+"\"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.local_dsn" || errs[0].Line != 12 || !strings.Contains(errs[0].Msg, "percent-encode") {
			t.Errorf("%s: got %v, want one error at f.toml:12 txshim.local_dsn saying to percent-encode", dsn, err)
		}
		if err != nil && strings.Contains(err.Error(), "Summer") {
			t.Errorf("%s: the error shows the password: %v", dsn, err)
		}
		if got := RedactDSN(dsn); strings.Contains(got, "Summer") {
			t.Errorf("RedactDSN(%q) = %q: shows the password", dsn, got)
		}
	}
	// An '@' in a parameter's value after user@host is no password's: loads (it was refused).
	for _, dsn := range []string{
		"postgres://tandem:pw@10.0.0.1:5432/wire?application_name=tandem@site1",
		"postgres://10.0.0.1:5432/wire?user=tandem@corp",
	} {
		if _, err := Parse("f.toml", []byte(base+"local_dsn = \""+dsn+"\"\n"), KindSite); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
	}
	// Percent-encoded, it loads, and its password is hidden.
	c, err := Parse("f.toml", []byte(base+"local_dsn = \"postgres://tandem:2024%2FSummer@10.0.0.1/wire\"\n"), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	if out := c.Redacted(); strings.Contains(out, "Summer") || !strings.Contains(out, "postgres://tandem:redacted@10.0.0.1/wire") {
		t.Errorf("percent-encoded: check-config shows the password, or not the DSN:\n%s", out)
	}
}

// TestDSNSameDatabase: local_dsn and peer_dsn naming one database (a file copied from the other
// site and half edited) are refused: every dual commit would apply its own rows to itself a
// second time, and resync would copy the master's tables over themselves.
func TestDSNSameDatabase(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\n"
	for _, tc := range []struct {
		local, peer string
		same        bool
	}{
		{"postgres://tandem:pw@10.0.0.1:5432/wire", "postgres://tandem:pw@10.0.0.1:5432/wire", true},
		{"postgres://tandem@10.0.0.1/wire", "host=10.0.0.1 port=5432 user=other dbname=wire sslmode=disable", true},
		{"postgres://tandem@10.0.0.1:5432/wire", "postgres://tandem@10.0.0.2:5432/wire", false},
		{"postgres://tandem@10.0.0.1:5432/wire", "postgres://tandem@10.0.0.1:5433/wire", false},
		{"postgres://tandem@10.0.0.1:5432/wire", "postgres://tandem@10.0.0.1:5432/wire2", false},
		// Without a database name PostgreSQL connects to the user's.
		{"host=10.0.0.1 user=site1", "host=10.0.0.1 user=site2", false},
		{"host=10.0.0.1 user=site1", "host=10.0.0.1 user=site1 dbname=site1", true},
	} {
		_, err := Parse("f.toml", []byte(base+"local_dsn = \""+tc.local+"\"\npeer_dsn = \""+tc.peer+"\"\n"), KindSite)
		if tc.same {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.peer_dsn" || errs[0].Line != 12 ||
				!strings.Contains(errs[0].Msg, "same database") || strings.Contains(err.Error(), "pw") {
				t.Errorf("%s and %s: got %v, want one error at f.toml:12 txshim.peer_dsn naming the same database, no password", tc.local, tc.peer, err)
			}
		} else if err != nil {
			t.Errorf("%s and %s: %v", tc.local, tc.peer, err)
		}
	}
}

// TestLocalDSNIsShim: a local_dsn that connects to txshim.listen, the shim itself (the
// application's connection string, which now points at the shim, copied into local_dsn), is
// refused at local_dsn's line, in TCP, URL and Unix-socket forms: it loaded, and every session
// of the shim would have connected to the shim again.
func TestLocalDSNIsShim(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, ".s.PGSQL.6432")
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\npeer_dsn = \"host=10.0.0.2 dbname=wire\"\n"
	for _, tc := range []struct {
		listen, local string
		refused       bool
	}{
		{"127.0.0.1:6432", "host=127.0.0.1 port=6432 dbname=wire", true},
		{"127.0.0.1:6432", "postgres://tandem@127.0.0.1:6432/wire", true},
		{"127.0.0.1:6432", "host=localhost port=6432 dbname=wire", true},
		{"localhost:6432", "postgres://tandem@[::1]:6432/wire", true},
		{"127.0.0.1:6432", "host=10.0.0.1,127.0.0.1 port=5432,6432 dbname=wire", true},
		{sock, "host=" + dir + " port=6432 dbname=wire", true},
		{sock, "postgres:///wire?host=" + dir + "&port=6432", true},
		{"127.0.0.1:6432", "host=127.0.0.1 port=5432 dbname=wire", false},
		{"127.0.0.1:6432", "host=10.0.0.1 port=6432 dbname=wire", false},
		{"127.0.0.1:6432", "host=" + dir + " port=6432 dbname=wire", false},
		{sock, "host=" + dir + " port=5432 dbname=wire", false},
		{sock, "host=127.0.0.1 port=6432 dbname=wire", false},
	} {
		src := base + "listen = " + strconv.Quote(tc.listen) + "\nlocal_dsn = " + strconv.Quote(tc.local) + "\n"
		_, err := Parse("f.toml", []byte(src), KindSite)
		if !tc.refused {
			if err != nil {
				t.Errorf("listen %s, local_dsn %s: %v", tc.listen, tc.local, err)
			}
			continue
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.local_dsn" || errs[0].Line != 12 || !strings.Contains(errs[0].Msg, "the shim itself") {
			t.Errorf("listen %s, local_dsn %s: got %v, want one error at f.toml:12 txshim.local_dsn saying it is the shim itself", tc.listen, tc.local, err)
		}
	}
}

// TestSyntaxErrorHidesString: a bad escape in a string (a password with a backslash in a DSN)
// is reported with its line and key, without the string the TOML decoder echoes back.
func TestSyntaxErrorHidesString(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\n"
	for _, esc := range []string{`\user`, `\Uzz`, `\xq`} {
		src := base + "local_dsn = \"host=h password=hunter2" + esc + "\"\n"
		_, err := Parse("f.toml", []byte(src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Line != 11 || errs[0].Key != "txshim.local_dsn" || !strings.Contains(errs[0].Msg, "hexadecimal") {
			t.Errorf("%s: got %v, want one error at line 11, txshim.local_dsn, about the escape", esc, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the string: %v", esc, err)
		}
	}
}

// TestLoadSecrets: LoadSecrets reads only the secret files asked for, keeping the others'
// names without their contents and saying which it left unread; Load reads them all. What
// needs no file (tls_cert_file and tls_key_file go together) is checked either way.
func TestLoadSecrets(t *testing.T) {
	dir := t.TempDir()
	missing := func(name string) string { return filepath.Join(dir, "missing", name) }
	src := fmt.Sprintf("site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\nsecret_key_file = %q\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"+
		"[txshim]\nlisten = \"127.0.0.1:6432\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\nusers_file = %q\ntls_cert_file = %q\ntls_key_file = %q\n[admin]\ntoken_file = %q\n",
		missing("key"), missing("users"), missing("crt"), missing("tls.key"), missing("token"))
	path := filepath.Join(dir, "f.toml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadSecrets(path, KindSite, 0)
	if err != nil {
		t.Fatalf("LoadSecrets reading no secret file: %v", err)
	}
	if c.Unread != AllSecrets || c.Gossip.SecretKeyFile != missing("key") || c.Gossip.SecretKey != nil || c.Admin.TokenFile != missing("token") ||
		c.Admin.Token != "" || c.TxShim.UsersFile != missing("users") || c.TxShim.Users != nil || c.TxShim.TLSKeyFile != missing("tls.key") || c.TxShim.TLSCert != nil {
		t.Errorf("LoadSecrets(0): %+v, txshim %+v: want the files' names only, and every secret unread", c, c.TxShim)
	}

	_, err = LoadSecrets(path, KindSite, SecretAdminToken)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "admin.token_file" {
		t.Errorf("LoadSecrets reading the admin token only: %v, want one admin.token_file error", err)
	}
	_, err = Load(path, KindSite)
	if !errors.As(err, &errs) || len(errs) != 4 {
		t.Errorf("Load: %v, want an error for each of the 4 missing files", err)
	}

	half := strings.Replace(src, "tls_key_file", "# tls_key_file", 1)
	if err := os.WriteFile(path, []byte(half), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSecrets(path, KindSite, 0); err == nil || !strings.Contains(err.Error(), "together") {
		t.Errorf("LoadSecrets, tls_cert_file without tls_key_file: %v, want the error saying they go together", err)
	}
}

// TestRedactedLoadsAgain: what check-config prints is a configuration file: loaded again it
// gives the same configuration (secrets read from the same files), and it shows no secret.
func TestRedactedLoadsAgain(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := write("key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")
	token := write("token", "tok-s3cret-0123456789abcdef\n")
	users := write("users", "app:pw-s3cret\n")
	site := write("site.toml", fmt.Sprintf(`site = "s1"
data_dir = "/d"
[gossip]
bind = "127.0.0.1:1"
join = ["127.0.0.1:3"]
secret_key_file = %q
witness = true
[admin]
token_file = %q
[server]
[[server.endpoint]]
name = "op"
address = "127.0.0.1:2"
[[proxy.listener]]
endpoint = "op"
listen = "127.0.0.1:4"
[txshim]
listen = "127.0.0.1:6432"
local_dsn = "postgres://a@b/c"
peer_dsn = "postgres://a@d/c"
users_file = %q
`, key, token, users))
	witness := write("witness.toml", fmt.Sprintf("site = \"w\"\ndata_dir = \"/w\"\n[gossip]\nbind = \"127.0.0.1:5\"\njoin = [\"127.0.0.1:1\"]\nsecret_key_file = %q\n", key))
	for _, tc := range []struct {
		path string
		kind Kind
	}{{site, KindSite}, {witness, KindWitness}} {
		c1, err := Load(tc.path, tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		out1 := c1.Redacted()
		for _, secret := range []string{"MDEy", "tok-s3cret", "pw-s3cret"} {
			if strings.Contains(out1, secret) {
				t.Errorf("check-config output shows a secret %q:\n%s", secret, out1)
			}
		}
		again := write("again.toml", out1)
		c2, err := Load(again, tc.kind)
		if err != nil {
			t.Fatalf("the output of check-config does not load again: %v\n%s", err, out1)
		}
		if string(c2.Gossip.SecretKey) != string(c1.Gossip.SecretKey) || c2.Admin.Token != c1.Admin.Token || (c1.TxShim != nil) != (c2.TxShim != nil) ||
			c1.TxShim != nil && (len(c1.TxShim.Users) != 1 || c2.TxShim.Users["app"] != c1.TxShim.Users["app"]) {
			t.Errorf("loaded again, %s's secrets differ", tc.path)
		}
		_, body1, _ := strings.Cut(out1, "\n")
		_, body2, _ := strings.Cut(c2.Redacted(), "\n") // the first line names the file
		if body1 != body2 {
			t.Errorf("loaded again, %s resolves otherwise:\n%s\nthen:\n%s", tc.path, body1, body2)
		}
	}
}

// TestShimListenUnixSocket: txshim.listen may be the absolute path of a Unix socket in a
// directory that exists (a local listener: no users_file needed); anything else about such a
// path is an error naming the key and the line.
func TestShimListenUnixSocket(t *testing.T) {
	dir := t.TempDir()
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\nlisten = "
	good := filepath.Join(dir, ".s.PGSQL.6432")
	c, err := Parse("f.toml", []byte(base+strconv.Quote(good)+"\n"), KindSite)
	if err != nil {
		t.Fatalf("listen on %s: %v", good, err)
	}
	if c.TxShim.Listen != good {
		t.Fatalf("listen = %q, want %q", c.TxShim.Listen, good)
	}
	for _, tc := range []struct{ path, msg string }{
		{filepath.Join(dir, "missing", ".s.PGSQL.6432"), "its directory"},
		{good + "/x", "not a directory"},
		{dir + "/", "file name"},
		{dir + "/" + strings.Repeat("s", 120), "at most 107 bytes"},
	} {
		if tc.msg == "not a directory" {
			if err := os.WriteFile(good, nil, 0o600); err != nil { // a file where the directory should be
				t.Fatal(err)
			}
		}
		_, err := Parse("f.toml", []byte(base+strconv.Quote(tc.path)+"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 {
			t.Errorf("%s: want one error, got %v", tc.path, err)
			continue
		}
		if e := errs[0]; e.Key != "txshim.listen" || e.Line != 12 || !strings.Contains(e.Msg, tc.msg) {
			t.Errorf("%s: got %q, want line 12 key txshim.listen msg ~%q", tc.path, e.Error(), tc.msg)
		}
	}
}

// TestSecretKeyring: a key file may hold several keys, one a line, for a rotation: the first
// encrypts, all decrypt. Comments and blank lines are skipped, every key is checked and an
// error names its line (never its text); a file of one key reads as it always did.
func TestSecretKeyring(t *testing.T) {
	dir := t.TempDir()
	base := "site = \"s\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\nsecret_key_file = %q\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	parse := func(name, content string) (*Config, error) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return Parse("f.toml", []byte(strings.Replace(base, "%q", `"`+p+`"`, 1)), KindSite)
	}
	const (
		keyA = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes
		keyB = "fedcba9876543210"                             // raw text, 16 bytes
		keyC = "QUFBQUFBQUFCQkJCQkJCQkNDQ0NDQ0ND"             // base64 of 24 bytes
	)
	c, err := parse("ring", "# rotation of March: the new key goes first once every member has it\n\n"+keyA+"\r\n  "+keyB+"  \n# old\n"+keyC+"\n\n")
	if err != nil {
		t.Fatal(err)
	}
	g := c.Gossip
	if string(g.SecretKey) != "0123456789abcdef0123456789abcdef" || len(g.DecryptKeys) != 2 ||
		string(g.DecryptKeys[0]) != keyB || string(g.DecryptKeys[1]) != "AAAAAAAABBBBBBBBCCCCCCCC" {
		t.Fatalf("keyring: primary %q, others %q", g.SecretKey, g.DecryptKeys)
	}
	out := c.Redacted()
	if !strings.Contains(out, "# gossip key: 3 keys from secret_key_file, of 32, 16, 24 bytes; the first encrypts, all decrypt") {
		t.Errorf("check-config's note on a keyring:\n%s", out)
	}
	for _, k := range []string{"MDEy", "0123456789", keyB, "QUFB", "AAAAAAAA"} {
		if strings.Contains(out, k) {
			t.Errorf("check-config shows a key (%q):\n%s", k, out)
		}
	}

	// One key with a comment is a keyring of one.
	if c, err := parse("one", "# the cluster's key\n"+keyA+"\n"); err != nil || len(c.Gossip.SecretKey) != 32 || c.Gossip.DecryptKeys != nil {
		t.Errorf("one key and a comment: err=%v key %d bytes, others %d", err, len(c.Gossip.SecretKey), len(c.Gossip.DecryptKeys))
	}
	// A raw binary key may hold a newline or a #: still the whole file, as before.
	bin := "\x01\x02#\n\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
	if c, err := parse("bin", bin); err != nil || string(c.Gossip.SecretKey) != bin || c.Gossip.DecryptKeys != nil {
		t.Errorf("raw binary key with a newline: err=%v key %q", err, c.Gossip.SecretKey)
	}
	// A raw 16-character key without a newline, and one with (the single-key format).
	for _, content := range []string{keyB, keyB + "\n"} {
		if c, err := parse("raw", content); err != nil || string(c.Gossip.SecretKey) != keyB {
			t.Errorf("raw key %q: err=%v", content, err)
		}
	}

	for _, tc := range []struct{ name, content, want string }{
		{"badsecond", "# keys\n" + keyA + "\n\ntoo-short-key\n", "badsecond:4: key must be 16, 24 or 32 bytes (raw or base64), got 13 bytes"},
		{"badb64", keyA + "\n" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM=\n", ":2: key must be 16, 24 or 32 bytes (raw or base64), got base64 of 20 bytes"},
		{"twice", keyA + "\n" + keyB + "\n" + keyA + "\n", ":3: the same key as line 1"},
		{"comments", "# no key yet\n\n# none\n", "holds no key, only comments"},
		{"empty", "", "got 0 bytes"},
	} {
		_, err := parse(tc.name, tc.content)
		if err == nil || !strings.Contains(err.Error(), "f.toml:5: gossip.secret_key_file: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error with %q, got %v", tc.name, tc.want, err)
		}
		if err != nil && (strings.Contains(err.Error(), "too-short") || strings.Contains(err.Error(), "MDEy")) {
			t.Errorf("%s: the error shows a key: %v", tc.name, err)
		}
	}
	if _, err := parse("badsecond", "# keys\n"+keyA+"\n\ntoo-short-key\n"); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "badsecond")+":4: ") {
		t.Errorf("the error names the file and the line: %v", err)
	}
}

// TestSecretKeyEnvList: $TANDEM_GOSSIP_KEY takes one key as before, or a comma-separated list
// whose first key is the primary.
func TestSecretKeyEnvList(t *testing.T) {
	src := "site = \"s\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	const keyA, keyB = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "fedcba9876543210"
	t.Setenv(GossipKeyEnv, keyA)
	c, err := Parse("f.toml", []byte(src), KindSite)
	if err != nil || len(c.Gossip.SecretKey) != 32 || c.Gossip.DecryptKeys != nil {
		t.Fatalf("one key: err=%v", err)
	}
	if !strings.Contains(c.Redacted(), "# gossip key: 32 bytes, from $"+GossipKeyEnv) {
		t.Errorf("note on one key from the environment:\n%s", c.Redacted())
	}
	// A raw 24-byte key with a comma in it is one key, not a list.
	t.Setenv(GossipKeyEnv, "abcdefghijk,mnopqrstuvwx")
	if c, err := Parse("f.toml", []byte(src), KindSite); err != nil || string(c.Gossip.SecretKey) != "abcdefghijk,mnopqrstuvwx" {
		t.Errorf("raw key with a comma: err=%v", err)
	}
	t.Setenv(GossipKeyEnv, keyB+", "+keyA)
	c, err = Parse("f.toml", []byte(src), KindSite)
	if err != nil || string(c.Gossip.SecretKey) != keyB || len(c.Gossip.DecryptKeys) != 1 || len(c.Gossip.DecryptKeys[0]) != 32 {
		t.Fatalf("two keys: err=%v", err)
	}
	if out := c.Redacted(); !strings.Contains(out, "# gossip key: 2 keys from $"+GossipKeyEnv+", of 16, 32 bytes") || strings.Contains(out, keyB) {
		t.Errorf("note on two keys from the environment:\n%s", out)
	}
	t.Setenv(GossipKeyEnv, keyA+",short")
	if _, err := Parse("f.toml", []byte(src), KindSite); err == nil || !strings.Contains(err.Error(), "$"+GossipKeyEnv+": key 2 of the comma-separated list: key must be 16, 24 or 32 bytes") {
		t.Errorf("bad second key: got %v", err)
	}
}

// TestSecretKeyRawTextOldFile: a key file of one raw printable key, read whole before key files
// could hold a keyring, is read the same way still when it looks like a keyring line by line —
// a key that starts with # (taken for a comment: "holds no key"), or one holding a newline
// (taken for two keys of the wrong size). Loaded before, refused after an upgrade, the site
// would not start.
func TestSecretKeyRawTextOldFile(t *testing.T) {
	dir := t.TempDir()
	base := "site = \"s\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\nsecret_key_file = %q\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, tc := range []struct{ name, content, key string }{
		{"hash", "#Zx9!q2Lm@7vR$e4Tw&8yU*1iO^3pA%5", "#Zx9!q2Lm@7vR$e4Tw&8yU*1iO^3pA%5"},
		{"hash-newline", "#Zx9!q2Lm@7vR$e4\n", "#Zx9!q2Lm@7vR$e4"},
		{"newline", "Zx9!q2Lm@7vR$e4T\nw&8yU*1iO^3pA%5", "Zx9!q2Lm@7vR$e4T\nw&8yU*1iO^3pA%5"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Parse("f.toml", []byte(strings.Replace(base, "%q", `"`+p+`"`, 1)), KindSite)
		if err != nil {
			t.Errorf("%s: a raw key file that loaded before: %v", tc.name, err)
			continue
		}
		if string(c.Gossip.SecretKey) != tc.key || c.Gossip.DecryptKeys != nil {
			t.Errorf("%s: key %d bytes, %d more, want the whole file's %d bytes", tc.name, len(c.Gossip.SecretKey), len(c.Gossip.DecryptKeys), len(tc.key))
		}
	}
}

// TestDialledAddressWithoutHost: an address that is dialled (a server endpoint, which the
// other site's proxy dials; gossip.advertise and join, which the other members dial) given
// without a host is refused with advice that fits it. "0.0.0.0 for every address" is a
// listen address's: an endpoint of 0.0.0.0 is itself refused when gossip is beyond loopback,
// so following the advice only led to the next error.
func TestDialledAddressWithoutHost(t *testing.T) {
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"10.0.0.1:7946\"\njoin = [\"10.0.0.2:7946\"]\n" +
		"[proxy]\n[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"10.0.0.1:7100\"\n" +
		"[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \":5432\"\n"
	_, err := Parse("f.toml", []byte(src), KindSite)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "server.endpoint[0].address" {
		t.Fatalf("got %v, want one error at server.endpoint[0].address", err)
	}
	if strings.Contains(errs[0].Msg, "0.0.0.0") {
		t.Errorf("%s: advises 0.0.0.0, which the same line refuses", errs[0])
	}
	// A listen address keeps the advice.
	lsrc := strings.Replace(src, "listen = \"10.0.0.1:7100\"", "listen = \":7100\"", 1)
	_, err = Parse("f.toml", []byte(lsrc), KindSite)
	if err == nil || !strings.Contains(err.Error(), "0.0.0.0 for every address") {
		t.Errorf("listen without a host: got %v, want the advice to give 0.0.0.0 for every address", err)
	}
}

// TestHealthProxy: an endpoint every listener of which sends a PROXY header gets that version
// for its health check (v2 when they mix v1 and v2); one with a listener that sends none, or
// with no listener, gets none.
func TestHealthProxy(t *testing.T) {
	src := `site = "site1"
priority = 1
data_dir = "/var/lib/tandem"
[gossip]
bind = "127.0.0.1:7946"
join = ["127.0.0.1:7947"]
[server]
health_interval = "200ms"
`
	for _, e := range []string{"mixed", "partly", "v1only", "alone"} {
		src += fmt.Sprintf("[[server.endpoint]]\nname = %q\naddress = \"127.0.0.1:%d\"\nhealth_send = \"PING\\n\"\nhealth_expect = \"PONG\"\n", e, 7000+len(e))
	}
	port := 7100
	for _, l := range [][2]string{{"mixed", "v1"}, {"mixed", "v2"}, {"partly", "v2"}, {"partly", "off"}, {"v1only", "v1"}} {
		port++
		src += fmt.Sprintf("[[proxy.listener]]\nendpoint = %q\nlisten = \"127.0.0.1:%d\"\nsend_proxy = %q\n", l[0], port, l[1])
	}
	c, err := Parse("hp.toml", []byte(src), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"mixed": ProxyV2, "partly": "", "v1only": ProxyV1, "alone": ""}
	for _, e := range c.Server.Endpoints {
		if e.HealthProxy != want[e.Name] {
			t.Errorf("endpoint %s: HealthProxy %q, want %q", e.Name, e.HealthProxy, want[e.Name])
		}
	}
}

// TestLinesWithByteOrderMark: a file that starts with a UTF-8 byte order mark (as Windows
// editors write it), which the TOML decoder accepts, gives its errors their lines too: the
// mark made the first line's key unknown to the line scanner, and a first line that is a
// comment holding "= [" swallowed every line after it.
func TestLinesWithByteOrderMark(t *testing.T) {
	base := "site = \"S1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"bad\"\n"
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"key first", "\ufeff" + base, []string{"f.toml:1: site:", "f.toml:8: server.endpoint[0].address:"}},
		{"comment first", "\ufeff# a = [1\n" + base, []string{"f.toml:2: site:", "f.toml:9: server.endpoint[0].address:"}},
		{"unknown key first", "\ufeffbogus = 1\n" + base, []string{"f.toml:1: bogus: unknown key", "f.toml:2: site:", "f.toml:9: server.endpoint[0].address:"}},
	} {
		_, err := Parse("f.toml", []byte(tc.src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != len(tc.want) {
			t.Errorf("%s: got %v, want %d errors", tc.name, err, len(tc.want))
			continue
		}
		for i, e := range errs {
			if !strings.HasPrefix(e.Error(), tc.want[i]) {
				t.Errorf("%s: error %d is %q, want it to start %q", tc.name, i, e.Error(), tc.want[i])
			}
		}
	}
}

// TestSecretTextFilesByteOrderMark: a users file or an admin token file saved with a UTF-8 byte
// order mark (as Windows editors write text) held its first user as "\ufeffapp", whom no client
// could ever log in as, and a token no client sends.
func TestSecretTextFilesByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(users, []byte("\ufeffapp:pw\r\nreport:pw2\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte("\ufeffs3cret-token\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:6432\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\nusers_file = " + strconv.Quote(users) +
		"\n[admin]\ntoken_file = " + strconv.Quote(token) + "\n"
	c, err := Parse("f.toml", []byte(src), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.TxShim.Users; len(got) != 2 || got["app"] != "pw" {
		t.Errorf("users %q, want app and report", got)
	}
	if c.Admin.Token != "s3cret-token" {
		t.Errorf("token %q, want s3cret-token", c.Admin.Token)
	}
}

// TestSecretKeyFileByteOrderMark: a gossip key file saved with a UTF-8 byte order mark (as
// Windows editors write text, and as users_file and token_file are read since they may be) was
// refused — a base64 key "got 49 bytes", a keyring's first comment taken for a key of the
// wrong size — where the same file without the mark loads.
func TestSecretKeyFileByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	base := "site = \"s\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\nsecret_key_file = %q\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	const keyA, keyB = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "fedcba9876543210"
	for _, tc := range []struct{ name, content string }{
		{"base64", keyA + "\r\n"},
		{"raw", keyB + "\r\n"},
		{"keyring", "# rotation\r\n" + keyA + "\r\n" + keyB + "\r\n"},
	} {
		p := filepath.Join(dir, tc.name)
		var keys [2][][]byte
		for i, content := range []string{tc.content, "\ufeff" + tc.content} {
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Parse("f.toml", []byte(strings.Replace(base, "%q", strconv.Quote(p), 1)), KindSite)
			if err != nil {
				t.Errorf("%s (byte order mark: %v): %v", tc.name, i == 1, err)
				continue
			}
			keys[i] = append([][]byte{c.Gossip.SecretKey}, c.Gossip.DecryptKeys...)
		}
		if fmt.Sprintf("%q", keys[0]) != fmt.Sprintf("%q", keys[1]) {
			t.Errorf("%s: keys %q with the byte order mark, %q without", tc.name, keys[1], keys[0])
		}
	}
}

// TestTypeErrorEarlierTableOfArray: a key of the wrong type in one table of an array of tables is
// reported once, at its own line, when a later table of the array sets the same key right. The
// decoder names the line of the key's last occurrence in the file (it keeps one position per
// key without index): the error was given at the valid later line, and again at its own.
func TestTypeErrorEarlierTableOfArray(t *testing.T) {
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[[proxy.listener]]\nendpoint = \"op\"\nlisten = 5\n" + // line 11: the wrong type
		"[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:4\"\n" + // line 14: right
		"[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:5\"\n" // line 17: right
	_, err := Parse("f.toml", []byte(src), KindSite)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	if len(errs) != 1 || errs[0].Line != 11 || errs[0].Key != "proxy.listener[0].listen" || !strings.Contains(errs[0].Msg, "incompatible types") {
		t.Fatalf("got %d errors:\n%v\nwant one: f.toml:11: proxy.listener[0].listen: incompatible types", len(errs), err)
	}
}

// TestLinesInMultilineInlineTables: an error about a key of an inline table that spans lines
// (TOML 1.1, which the decoder reads) names the key's own line, as it does for a [table]: it
// named the line of the inline table's first key (gossip = {), or of the array that holds it.
func TestLinesInMultilineInlineTables(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	cases := []struct {
		name, src string
		line      int
		key, msg  string
	}{
		{"inline table", strings.Replace(base, "[gossip]\nbind = \"127.0.0.1:1\"\n", "gossip = {\n  bind = \"127.0.0.1:1\",\n  profile = \"slow\",\n}\n", 1), 5, "gossip.profile", "must be one of"},
		{"unknown key in an inline table", strings.Replace(base, "[gossip]\nbind = \"127.0.0.1:1\"\n", "gossip = {\n  bind = \"127.0.0.1:1\",\n  bogus = 1,\n}\n", 1), 5, "gossip.bogus", "unknown key"},
		{"array of inline tables", strings.Replace(base, "[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n",
			"endpoint = [\n  { name = \"op\", address = \"127.0.0.1:2\" },\n  { name = \"op2\",\n    address = \"127.0.0.1:0\" },\n]\n", 1), 9, "server.endpoint[1].address", "port 0"},
		{"element of a multi-line array", base + "[proxy]\ntrusted_cidrs = [\n  \"127.0.0.1\",\n  \"nope\", # [x]\n]\n", 12, "proxy.trusted_cidrs[1]", "CIDR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.toml", []byte(tc.src), KindSite)
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 {
				t.Fatalf("want one error, got %v", err)
			}
			if e := errs[0]; e.Line != tc.line || e.Key != tc.key || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %q, want f.toml:%d: %s: ~%q", e.Error(), tc.line, tc.key, tc.msg)
			}
		})
	}
}

// TestKeysOtherCase: a key spelled in another case than the reference's (Priority, [Gossip],
// Failback) is no key of the file's: it is refused, at its line, as an unknown key is. The
// decoder matched it to the key of the same letters, so it was taken without a word: a witness's
// file then set the priority, hooks or failback it refuses (checked by the lower-case spelling
// only), and two spellings of one key in a file (failback and Failback) gave one or the other,
// as the decoder's map order fell.
func TestKeysOtherCase(t *testing.T) {
	witness := "site = \"w\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\njoin = [\"127.0.0.1:2\"]\n"
	_, err := Parse("w.toml", []byte("Priority = 7\n"+strings.Replace(witness, "[gossip]\n", "[gossip]\nFailback = \"manual\"\n", 1)+"[Hooks]\non_promote = [\"/bin/true\"]\n"), KindWitness)
	for _, want := range []string{"w.toml:1: Priority:", "w.toml:5: gossip.Failback:", "w.toml:8: Hooks:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q among the errors, got %v", want, err)
		}
	}
	site := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\nfailback = \"auto\"\nFailback = \"manual\"\n[server]\n[[server.endpoint]]\nName = \"op\"\naddress = \"127.0.0.1:2\"\n"
	_, err = Parse("f.toml", []byte(site), KindSite)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 || errs[0].Line != 6 || errs[0].Key != "gossip.Failback" || errs[1].Line != 9 || errs[1].Key != "server.endpoint[0].Name" {
		t.Fatalf("got %v\nwant f.toml:6: gossip.Failback and f.toml:9: server.endpoint[0].Name refused", err)
	}
}

// TestGossipAddressZone: a gossip address with an IPv6 zone (fe80::1%eth0) is refused at its
// line. memberlist reads addresses with net.ParseIP, which takes no zone: such a bind failed
// tandem run and check-config with an error naming no line, an advertise address passed
// check-config and failed tandem run at start, and a join address was looked up as a host name
// for ever.
func TestGossipAddressZone(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, tc := range []struct{ from, to, key string }{
		{"bind = \"127.0.0.1:1\"", "bind = \"[fe80::1%lo]:1\"", "gossip.bind"},
		{"bind = \"127.0.0.1:1\"", "bind = \"[::]:1\"\nadvertise = \"[fe80::1%lo]:1\"", "gossip.advertise"},
		{"bind = \"127.0.0.1:1\"", "bind = \"127.0.0.1:1\"\njoin = [\"[fe80::2%lo]:1\"]", "gossip.join[0]"},
	} {
		src := strings.Replace(base, tc.from, tc.to, 1)
		line := strings.Count(src[:strings.Index(src, "%lo")], "\n") + 1
		_, err := Parse("f.toml", []byte(src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Line != line || errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, "zone") {
			t.Errorf("%s: got %v, want one error at f.toml:%d %s about the zone", tc.to, err, line, tc.key)
		}
	}
}

// TestTypeErrorWords: an error about a value of the wrong type says what the key wants and what
// the file gives in TOML's words. The decoder's own named the Go types of the program: a table
// given a string printed the Go struct the table is read into, every field and tag of it, and
// an endpoint written as one inline table "map[string]any" and "slice".
func TestTypeErrorWords(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, tc := range []struct{ src, key, want string }{
		{strings.Replace(base, "[gossip]\nbind = \"127.0.0.1:1\"\n", "gossip = \"127.0.0.1:1\"\n", 1), "gossip", "incompatible types: want a table, found a string"},
		{strings.Replace(base, "[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n", "endpoint = { name = \"op\", address = \"127.0.0.1:2\" }\n", 1), "server.endpoint", "incompatible types: want an array, found a table"},
		{strings.Replace(base, "\"s1\"", "1", 1), "site", "incompatible types: want a string, found an integer"},
		{base + "priority = true\n", "server.endpoint[0].priority", "unknown key"},
		{strings.Replace(base, "site = \"s1\"\n", "site = \"s1\"\npriority = \"1\"\n", 1), "priority", "incompatible types: want an integer, found a string"},
	} {
		_, err := Parse("f.toml", []byte(tc.src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || !slices.ContainsFunc(errs, func(e *Error) bool { return e.Key == tc.key && e.Msg == tc.want }) {
			t.Errorf("got %v\nwant %s: %s", err, tc.key, tc.want)
		}
	}
}

// TestDSNKeyValuePasswordWithScheme: a key=value connection string whose password (or another
// value) holds "://" is a key=value string, as the database clients read it (they take a URL
// only at a postgres:// or postgresql:// prefix): it was refused as "must be a postgres:// URL",
// and RedactDSN read it as a URL, dropping what followed an '@' in a later value.
func TestDSNKeyValuePasswordWithScheme(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:6432\"\n"
	src := base + "local_dsn = \"host=127.0.0.1 password=pw://s3cret dbname=wire\"\n" +
		"peer_dsn = \"host=10.0.0.2 password='pw://s3cret@x' application_name=tandem@site1 dbname=wire\"\n"
	c, err := Parse("f.toml", []byte(src), KindSite)
	if err != nil {
		t.Fatalf("a key=value string with :// in its password: %v", err)
	}
	out := c.Redacted()
	if strings.Contains(out, "s3cret") {
		t.Errorf("check-config output shows the password:\n%s", out)
	}
	for _, want := range []string{`local_dsn = "host=127.0.0.1 password=redacted dbname=wire"`, `peer_dsn = "host=10.0.0.2 password=redacted application_name=tandem@site1 dbname=wire"`} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config output lacks %s:\n%s", want, out)
		}
	}
	// A URL of another scheme is still refused.
	_, err = Parse("f.toml", []byte(base+"local_dsn = \"mysql://a:s3cret@b/c\"\npeer_dsn = \"host=10.0.0.2 dbname=wire\"\n"), KindSite)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.local_dsn" || errs[0].Line != 11 || !strings.Contains(errs[0].Msg, "postgres:// URL") {
		t.Errorf("mysql://: got %v, want f.toml:11: txshim.local_dsn: must be a postgres:// URL", err)
	}
}

// TestLocalhostAnyCase: a host named localhost in another case (LOCALHOST, Localhost) is
// loopback, as the resolver and tandem run's binding take it (names are case-insensitive), and as
// the address conflict checks and the admin API took it already: admin.listen and txshim.listen
// on it were refused as reachable beyond loopback, and a server endpoint on it passed when the
// other site reaches this one beyond loopback (its proxy would dial its own host).
func TestLocalhostAnyCase(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, src := range []string{
		base + "[admin]\nlisten = \"LOCALHOST:7180\"\n",
		base + "[admin]\nlisten = \"Localhost:7180\"\n",
		base + "[txshim]\nlisten = \"LOCALHOST:6432\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\n",
	} {
		if _, err := Parse("f.toml", []byte(src), KindSite); err != nil {
			t.Errorf("%s\nrefused: %v", src[strings.LastIndex(src, "listen"):], err)
		}
	}
	remote := strings.Replace(strings.Replace(base, "127.0.0.1:1", "10.0.0.1:7946", 1), "127.0.0.1:2", "LOCALHOST:7000", 1) +
		"[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"0.0.0.0:7100\"\n"
	_, err := Parse("f.toml", []byte(remote), KindSite)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "server.endpoint[0].address" || errs[0].Line != 8 || !strings.Contains(errs[0].Msg, "loopback") {
		t.Errorf("endpoint LOCALHOST:7000, gossip at 10.0.0.1: got %v, want f.toml:8: server.endpoint[0].address refused as loopback", err)
	}
}

// wantErrors parses src and checks its errors, in order, each by the start of its text.
func wantErrors(t *testing.T, src string, want ...string) {
	t.Helper()
	_, err := Parse("f.toml", []byte(src), KindSite)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	ok := len(errs) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(errs[i].Error(), want[i])
	}
	if !ok {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// TestTypeErrorInInlineTableKeepsOthers: a key of the wrong type in an inline table (one of an
// array of them, endpoint = [ ... ], or gossip = { ... }) is reported at its own line with every
// other error of the file, and no more. The decoder stops at the first such value: its line was
// blanked to decode again, which took the whole element, or the whole array or table, with it
// (a listener naming that endpoint, "at least one [[server.endpoint]]", gossip.bind "required"
// were reported though the file sets them), and for an element spanning lines left a syntax
// error, after which nothing else was reported.
func TestTypeErrorInInlineTableKeepsOthers(t *testing.T) {
	head := "site = \"s1\"\ndata_dir = \"/d\"\ncolour = 1\n[gossip]\nbind = \"127.0.0.1:1\"\nfailback_delay = \"x\"\n[server]\n"
	listeners := "[[proxy.listener]]\nendpoint = \"op2\"\nlisten = \"127.0.0.1:9\"\n[[proxy.listener]]\nendpoint = \"nope\"\nlisten = \"127.0.0.1:10\"\n"
	others := func(address, addressLine, nopeLine int) []string {
		return []string{
			"f.toml:3: colour: unknown key",
			"f.toml:6: gossip.failback_delay: \"x\" is not a duration",
			fmt.Sprintf("f.toml:%d: server.endpoint[%d].address: incompatible types: want a string, found an integer", addressLine, address),
			fmt.Sprintf("f.toml:%d: proxy.listener[1].endpoint: \"nope\" names no [[server.endpoint]]", nopeLine),
		}
	}
	t.Run("element spanning lines", func(t *testing.T) {
		wantErrors(t, head+"endpoint = [\n  { name = \"op\", address = \"127.0.0.1:2\" },\n  { name = \"op2\",\n    address = 5 },\n]\n"+listeners, others(1, 11, 17)...)
	})
	t.Run("element spanning lines, after a byte order mark", func(t *testing.T) {
		wantErrors(t, byteOrderMark+head+"endpoint = [\n  { name = \"op\", address = \"127.0.0.1:2\" },\n  { name = \"op2\",\n    address = 5 },\n]\n"+listeners, others(1, 11, 17)...)
	})
	t.Run("element on a line", func(t *testing.T) {
		wantErrors(t, head+"endpoint = [\n  { name = \"op\", address = \"127.0.0.1:2\" },\n  { name = \"op2\", address = 5 },\n]\n"+listeners, others(1, 10, 16)...)
	})
	t.Run("element on the array's first line", func(t *testing.T) {
		wantErrors(t, head+"endpoint = [ { name = \"op2\", address = 5 },\n  { name = \"op\", address = \"127.0.0.1:2\" },\n]\n"+listeners, others(0, 8, 15)...)
	})
	t.Run("inline table", func(t *testing.T) {
		wantErrors(t, "site = \"s1\"\ndata_dir = \"/d\"\ncolour = 1\ngossip = { bind = \"127.0.0.1:1\", profile = 5, failback = \"x\" }\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n",
			"f.toml:3: colour: unknown key",
			"f.toml:4: gossip.failback: \"x\": must be one of",
			"f.toml:4: gossip.profile: incompatible types: want a string, found an integer")
	})
}

// TestTypeErrorOnTableHeaderKeepsOthers: a table header of the wrong kind ([proxy.listener] where
// an array of tables is wanted, [[gossip]] where a table is) is reported at its line with every
// other error of the file, the keys under it read as the header's right kind would have them.
// The decoder's error named the header's line, which held no key to blank: the loader stopped
// there, and printed that error alone.
func TestTypeErrorOnTableHeaderKeepsOthers(t *testing.T) {
	head := "site = \"s1\"\ndata_dir = \"/d\"\ncolour = 1\n[gossip]\nbind = \"127.0.0.1:1\"\nfailback_delay = \"x\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	t.Run("table for an array of tables", func(t *testing.T) {
		wantErrors(t, head+"[proxy.listener]\nendpoint = \"nope\"\nlisten = \"127.0.0.1:9\"\n",
			"f.toml:3: colour: unknown key",
			"f.toml:6: gossip.failback_delay: \"x\" is not a duration",
			"f.toml:11: proxy.listener: incompatible types: want an array, found a table",
			"f.toml:12: proxy.listener[0].endpoint: \"nope\" names no [[server.endpoint]]")
	})
	t.Run("table for an array of tables, endpoint", func(t *testing.T) {
		wantErrors(t, strings.Replace(head, "[[server.endpoint]]", "[server.endpoint]", 1)+"[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:9\"\n",
			"f.toml:3: colour: unknown key",
			"f.toml:6: gossip.failback_delay: \"x\" is not a duration",
			"f.toml:8: server.endpoint: incompatible types: want an array, found a table")
	})
	t.Run("array of tables for a table", func(t *testing.T) {
		wantErrors(t, strings.Replace(head, "[gossip]", "[[gossip]]", 1)+"[[proxy.listener]]\nendpoint = \"nope\"\nlisten = \"127.0.0.1:9\"\n",
			"f.toml:3: colour: unknown key",
			"f.toml:4: gossip: incompatible types: want a table, found an array of tables",
			"f.toml:6: gossip.failback_delay: \"x\" is not a duration",
			"f.toml:12: proxy.listener[0].endpoint: \"nope\" names no [[server.endpoint]]")
	})
	t.Run("array of tables for a table, twice", func(t *testing.T) {
		// Read as one table they would set bind twice: their keys are left unread, and none is
		// reported "required" for that.
		wantErrors(t, strings.Replace(head, "[gossip]", "[[gossip]]\nbind = \"127.0.0.1:1\"\n[[gossip]]", 1)+"[[proxy.listener]]\nendpoint = \"nope\"\nlisten = \"127.0.0.1:9\"\n",
			"f.toml:3: colour: unknown key",
			"f.toml:4: gossip: incompatible types: want a table, found an array of tables",
			"f.toml:14: proxy.listener[0].endpoint: \"nope\" names no [[server.endpoint]]")
	})
	t.Run("array of tables with a table under it", func(t *testing.T) {
		wantErrors(t, head+"[[proxy]]\nconnect_timeout = \"soon\"\n[[proxy.listener]]\nendpoint = \"nope\"\nlisten = \"127.0.0.1:9\"\n",
			"f.toml:3: colour: unknown key",
			"f.toml:6: gossip.failback_delay: \"x\" is not a duration",
			"f.toml:11: proxy: incompatible types: want a table, found an array of tables",
			"f.toml:12: proxy.connect_timeout: \"soon\" is not a duration",
			"f.toml:14: proxy.listener[0].endpoint: \"nope\" names no [[server.endpoint]]")
	})
}

// TestGossipMappedWildcard: the IPv4 wildcard written as an IPv4-mapped IPv6 address
// ([::ffff:0.0.0.0]) is a wildcard as [::] is: as gossip.bind without gossip.advertise it is
// refused (memberlist picks an address of the host's only for a bind written 0.0.0.0, and
// advertised "::" to the others, which cannot reach it), and as gossip.advertise it is refused.
// Both loaded, and check-config printed the file as good.
func TestGossipMappedWildcard(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, tc := range []struct{ to, key string }{
		{"bind = \"[::ffff:0.0.0.0]:7946\"", "gossip.bind"},
		{"bind = \"0.0.0.0:7946\"\nadvertise = \"[::ffff:0.0.0.0]:7946\"", "gossip.advertise"},
	} {
		src := strings.Replace(base, "bind = \"127.0.0.1:1\"", tc.to, 1)
		line := strings.Count(src[:strings.Index(src, "::ffff")], "\n") + 1
		_, err := Parse("f.toml", []byte(src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Line != line || errs[0].Key != tc.key || !strings.Contains(errs[0].Msg, "reach") {
			t.Errorf("%s: got %v, want one error at f.toml:%d %s: the others cannot reach it", tc.to, err, line, tc.key)
		}
	}
	ok := strings.Replace(base, "bind = \"127.0.0.1:1\"", "bind = \"[::ffff:0.0.0.0]:7946\"\nadvertise = \"10.0.0.1:7946\"", 1)
	if _, err := Parse("f.toml", []byte(ok), KindSite); err != nil {
		t.Errorf("with an advertise address: %v", err)
	}
}

// TestTypeErrorDottedKeyUnderValue: a dotted key under a key that takes a value (health.interval
// for health_interval, where server.health is a string) is reported at its line, in TOML's words,
// with every other error of the file. The decoder gives no line for the table such a key makes:
// the error named neither line nor key, spoke of Go types ("TOML value has type map[string]any;
// destination has type string"), and was the only one printed.
func TestTypeErrorDottedKeyUnderValue(t *testing.T) {
	head := "site = \"s1\"\ndata_dir = \"/d\"\ncolour = 1\n[gossip]\nbind = \"127.0.0.1:1\"\nfailback_delay = \"x\"\n"
	wantErrors(t, head+"[server]\nhealth.interval = \"2s\"\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n",
		"f.toml:3: colour: unknown key",
		"f.toml:6: gossip.failback_delay: \"x\" is not a duration",
		"f.toml:8: server.health: incompatible types: want a string, found a table")
}

// TestTypeErrorsOneLineOfInlineTables: two keys of the wrong type on one line, in two inline
// tables of an array, are both reported, and neither table's key is then "required". The second
// error was dropped or reported with a "required" for one of the two tables, picked at random.
func TestTypeErrorsOneLineOfInlineTables(t *testing.T) {
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\nendpoint = [{name = 5, address = \"127.0.0.1:2\"}, {name = 6, address = \"127.0.0.1:3\"}]\n"
	for range 5 { // the random pick
		wantErrors(t, src,
			"f.toml:6: server.endpoint[0].name: incompatible types: want a string, found an integer",
			"f.toml:6: server.endpoint[1].name: incompatible types: want a string, found an integer")
	}
}

// TestErrorLineOfImplicitTable: an error about a table the file makes only through the keys or
// tables under it ([[proxy.listener]] without [proxy], gossip.join = [...] without [gossip]) names
// the line of the first of them, as an error about a missing key of a table names the table's
// line. It named no line: "bad.toml: proxy: a witness has no [proxy]", "site1.toml: gossip.bind:
// required".
func TestErrorLineOfImplicitTable(t *testing.T) {
	_, err := Parse("w.toml", []byte("site = \"w\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:9\"\n"), KindWitness)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "proxy" || errs[0].Line != 5 {
		t.Errorf("witness with [[proxy.listener]]: got %v, want w.toml:5: proxy: a witness has no [proxy]", err)
	}
	_, err = Parse("f.toml", []byte("site = \"s1\"\ndata_dir = \"/d\"\ngossip.join = [\"127.0.0.1:3\"]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"), KindSite)
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "gossip.bind" || errs[0].Line != 3 || !strings.Contains(errs[0].Msg, "required") {
		t.Errorf("gossip.join without [gossip]: got %v, want f.toml:3: gossip.bind: required", err)
	}
}

// TestPortWithSign: a port written with a sign (127.0.0.1:+0) is refused as not a number:
// strconv.Atoi reads one, so a server endpoint on "+0" or "-0" passed the check against port 0
// and was never dialable, and a gossip.join address with one passed check-config, though
// memberlist reads the port without a sign and could not join it.
func TestPortWithSign(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	if _, err := Parse("f.toml", []byte(strings.Replace(base, "bind = \"127.0.0.1:1\"", "bind = \"127.0.0.1:1\"\njoin = [\"10.0.0.2:+7946\"]", 1)), KindSite); err == nil || !strings.Contains(err.Error(), "f.toml:5: gossip.join[0]:") {
		t.Errorf("join 10.0.0.2:+7946: got %v, want f.toml:5: gossip.join[0] refused", err)
	}
	for _, addr := range []string{"127.0.0.1:+0", "127.0.0.1:-0", "127.0.0.1:+5432"} {
		_, err := Parse("f.toml", []byte(strings.Replace(base, "127.0.0.1:2", addr, 1)), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "server.endpoint[0].address" || errs[0].Line != 8 || !strings.Contains(errs[0].Msg, "port") {
			t.Errorf("%s: got %v, want one error at f.toml:8 server.endpoint[0].address about the port", addr, err)
		}
	}
}

// TestTLSFileAlone: txshim.tls_key_file given without tls_cert_file (or the other way) is reported
// at the key the file sets: the error named tls_cert_file, at the [txshim] line, when the file set
// only tls_key_file.
func TestTLSFileAlone(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:6432\"\nlocal_dsn = \"postgres://a@b/c\"\npeer_dsn = \"postgres://a@d/c\"\n"
	for _, key := range []string{"tls_key_file", "tls_cert_file"} {
		_, err := Parse("f.toml", []byte(base+key+" = \"/nonexistent/x.pem\"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim."+key || errs[0].Line != 13 || !strings.Contains(errs[0].Msg, "go together") {
			t.Errorf("%s alone: got %v, want f.toml:13: txshim.%s: ... go together", key, err, key)
		}
	}
}

// TestTrustedCIDRZone: a trusted_cidrs entry with an IPv6 zone is refused at its line, naming
// the zone. netip reads "fe80::1%eth0/64" as the address fe80::1 in a zone "eth0/64", and the
// prefix built from it dropped the zone: the entry was taken, silently, as fe80::1/128 alone
// (and "fe80::1%eth0" as that address on every interface, the proxy matching peers without
// theirs).
func TestTrustedCIDRZone(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, cidr := range []string{"fe80::1%eth0/64", "fe80::1%eth0", "fe80::%eth0/10", "::ffff:10.0.0.1%x"} {
		src := base + "[proxy]\ntrusted_cidrs = [\n  \"10.0.0.0/8\",\n  \"" + cidr + "\",\n]\n"
		_, err := Parse("f.toml", []byte(src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Line != 12 || errs[0].Key != "proxy.trusted_cidrs[1]" || !strings.Contains(errs[0].Msg, "zone") {
			t.Errorf("%s: got %v, want one error at f.toml:12 proxy.trusted_cidrs[1] about the zone", cidr, err)
		}
	}
}

// TestKeyGivenTwice: a key (a listener's send_proxy, say) or a table given twice is reported
// at the second, by its key with the index of its table in an array, and with the line of the
// first. The decoder's error named the key without its index (proxy.listener.send_proxy of the
// second listener), a table given twice by no key at all, and neither said where the first was.
func TestKeyGivenTwice(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	listeners := "[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:3\"\nsend_proxy = \"v1\"\n" +
		"[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:4\"\nsend_proxy = \"v1\"\naccept_proxy = \"off\"\n"
	for _, tc := range []struct {
		src, key        string
		line, firstLine int
	}{
		{base + listeners + "send_proxy = \"v2\"\n", "proxy.listener[1].send_proxy", 18, 16},
		{base + listeners + "\"send_proxy\" = \"v2\"\n", "proxy.listener[1].send_proxy", 18, 16},
		{base + "[proxy]\nmax_conns = 3\nmax_conns = 4\n", "proxy.max_conns", 11, 10},
		{base + "[admin]\nlisten = \"127.0.0.1:5\"\n[admin]\nlisten = \"127.0.0.1:6\"\n", "admin", 11, 9},
	} {
		_, err := Parse("f.toml", []byte(tc.src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Line != tc.line || errs[0].Key != tc.key ||
			!strings.Contains(errs[0].Msg, fmt.Sprintf("first at line %d", tc.firstLine)) {
			t.Errorf("got %v, want one error at f.toml:%d %s given twice, first at line %d", err, tc.line, tc.key, tc.firstLine)
		}
	}
}

// TestRedactedQueryPasswordNetURLDrops: a password given as a URL parameter that net/url's query
// reader drops (a ';' in it, or a bad '%' escape) was printed by check-config as written: RedactDSN
// looked for it among the parameters net/url read. Such a string is refused now (lib/pq, which
// reads its parameters through net/url, connected without the password: the parse error says
// how to write it, TestDSNClientsReadDifferently), and RedactDSN still hides the password, in
// the error and wherever the string is shown.
func TestRedactedQueryPasswordNetURLDrops(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\nlocal_dsn = \"postgres://a@b/c\"\n"
	const dropped = "postgres://u@10.0.0.2/db?sslmode=disable&password=s3c;ret"
	_, err := Parse("f.toml", []byte(base+"peer_dsn = \""+dropped+"\"\n"), KindSite)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.peer_dsn" || errs[0].Line != 12 || !strings.Contains(errs[0].Msg, "%3B") {
		t.Errorf("got %v, want one error at f.toml:12 txshim.peer_dsn saying to write ';' as %%3B", err)
	}
	if err != nil && strings.Contains(err.Error(), "s3c") {
		t.Errorf("the error shows the password: %v", err)
	}
	c, err := Parse("f.toml", []byte(base+"peer_dsn = \"postgres://u@10.0.0.2/db?sslmode=disable\"\n"), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	c.TxShim.PeerDSN = dropped // a Config built by a program, not read from a file
	if out := c.Redacted(); strings.Contains(out, "s3c") {
		t.Errorf("check-config shows the password:\n%s", out)
	}
	for _, dsn := range []string{
		"postgres://u@h/db?password=s3c;ret",
		"postgres://u@h/db?sslpassword=s3c;ret&sslmode=disable",
		"postgres://u@h/db?password=s3c%zzret",
		"postgres://u@h/db?PassWord=s3c;ret",
	} {
		if got := RedactDSN(dsn); strings.Contains(got, "s3c") {
			t.Errorf("RedactDSN(%q) = %q: shows the password", dsn, got)
		}
	}
}

// TestRedactDSNMalformed: RedactDSN hides the password of a connection string the clients cannot
// read as well — the one whose error quotes it (the shim's, pgconn's) — but showed part or all of
// it when a URL had a leading space (read as key=value settings), a quoted password was not
// closed, an unquoted one held a space (the words after it), or its '=' was missing.
func TestRedactDSNMalformed(t *testing.T) {
	for _, dsn := range []string{
		" postgres://u:s3cret@pghost/db",
		"\tpostgresql://u:s3cret@pghost/db",
		"host=pghost password='s3c ret",
		"host=pghost password='s3c\\' ret",
		"host=pghost password=s3c ret dbname=x",
		"host=pghost password=s3c r3t",
		"host=pghost password s3cret",
		"host=pghost password s3c ret dbname=x",
		"host=pghost password = s3c ret",
		"postgres://u:p#ss@pghost/db?password=s3c ret",
		"postgres://u:p#ss@pghost/db?password='s3c ret",
	} {
		got := RedactDSN(dsn)
		if strings.Contains(got, "s3c") || strings.Contains(got, "ret") || strings.Contains(got, "r3t") {
			t.Errorf("RedactDSN(%q) = %q: shows the password", dsn, got)
		}
		if !strings.Contains(got, "pghost") {
			t.Errorf("RedactDSN(%q) = %q: hides the host too", dsn, got)
		}
	}
	// What follows the password is shown.
	for in, want := range map[string]string{
		"host=pghost password=s3c ret dbname=x": "host=pghost password=redacted dbname=x",
		"host=pghost password s3c ret dbname=x": "host=pghost password redacted dbname=x",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRedactDSNUnicodeSpace: redactKV ended an unquoted value at any Unicode space, as lib/pq
// reads one, but libpq and pgconn (the shim's client) end it at an ASCII space only: a
// password holding a no-break space and then an '=' (password=s3c\u00a0r=et) was shown from
// that space on, as a setting of its own. A password runs to an ASCII space; another value
// still ends at any space, so that a setting lib/pq reads after it is seen.
func TestRedactDSNUnicodeSpace(t *testing.T) {
	for _, dsn := range []string{
		"host=pghost password=s3c\u00a0r=et dbname=x",
		"host=pghost password=s3c\u2003r=et",
		"host=pghost sslpassword=s3c\u00a0r=et",
		"host=pghost\u00a0password=s3c\u00a0r=et",
		"host=pghost\u00a0password=s3cret",
	} {
		got := RedactDSN(dsn)
		if strings.Contains(got, "s3c") || strings.Contains(got, "et") {
			t.Errorf("RedactDSN(%q) = %q: shows the password", dsn, got)
		}
		if !strings.Contains(got, "pghost") {
			t.Errorf("RedactDSN(%q) = %q: hides the host too", dsn, got)
		}
	}
}

// TestJoinPortZero: a gossip.join address on port 0 is refused at its line and key. Port 0 is
// "any free port" to listen on, and no member listens there: the member re-joined it for ever
// and never found the peer, while check-config passed the file (gossip.advertise and a server
// endpoint on port 0 are refused so already).
func TestJoinPortZero(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, addr := range []string{"10.0.0.2:0", "[::1]:00"} {
		src := strings.Replace(base, "bind = \"127.0.0.1:1\"", "bind = \"127.0.0.1:1\"\njoin = [\n  \"10.0.0.3:7946\",\n  \""+addr+"\",\n]", 1)
		_, err := Parse("f.toml", []byte(src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "gossip.join[1]" || errs[0].Line != 7 || !strings.Contains(errs[0].Msg, "port 0") {
			t.Errorf("join %s: got %v, want one error at f.toml:7 gossip.join[1] about port 0", addr, err)
		}
	}
}

// TestHostNeitherIPNorName: an address whose host is neither an IP address nor a host name a
// resolver looks up (10.0.0.256, a dotted number short of four parts, a name with a space) is
// refused at its line and key. It passed check-config, and then a listen failed at start, while
// a server endpoint's health check and the proxy's dial failed for as long as the member ran
// ("lookup 10.0.0.256: no such host"); glibc's resolver reads 127.1 and 0 as 127.0.0.1 and
// 0.0.0.0, Go's as names it finds nowhere, so what they meant hung on how tandem was built.
func TestHostNeitherIPNorName(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\njoin = [\"127.0.0.1:9\"]\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:3\"\n"
	for _, tc := range []struct{ from, to, key string }{
		{"127.0.0.1:2", "10.0.0.256:5432", "server.endpoint[0].address"},
		{"127.0.0.1:2", "127.1:5432", "server.endpoint[0].address"},
		{"127.0.0.1:2", "10.0.0.1.:5432", "server.endpoint[0].address"},
		{"127.0.0.1:2", "db server:5432", "server.endpoint[0].address"},
		{"127.0.0.1:2", "db..example:5432", "server.endpoint[0].address"},
		{"127.0.0.1:3", "0:7100", "proxy.listener[0].listen"},
		{"127.0.0.1:9", "10.0.0.3.4:7946", "gossip.join[0]"},
	} {
		_, err := Parse("f.toml", []byte(strings.Replace(base, tc.from, tc.to, 1)), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != tc.key || errs[0].Line == 0 || !strings.Contains(errs[0].Msg, "neither an IP address nor a host name") {
			t.Errorf("%s: got %v, want one error at %s: neither an IP address nor a host name", tc.to, err, tc.key)
		}
	}
	for _, addr := range []string{"db.example.com:5432", "db-1_a.example.:5432", "localhost:5432", "[::1]:5432", "DB1:5432"} {
		if _, err := Parse("f.toml", []byte(strings.Replace(base, "127.0.0.1:2", addr, 1)), KindSite); err != nil {
			t.Errorf("endpoint %s: %v", addr, err)
		}
	}
}

// TestDSNHostNeitherIPNorName: a connection string's host that is neither an IP address nor a
// host name (10.0.0.256, 127.1) is refused at its line and key, as such a host of an address is:
// the clients parse it, and every connection then fails to look it up (no such host).
func TestDSNHostNeitherIPNorName(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:6432\"\nlocal_dsn = \"host=/tmp dbname=a user=u\"\n"
	for _, dsn := range []string{"host=10.0.0.256 dbname=a user=u", "postgres://u@127.1:5432/a", "host=db.example,10.0.0.2.3 dbname=a user=u"} {
		_, err := Parse("f.toml", []byte(base+"peer_dsn = \""+dsn+"\"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.peer_dsn" || errs[0].Line != 12 || !strings.Contains(errs[0].Msg, "neither an IP address nor a host name") {
			t.Errorf("%s: got %v, want one error at f.toml:12 txshim.peer_dsn: neither an IP address nor a host name", dsn, err)
		}
	}
	if _, err := Parse("f.toml", []byte(base+"peer_dsn = \"host=db.example,10.0.0.2 dbname=a user=u\"\n"), KindSite); err != nil {
		t.Errorf("hosts db.example and 10.0.0.2: %v", err)
	}
}

// TestRedactedCommandPasswords: check-config shows no password written in a command's arguments
// (server.health_command, the hooks): a connection string's (a URL's user:password@, a
// key=value password=), nor an environment setting's (PGPASSWORD=) — it printed them as
// written, though it hides the same password in local_dsn and the README says secrets are never
// shown. An argument without one is printed as written.
func TestRedactedCommandPasswords(t *testing.T) {
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n" +
		"[server]\nhealth = \"exec\"\nhealth_command = [\"psql\", \"-d\", \"postgresql://monitor:s3cret@127.0.0.1/wire\", \"-c\", \"select 1\"]\n" +
		"[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[hooks]\non_promote = [\"env\", \"PGPASSWORD=s3cret\", \"psql\", \"--dbname=host=10.0.0.2 password='s3 cret' dbname=wire\"]\n" +
		"on_demote = [\"sh\", \"-c\", \"PGPASSWORD=\\\"s3cret\\\" psql -c 'select 1' && echo \\\"$TANDEM_SITE is master of term $TANDEM_TERM\\\" >>/tmp/a@b:c\"]\n"
	c, err := Parse("f.toml", []byte(src), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	out := c.Redacted()
	if strings.Contains(out, "s3") || strings.Contains(out, "cret") || !strings.Contains(out, `# a password written in a command's arguments reads "redacted"`) {
		t.Errorf("check-config output shows a password of a command:\n%s", out)
	}
	for _, kept := range []string{`"-c", "select 1"`, `postgresql://monitor:redacted@127.0.0.1/wire`, `psql -c 'select 1' && echo \"$TANDEM_SITE is master of term $TANDEM_TERM\" >>/tmp/a@b:c`} {
		if !strings.Contains(out, kept) {
			t.Errorf("check-config output lacks %s:\n%s", kept, out)
		}
	}
}

// TestDataDirNotADirectory: a data_dir that is a file, or under one, is refused at its line and
// key. It loaded, and then tandem run failed to make it, and check-config failed on reading
// the state files in it with an error naming neither line nor key ("f.toml: load split-brain
// mark: open .../split-brain.json: not a directory"). A data_dir not made yet still loads.
func TestDataDirNotADirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := "site = \"s1\"\ndata_dir = %q\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, d := range []string{file, filepath.Join(file, "sub")} {
		_, err := Parse("f.toml", []byte(fmt.Sprintf(base, d)), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "data_dir" || errs[0].Line != 2 || !strings.Contains(errs[0].Msg, "not a directory") {
			t.Errorf("data_dir %s: got %v, want one error at f.toml:2 data_dir: not a directory", d, err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "new", "site1")} {
		if _, err := Parse("f.toml", []byte(fmt.Sprintf(base, d)), KindSite); err != nil {
			t.Errorf("data_dir %s: %v", d, err)
		}
	}
}

// TestAdvertiseUnreachableFromBind: a gossip.advertise address the bind address does not listen
// on is refused at its line: with a loopback bind (127.0.0.1) only that address reaches the
// member, and a loopback advertise address with a bind on another one reaches nothing. Both
// loaded, and the others then dialled an address where no member listens: they joined it, but
// its probes failed, and each took the other for dead. An advertise address beyond a bind
// that is not loopback (NAT) still loads, and so does any with a wildcard bind.
func TestAdvertiseUnreachableFromBind(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"10.0.0.1:7000\"\n"
	for _, gossip := range []string{
		"bind = \"127.0.0.1:7946\"\nadvertise = \"10.0.0.1:7946\"",
		"bind = \"127.0.0.1:7946\"\nadvertise = \"127.0.0.2:7946\"",
		"bind = \"[::1]:7946\"\nadvertise = \"[2001:db8::1]:7946\"",
		"bind = \"10.0.0.1:7946\"\nadvertise = \"127.0.0.1:7946\"",
	} {
		_, err := Parse("f.toml", []byte(strings.Replace(base, "bind = \"127.0.0.1:7946\"", gossip, 1)), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "gossip.advertise" || errs[0].Line != 5 || !strings.Contains(errs[0].Msg, "gossip.bind") {
			t.Errorf("%s: got %v, want one error at f.toml:5 gossip.advertise naming gossip.bind", strings.ReplaceAll(gossip, "\n", ", "), err)
		}
	}
	for _, gossip := range []string{
		"bind = \"10.0.0.1:7946\"\nadvertise = \"203.0.113.5:7946\"",
		"bind = \"0.0.0.0:7946\"\nadvertise = \"127.0.0.1:7946\"",
		"bind = \"[::]:7946\"\nadvertise = \"10.0.0.1:7946\"",
		"bind = \"127.0.0.1:7946\"\nadvertise = \"127.0.0.1:7947\"",
		"bind = \"[::ffff:127.0.0.1]:7946\"\nadvertise = \"127.0.0.1:7946\"",
	} {
		src := strings.Replace(base, "bind = \"127.0.0.1:7946\"", gossip, 1)
		if strings.Contains(gossip, "advertise = \"127.") {
			src = strings.Replace(src, "10.0.0.1:7000", "127.0.0.1:7000", 1)
		}
		if _, err := Parse("f.toml", []byte(src), KindSite); err != nil {
			t.Errorf("%s: %v", strings.ReplaceAll(gossip, "\n", ", "), err)
		}
	}
}

// TestJoinSelfWithAdvertise: a gossip.join address that reaches this member through its bind
// address is refused when gossip.advertise is set too: with a wildcard bind and an advertise
// address, join = ["127.0.0.1:7946"] (its own port on loopback) was compared with the advertise
// address alone, and the member was left joining itself, as it is refused without advertise.
func TestJoinSelfWithAdvertise(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"0.0.0.0:7946\"\nadvertise = \"10.0.0.1:7946\"\njoin = [\"10.0.0.2:7946\", \"%s\"]\n" +
		"[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	for _, self := range []string{"127.0.0.1:7946", "localhost:7946", "[::ffff:127.0.0.1]:7946"} {
		_, err := Parse("f.toml", []byte(fmt.Sprintf(base, self)), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "gossip.join[1]" || errs[0].Line != 6 || !strings.Contains(errs[0].Msg, "own gossip address") {
			t.Errorf("join %s: got %v, want one error at f.toml:6 gossip.join[1]: this member's own gossip address", self, err)
		}
	}
	if _, err := Parse("f.toml", []byte(fmt.Sprintf(base, "127.0.0.1:7947")), KindSite); err != nil {
		t.Errorf("join 127.0.0.1:7947 (another member on this host): %v", err)
	}
}

// TestURLPasswordUnencodedAtInValue: a URL whose password holds an unencoded '/' or '?' after
// digits, and a '=' before its '@' (postgres://tandem:2024/wire?x=Summer@10.0.0.2), is refused
// and RedactDSN hides it, as TestURLPasswordUnencoded's are: it was read as host "tandem", port
// 2024, database "wire" and a setting x of "Summer@10.0.0.2", and the file loaded, check-config
// printing the password whole. An '@' in a parameter's value is still fine where the URL gives
// its user (before the host, or as ?user=), as the password's '@' then is not.
func TestURLPasswordUnencodedAtInValue(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\npeer_dsn = \"host=10.0.0.2 dbname=wire\"\n"
	for _, dsn := range []string{
		"postgres://tandem:2024/wire?x=Summer@10.0.0.1",
		"postgres://tandem:2024/wire?sslmode=disable&x=Summer@10.0.0.1/wire",
	} {
		_, err := Parse("f.toml", []byte(base+"local_dsn = \""+dsn+"\"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.local_dsn" || errs[0].Line != 12 || !strings.Contains(errs[0].Msg, "percent-encode") {
			t.Errorf("%s: got %v, want one error at f.toml:12 txshim.local_dsn saying to percent-encode", dsn, err)
		}
		if err != nil && strings.Contains(err.Error(), "Summer") {
			t.Errorf("%s: the error shows the password: %v", dsn, err)
		}
		if got := RedactDSN(dsn); strings.Contains(got, "Summer") || strings.Contains(got, "2024") {
			t.Errorf("RedactDSN(%q) = %q: shows the password", dsn, got)
		}
	}
	for _, dsn := range []string{
		"postgres://tandem@10.0.0.1:5432/wire?application_name=tandem@site1",
		"postgres://10.0.0.1:5432/wire?user=tandem@corp",
		"postgres://10.0.0.1:5432/wire?application_name=tandem@site1&user=tandem",
	} {
		if _, err := Parse("f.toml", []byte(base+"local_dsn = \""+dsn+"\"\n"), KindSite); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
	}
}

// TestURLPasswordAtThenSlash: a URL whose password holds an unencoded '@' and, after it, a '/'
// (postgres://tandem:Sum@mer/2024@10.0.0.1/wire) is refused and RedactDSN hides all of the
// password: it was read as user tandem, password "Sum", host "mer" and database
// "2024@10.0.0.1/wire", and the file loaded, check-config printing "mer/2024", the rest of the
// password (the '@' in the path came after a user@host, which atAfterHost took for the URL's).
func TestURLPasswordAtThenSlash(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:5\"\npeer_dsn = \"host=10.0.0.2 dbname=wire\"\n"
	for _, dsn := range []string{
		"postgres://tandem:Sum@mer/2024@10.0.0.1/wire",
		"postgres://tandem:Sum@mer/2024@10.0.0.1:5432/wire?sslmode=disable",
		"postgres://tandem:Sum@mer?2024@10.0.0.1/wire",
	} {
		_, err := Parse("f.toml", []byte(base+"local_dsn = \""+dsn+"\"\n"), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Key != "txshim.local_dsn" || errs[0].Line != 12 || !strings.Contains(errs[0].Msg, "percent-encode") {
			t.Errorf("%s: got %v, want one error at f.toml:12 txshim.local_dsn saying to percent-encode", dsn, err)
		}
		if got := RedactDSN(dsn); strings.Contains(got, "mer") || strings.Contains(got, "2024") {
			t.Errorf("RedactDSN(%q) = %q: shows the password", dsn, got)
		}
	}
}

// TestHealthProbeWithExec: health_send with the exec check is refused as health_expect is, as a
// key only the tcp check uses: alone it was answered "needs health_expect", advice whose
// following was refused next ("only used by the tcp check"), and beside health_expect it was
// not reported at all.
func TestHealthProbeWithExec(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\nhealth = \"exec\"\nhealth_command = [\"true\"]\n" +
		"[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\nhealth_send = \"PING\"\n" // line 11
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{base, []string{"f.toml:11: server.endpoint[0].health_send: only used by the tcp check"}},
		{base + "health_expect = \"PONG\"\n", []string{"f.toml:11: server.endpoint[0].health_send: only used by the tcp check", "f.toml:12: server.endpoint[0].health_expect: only used by the tcp check"}},
	} {
		_, err := Parse("f.toml", []byte(tc.src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != len(tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
			continue
		}
		for i, w := range tc.want {
			if !strings.HasPrefix(errs[i].Error(), w) {
				t.Errorf("error %d is %q, want it to start %q", i, errs[i], w)
			}
		}
	}
}

// TestRedactedCommandURLQueryPassword: a password given as a URL's parameter in a command's
// argument (psql "postgresql://monitor@db/wire?password=...&sslmode=require") reads "redacted",
// and the URL's other parameters after it are shown as written: they went with the password,
// as if part of it ("?password=redacted" alone), though the printed file is to be used again.
func TestRedactedCommandURLQueryPassword(t *testing.T) {
	for arg, want := range map[string]string{
		"postgresql://monitor@db/wire?password=s3cret&sslmode=require":                   "postgresql://monitor@db/wire?password=redacted&sslmode=require",
		"postgresql://monitor@db/wire?sslmode=require&password=s3cret&connect_timeout=5": "postgresql://monitor@db/wire?sslmode=require&password=redacted&connect_timeout=5",
		"postgresql://monitor@db/wire?password=s3cret":                                   "postgresql://monitor@db/wire?password=redacted",
		"host=db password=s3&cret dbname=wire":                                           "host=db password=redacted dbname=wire",
		"PGPASSWORD=s3cret psql":                                                         "PGPASSWORD=redacted psql",
	} {
		if got := redactArg(arg); got != want {
			t.Errorf("%s: shown as %s, want %s", arg, got, want)
		}
	}
}

// TestRedactedCommandShellSyntax: a password setting in a shell script given as a command's
// argument (sh -c "...") has its password hidden and the script around it shown as written.
// The value of an unquoted setting ran to the next whitespace, and one that began with a quote
// to the next such quote, so the printed script lost its shell syntax: the ';' after
// PGPASSWORD=s3cret, the quote that closed the argument holding password=s3cret, the first
// word of a $(command) that gives the password, the file a grep for 'password =' reads, the
// command after an empty PGPASSWORD=; an empty value read "redacted". A value that is an
// expansion ($VAR, ${VAR}, $(...), `...`) is no password and is shown; one empty stays empty.
func TestRedactedCommandShellSyntax(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{`export PGPASSWORD=s3cret; psql -c "select 1"`, `export PGPASSWORD=redacted; psql -c "select 1"`},
		{`psql "host=x password=s3cret" && echo ok`, `psql "host=x password=redacted" && echo ok`},
		{`psql 'host=x password=s3cret'|cat`, `psql 'host=x password=redacted'|cat`},
		{`psql "postgresql://m@db/wire?password=s3cret" && echo ok`, `psql "postgresql://m@db/wire?password=redacted" && echo ok`},
		{`PGPASSWORD=s3cret&&psql`, `PGPASSWORD=redacted&&psql`},
		{`(export PGPASSWORD=s3cret) || exit 1`, `(export PGPASSWORD=redacted) || exit 1`},
		{`PGPASSWORD='s3 cret' psql`, `PGPASSWORD='redacted' psql`},
		{`PGPASSWORD="s3 cret"; psql`, `PGPASSWORD="redacted"; psql`},
		{`psql "host=x password='s3 cret'" && echo ok`, `psql "host=x password='redacted'" && echo ok`},
		{`PGPASSWORD=$(cat /etc/pw) psql`, `PGPASSWORD=$(cat /etc/pw) psql`},
		{`PGPASSWORD="$(cat /etc/pw)" psql`, `PGPASSWORD="$(cat /etc/pw)" psql`},
		{"PGPASSWORD=`cat /etc/pw` psql", "PGPASSWORD=`cat /etc/pw` psql"},
		{`PGPASSWORD=$MONITOR_PW psql`, `PGPASSWORD=$MONITOR_PW psql`},
		{`psql "host=x password=${PW}"`, `psql "host=x password=${PW}"`},
		{`grep -c 'password =' file`, `grep -c 'password =' file`},
		{`PGPASSWORD= psql -h x`, `PGPASSWORD= psql -h x`},
		{`pgpassword=`, `pgpassword=`},
		{`PGPASSWORD='' psql`, `PGPASSWORD='' psql`},
		{`PGPASSWORD=s3cret`, `PGPASSWORD=redacted`},
		{`host=db password = s3cret dbname=wire`, `host=db password = redacted dbname=wire`},
		{`ssh db 'PGPASSWORD="s3 cret" psql'`, `ssh db 'PGPASSWORD="redacted" psql'`},
		{`PGPASSWORD=$(vault read --password=s3cret) psql`, `PGPASSWORD=$(vault read --password=redacted) psql`},
		{"PGPASSWORD=\"`get password=s3cret`\" psql", "PGPASSWORD=\"`get password=redacted`\" psql"},
		{`psql "password='s3\" cret' host=x"`, `psql "password='redacted' host=x"`},
	} {
		if got := redactArg(tc.arg); got != tc.want {
			t.Errorf("%s: shown as %s, want %s", tc.arg, got, tc.want)
		}
	}
	// An argument that is no script, its password holding what a shell takes for syntax, is
	// hidden whole.
	for _, arg := range []string{
		"PGPASSWORD=s3;cr&et|x)y", "host=db password=s3;cr&et|x)y dbname=wire", "PGPASSWORD=$s3cret",
		"--password=s3'cret", `PGPASSWORD=s3"cret`, "PGPASSWORD=${PW:-s3cret}", "PGPASSWORD='s3cret'cret", `password='s3\' cret'`,
	} {
		if got := redactArg(arg); strings.Contains(got, "s3") || strings.Contains(got, "cr") || strings.Contains(got, "et") {
			t.Errorf("%s: shown as %s, which shows the password", arg, got)
		}
	}
}

// TestRedactedCommandQuoteInShellQuotes: a quote written inside a shell's quotes, as a script
// given to ssh or a connection string needs it ('\” in '...', \" in "..."), is a character of
// the text the quotes hold: a password setting's value read there runs past it, and no
// character of the password is shown. The scan took such a quote for the one that closes the
// shell's quotes, and showed the rest of the password after it.
func TestRedactedCommandQuoteInShellQuotes(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{`ssh db 'PGPASSWORD='\''s3 cret'\'' psql'`, `ssh db 'PGPASSWORD=redacted psql'`},
		{`ssh db 'PGPASSWORD=s3\'\''cret psql'`, `ssh db 'PGPASSWORD=redacted psql'`},
		{`ssh db 'PGPASSWORD="s3'\''cret" psql'`, `ssh db 'PGPASSWORD="redacted" psql'`},
		{`psql 'host=x password='\''s3 cret'\'' dbname=y'`, `psql 'host=x password=redacted dbname=y'`},
		{`psql 'host=x password=s3\'\''cret'`, `psql 'host=x password=redacted'`},
		{`ssh db 'psql "host=x password='\''s3 cret'\''"'`, `ssh db 'psql "host=x password=redacted"'`},
		{`ssh db "PGPASSWORD=\"s3 cret\" psql"`, `ssh db "PGPASSWORD=redacted psql"`},
		{`ssh db "psql \"host=x password=s3cret\""`, `ssh db "psql \"host=x password=redacted\""`},
		{`ssh db "PGPASSWORD=\"\$(cat f)\" psql"`, `ssh db "PGPASSWORD=redacted psql"`},
		{`sh -c "PGPASSWORD=\"$(cat "f")\" psql"`, `sh -c "PGPASSWORD=redacted psql"`},
		// A quote in a quote in a shell's quotes: ssh's command, psql's argument in it, the
		// connection string's quoted password in that.
		{`ssh db "psql 'host=x password='\\''s3 cret'\\'''"`, `ssh db "psql 'host=x password=redacted'"`},
		{`ssh db 'sh -c "PGPASSWORD=\"s3 cret\" psql"'`, `ssh db 'sh -c "PGPASSWORD=redacted psql"'`},
	} {
		got := redactArg(tc.arg)
		if got != tc.want {
			t.Errorf("%s: shown as %s, want %s", tc.arg, got, tc.want)
		}
	}
}

// TestRedactedCommandConninfoSSLPassword: a connection string's sslpassword (the key of the
// client certificate's) may have spaces after its '=' as its password may; the value after them
// is hidden. Only password's were skipped, and "sslpassword= s3cret" showed s3cret.
func TestRedactedCommandConninfoSSLPassword(t *testing.T) {
	for arg, want := range map[string]string{
		"host=db sslpassword= s3cret dbname=wire": "host=db sslpassword= redacted dbname=wire",
		"host=db sslpassword = s3cret":            "host=db sslpassword = redacted",
		`psql "host=db sslpassword= s3cret"`:      `psql "host=db sslpassword= redacted"`,
		"PGPASSWORD= psql -h x":                   "PGPASSWORD= psql -h x",
	} {
		if got := redactArg(arg); got != want {
			t.Errorf("%s: shown as %s, want %s", arg, got, want)
		}
	}
}

// TestRedactedCommandBackslashInShellSingleQuotes: a backslash in a shell's single quotes is a
// character, not an escape (the shell reads PGPASSWORD='s3\' as s3\): the value's quote was
// read as a connection string's, where a backslash escapes the quote, so the rest of a password
// that held a backslash before a quote was shown after the quote it took for the closing one.
func TestRedactedCommandBackslashInShellSingleQuotes(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{`PGPASSWORD='s3\'\''c ret' psql`, `PGPASSWORD=redacted psql`},
		{`sh -c "PGPASSWORD='s3\\'\\''c ret' psql"`, `sh -c "PGPASSWORD=redacted psql"`},
		{`host=x password='s3\' cret'`, `host=x password='redacted'`},
		{`PGPASSWORD=$'s3\'c ret' psql`, `PGPASSWORD=redacted psql`},
	} {
		if got := redactArg(tc.arg); got != tc.want {
			t.Errorf("%s: shown as %s, want %s", tc.arg, got, tc.want)
		}
	}
}

// TestRedactedCommandQuoteInCommentOrANSIC: a quote in a script's comment (# it's) or in a
// $'...' word ($'it\'s') opens no quote; the scan took it for one, read a quoted password after
// it (PGPASSWORD='s3cret') as the empty value before the quote closing the one it took as open,
// and showed the password whole.
func TestRedactedCommandQuoteInCommentOrANSIC(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"# check the server's up\nPGPASSWORD='s3cret' pg_isready", "# check the server's up\nPGPASSWORD='redacted' pg_isready"},
		{"pg_isready # it's PGPASSWORD='s3cret'\nPGPASSWORD='s3cret' psql", "pg_isready # it's PGPASSWORD='redacted'\nPGPASSWORD='redacted' psql"},
		{`echo $'it\'s'; PGPASSWORD='s3cret' psql`, `echo $'it\'s'; PGPASSWORD='redacted' psql`},
		{`curl 'http://h/#x' && PGPASSWORD='s3cret' psql`, `curl 'http://h/#x' && PGPASSWORD='redacted' psql`},
	} {
		if got := redactArg(tc.arg); got != tc.want {
			t.Errorf("%q: shown as %q, want %q", tc.arg, got, tc.want)
		}
	}
}

// TestRedactedCommandPasswordOption: a password given to a command as an option's next argument
// (--password s3cret, as its own argument or in a script) or glued to a MySQL client's -p
// (mysql -ps3cret) reads "redacted": only NAME=value settings were hidden, and check-config
// printed both whole. A -p glued to another program's digits (psql -p5432, its port) is shown,
// as is what follows --password when it is another option, and the forms hidden before still are.
func TestRedactedCommandPasswordOption(t *testing.T) {
	for _, tc := range []struct{ argv, want []string }{
		{[]string{"mongosh", "--password", "s3cret", "--eval", "1"}, []string{"mongosh", "--password", "redacted", "--eval", "1"}},
		{[]string{"check", "-password", "s3cret"}, []string{"check", "-password", "redacted"}},
		{[]string{"check", "--db-password", "s3cret"}, []string{"check", "--db-password", "redacted"}},
		{[]string{"mysql", "-uroot", "-ps3cret", "-e", "select 1"}, []string{"mysql", "-uroot", "-predacted", "-e", "select 1"}},
		{[]string{"/usr/bin/mysqladmin", "-ps3cret", "ping"}, []string{"/usr/bin/mysqladmin", "-predacted", "ping"}},
		{[]string{"mysql", "-ppassword", "db"}, []string{"mysql", "-predacted", "db"}},
		{[]string{"sh", "-c", "mysql -h db -ps3cret -e 'select 1'"}, []string{"sh", "-c", "mysql -h db -predacted -e 'select 1'"}},
		{[]string{"sh", "-c", "check --password s3cret && echo ok"}, []string{"sh", "-c", "check --password redacted && echo ok"}},
		{[]string{"sh", "-c", "check --password 's3 cret' -v"}, []string{"sh", "-c", "check --password 'redacted' -v"}},
		{[]string{"sh", "-c", "check --password $PW"}, []string{"sh", "-c", "check --password $PW"}},
		// Still hidden, as before.
		{[]string{"check", "--password=s3cret"}, []string{"check", "--password=redacted"}},
		{[]string{"sh", "-c", "check -password=s3cret -ppassword=s3cret"}, []string{"sh", "-c", "check -password=redacted -ppassword=redacted"}},
		{[]string{"env", "PGPASSWORD=s3cret", "psql"}, []string{"env", "PGPASSWORD=redacted", "psql"}},
		{[]string{"psql", "postgresql://m:s3cret@db/wire"}, []string{"psql", "postgresql://m:redacted@db/wire"}},
		{[]string{"psql", "host=db password=s3cret"}, []string{"psql", "host=db password=redacted"}},
		// No password there: shown as written.
		{[]string{"psql", "-p5432", "-h", "db"}, []string{"psql", "-p5432", "-h", "db"}},
		{[]string{"pg_isready", "-p", "5432"}, []string{"pg_isready", "-p", "5432"}},
		{[]string{"psql", "--password", "-h", "db"}, []string{"psql", "--password", "-h", "db"}},
		{[]string{"mysql", "-P3306", "-p"}, []string{"mysql", "-P3306", "-p"}},
		{[]string{"sh", "-c", "nc -p1234 db 5432"}, []string{"sh", "-c", "nc -p1234 db 5432"}},
	} {
		if got := redactArgv(tc.argv); !slices.Equal(got, tc.want) {
			t.Errorf("%q: shown as %q, want %q", tc.argv, got, tc.want)
		}
		if h := hidden(tc.argv); h != !slices.Equal(tc.argv, tc.want) {
			t.Errorf("%q: hidden = %v", tc.argv, h)
		}
	}
}

// TestHostNumberOrNameTooLong: a host written as a number in a resolver's other forms (hex,
// 0x7f000001, which glibc's inet_aton reads as 127.0.0.1 and Go's resolver as a name it finds
// nowhere, as TestHostNeitherIPNorName's 127.1), and a host name longer than DNS allows (253
// characters, a trailing dot aside) are refused at their file, line and key. Both loaded: the
// check of the last label took only decimal digits for a number, and the length was checked
// before the trailing dot was taken off, so 254 characters without one passed.
func TestHostNumberOrNameTooLong(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n"
	name := func(n int) string { // a host name of n characters, labels of 63 or fewer
		var b strings.Builder
		for b.Len() < n {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(strings.Repeat("a", min(63, n-b.Len())))
		}
		return b.String()
	}
	for host, want := range map[string]string{
		"0x7f000001":     "an IPv4 address is four decimal numbers",
		"0X7F000001":     "an IPv4 address is four decimal numbers",
		"10.0.0.0x1":     "an IPv4 address is four decimal numbers",
		"db.0x1f":        "an IPv4 address is four decimal numbers",
		name(254):        "at most 253 characters",
		name(254) + ".":  "at most 253 characters",
		name(300):        "at most 253 characters",
		"db.example.123": "an IPv4 address is four decimal numbers",
	} {
		_, err := Parse("f.toml", []byte(strings.Replace(base, "127.0.0.1:2", host+":5432", 1)), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "f.toml:8: server.endpoint[0].address: ") || !strings.Contains(errs[0].Msg, want) {
			t.Errorf("host %s (%d characters): got %v, want one error at f.toml:8 server.endpoint[0].address: %s", host, len(host), err, want)
		}
	}
	for _, host := range []string{name(253), name(253) + ".", "0xdb.example.com", "db.x0", "db.0xg"} {
		if _, err := Parse("f.toml", []byte(strings.Replace(base, "127.0.0.1:2", host+":5432", 1)), KindSite); err != nil {
			t.Errorf("host %s (%d characters): %v", host, len(host), err)
		}
	}
}

// TestKeyInArrayOfTablesIndexed: an unknown key (or table), a key in another case and a key of
// the wrong type in a table of an array of tables, or in an inline table of such an array, are
// named with the index of their table, as every other error of such a key is
// (server.endpoint[0].health_send): they were named without it (server.endpoint.nmae), the
// same for every table of the array, so that the line alone told which was meant. The lines
// are as before.
func TestKeyInArrayOfTablesIndexed(t *testing.T) {
	base := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n" +
		"[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" + // lines 6-8
		"[[server.endpoint]]\nname = \"op2\"\naddress = \"127.0.0.1:3\"\n" // lines 9-11
	listeners := "[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:4\"\n" + // lines 12-14
		"[[proxy.listener]]\nendpoint = \"op\"\nlisten = \"127.0.0.1:5\"\n" // lines 15-17
	inline := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n" +
		"endpoint = [ { name = \"op\", address = \"127.0.0.1:2\", x = 1 },\n { name = \"op2\", address = \"127.0.0.1:3\", x = 2, \"a b\" = 3 } ]\n"
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"unknown key", base + "nmae = \"x\"\n", []string{"f.toml:12: server.endpoint[1].nmae: unknown key"}},
		{"unknown table", base + "[server.endpoint.sub]\nx = 1\n", []string{"f.toml:12: server.endpoint[1].sub: unknown key", "f.toml:13: server.endpoint[1].sub.x: unknown key"}},
		{"unknown quoted key", base + listeners + "\"a b\".c = 2\n", []string{`f.toml:18: proxy.listener[1]."a b".c: unknown key`}},
		{"unknown keys of inline tables", inline, []string{"f.toml:6: server.endpoint[0].x: unknown key", "f.toml:7: server.endpoint[1].x: unknown key", `f.toml:7: server.endpoint[1]."a b": unknown key`}},
		{"key in another case", base + listeners + "Send_proxy = \"v1\"\n", []string{"f.toml:18: proxy.listener[1].Send_proxy: unknown key: keys are lower-case"}},
		{"wrong type", base + listeners + "send_proxy = 2\n", []string{"f.toml:18: proxy.listener[1].send_proxy: "}},
		{"wrong type, first table", strings.Replace(base+listeners, "listen = \"127.0.0.1:4\"", "listen = 4", 1), []string{"f.toml:14: proxy.listener[0].listen: "}},
		{"unknown keys in both tables", strings.Replace(base, "address = \"127.0.0.1:2\"\n", "address = \"127.0.0.1:2\"\nnmae = 1\n", 1) + "nmae = 2\n",
			[]string{"f.toml:9: server.endpoint[0].nmae: unknown key", "f.toml:13: server.endpoint[1].nmae: unknown key"}},
	} {
		_, err := Parse("f.toml", []byte(tc.src), KindSite)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != len(tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
			continue
		}
		for i, w := range tc.want {
			if !strings.HasPrefix(errs[i].Error(), w) {
				t.Errorf("%s: error %d is %q, want it to start %q", tc.name, i, errs[i], w)
			}
		}
	}
}

// TestRedactedCommandNegatedPasswordOption: an option that turns a password off (psql's
// --no-password, MySQL's --skip-password) names no password and takes no value: the argument
// after it (a database, a URL, a script's redirection) is shown as written. It read
// "redacted", as after --password, so that check-config printed a command that is not the
// one the file runs, and said a password was hidden where there is none.
func TestRedactedCommandNegatedPasswordOption(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"psql", "--no-password", "wire"}, nil},
		{[]string{"psql", "--no-password", "postgresql://m@db/wire", "-c", "select 1"}, nil},
		{[]string{"mysql", "--skip-password", "wire"}, nil},
		{[]string{"check", "-no-password", "wire"}, nil},
		{[]string{"sh", "-c", "psql -h db --no-password wire"}, nil},
		{[]string{"sh", "-c", "mysql --skip-password wire -e 'select 1'"}, nil},
		// A password is still hidden after them.
		{[]string{"psql", "--no-password", "wire", "--password", "s3cret"}, []string{"psql", "--no-password", "wire", "--password", "redacted"}},
		{[]string{"sh", "-c", "check --no-password wire --password s3cret"}, []string{"sh", "-c", "check --no-password wire --password redacted"}},
	})
}

// TestRedactedCommandPasswordOptionBeforeRedirection: in a script, what follows an option
// naming a password on its line may be no argument at all: a redirection (>/dev/null,
// 2>&1, <in, &>log), an operator or a comment. It is shown as written: it read "redacted", so that the
// printed script wrote its output to a file of another name or ran its comment as an argument.
func TestRedactedCommandPasswordOptionBeforeRedirection(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{"pg_isready --password > /dev/null", ""},
		{"check --password >/dev/null 2>&1", ""},
		{"check --password 2>/dev/null", ""},
		{"check --password &>/dev/null", ""},
		{"check --password </dev/null", ""},
		{"check --password # no value here", ""},
		{"(check --password)", ""},
		{"check --password |& tee log", ""},
		{"check --password s3cret >/dev/null 2>&1", "check --password redacted >/dev/null 2>&1"},
		{"check --password 2s3cret", "check --password redacted"},
		{"check --password a#b", "check --password redacted"},
	} {
		argv := []string{"sh", "-c", tc.script}
		want := cmp.Or(tc.want, tc.script)
		if got := redactArgv(argv); got[2] != want {
			t.Errorf("%q: shown as %q, want %q", tc.script, got[2], want)
		}
	}
}

// TestKeyInNestedArrayOfTablesIndexed: an array of tables in a table of another array starts
// at index 0 in each of that array's tables, and an unknown key there is named so: the index
// went on counting across them (server.endpoint[2].sub[1] for the first [[server.endpoint.sub]]
// of the third endpoint), naming a table the file does not have.
func TestKeyInNestedArrayOfTablesIndexed(t *testing.T) {
	src := "site = \"s1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:1\"\n[server]\n" +
		"[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:2\"\n" + // lines 6-8
		"[[server.endpoint.sub]]\nx = 1\n" + // lines 9-10
		"[[server.endpoint]]\nname = \"op2\"\naddress = \"127.0.0.1:3\"\n" + // lines 11-13
		"[[server.endpoint.sub]]\nx = 2\n" + // lines 14-15
		"[[server.endpoint.sub]]\nx = 3\n" // lines 16-17
	want := []string{
		"f.toml:9: server.endpoint[0].sub[0]: unknown key", "f.toml:10: server.endpoint[0].sub[0].x: unknown key",
		"f.toml:14: server.endpoint[1].sub[0]: unknown key", "f.toml:15: server.endpoint[1].sub[0].x: unknown key",
		"f.toml:16: server.endpoint[1].sub[1]: unknown key", "f.toml:17: server.endpoint[1].sub[1].x: unknown key",
	}
	_, err := Parse("f.toml", []byte(src), KindSite)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != len(want) {
		t.Fatalf("got %v, want %q", err, want)
	}
	for i, w := range want {
		if errs[i].Error() != w {
			t.Errorf("error %d is %q, want %q", i, errs[i], w)
		}
	}
}

// redactCase is a command and what check-config shows of it; want nil: shown as written,
// nothing hidden.
type redactCase struct{ argv, want []string }

// checkRedacted requires redactArgv to show each case's command as its want, and hidden and
// CommandSecrets (what its output's log masks) to say whether it hid something.
func checkRedacted(t *testing.T, cases []redactCase) {
	t.Helper()
	for _, tc := range cases {
		want := tc.want
		if want == nil {
			want = tc.argv
		}
		if got := redactArgv(tc.argv); !slices.Equal(got, want) {
			t.Errorf("%q: shown as %q, want %q", tc.argv, got, want)
		}
		if h := hidden(tc.argv); h != (tc.want != nil) {
			t.Errorf("%q: hidden = %v", tc.argv, h)
		}
		if sec := CommandSecrets(tc.argv); (len(sec) > 0) != (tc.want != nil) {
			t.Errorf("%q: secrets %q", tc.argv, sec)
		}
	}
}
