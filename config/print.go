package config

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Redacted renders the resolved configuration as TOML, defaults filled in, that loads again
// to the same configuration: secrets are named by their files, and what they hold is only
// described in the comments above (the gossip key, the admin token, the users). A password
// written in a connection string itself is the one thing shown as "redacted".
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
			"join":           c.Gossip.Join,
			"profile":        c.Gossip.Profile,
			"failback":       c.Gossip.Failback,
			"failback_delay": c.Gossip.FailbackDelay.String(),
			"fence_delay":    c.Gossip.FenceDelay.String(),
			"witness":        c.Gossip.Witness,
		},
		"admin": map[string]any{"listen": c.Admin.Listen},
	}
	notes := []string{
		fmt.Sprintf("# %s as tandem check-config resolved it (%s), defaults filled in.", c.Site, c.File),
		"# gossip key: " + keyNote(c.Gossip),
		"# admin token: " + tokenNote(c.Admin),
	}
	// advertise defaults to bind, unless that is no address to reach a member at: a wildcard
	// (memberlist then advertises an address of the host's) or port 0. Printed so, it would
	// not load again.
	if adv := cmp.Or(c.Gossip.Advertise, c.Gossip.Bind); c.Gossip.Advertise != "" || reachable(adv) {
		out["gossip"].(map[string]any)["advertise"] = adv
	}
	if c.Gossip.SecretKeyFile != "" {
		out["gossip"].(map[string]any)["secret_key_file"] = c.Gossip.SecretKeyFile
	}
	if c.Admin.TokenFile != "" {
		out["admin"].(map[string]any)["token_file"] = c.Admin.TokenFile
	}
	if c.Kind == KindWitness {
		notes[0] = fmt.Sprintf("# %s, a witness, as tandem check-config -witness resolved it (%s), defaults filled in.", c.Site, c.File)
		// Settings a witness file may not set (it never holds the role, and is the witness):
		// not shown as if it had them.
		delete(out, "priority")
		delete(out["gossip"].(map[string]any), "failback")
		delete(out["gossip"].(map[string]any), "failback_delay")
		delete(out["gossip"].(map[string]any), "witness")
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
				"max_message":          sizeString(t.MaxMessage),
				"commit_timeout":       t.CommitTimeout.String(),
				"verify_after_catchup": t.VerifyCatchUp,
			}
			if t.UsersFile != "" { // the file's name and how many users: no password
				out["txshim"].(map[string]any)["users_file"] = t.UsersFile
				notes = append(notes, fmt.Sprintf("# txshim client users: %d, SCRAM-SHA-256 (users_file)", len(t.Users)))
			} else {
				notes = append(notes, "# txshim client users: none, every client trusted")
			}
			notes = append(notes, `# a password written in local_dsn or peer_dsn reads "redacted"`)
			if t.TLSCertFile != "" {
				out["txshim"].(map[string]any)["tls_cert_file"] = t.TLSCertFile
				out["txshim"].(map[string]any)["tls_key_file"] = t.TLSKeyFile
			}
		}
	}
	var b bytes.Buffer
	b.WriteString(strings.Join(notes, "\n") + "\n\n")
	if err := toml.NewEncoder(&b).Encode(out); err != nil {
		return fmt.Sprintf("# cannot render: %v\n", err)
	}
	return b.String()
}

// reachable tells whether hostPort is an IP address and port another member can reach.
func reachable(hostPort string) bool {
	ap, err := netip.ParseAddrPort(hostPort)
	return err == nil && !ap.Addr().IsUnspecified() && ap.Port() != 0
}

// sizeString writes n bytes as max_message reads it.
func sizeString(n int64) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprint(n)
}

func keyNote(g Gossip) string {
	switch {
	case g.SecretKey == nil && g.SecretKeyFile != "":
		return "in secret_key_file, not read"
	case g.SecretKey == nil:
		return "none: gossip is NOT encrypted"
	}
	from := "secret_key_file"
	if g.SecretKeyFile == "" {
		from = "$" + GossipKeyEnv
	}
	if len(g.DecryptKeys) == 0 {
		return fmt.Sprintf("%d bytes, from %s", len(g.SecretKey), from)
	}
	// A rotation under way: how many keys, and their sizes (never more of them).
	sizes := []string{fmt.Sprint(len(g.SecretKey))}
	for _, k := range g.DecryptKeys {
		sizes = append(sizes, fmt.Sprint(len(k)))
	}
	return fmt.Sprintf("%d keys from %s, of %s bytes; the first encrypts, all decrypt", len(sizes), from, strings.Join(sizes, ", "))
}

func tokenNote(a Admin) string {
	switch {
	case a.Token == "" && a.TokenFile != "":
		return "in token_file, not read"
	case a.Token == "":
		return "none: the admin API asks for none"
	}
	return "from token_file"
}

// kvPassword is a key=value password: quoted, or up to the first space that no backslash
// escapes (libpq and lib/pq read `password=a\ b` as "a b").
var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|(?:[^\s\\]|\\.|\\$)+)`)

// RedactDSN hides the password of a PostgreSQL connection string, URL or
// key=value form, so it can be logged or shown.
func RedactDSN(dsn string) string {
	if !urlScheme.MatchString(dsn) {
		// key=value settings, though a value may hold "://" or '@' (password=pw://x@y).
		return kvPassword.ReplaceAllString(dsn, "${1}redacted")
	}
	u, err := url.Parse(dsn)
	if scheme, rest, ok := strings.Cut(dsn, "://"); ok && (err != nil || u.Fragment != "" || atAfterHost(dsn)) {
		// net/url cannot read it, or read part of the user info as a fragment, a path or a
		// query (an unescaped '#', '%', '/' or '?' in the password): hide everything up to the
		// last '@'.
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
		// A parameter net/url's query reader drops (a ';' or a bad '%' escape in it) is not in q,
		// but still in the string.
		u.RawQuery = redactQuery(u.RawQuery)
		return u.String()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}redacted")
}

// redactQuery hides the value of every parameter of a URL's raw query whose name ends in
// "password" (password, sslpassword), each read as written: up to the next '&'.
func redactQuery(raw string) string {
	pairs := strings.Split(raw, "&")
	for i, p := range pairs {
		name, _, ok := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if ok && strings.HasSuffix(strings.ToLower(name), "password") {
			pairs[i] = p[:strings.IndexByte(p, '=')] + "=redacted"
		}
	}
	return strings.Join(pairs, "&")
}

// atAfterHost tells whether a postgres:// URL has an '@' only after its host, in its path or
// query: the mark of a password holding an unencoded '/' or '?' after digits, which net/url
// and the database clients read as the port, then a path or query holding the rest of the
// password (postgres://tandem:2024/Summer@10.0.0.1/wire: host tandem, port 2024, database
// "Summer@10.0.0.1/wire"). An '@' in a parameter's value is left alone
// (application_name=tandem@site1, a user name of the user@tenant kind), and so is any after a
// user@host.
func atAfterHost(dsn string) bool {
	_, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return false
	}
	i := strings.IndexAny(rest, "/?")
	if i < 0 || strings.Contains(rest[:i], "@") {
		return false
	}
	path, query, _ := strings.Cut(rest[i:], "?")
	if strings.Contains(path, "@") {
		return true
	}
	for _, kv := range strings.Split(query, "&") {
		if name, _, _ := strings.Cut(kv, "="); strings.Contains(name, "@") {
			return true
		}
	}
	return false
}
