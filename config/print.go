package config

import (
	"bytes"
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Redacted renders the resolved configuration as TOML, defaults filled in and
// secrets (gossip key, admin token, DSN passwords) replaced by a marker.
func (c *Config) Redacted() string {
	type listener struct {
		Endpoint    string `toml:"endpoint"`
		Listen      string `toml:"listen"`
		AcceptProxy string `toml:"accept_proxy"`
		SendProxy   string `toml:"send_proxy"`
	}
	type endpoint struct {
		Name         string `toml:"name"`
		Address      string `toml:"address"`
		HealthSend   string `toml:"health_send,omitempty"`
		HealthExpect string `toml:"health_expect,omitempty"`
	}
	out := map[string]any{
		"site":     c.Site,
		"priority": c.Priority,
		"data_dir": c.DataDir,
		"gossip": map[string]any{
			"bind":           c.Gossip.Bind,
			"advertise":      cmp.Or(c.Gossip.Advertise, c.Gossip.Bind),
			"join":           c.Gossip.Join,
			"secret_key":     redactedKey(c.Gossip.SecretKey),
			"profile":        c.Gossip.Profile,
			"failback":       c.Gossip.Failback,
			"failback_delay": c.Gossip.FailbackDelay.String(),
			"fence_delay":    c.Gossip.FenceDelay.String(),
			"witness":        c.Gossip.Witness,
		},
		"admin": map[string]any{"listen": c.Admin.Listen, "token": redactedString(c.Admin.Token)},
	}
	if c.Kind == KindWitness {
		out["kind"] = "witness"
		// Settings a witness file may not set (it never holds the role): not shown as if it had them.
		delete(out, "priority")
		delete(out["gossip"].(map[string]any), "failback")
		delete(out["gossip"].(map[string]any), "failback_delay")
	} else {
		eps := make([]endpoint, len(c.Server.Endpoints))
		for i, e := range c.Server.Endpoints {
			eps[i] = endpoint{e.Name, e.Address, e.HealthSend, e.HealthExpect}
		}
		out["server"] = map[string]any{
			"health":          c.Server.Health,
			"health_command":  c.Server.HealthCommand,
			"health_interval": c.Server.HealthInterval.String(),
			"health_timeout":  c.Server.HealthTimeout.String(),
			"health_failures": c.Server.HealthFailures,
			"endpoint":        eps,
		}
		ls := make([]listener, len(c.Proxy.Listeners))
		for i, l := range c.Proxy.Listeners {
			ls[i] = listener{l.Endpoint, l.Listen, l.AcceptProxy, l.SendProxy}
		}
		cidrs := make([]string, len(c.Proxy.TrustedCIDRs))
		for i, p := range c.Proxy.TrustedCIDRs {
			cidrs[i] = p.String()
		}
		out["proxy"] = map[string]any{
			"trusted_cidrs":   cidrs,
			"connect_timeout": c.Proxy.ConnectTimeout.String(),
			"idle_timeout":    c.Proxy.IdleTimeout.String(),
			"max_conns":       c.Proxy.MaxConns,
			"listener":        ls,
		}
		out["hooks"] = map[string]any{"on_promote": c.Hooks.OnPromote, "on_demote": c.Hooks.OnDemote, "timeout": c.Hooks.Timeout.String()}
		if t := c.TxShim; t != nil {
			out["txshim"] = map[string]any{
				"listen":               t.Listen,
				"local_dsn":            RedactDSN(t.LocalDSN),
				"peer_dsn":             RedactDSN(t.PeerDSN),
				"peer_down":            t.PeerDown,
				"max_message":          t.MaxMessage,
				"commit_timeout":       t.CommitTimeout.String(),
				"verify_after_catchup": t.VerifyCatchUp,
			}
			if t.UsersFile != "" { // the file's name and how many users: no password
				out["txshim"].(map[string]any)["users_file"] = fmt.Sprintf("%s (%d users)", t.UsersFile, len(t.Users))
			}
			if t.TLSCertFile != "" {
				out["txshim"].(map[string]any)["tls_cert_file"] = t.TLSCertFile
				out["txshim"].(map[string]any)["tls_key_file"] = t.TLSKeyFile
			}
		}
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(out); err != nil {
		return fmt.Sprintf("# cannot render: %v\n", err)
	}
	return b.String()
}

func redactedKey(k []byte) string {
	if k == nil {
		return "(none: gossip is NOT encrypted)"
	}
	return fmt.Sprintf("(redacted, %d bytes)", len(k))
}

func redactedString(s string) string {
	if s == "" {
		return "(none)"
	}
	return "(redacted)"
}

// kvPassword is a key=value password: quoted, or up to the first space that no backslash
// escapes (libpq and lib/pq read `password=a\ b` as "a b").
var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|(?:[^\s\\]|\\.|\\$)+)`)

// RedactDSN hides the password of a PostgreSQL connection string, URL or
// key=value form, so it can be logged or shown.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if scheme, rest, ok := strings.Cut(dsn, "://"); ok && (err != nil || u.Fragment != "") {
		// net/url cannot read it, or read part of the user info as a fragment (an unescaped
		// '#', '%', '/' in the password): hide everything up to the last '@'.
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = "redacted" + rest[at:]
		}
		return kvPassword.ReplaceAllString(scheme+"://"+rest, "${1}redacted")
	}
	if err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "redacted")
		}
		q := u.Query()
		changed := false
		for k := range q {
			if strings.HasSuffix(strings.ToLower(k), "password") { // password, sslpassword
				q.Set(k, "redacted")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}redacted")
}
