package config

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Redacted renders the resolved configuration as TOML, defaults filled in, that loads again
// to the same configuration: secrets are named by their files, and what they hold is only
// described in the comments above (the gossip key, the admin token, the users). A password
// written in a connection string itself, or in a command's argument, is the one thing shown as
// "redacted".
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
			"health_command":  redactArgv(c.Server.HealthCommand),
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
		out["hooks"] = map[string]any{"on_promote": redactArgv(c.Hooks.OnPromote), "on_demote": redactArgv(c.Hooks.OnDemote), "timeout": c.Hooks.Timeout.String()}
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
	if c.Kind != KindWitness && (hidden(c.Server.HealthCommand) || hidden(c.Hooks.OnPromote) || hidden(c.Hooks.OnDemote)) {
		notes = append(notes, `# a password written in a command's arguments reads "redacted"`)
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

// RedactDSN hides the password of a PostgreSQL connection string, URL or
// key=value form, so it can be logged or shown. One the clients cannot read has it hidden
// too, with whatever else of it may be part of the password.
func RedactDSN(dsn string) string {
	// A URL after spaces is read as key=value settings by the clients, and refused: hidden as
	// the URL it was meant to be.
	if rest := strings.TrimLeftFunc(dsn, unicode.IsSpace); rest != dsn && urlScheme.MatchString(rest) {
		return dsn[:len(dsn)-len(rest)] + RedactDSN(rest)
	}
	if !urlScheme.MatchString(dsn) {
		// key=value settings, though a value may hold "://" or '@' (password=pw://x@y).
		return redactKV(dsn)
	}
	u, err := url.Parse(dsn)
	if scheme, rest, ok := strings.Cut(dsn, "://"); ok && (err != nil || u.Fragment != "" || atAfterHost(dsn)) {
		// net/url cannot read it, or read part of the user info as a fragment, a path or a
		// query (an unescaped '#', '%', '/' or '?' in the password): hide everything up to the
		// last '@', and the password parameters of what follows.
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = "redacted" + rest[at:]
		}
		if path, query, ok := strings.Cut(rest, "?"); ok {
			rest = path + "?" + redactQuery(query)
		}
		return scheme + "://" + rest
	}
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

// redactKV is RedactDSN for key=value settings, read as libpq reads them: a value is quoted
// ('a b', with \' and \\ inside) or runs to the first space no backslash escapes (an ASCII
// one for libpq and pgconn, any Unicode one for lib/pq: a password to the former, which hides
// more). The value of a
// setting named *password (password, sslpassword) is hidden, and so is what the clients would
// refuse that may be part of it: a quoted value left open (to the end of the string), and the
// words without '=' that follow a password's key (an unquoted password with a space, or one
// written without its '=').
func redactKV(s string) string {
	rs := []rune(s)
	var b strings.Builder
	secret := false // after a password's key: a word without '=' is part of the password
	hidden := false // "redacted" was written for that password
	for i := 0; i < len(rs); {
		sp := i
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
		spaces := string(rs[sp:i]) // written only before what is shown
		if i == len(rs) {
			b.WriteString(spaces)
			break
		}
		k := i
		for i < len(rs) && !unicode.IsSpace(rs[i]) && rs[i] != '=' {
			i++
		}
		key := string(rs[k:i])
		if urlScheme.MatchString(key) { // a URL among the settings
			key = RedactDSN(key)
		}
		eq := i
		for eq < len(rs) && unicode.IsSpace(rs[eq]) {
			eq++
		}
		if eq == len(rs) || rs[eq] != '=' { // a word without '=': no setting
			switch {
			case secret && !hidden:
				b.WriteString(spaces + "redacted")
				hidden = true
			case secret:
			default:
				b.WriteString(spaces + key)
				secret, hidden = strings.Contains(strings.ToLower(key), "password"), false
			}
			continue
		}
		v := eq + 1
		for v < len(rs) && unicode.IsSpace(rs[v]) {
			v++
		}
		isPassword := strings.HasSuffix(strings.ToLower(key), "password")
		end := v
		if end < len(rs) && rs[end] == '\'' {
			for end++; end < len(rs) && rs[end] != '\''; end++ {
				if rs[end] == '\\' {
					end++
				}
			}
			end = min(end+1, len(rs)) // past the closing quote; an open one runs to the end
		} else {
			// lib/pq ends a value at any Unicode space, libpq and pgconn at an ASCII one only:
			// a password runs to the latter (all of it may be the password), another value to
			// the former (a setting lib/pq reads after it is one).
			isEnd := unicode.IsSpace
			if isPassword {
				isEnd = asciiSpace
			}
			for ; end < len(rs) && !isEnd(rs[end]); end++ {
				if rs[end] == '\\' {
					end++
				}
			}
			end = min(end, len(rs))
		}
		secret = isPassword
		hidden = secret
		if secret {
			b.WriteString(spaces + key + string(rs[i:v]) + "redacted")
		} else {
			b.WriteString(spaces + key + string(rs[i:end]))
		}
		i = end
	}
	return b.String()
}

// asciiSpace is libpq's isspace (and pgconn's): the spaces that end an unquoted value there.
func asciiSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
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

// atAfterHost tells whether a postgres:// URL has an '@' after its host, in its path or query:
// the mark of a password holding an unencoded '@' (then a '/' or '?'), or an unencoded '/' or
// '?' after digits, which net/url and the database clients read as the port, then a path or
// query holding the rest of the password (postgres://tandem:2024/Summer@10.0.0.1/wire: host
// tandem, port 2024, database "Summer@10.0.0.1/wire"; postgres://tandem:Sum@mer/2024@...:
// password "Sum", host "mer"), or one holding a '=' before its '@' too, the rest then a
// parameter's value (postgres://tandem:2024/wire?x=Summer@10.0.0.1). An '@' in a parameter's
// value is left alone where the URL gives its user, before the host or as ?user=
// (application_name=tandem@site1, a user name of the user@tenant kind): there it cannot be told
// from a password's holding '@', '?' and '=' in that order, which still reads as a parameter.
func atAfterHost(dsn string) bool {
	_, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return false
	}
	i := strings.IndexAny(rest, "/?")
	if i < 0 {
		return false
	}
	// A user@host before it does not make a later '@' in the path or a parameter's name one of
	// the URL's: a password holding '@' and then '/' or '?' (Sum@mer/2024) is read as a password
	// (Sum), a host (mer) and a path or parameter holding the rest.
	userInfo := strings.Contains(rest[:i], "@")
	path, query, _ := strings.Cut(rest[i:], "?")
	if strings.Contains(path, "@") {
		return true
	}
	atInValue, user := false, false
	for _, kv := range strings.Split(query, "&") {
		name, value, _ := strings.Cut(kv, "=")
		if strings.Contains(name, "@") {
			return true
		}
		atInValue = atInValue || strings.Contains(value, "@")
		user = user || name == "user"
	}
	return atInValue && !user && !userInfo
}

// redactArgv is argv (a health command's, a hook's) as check-config shows it: each argument
// with what it may hold of a password hidden (redactArg), and the argument after an option
// that takes a secret as its value (argOption) hidden: whole after one naming a password
// (--password s3cret), though it starts with '-' (a password may), unless a PostgreSQL or
// MySQL client was named before and it is another option: their --password takes no value
// there (psql's prompts) (TestRedactedCommandPasswordOptionDashOrQuoted); one that turns a
// password off (--no-password) takes none. After a MySQL client's name (mysql, mysqladmin,
// mariadb...), a -p glued to its value (-ps3cret) is the password too
// (TestRedactedCommandPasswordOption, TestRedactedCommandNegatedPasswordOption). Nil stays nil.
func redactArgv(argv []string) []string {
	return redactArgvSec(argv, nil)
}

// redactArgvSec is redactArgv, what it hides noted in sec (nil: not noted).
func redactArgvSec(argv []string, sec *secrets) []string {
	if argv == nil {
		return nil
	}
	out := make([]string, len(argv))
	mysql := false   // a MySQL client was named before
	sshpass := false // the arguments before are sshpass's name and options
	kind := optNone  // what the argument before makes of this one
	// The words before argv[i] are the first before bytes of argv joined by spaces, and a
	// space follows them there: a client named in them (argOption) is one named in that text
	// ending by then, or at that space, which matches a name they end with as their end does.
	all := names{text: strings.Join(argv, " ")}
	before := 0 // len(strings.Join(argv[:i], " "))
	// A password file written (.pgpass, $PGPASSFILE): its lines' passwords are hidden.
	// Each argument is read on its own: a comment in one ends at its end, and one of a
	// command run without a shell starting with a '#' (--channel '#ops') is none, where in
	// the arguments joined it hid the rest (TestRedactedCommandPgpassArgvHash).
	pgpass := slices.ContainsFunc(argv, writesPgpass)
	for i, a := range argv {
		switch {
		case kind == optValue && a != "" && a != "-", kind == optValueNoOption && a != "" && a[0] != '-':
			// A lone "-" is no secret: the value read from stdin (TestRedactedCommandOptionValueStdin).
			out[i] = sec.hide(a)
		case kind == optUserPass && strings.Contains(a, ":"):
			user, pw, _ := strings.Cut(a, ":")
			if pw != "" {
				pw = sec.hide(pw)
			}
			out[i] = user + ":" + pw
		case sshpass && len(a) > 2 && strings.HasPrefix(a, "-p"):
			out[i] = "-p" + sec.hide(a[2:]) // sshpass -ps3cret (TestRedactedCommandMoreForms)
		case pgpass:
			out[i] = redactArgIn(redactPgpassLines(a, sec), mysql, sec)
		default:
			out[i] = redactArgIn(a, mysql, sec)
		}
		named := func(re *regexp.Regexp) bool { e := all.end(re); return i > 0 && e >= 0 && e <= before+1 }
		kind = argOption(a, named, mysql)
		mysql = mysql || argMySQLClient.MatchString(path.Base(a))
		sshpass = path.Base(a) == "sshpass" || sshpass && strings.HasPrefix(a, "-")
		if i > 0 {
			before++ // the space
		}
		before += len(a)
	}
	return out
}

// What an option makes of the argument after it (argOption).
const (
	optNone          = iota
	optValue         // a secret, whole
	optValueNoOption // a secret, unless it is another option
	optUserPass      // user:password, the password secret
)

// names finds where a client's name first occurs in text, each client's once, so that
// asking whether it was named before each of a script's or an argv's options reads the text
// once (a long script's many options: TestRedactedCommandLongScriptLinear).
type names struct {
	text string
	ends map[*regexp.Regexp]int
}

// end is where re's first match in n's text ends (-1: none). A client's name regexp (argPGWord,
// argMySQLWord...) ends at the space or quote after the name: a later match, starting after
// the first one's name, ends after it, so that text[:i] holds a match, one not ending at i,
// only if end(re) <= i.
func (n *names) end(re *regexp.Regexp) int {
	if e, ok := n.ends[re]; ok {
		return e
	}
	e := -1
	if m := firstIn(re, n.text, nameWindows(n.text, argNameWords[re])); m != nil {
		e = m[1]
	}
	if n.ends == nil {
		n.ends = make(map[*regexp.Regexp]int)
	}
	n.ends[re] = e
	return e
}

// argOption tells what the option opt, after the words before of its command (named tells
// whether a client's name regexp matches them; mysql: a MySQL client was named before), makes
// of the argument after it: one naming a password
// (--password, --token) takes a secret, unless it turns one off (--no-password), or it is a
// MySQL client's -p glued to "assword"; a PostgreSQL or MySQL client's takes none that is
// another option (its --password prompts). redis-cli's -a and sshpass's -p take a password,
// mongosh's -p one that is no other option (it prompts without), curl's -u/--user/--proxy-user
// a user:password (TestRedactedCommandClientSecretOption).
func argOption(opt string, named func(*regexp.Regexp) bool, mysql bool) int {
	switch {
	case argPasswordFlag.MatchString(opt) && !argNoPassword.MatchString(opt):
		if mysql && strings.HasPrefix(opt, "-p") {
			return optNone
		}
		if mysql || named(argMySQLWord) || named(argPGWord) {
			return optValueNoOption
		}
		return optValue
	case opt == "-a" && named(argRedisWord),
		opt == "-p" && named(argSSHPassWord):
		return optValue
	case opt == "-p" && named(argMongoWord):
		// Given no value, it prompts: the option after it is another
		// (TestRedactedCommandMongoPasswordPrompt).
		return optValueNoOption
	case (opt == "-u" || opt == "-U" || opt == "--user" || opt == "--proxy-user") && named(argCurlWord):
		return optUserPass
	}
	return optNone
}

// hidden tells whether redactArgv hides anything of argv.
func hidden(argv []string) bool {
	return !slices.Equal(redactArgv(argv), argv)
}

// redactArg hides the passwords a command's argument may hold, wherever in it they are (a
// shell script given to sh -c holds many words): that of a URL (scheme://user:password@host), and
// the value of a setting named so (a secretName: PGPASSWORD=..., MYSQL_PWD=..., a connection string's
// password=..., --password=..., a URL's ?password=...), quoted or not. It hides the password's
// characters alone and shows the rest as written, so that a script keeps its syntax
// (TestRedactedCommandShellSyntax): an unquoted value ends at whitespace, at a shell operator
// (';', '&', '|' or ')' before whitespace, or '&&', '||'), at the quote that closes the
// part of the argument it stands in (psql "host=x password=..."), and a URL's parameter at its
// '&', before the URL's next parameter (TestRedactedCommandURLQueryPassword); a quoted value
// keeps its quotes. A value that is an expansion ($VAR, ${VAR}, $(command), `command`) is no
// password written there and is shown, as is an empty one. The same goes for an option naming
// a password, in quotes of its own or not, and its value as the next word (--password s3cret,
// '--password' 's3cret', --password -s3cret) unless that is no word (a redirection,
// >/dev/null), or another option after a PostgreSQL or MySQL client's name in its command
// (psql --password -h db: theirs takes no value), or the option turns a password off
// (--no-password) (TestRedactedCommandPasswordOptionDashOrQuoted), and for a -p glued to its value
// (-ps3cret) when it follows a MySQL client's name there or, for mysql, in an argument before
// (TestRedactedCommandPasswordOption).
func redactArg(a string) string {
	return redactArgIn(a, false, nil)
}

// redactArgIn is redactArg, mysql telling whether a MySQL client was named before a, what it
// hides noted in sec.
func redactArgIn(a string, mysql bool, sec *secrets) string {
	a = redactURLPasswords(a, sec)
	if writesPgpass(a) {
		a = redactPgpassLines(a, sec)
	}
	a = redactHeaders(a, sec)
	a = redactLiterals(a, sec)
	var b strings.Builder
	quote := byte(0)  // the shell quote the scan is in: 0, '\'' or '"'
	inner := byte(0)  // the quote the text in that shell quote is in (argValueEnd)
	comment := false  // the scan is in a comment (# ...)
	done, pos := 0, 0 // a[:done] is in b; the scan for quotes has read a[:pos]
	// The clients named in a, and in the simple command of the script an option is in: a[cmd:]
	// from the operator or newline before it, if any, up to the one after it (argCommandEnds);
	// a[:cmdPos] read for them.
	inA, inCmd := names{text: a}, names{}
	cmd, cmdPos, cmdRead := 0, 0, false
	for _, m := range argPasswordMatches(a) {
		if m[0] < done {
			continue // in a value read already
		}
		// An option in quotes of its own ('--password' 's3cret'): its value is read as the
		// quotes around the option leave the text, the scan stopping before them.
		opt, value := -1, -1 // an option's name's start and end, and its value's start
		if m[8] >= 0 {
			opt, value = 8, m[10]
		} else if m[14] >= 0 {
			opt, value = 14, m[16]
		}
		optQuote := ""
		if opt >= 0 && a[m[opt+1]] != ' ' && a[m[opt+1]] != '\t' {
			if m[0] == 0 || a[m[0]-1] != a[m[opt+1]] || pos > m[0]-1 {
				continue // a quote that closes another's
			}
			optQuote = a[m[opt+1] : m[opt+1]+1]
		}
		for pos < m[0]-len(optQuote) {
			c, n := a[pos], 1
			switch {
			case comment:
				comment = c != '\n'
			case quote == 0 && c == '#' && (pos == 0 || strings.IndexByte(" \t\n;&|(", a[pos-1]) >= 0):
				comment = true // to the line's end, its quotes none
			case quote == 0 && c == '\'' && pos > 0 && a[pos-1] == '$':
				n = argQuoteEnd(a, pos) - pos // $'...', its backslashes escapes
			case quote == 0 && c == '\\':
				n = 2
			case quote == 0 && (c == '\'' || c == '"'):
				quote, inner = c, 0
			case quote == '\'' && strings.HasPrefix(a[pos:], `'\''`):
				inner, n = argToggle(inner, '\''), 4
			case quote == '\'' && strings.HasPrefix(a[pos:], `'"'"'`):
				inner, n = argToggle(inner, '\''), 5
			case quote == '"' && strings.HasPrefix(a[pos:], `\"`):
				inner, n = argToggle(inner, '"'), 2
			case quote == '"' && c == '\\':
				n = 2
			case c == quote:
				quote = 0
			case quote != 0 && (c == '\'' || c == '"'):
				inner = argToggle(inner, c)
			}
			pos += n
		}
		start := m[1]
		userPass := false
		if opt >= 0 || m[12] >= 0 {
			if w := m[0] - len(optQuote); w > 0 && strings.IndexByte(" \t\n\r\f;&|(", a[w-1]) < 0 {
				continue // in a word
			}
		}
		// A MySQL client named before the match: one is in a word before its word's start
		// (the one ending there ends in its space).
		e := inA.end(argMySQLWord)
		switch glued := mysql || e >= 0 && e <= m[0]; {
		case m[12] >= 0: // -p glued to its value
			if !glued && !afterSSHPass(a, m[0]) {
				continue
			}
			start = m[12]
		case m[8] >= 0 && glued && len(a[m[8]:m[9]]) > 2 && a[m[8]+1] == 'p':
			start = m[8] + 2 // -ppassword: a MySQL client's -p glued to "password"
		case m[8] >= 0 && argNoPassword.MatchString(a[m[8]:m[9]]):
			continue // --no-password: no value, the next word another argument
		case opt >= 0: // an option, its value the next word
			if argNoWord.MatchString(a[value:]) {
				continue // a redirection, an operator or a comment: no value given
			}
			if k := strings.LastIndexAny(a[cmdPos:m[0]], argCommandEnds); k >= 0 || !cmdRead {
				if k >= 0 {
					cmd = cmdPos + k + 1
				}
				end := len(a)
				if j := strings.IndexAny(a[cmd:], argCommandEnds); j >= 0 {
					end = cmd + j
				}
				inCmd, cmdRead = names{text: a[cmd:end]}, true
			}
			cmdPos = m[0]
			// A client named in the command before the option's word (its start, or its
			// quote's): the words before end in a space or that quote.
			named := func(re *regexp.Regexp) bool { e := inCmd.end(re); return e >= 0 && cmd+e <= m[0] }
			switch argOption(a[m[opt]:m[opt+1]], named, glued) {
			case optNone:
				continue
			case optValueNoOption:
				if a[value] == '-' {
					continue // a PostgreSQL or MySQL client's --password, and another option
				}
			case optUserPass:
				userPass = true
			}
			start = value
		default:
			// Spaces after the '=' come before the value in a connection string (password =
			// x, sslpassword = x) or after a name with spaces before its '=' (a grep's
			// 'password ='); after a variable's name (PGPASSWORD= psql) they end an empty
			// value.
			if name := a[m[4]:m[5]]; strings.EqualFold(name, "password") || strings.EqualFold(name, "sslpassword") || m[7] > m[6] {
				for start < len(a) && (a[start] == ' ' || a[start] == '\t') {
					start++
				}
			}
		}
		end := argValueEnd(a, start, quote, inner, m[3] > m[2])
		if opt >= 0 && a[start:end] == "-" {
			continue // the value read from stdin (TestRedactedCommandOptionValueStdin)
		}
		var shown string
		if userPass {
			var ok bool
			if shown, ok = argUserPassShown(a[start:end], quote, sec); !ok {
				continue // a user alone: its password is asked for
			}
		} else {
			shown = argValueShown(a[start:end], quote, sec)
		}
		b.WriteString(a[done:start])
		b.WriteString(shown)
		done, pos = end, end
	}
	b.WriteString(a[done:])
	return b.String()
}

// afterSSHPass tells whether the word at a[i] is one of sshpass's options in a script: the
// words before it, back to sshpass's name, are options (a few at most), whose -p may be glued
// to its password (sshpass -v -ps3cret ssh db: TestRedactedCommandMoreForms).
func afterSSHPass(a string, i int) bool {
	for range 4 {
		j := strings.TrimRight(a[:i], " \t")
		if len(j) == len(a[:i]) {
			return false // no word before
		}
		k := strings.LastIndexAny(j, " \t\n;&|(") + 1
		w := j[k:]
		if path.Base(w) == "sshpass" {
			return true
		}
		if !strings.HasPrefix(w, "-") {
			return false
		}
		i = k
	}
	return false
}

// redactHeaders hides the credential of each HTTP header in a that carries one, as a health
// check's curl -H sends it: an Authorization's (its scheme, Bearer or Basic, shown), an
// X-Api-Key's, a *-Token's (TestRedactedCommandAuthHeader). A value that is an expansion
// ($TOKEN, $(cat f)) is no credential written there, and is shown.
func redactHeaders(a string, sec *secrets) string {
	var b strings.Builder
	done := 0
	ms := findAllIn(argHeader, a, headerWindows(a))
	for i, m := range ms {
		v := a[m[4]:m[5]]
		if strings.HasPrefix(v, "$(") || strings.HasPrefix(v, "`") || isExpansion(v) {
			continue
		}
		if m[2] >= 0 && a[m[2]:m[3]] == shownHidden {
			// No scheme: the credential, hidden already (Authorization: redacted x, of
			// Authorization: s3cret x); what follows it is shown (TestRedactedCommandAgain).
			continue
		}
		start, end := m[4], m[5]
		if m[2] >= 0 && strings.EqualFold(a[m[2]:m[3]], "digest") {
			// Digest's parameters: its response (a hash of the password) is the credential,
			// the rest shown (TestRedactedCommandMoreForms).
			// Its own: on its line, before the next header (whose credential a response
			// after it, hidden first, left shown, and then was written again before it:
			// TestRedactedCommandDigestBeforeHeader); each part of a is read once
			// (TestRedactedCommandLongScriptLinear).
			line := a[m[4]:]
			if i+1 < len(ms) {
				line = a[m[4]:ms[i+1][0]]
			}
			if k := strings.IndexByte(line, '\n'); k >= 0 {
				line = line[:k]
			}
			r := argDigestResponse.FindStringSubmatchIndex(line)
			if r == nil {
				continue
			}
			start = m[4] + r[1]
			end = start
			for end < len(a) && strings.IndexByte(" \t\n\r'\",\\", a[end]) < 0 {
				end++
			}
			v = a[start:end]
			if v == "" {
				continue
			}
		}
		b.WriteString(a[done:start])
		b.WriteString(sec.hide(v))
		done = end
	}
	b.WriteString(a[done:])
	return b.String()
}

// redactLiterals hides the passwords a in SQL's or JSON's syntax holds: an SQL string after
// PASSWORD (psql -c "ALTER ROLE m PASSWORD '...'", its quotes doubled inside, or E'...' and
// escaped by a backslash there too: TestRedactedCommandSQLEscapeStringPassword, or U&'...', or
// dollar-quoted, $$...$$ or $tag$...$tag$: TestRedactedCommandLeftovers), and the
// string value of a JSON member named as a secret is (a secretName: curl -d
// '{"password":"..."}'), its quotes written as they are or as \" in a shell's double quotes.
// Their quotes are kept; an empty value or an expansion ($PW) is shown
// (TestRedactedCommandSQLAndJSONSecrets).
func redactLiterals(a string, sec *secrets) string {
	type span struct{ start, end int }
	var hide []span
	reach := 0 // the end of the dollar-quoted strings read, each read to its tag once
	for _, m := range findAllIn(argSQLPassword, a, sqlWindows(a)) {
		i := m[1]
		if m[0] < reach {
			continue // in a dollar-quoted string
		}
		if m[4] >= 0 { // $tag$...$tag$
			end := len(a)
			if k := strings.Index(a[i:], a[m[4]:m[5]]); k >= 0 {
				end = i + k
			}
			hide = append(hide, span{i, end})
			reach = end
			continue
		}
		for i < len(a) && !(a[i] == '\'' && (i+1 == len(a) || a[i+1] != '\'')) {
			if a[i] == '\'' || a[i] == '\\' && m[2] >= 0 {
				i++ // '' inside, or an escape string's \'
			}
			i++
		}
		hide = append(hide, span{m[1], min(i, len(a))})
	}
	for _, m := range findAllIn(argJSONSecret, a, jsonWindows(a)) {
		i := m[1]
		if n := m[3] - m[2] - 1; n > 0 { // \"...\", or \\\"...\\\" in a string in a string
			hide = append(hide, span{i, escapedQuoteEnd(a, i, n)})
			continue
		}
		for i < len(a) && a[i] != '"' {
			if a[i] == '\\' {
				i++
			}
			i++
		}
		hide = append(hide, span{m[1], min(i, len(a))})
	}
	slices.SortFunc(hide, func(x, y span) int { return x.start - y.start })
	var b strings.Builder
	done := 0
	for _, h := range hide {
		v := a[h.start:h.end]
		if h.start < done || v == "" || isExpansion(v) {
			continue
		}
		b.WriteString(a[done:h.start])
		b.WriteString(sec.hide(v))
		done = h.end
	}
	b.WriteString(a[done:])
	return b.String()
}

// escapedQuoteEnd is where a JSON string that starts at a[i] ends, its quotes written with n
// backslashes before each (\" in a shell's double quotes, n 1; \\\" in a string in such a
// string, n 3): at the first quote with n backslashes before it, or as many more as stand for
// a backslash of the string before its closing quote (each escaping doubling them, plus one:
// a run of r before a quote closes the string when r mod 2(n+1) is n); a quote in the string
// has 2n+1 (TestRedactedCommandLeftovers). A quote with fewer than n ends the text the string
// is in, and the string there; with none, the string runs to a's end.
func escapedQuoteEnd(a string, i, n int) int {
	for k := i; k < len(a); k++ {
		if a[k] != '"' {
			continue
		}
		r := 0
		for k-r > i && a[k-r-1] == '\\' {
			r++
		}
		switch {
		case r < n:
			return k - r
		case r%(2*(n+1)) == n:
			return k - n
		}
	}
	return len(a)
}

// redactPgpassLines hides the password of each line of a password file (.pgpass,
// $PGPASSFILE) in a, a command that writes one (echo 'db:5432:*:monitor:s3cret' >>
// ~/.pgpass): host:port:database:user:password, the port digits or '*', a field's ':' and
// '\\' escaped with a backslash; the password runs to the end of the quote the line is in, or
// of its word (TestRedactedCommandMoreForms), or to a \n (printf's and echo -e's newline, or
// \\n out of single quotes, which the shell reads as one: TestRedactedCommandLeftovers), the
// next line starting after it (TestRedactedCommandPgpassNewlineEscape); that of a line of
// its own, a here-document's, to the line's end (TestRedactedCommandPgpassHeredoc).
func redactPgpassLines(a string, sec *secrets) string {
	a = redactPrintfPgpass(a, sec)
	var b strings.Builder
	done := 0
	newline, newlineQ := -1, byte(0) // where the last password ended at a \n, and its quote
	var h heredocs
	for _, m := range findAllIn(argPgpassLine, a, pgpassWindows(a)) {
		if m[0] < done {
			continue
		}
		end := m[1]
		q := byte(0)
		switch {
		case a[m[0]] == '\'' || a[m[0]] == '"':
			q = a[m[0]]
		case a[m[0]] == '\\' && m[0] == newline:
			q = newlineQ // the next line, in the quote the one before it is in
		case pgpassOwnLine(a, m[0], &h):
			// A line of its own (a here-document's): its password runs to the line's end.
			if k := strings.IndexByte(a[end:], '\n'); k >= 0 {
				end += k
			} else {
				end = len(a)
			}
			end = m[1] + len(strings.TrimRight(a[m[1]:end], "\r"))
			if v := a[m[1]:end]; v != "" && !isExpansion(v) {
				b.WriteString(a[done:m[1]])
				b.WriteString(sec.hide(v))
				done = end
			}
			continue
		}
		for end < len(a) && a[end] != '\n' && a[end] != q && (q != 0 || !asciiSpace(rune(a[end])) && a[end] != '\'' && a[end] != '"') {
			if strings.HasPrefix(a[end:], `\n`) {
				newline, newlineQ = end, q // printf's and echo -e's newline: the line's end
				break
			}
			if q != '\'' && strings.HasPrefix(a[end:], `\\n`) {
				// \\n, which the shell reads as \n out of single quotes: that newline.
				newline, newlineQ = end+1, q
				break
			}
			if a[end] == '\\' && q != '\'' {
				end++
			}
			end++
		}
		end = min(end, len(a))
		if v := a[m[1]:end]; v != "" && !isExpansion(v) && !printfConversion.MatchString(v) {
			// A printf's conversion is no password: its argument is (redactPrintfPgpass).
			b.WriteString(a[done:m[1]])
			b.WriteString(sec.hide(v))
			done = end
		}
	}
	b.WriteString(a[done:])
	return b.String()
}

// redactPrintfPgpass hides the arguments of each printf in the script a that its format
// makes a password file's passwords: those of the conversions after the fourth ':' of a line
// of the format (printf '%s:%s:%s:%s:%s\n' db 5432 '*' m s3cret > ~/.pgpass), the format
// used again for the arguments after its conversions' (TestRedactedCommandLeftovers). The
// format is read as the shell reads its word; one that is an expansion is not read.
func redactPrintfPgpass(a string, sec *secrets) string {
	var b strings.Builder
	done := 0
	for off := 0; ; {
		k := strings.Index(a[off:], "printf")
		if k < 0 {
			break
		}
		p := off + k
		off = p + len("printf")
		if p > 0 && strings.IndexByte(" \t\n;&|(/`", a[p-1]) < 0 || off == len(a) || a[off] != ' ' && a[off] != '\t' {
			continue
		}
		// Its words, to the command's end: options, the format, the arguments, each read
		// once (the rest of the command is read after a format of a password file's alone).
		i := off
		word := func() (start, end int, ok bool) {
			for i < len(a) {
				if a[i] == ' ' || a[i] == '\t' {
					i++
				} else if strings.HasPrefix(a[i:], "\\\n") {
					i += 2 // a line continuation
				} else {
					break
				}
			}
			if i == len(a) || strings.IndexByte("\n;&|)#", a[i]) >= 0 {
				return i, i, false
			}
			start, i = i, max(argWordEnd(a, i, false, true), i+1)
			// The word ends at a shell operator glued to it (the ')' of the $(...) printf
			// is in, a ';', a redirection's '>'), after a redirection's own, which the
			// word starts with (TestRedactedCommandPrintfArgumentOperator).
			from := start + len(argRedirection.FindString(a[start:i]))
			if k := shellOperator(a[from:i]); k >= 0 && from+k > start {
				i = from + k
			}
			return start, i, true
		}
		// Redirections may stand before the format too, as anywhere in the command
		// (TestRedactedCommandPrintfRedirectionFirst).
		ws, we, ok := word()
		for options := true; ok; ws, we, ok = word() {
			if r := argRedirection.FindString(a[ws:we]); r != "" {
				if r == a[ws:we] {
					word() // the file, a word of its own
				}
			} else if options && strings.HasPrefix(a[ws:we], "-") {
				if a[ws:we] == "-v" {
					word() // its variable's name
				}
				options = a[ws:we] != "--"
			} else {
				break
			}
		}
		off = i // no printf of a command of its own in the words read
		if !ok {
			continue
		}
		format, ok := shellRead(a[ws:we])
		if !ok {
			continue
		}
		conversions, passwords := printfPasswords(format)
		if len(passwords) == 0 {
			continue
		}
		for arg := 0; ; {
			ws, we, ok = word()
			if !ok {
				break
			}
			if r := argRedirection.FindString(a[ws:we]); r != "" {
				if r == a[ws:we] {
					word() // the file, a word of its own
				}
				continue
			}
			if passwords[arg%conversions] {
				b.WriteString(a[done:ws])
				b.WriteString(argValueShown(a[ws:we], 0, sec))
				done = we
			}
			arg++
		}
		off = i
	}
	if done == 0 {
		return a
	}
	b.WriteString(a[done:])
	return b.String()
}

// shellOperator is the index in the word w of the first shell operator's character in no
// quote (';', '&', '|', '(', ')', '<', '>'), which ends it: a shell reads one there, where
// argWordEnd, for a password's value (PGPASSWORD=a;b), reads it as the word's; -1 if none.
// Quotes, backslashes, $(...), ${...} and backquotes are followed as argWordEnd does.
func shellOperator(w string) int {
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c == '\\':
			i++
		case c == '\'' && (i == 0 || w[i-1] != '$'):
			if k := strings.IndexByte(w[i+1:], '\''); k >= 0 {
				i += k + 1
			} else {
				return -1
			}
		case c == '"' || c == '\'':
			i = argQuoteEnd(w, i) - 1
		case c == '`':
			if k := strings.IndexByte(w[i+1:], '`'); k >= 0 {
				i += k + 1
			} else {
				return -1
			}
		case c == '$' && i+1 < len(w) && w[i+1] == '(':
			i = argParenEnd(w, i+1) - 1
		case c == '$' && i+1 < len(w) && w[i+1] == '{':
			if k := strings.IndexByte(w[i+2:], '}'); k >= 0 {
				i += k + 2
			} else {
				return -1
			}
		case strings.IndexByte(";&|()<>", c) >= 0:
			return i
		}
	}
	return -1
}

// printfPasswords reads printf's format: how many arguments a use of it takes (each
// conversion's, and each '*' width's or precision's), and which of them are a password file's
// passwords, those of the conversions after the fourth ':' of a line (one ending at \n, or a
// newline); a '\' escapes the character after it.
func printfPasswords(format string) (conversions int, passwords map[int]bool) {
	colons := 0
	for i := 0; i < len(format); i++ {
		switch c := format[i]; {
		case c == '\n':
			colons = 0
		case c == '\\':
			if strings.HasPrefix(format[i:], `\n`) {
				colons = 0
			}
			i++
		case c == ':':
			colons++
		case c == '%' && strings.HasPrefix(format[i:], "%%"):
			i++
		case c == '%':
			m := printfSpec.FindString(format[i:])
			if m == "" {
				continue
			}
			conversions += strings.Count(m, "*") + 1
			if colons >= 4 {
				if passwords == nil {
					passwords = make(map[int]bool)
				}
				passwords[conversions-1] = true
			}
			i += len(m) - 1
		}
	}
	return conversions, passwords
}

// printfConv is a conversion of printf's format in a regexp: its flags, width, precision, a
// length modifier (h, l...) and its letter, or bash's %(...)T.
const printfConv = `%[-+ #0']*(?:\*|[0-9]*)(?:\.(?:\*|[0-9]*))?(?:[hjlLtz]*[diouxXfFeEgGaAcsbqQ]|\([^)]*\)T)`

// redactURLPasswords hides the password of each URL in a (scheme://user:password@host).
func redactURLPasswords(a string, sec *secrets) string {
	var b strings.Builder
	done := 0
	for _, m := range findAllIn(argURLPassword, a, urlWindows(a)) {
		b.WriteString(a[done:m[3]])
		b.WriteString(sec.hide(a[m[3] : m[1]-1]))
		b.WriteString("@")
		done = m[1]
	}
	b.WriteString(a[done:])
	return b.String()
}

// secrets notes what the redaction of a command hides (CommandSecrets).
type secrets struct {
	vals []string
	seen map[string]bool // in vals
}

// shownHidden is what is shown in place of a secret.
const shownHidden = "redacted"

// hide notes v, hidden, in sec when sec is not nil, and returns what is shown in its place:
// "redacted", or v if it is empty, no secret (TestRedactedCommandEmptyValueShown), or
// "redacted" itself, hidden already: redacting what is shown shows it as it is, with no
// secret to mask (TestRedactedCommandAgain).
func (sec *secrets) hide(v string) string {
	if v == "" || v == shownHidden {
		return v
	}
	if sec != nil && !sec.seen[v] {
		if sec.seen == nil {
			sec.seen = make(map[string]bool)
		}
		sec.seen[v] = true
		sec.vals = append(sec.vals, v)
	}
	return shownHidden
}

// CommandSecrets is what check-config hides of argv, a health command's or a hook's: the
// passwords and other secrets written in it, each as written there (its quotes aside) and as
// a shell reads what is written (its quotes and escapes undone: "pa\"ss", 'pa'\”ss', pa\ ss,
// $'pa\'ss' are pa"ss and pa'ss, which the program gets and bash's set -x traces:
// TestCommandSecretsShellEscapes), the longest first, for their output's log to mask
// (procgroup.Output.Masked).
func CommandSecrets(argv []string) []string {
	written := writtenSecrets(argv)
	vals := slices.Clone(written)
	for _, v := range written {
		for _, r := range shellReadings(v) {
			if !slices.Contains(vals, r) {
				vals = append(vals, r)
			}
		}
	}
	slices.SortStableFunc(vals, func(x, y string) int { return len(y) - len(x) })
	return vals
}

// writtenSecrets is CommandSecrets as written in argv alone, the longest first.
func writtenSecrets(argv []string) []string {
	var sec secrets
	redactArgvSec(argv, &sec)
	slices.SortStableFunc(sec.vals, func(x, y string) int { return len(y) - len(x) })
	return sec.vals
}

// shellReadings are the secret v, as written in a script, as a shell reads it there: in no
// quote, in single quotes or in double quotes (shellRead); those that differ from v and are
// not empty.
func shellReadings(v string) []string {
	var rs []string
	for _, w := range []string{v, "'" + v + "'", `"` + v + `"`} {
		if r, ok := shellRead(w); ok && r != "" && r != v && r != shownHidden && !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	return rs
}

// shellRead is the word w as a POSIX shell (and bash, for $'...') reads it: its quotes and
// backslashes undone; ok is false for a word the shell expands ($VAR, $(command), `command`)
// or one whose quote is left open.
func shellRead(w string) (string, bool) {
	var b strings.Builder
	quote := byte(0)
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case quote == 0 && c == '$' && i+1 < len(w) && w[i+1] == '\'':
			j, ok := ansiCRead(w, i+2, &b)
			if !ok {
				return "", false
			}
			i = j
		case c == '$' && i+1 < len(w) && (w[i+1] == '{' || w[i+1] == '(' || w[i+1] == '_' || unicode.IsLetter(rune(w[i+1])) || unicode.IsDigit(rune(w[i+1])) || strings.IndexByte("@*#?-$!", w[i+1]) >= 0),
			c == '`':
			return "", false // an expansion
		case c == '\\' && i+1 < len(w) && (quote == 0 || strings.IndexByte("\"\\$`\n", w[i+1]) >= 0):
			if w[i+1] != '\n' {
				b.WriteByte(w[i+1])
			}
			i++
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote == '"' && c == '"':
			quote = 0
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), quote == 0
}

// ansiCRead reads the text of a $'...' word from w[i] to its closing quote into out, its C
// escapes undone, up to a NUL one gives (bash drops what follows it there: $'s3c\0ret' is
// s3c, TestCommandSecretsShellEscapes), and returns where that quote is; ok is false when
// there is none.
func ansiCRead(w string, i int, out *strings.Builder) (end int, ok bool) {
	var b strings.Builder
	for ; i < len(w); i++ {
		c := w[i]
		if c == '\'' {
			text, _, _ := strings.Cut(b.String(), "\x00")
			out.WriteString(text)
			return i, true
		}
		if c != '\\' || i+1 == len(w) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := w[i]; e {
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'e', 'E':
			b.WriteByte(0x1b)
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case 'x':
			n, k := 0, i+1
			for ; k < len(w) && k < i+3 && strings.IndexByte("0123456789abcdefABCDEF", w[k]) >= 0; k++ {
				d, _ := strconv.ParseUint(w[k:k+1], 16, 8)
				n = n*16 + int(d)
			}
			if k == i+1 {
				b.WriteString(`\x`)
				continue
			}
			b.WriteByte(byte(n))
			i = k - 1
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n, k := 0, i
			for ; k < len(w) && k < i+3 && w[k] >= '0' && w[k] <= '7'; k++ {
				n = n*8 + int(w[k]-'0')
			}
			b.WriteByte(byte(n))
			i = k - 1
		default: // \\, \', \", \? and the rest: the character
			if strings.IndexByte("\\'\"?", e) < 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(e)
		}
	}
	return len(w), false
}

// argValueEnd is where the value of a password setting that starts at a[i] ends: in the shell
// quote quote (0: none), at a point of the text that quote holds in the quote inner, and, for
// url, a URL's parameter, whose value ends at its '&' (one in the password is
// percent-encoded). In a shell quote the value is read in the text the quote stands for: a
// quote of that text (a backslash and the quote between two closing and opening single quotes,
// or a backslash and the double quote) is no end of the shell's quote
// (TestRedactedCommandQuoteInShellQuotes).
//
// It reads the text from a[i] to a bound first, a longer one if the value may end near it:
// that of many values in one long quote ends long before the quote does, which the text
// reaches (TestRedactedCommandLongScriptLinear). Read to a bound, a's text is its text read
// to the end but for the last few characters of what it holds (a quote of a quote cut there,
// or its backslash) as each quote's text is, five characters of a at most standing for one
// of it: a value ending some hundred characters before the bound ends there in all of a.
func argValueEnd(a string, i int, quote, inner byte, url bool) int {
	if quote != 0 {
		for n := 1024; i+n < len(a); n *= 4 {
			if end := argValueEndIn(a[:i+n], i, quote, inner, url); end+argValueMargin <= i+n {
				return end
			}
		}
	}
	return argValueEndIn(a, i, quote, inner, url)
}

// argValueMargin is how far before the bound of the text it reads a value's end is where it
// ends in all of a (argValueEnd).
const argValueMargin = 256

// argValueEndIn is argValueEnd, the text read to a's end.
func argValueEndIn(a string, i int, quote, inner byte, url bool) int {
	if quote == 0 {
		return argTextEnd(a, i, url)
	}
	var text []byte
	var at []int // at[k]: where in a text[k] is
scan:
	for i < len(a) {
		n := 1
		switch c := a[i]; {
		case quote == '\'' && strings.HasPrefix(a[i:], `'\''`):
			n = 4
			text, at = append(text, '\''), append(at, i)
		case quote == '\'' && strings.HasPrefix(a[i:], `'"'"'`):
			n = 5
			text, at = append(text, '\''), append(at, i)
		case c == quote:
			break scan // its end
		case quote == '"' && c == '\\' && i+1 < len(a) && strings.IndexByte("\"\\$`", a[i+1]) >= 0:
			n = 2
			text, at = append(text, a[i+1]), append(at, i)
		case quote == '"' && (c == '`' || c == '$' && i+1 < len(a) && a[i+1] == '('):
			// A command substitution, its quotes its own.
			j := len(a)
			if c == '$' {
				j = argParenEnd(a, i+1)
			} else if k := strings.IndexByte(a[i+1:], '`'); k >= 0 {
				j = i + k + 2
			}
			for k := i; k < j; k++ {
				text, at = append(text, a[k]), append(at, k)
			}
			n = j - i
		default:
			text, at = append(text, c), append(at, i)
		}
		i += n
	}
	// The value in that text, read so in the quote inner if it is in one (a script in a script).
	if k := argValueEndIn(string(text), 0, inner, 0, url); k < len(at) {
		return at[k]
	}
	return i
}

// argUserPassShown is what check-config shows in place of v, curl's user:password read in the
// shell quote quote: the user, and the password as argValueShown shows it; ok is false when v
// holds no password (a user alone, for which curl asks).
func argUserPassShown(v string, quote byte, sec *secrets) (shown string, ok bool) {
	q, text := "", v
	// One quoted word: its quote ends it, though the password in it holds an escaped one
	// ('user:pa'\''ss', whose closing quote was taken for part of the password).
	if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[0] != quote && (argQuoteEnd(v, 0) == len(v) || v[0] == '\'' && !strings.Contains(v[1:strings.IndexByte(v+":", ':')], "'")) && v[len(v)-1] == v[0] {
		q, text = v[:1], v[1:len(v)-1]
		if v[0] == '\'' {
			quote = '\''
		}
	}
	user, pw, found := strings.Cut(text, ":")
	if !found || pw == "" {
		return v, false
	}
	return q + user + ":" + argValueShown(pw, quote, sec) + q, true
}

// argPasswordMatches is argPasswordName's matches in a, each as FindStringSubmatchIndex gives
// it. An option's match takes the first character of the word after it, which may be no value
// of its (psql --password -h: argOption): the match after it is looked for from there, so that
// the word may start one of its own (mysql --password -ps3cret).
//
// A -p glued to what follows it (-pX) may be one of many in a word (-p-p-p...), each looked
// for from the end of the one before: the regexp reads the rest of the word each time, its
// names that may start anywhere in a word ([\w.-]*password) taking all of it, a 128 KiB word
// minutes (TestArgPasswordMatchesGluedLinear). Those are looked for without it (argGluedAfter).
func argPasswordMatches(a string) [][]int {
	var ms [][]int
	windows := argPasswordWindows(a)
	fold := folds(a) // one window: a match's word is found by foldWordEnd
	gluedEnd := -1   // argGluedAfter holds, from off on, of the word ending there
	var block []int  // where its matches are made, a few at a time
	for off := 0; off < len(a) && len(windows) > 0; {
		w := windows[0]
		if w.words <= off {
			windows = windows[1:] // no match starts in it from off on
			continue
		}
		if gluedEnd >= 0 {
			if s, n := argGluedAfter(a, off, gluedEnd); s >= 0 {
				if len(block) == 0 {
					block = make([]int, 64*argMatchLen)
				}
				m := block[:argMatchLen:argMatchLen]
				block = block[argMatchLen:]
				for k := range m {
					m[k] = -1
				}
				m[0], m[1], m[12], m[13] = s, s+2+n, s+2, s+2+n
				ms = append(ms, m)
				off = m[1]
				continue
			}
			gluedEnd = -1
		}
		ws := max(w.start, off)
		m := argPasswordName.FindStringSubmatchIndex(a[ws:w.end])
		if m == nil || ws+m[0] >= w.words {
			windows = windows[1:] // one starting after its words is the next window's
			continue
		}
		for k := range m {
			if m[k] >= 0 {
				m[k] += ws
			}
		}
		ms = append(ms, m)
		next := m[1]
		if m[10] >= 0 {
			next = m[10]
		} else if m[16] >= 0 {
			next = m[16]
		}
		off = next
		if m[12] >= 0 {
			end := w.words
			if fold {
				end = foldWordEnd(a, m[0])
			}
			if m[0] < end-argGluedTail {
				gluedEnd = end
			}
		}
	}
	return ms
}

// argGluedTail is how far before the end of its word a match of argPasswordName that is no -p
// glued to what follows it may start, but for one whose name may start anywhere in the word
// ([\w.-]*password, [\w.-]*[-_]pwd... and an option of such a name): a name of its own
// (rediscli_auth, token after a \b), an option of a client's (--proxy-user), their [?&] or
// dashes.
const argGluedTail = 32

// argMatchLen is the length of a match of argPasswordName as FindStringSubmatchIndex gives it.
var argMatchLen = 2 * (argPasswordName.NumSubexp() + 1)

// argGluedAfter is where the first match of argPasswordName from a[off] on starts, and the
// length of the character after its -p, given that off is in a word (of the bytes of
// argTokenByte, and of ſ and K in a text that folds: the regexp's [\w.-] is) ending at words,
// after a match in it of a -p glued to what follows it, starting more than argGluedTail bytes
// before its end: -1 if there is none that far before it, the regexp to read the rest. That
// match (found by the regexp, the leftmost from where it looked) was of no other kind: no name
// started before it, and none that may start anywhere in the word starts after it, as it
// would at its start too, where the regexp would have preferred it (or before it). The rest
// of the word's start there, far from its end, are -p glued to the character after them.
func argGluedAfter(a string, off, words int) (start, n int) {
	limit := words - argGluedTail
	if off >= limit {
		return -1, 0
	}
	k := strings.Index(a[off:limit], "-p")
	if k < 0 {
		return -1, 0
	}
	_, n = utf8.DecodeRuneInString(a[off+k+2:]) // in the word
	return off + k, n
}

// foldWordEnd is the end of the word a[i] is in, a text that folds: of the bytes of
// argTokenByte, and of ſ and K, which the regexps' (?i)[\w.-] reads as letters.
func foldWordEnd(a string, i int) int {
	for i < len(a) {
		switch {
		case argTokenByte(a[i]):
			i++
		case strings.HasPrefix(a[i:], "\u017f"):
			i += len("\u017f")
		case strings.HasPrefix(a[i:], "\u212a"):
			i += len("\u212a")
		default:
			return i
		}
	}
	return i
}

// pgpassOwnLine tells whether the match of argPgpassLine at a[i] is a line of its own: a
// here-document's line, maybe after spaces or tabs, or at a's start, in no quote. A line at a
// line's start that is no here-document's (after a line continuation, in a quote that spans
// lines) is a word's (TestRedactedCommandPgpassLineNotHeredoc).
func pgpassOwnLine(a string, i int, h *heredocs) bool {
	switch a[i] {
	case '\n':
		return h.in(a, i+1)
	case ' ', '\t':
	default:
		return i == 0 && a[i] != '\'' && a[i] != '"' // at a's start, no character before it
	}
	for i > 0 && (a[i-1] == ' ' || a[i-1] == '\t') {
		i--
	}
	return i == 0 || a[i-1] == '\n' && h.in(a, i)
}

// heredocUnquote takes a here-document's delimiter's quotes out of it, as bash does.
var heredocUnquote = strings.NewReplacer(`'`, "", `"`, "", `\`, "")

// heredocs reads a script's lines once, for in.
type heredocs struct {
	off    int      // the start of the next line to read
	delims []string // the bodies still open, the first the one being read
	dashes []bool   // each one's <<-, whose lines' leading tabs are not theirs
}

// in tells whether the line of script a starting at ls (at or after that of the call before)
// is in a here-document's body: after a line holding a << (not <<<) whose delimiter no line
// since has ended. Quotes are not followed: a << in one is taken for an operator.
func (h *heredocs) in(a string, ls int) bool {
	for h.off < ls {
		line := a[h.off:ls]
		if k := strings.IndexByte(line, '\n'); k >= 0 {
			line = line[:k]
		}
		h.off += len(line) + 1
		delims, dashes := h.delims, h.dashes
		if len(delims) > 0 {
			l := line
			if dashes[0] {
				l = strings.TrimLeft(l, "\t")
			}
			if strings.TrimRight(l, "\r") == delims[0] {
				h.delims, h.dashes = delims[1:], dashes[1:]
			}
			continue
		}
		for k := 0; ; {
			j := strings.Index(line[k:], "<<")
			if j < 0 {
				break
			}
			k += j + 2
			if k < len(line) && line[k] == '<' { // a here-string
				k++
				continue
			}
			dash := k < len(line) && line[k] == '-'
			if dash {
				k++
			}
			k = skip(line, k, " \t")
			d := k
			for k < len(line) && !asciiSpace(rune(line[k])) && !strings.ContainsRune(";&|<>()", rune(line[k])) {
				k++
			}
			if w := heredocUnquote.Replace(line[d:k]); w != "" {
				h.delims, h.dashes = append(h.delims, w), append(h.dashes, dash)
			}
		}
	}
	return len(h.delims) > 0
}

// argCommandEnds are the operators and the newline that end a script's simple command.
const argCommandEnds = ";&|(\n"

// argToggle is the quote inner after the quote c in a shell's quotes: c opens, or closes the
// quote inner if it is c; a quote of the other kind in inner is a character of it.
func argToggle(inner, c byte) byte {
	switch inner {
	case 0:
		return c
	case c:
		return 0
	}
	return inner
}

// argTextEnd is where the value that starts at a[i] ends, a's text in no shell quote (that of
// one read by argValueEnd): the later of its ends as a shell reads it, in whose '...' a
// backslash is a character, and as a connection string does, in whose '...' it escapes the
// quote (TestRedactedCommandBackslashInShellSingleQuotes).
func argTextEnd(a string, i int, url bool) int {
	return max(argWordEnd(a, i, url, true), argWordEnd(a, i, url, false))
}

// argWordEnd is argTextEnd as a shell reads a (shell), or as a connection string does.
func argWordEnd(a string, i int, url, shell bool) int {
	for i < len(a) {
		c := a[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			return i
		case url && c == '&':
			return i
		case c == '\\':
			i += 2
		case c == '$' && i+1 < len(a) && a[i+1] == '(':
			i = argParenEnd(a, i+1)
		case c == '`':
			if j := strings.IndexByte(a[i+1:], '`'); j >= 0 {
				i += j + 2
			} else {
				i = len(a)
			}
		case c == '\'' && shell && (i == 0 || a[i-1] != '$'): // not $'...', with C escapes
			if j := strings.IndexByte(a[i+1:], '\''); j >= 0 {
				i += j + 2
			} else {
				i = len(a)
			}
		case c == '\'' || c == '"':
			i = argQuoteEnd(a, i)
		case strings.IndexByte(";&|)", c) >= 0 && i+1 < len(a) && strings.IndexByte(" \t\n\r\f", a[i+1]) >= 0,
			(c == '&' || c == '|') && i+1 < len(a) && a[i+1] == c:
			// A shell operator: the end of the command, or of a (subshell). One in a password
			// written as an argument (PGPASSWORD=a;b) is before neither.
			return i
		default:
			i++
		}
	}
	return len(a)
}

// argQuoteEnd is the end of the quoted part that starts at a[i], past its closing quote, or
// the end of a: a backslash escapes the character after it, as in a connection string.
func argQuoteEnd(a string, i int) int {
	q := a[i]
	for i++; i < len(a); i++ {
		switch a[i] {
		case '\\':
			i++
		case q:
			return i + 1
		}
	}
	return len(a)
}

// argParenEnd is the end of the parenthesis that opens at a[i] (a $(command)), past the one
// that closes it, or the end of a.
func argParenEnd(a string, i int) int {
	depth := 0
	for i < len(a) {
		switch a[i] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i + 1
			}
		case '\'', '"':
			i = argQuoteEnd(a, i)
			continue
		case '\\':
			i++
		}
		i++
	}
	return len(a)
}

// argValueShown is what check-config shows in place of v, a password setting's value read in
// the shell quote quote: v itself when it is empty or an expansion, else "redacted", in v's
// quotes when v is one quoted part.
func argValueShown(v string, quote byte, sec *secrets) string {
	// A quoted value: in a shell's quotes, or in the other quote in a shell's quotes.
	quoted := v != "" && (v[0] == '\'' || v[0] == '"') && v[0] != quote
	inner := v
	if quoted && len(v) >= 2 && argQuoteEnd(v, 0) == len(v) && v[len(v)-1] == v[0] {
		inner = v[1 : len(v)-1]
		if quote == 0 && v[0] == '\'' {
			quote = '\''
		}
	}
	switch {
	case inner == "":
		return v
	case quote != '\'' && isExpansion(inner) && (inner[0] != '$' || inner[1] != '(' || argParenEnd(inner, 1) == len(inner)):
		// An expansion, shown; a command substitution's command as an argument is, its
		// passwords hidden.
		wrapped := inner != v // in "..."
		for _, cs := range [][2]string{{"$(", ")"}, {"`", "`"}} {
			if strings.HasPrefix(inner, cs[0]) && strings.HasSuffix(inner, cs[1]) && len(inner) >= len(cs[0])+len(cs[1]) {
				inner = cs[0] + redactArgIn(inner[len(cs[0]):len(inner)-len(cs[1])], false, sec) + cs[1]
				break
			}
		}
		if wrapped {
			return v[:1] + inner + v[:1]
		}
		return inner
	case inner != v:
		return v[:1] + sec.hide(inner) + v[:1]
	case quoted && argQuoteEnd(v, 0) == len(v):
		return v[:1] + sec.hide(v[1:]) // its closing quote missing
	}
	return sec.hide(v)
}

// secretName is the name of a setting or an option that holds a password or another secret,
// any case: one ending in password, passwd or passphrase (PGPASSWORD, sslpassword), a pass,
// token, secret or API key of its own (--pass, DB_PASS, VAULT_TOKEN, --client-secret,
// API_KEY; not --bypass, --token-file or SECRET_FILE), a *_PWD (MYSQL_PWD; not $PWD or
// $OLDPWD, directories) and redis-cli's REDISCLI_AUTH (TestRedactedCommandOtherSecretNames).
const secretName = `[\w.-]*pass(?:word|wd|phrase)|(?:[\w.-]*[-_.]|\b)(?:pass|token|secret|api[-_]?key)|[\w.-]*[-_]pwd|rediscli_auth`

var (
	// A URL's user:password@, up to the last '@' before its host ends (a '/', '?' or '#'). The
	// password may hold an unencoded '/' (postgres://u:p/ss@h, which the clients cannot read
	// and RedactDSN hides too): a '/' and then '@' before the next '/' is one, but for a '/'
	// right before the '@' (http://h:4873/@scope/pkg: a path) (TestRedactedCommandMoreForms).
	argURLPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#]*(?:/[^\s/?#@][^\s/?#]*)*@`)
	// NAME= (its value read by argValueEnd), NAME a secretName, after the '?' or '&' before a
	// URL's parameter if there is one.
	// Or (the 4th group) an option so named, maybe in quotes of its own ('--password'), before
	// whitespace and a word (the 5th its first character: the value's start); or a -p glued
	// to its value (the 6th its first character), a MySQL client's password. Either counts at
	// a word's start only (redactArgIn); the alternatives start where NAME= does, so that it
	// is preferred. Or (the 7th) an option of a client's that takes a password without naming
	// one (redis-cli -a, curl -u: argOption), and (the 8th) its value's first character.
	argPasswordName = regexp.MustCompile(`(?i)([?&]?)(` + secretName + `)([ \t]*)=` +
		`|(--?(?:` + secretName + `))['"]?[ \t]+(\S)|(?-i:-p)([^\s])` +
		`|(?-i:(-[apuU]|--user|--proxy-user))['"]?[ \t]+(\S)`)
	// An option naming a password, as an argument of its own: the next is its value.
	argPasswordFlag = regexp.MustCompile(`(?i)^--?(?:` + secretName + `)$`)
	// What starts no word of a script, though it may follow one (--password >/dev/null): a
	// redirection (>, 2>, <, &>), an operator or a comment
	// (TestRedactedCommandPasswordOptionBeforeRedirection).
	argNoWord = regexp.MustCompile(`^(?:[0-9]*[<>]|[#;&|()])`)
	// An HTTP header carrying a credential, at a word's start or a quote's (-H 'Authorization:
	// Bearer ...'): Authorization and Proxy-Authorization, a scheme before the credential if
	// one is given (the 1st group), and the API keys and tokens of X-Api-Key, X-Auth-Token,
	// PRIVATE-TOKEN...; the 2nd group is the credential, up to a space, a quote or a backslash
	// (\" in "...").
	argHeader = regexp.MustCompile(`(?i)(?:^|[\s'"])(?:(?:proxy-)?authorization[ \t]*:[ \t]*(?:([a-z][\w.-]*)[ \t]+)?` +
		`|(?:(?:\w+-)+(?:token|api-?key|secret|auth)|api-?key)[ \t]*:[ \t]*)([^\s'"\\]+)`)
	// The response parameter of a Digest Authorization header, up to its value (after its
	// quote, maybe escaped: \" in "...").
	argDigestResponse = regexp.MustCompile(`(?i)(?:^|[\s,])response[ \t]*=[ \t]*(?:\\?")?`)
	// A password file's line up to its password (redactPgpassLines), at a word's or a quote's
	// start, or after a \n (printf's newline), its port digits, '*' or a printf's conversion
	// (printf '%s:%d:*:m:s3cret\n' db 5432: TestRedactedCommandLeftovers).
	argPgpassLine = regexp.MustCompile(`(?:^|[\s'"]|\\n)(?:[^\s:'"\\]|\\.)+:(?:\d+|\*|%[-+#0]*[0-9]*[hjlLtz]*[sdiu]):(?:[^\s:'"\\]|\\.)+:(?:[^\s:'"\\]|\\.)+:`)
	// SQL's PASSWORD before a string ('...', an escape string E'...' whose 1st group is the
	// E: TestRedactedCommandSQLEscapeStringPassword, or a Unicode escape string U&'...', whose
	// backslashes escape no quote: TestRedactedCommandLeftovers, or a dollar-quoted one
	// $tag$...$tag$, whose 2nd group is its tag), any case, and a JSON member named as a
	// secret is ("password": "), its quotes maybe escaped (\"password\":\", or \\\"password\\\":\\\"
	// in a string in a string); the 1st group is the quote that opens its value, its
	// backslashes with it.
	argSQLPassword = regexp.MustCompile(`(?i)(?:^|[^\w-])password[ \t\n]+(?:(?:(e)|u&)?'|(\$(?:[a-z_][a-z0-9_]*)?\$))`) // not an option's
	argJSONSecret  = regexp.MustCompile(`(?i)\\?"(?:` + secretName + `)\\*"[ \t]*:[ \t]*(\\*")`)
	// An option turning a password off (psql's --no-password, MySQL's --skip-password): it
	// takes no value (TestRedactedCommandNegatedPasswordOption).
	argNoPassword = regexp.MustCompile(`(?i)^--?(?:no|skip|without)[-_]`)
	// A MySQL client's name (mysql, mysqladmin, mysqldump, mariadb, mariadb-admin...), whose -p
	// takes the password glued to it; argMySQLWord: one as a word of a script.
	argMySQLClient = regexp.MustCompile(`^(?:mysql|mariadb)[\w-]*$`)
	argMySQLWord   = regexp.MustCompile(`(?:^|[\s;&|(/])(?:mysql|mariadb)[\w-]*(?:\s|$)`)
	// Clients whose options take a password without naming one (argOption), each as a word:
	// redis-cli's -a, mongosh's (and its tools') and sshpass's -p, curl's -u.
	argRedisWord   = regexp.MustCompile(`(?:^|[\s/'"])(?:redis|valkey|keydb)-cli(?:[\s'"]|$)`)
	argMongoWord   = regexp.MustCompile(`(?:^|[\s/'"])(?:mongo|mongosh|mongodump|mongorestore|mongoexport|mongoimport|mongostat|mongotop|mongofiles)(?:[\s'"]|$)`)
	argSSHPassWord = regexp.MustCompile(`(?:^|[\s/'"])sshpass(?:[\s'"]|$)`)
	argCurlWord    = regexp.MustCompile(`(?:^|[\s/'"])curl(?:[\s'"]|$)`)
	// A PostgreSQL client's name (psql, pg_dump...) as a word, whose --password takes no value:
	// it prompts.
	argPGWord = regexp.MustCompile(`(?:^|[\s/'"])(?:psql|pg_\w+|createdb|dropdb|createuser|dropuser|clusterdb|reindexdb|vacuumdb|pgbench)(?:[\s'"]|$)`)
	// A conversion of printf's format (%s, %-8s, %.*b, %ld, whose length modifier bash's
	// printf ignores, bash's time %(%F)T: TestRedactedCommandPrintfLengthModifier):
	// printfSpec at its start, and printfConversion one alone, a password file's line's
	// password in a format, no password (redactPrintfPgpass).
	printfSpec       = regexp.MustCompile(`^` + printfConv)
	printfConversion = regexp.MustCompile(`^` + printfConv + `$`)
	// A redirection's word (>, 2>>, &>, <, >~/.pgpass), the file maybe glued to it.
	argRedirection = regexp.MustCompile(`^(?:[0-9]*|&)(?:>>?|<)[|&]?`)
	// A value that is an expansion, not a password: $VAR (a name in capitals: $ecret may be a
	// password), ${VAR} (without a default, which may be one), $(...) (its parentheses matched
	// by argValueShown), `...`.
	argExpansion = regexp.MustCompile("^(?:\\$[A-Z_][A-Z0-9_]*|\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}|\\$\\(.*\\)|`[^`]*`)$")
)
