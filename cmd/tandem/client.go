package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/tandem-ha/tandem/config"
)

// adminClient talks to a running member's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
	cli   bool // an operator's command (adminFlags): a refusal says which flags give the token
	// guessed: neither -config nor -admin was given, so base is config.DefaultAdminListen,
	// which no member need listen on (the examples' sites do not): a failure to reach it says
	// how to name the member.
	guessed bool
}

// adminTransport carries every request to an admin API, an operator's command's and a
// switchover a backup forwards: straight to the member, never through $HTTP_PROXY (which
// http.DefaultTransport honours for any address beyond loopback): the proxy would be given
// the bearer token, and the admin address is one of the sites', not one to reach through it.
var adminTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return t
}()

// newAdminHTTP is the HTTP client of an admin API request.
func newAdminHTTP(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: adminTransport}
}

// cliTimeout bounds an operator's admin command (all but resync, which waits for its copy).
const cliTimeout = 10 * time.Second

// adminFlags parses -config / -admin and returns the client and the rest of the arguments, or
// an error (already written to stderr) for usageExit: flag.ErrHelp after -h, errUsage else.
// extra adds a command's own flags.
func adminFlags(name string, args []string, stderr io.Writer, extra ...func(*flag.FlagSet)) (*adminClient, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, f := range extra {
		f(fs)
	}
	path := fs.String("config", "", "the member's TOML file (its admin address and token are used)")
	addr := fs.String("admin", "", "the member's admin address host:port (default "+config.DefaultAdminListen+"; overrides -config's)")
	tokenFile := fs.String("token-file", "", "file holding the admin API's bearer token (overrides -config's)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	// Given empty (a variable left empty), a flag was taken for not given: the command went to
	// the default address, a member other than the one meant, or without the token.
	if empty := emptyFlag(fs, "config", "admin", "token-file"); empty != "" {
		fmt.Fprintf(stderr, "tandem %s: -%s is empty\n", name, empty)
		return nil, nil, errUsage
	}
	c := &adminClient{base: adminURL(config.DefaultAdminListen), http: newAdminHTTP(cliTimeout), cli: true}
	if *path != "" {
		// With -token-file, the file's own token is not needed, nor read: the operator may
		// not be able to read the sidecar's token file, or have it at that path.
		listen, token, err := adminConfig(*path, *tokenFile == "")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return nil, nil, errUsage
		}
		c.base, c.token = adminURL(listen), token
	}
	if *addr != "" {
		// host:port, as admin.listen: without a port it was asked on 80, and a URL's scheme
		// was taken for the host, each failing with an error that named no flag; so did a port
		// that is no port number (http, +7180, 99999), with exit 1.
		// An IPv6 zone is taken as admin.listen gives it ([fe80::1%eth0]:7180) or as a URL
		// writes it (%25).
		a := strings.Replace(*addr, "%25", "%", 1)
		if _, port, err := net.SplitHostPort(a); err != nil || !portNumber(port) || strings.ContainsAny(a, "/?#@") {
			fmt.Fprintf(stderr, "tandem %s: -admin %q: want host:port, the member's admin.listen (127.0.0.1:7180)\n", name, *addr)
			return nil, nil, errUsage
		}
		c.base = adminURL(a)
	}
	if *path != "" && *addr == "" {
		// Port 0: the member listens on a free port it picked, which the file cannot tell;
		// dialled as written, it answered "connection refused", as if the member were down.
		if _, port, err := net.SplitHostPort(strings.TrimPrefix(c.base, "http://")); err == nil && port == "0" {
			fmt.Fprintf(stderr, "tandem %s: %s: admin.listen has port 0 (any free port): give -admin with the address the member bound (its log: tandem started ... admin=HOST:PORT)\n", name, *path)
			return nil, nil, errUsage
		}
	}
	c.guessed = *path == "" && *addr == ""
	if *tokenFile != "" {
		tok, err := config.ReadToken(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return nil, nil, errUsage
		}
		c.token = tok
	}
	return c, fs.Args(), nil
}

// errUsage is a command line refused, and why already said.
var errUsage = errors.New("usage error")

// usageExit is a command's exit code when its flags were refused (err from flag.FlagSet.Parse,
// or errUsage): 0 when -h (-help, --help) asked for them and they were listed, wherever it came
// among the flags (flag.ErrHelp), else 2.
func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// emptyFlag names the first of the flags given on fs's command line with an empty value ("" when
// none is): a variable left empty in `-admin "$ADDR"` must not count as the flag not given.
func emptyFlag(fs *flag.FlagSet, names ...string) string {
	empty := ""
	fs.Visit(func(f *flag.Flag) {
		if empty == "" && f.Value.String() == "" && slices.Contains(names, f.Name) {
			empty = f.Name
		}
	})
	return empty
}

// portNumber reports whether port is a TCP port a member's admin API can listen on: digits
// only, 1..65535.
func portNumber(port string) bool {
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n != 0
}

// adminURL is the base URL of the admin API at hostPort, as admin.listen gives it: an IPv6
// zone there ([fe80::1%eth0]:7180, as net.Listen takes it) is escaped as a URL writes it (%25).
func adminURL(hostPort string) string {
	return (&url.URL{Scheme: "http", Host: hostPort}).String()
}

// adminConfig reads a member's file for an admin command: its admin address and token. The
// file is checked as the member reads it, but of its secret files only the admin token is read
// (config.LoadSecrets): the others (the gossip key, the shim's users file and TLS pair) may be
// ones its user cannot read, and an operator given the admin token only must still reach the
// admin API. The files a DSN names are read whatever LoadSecrets is told; when only those are
// unreadable, [admin] is read alone. Without readToken (-token-file gives the token), the
// admin token file is not read either, and the token returned is "".
func adminConfig(path string, readToken bool) (listen, token string, err error) {
	var secrets config.Secrets
	if readToken {
		secrets = config.SecretAdminToken
	}
	cfg, err := config.LoadSecrets(path, config.KindSite, secrets)
	if err == nil {
		return cfg.Admin.Listen, cfg.Admin.Token, nil
	}
	// A witness file fails as a site file; a broken site file must show its own errors.
	w, werr := config.LoadSecrets(path, config.KindWitness, secrets)
	if werr == nil {
		return w.Admin.Listen, w.Admin.Token, nil
	}
	if !unreadableSecretsOnly(err) && !unreadableSecretsOnly(werr) {
		return "", "", err
	}
	// Every other key is valid (their errors would be there too): read [admin] alone.
	var r struct {
		Admin struct {
			Listen    string
			TokenFile string `toml:"token_file"`
		}
	}
	if _, derr := toml.DecodeFile(path, &r); derr != nil {
		return "", "", err
	}
	listen = cmp.Or(r.Admin.Listen, config.DefaultAdminListen)
	if r.Admin.TokenFile != "" && readToken {
		if token, err = config.ReadToken(r.Admin.TokenFile); err != nil {
			return "", "", err
		}
	}
	return listen, token, nil
}

// unreadableSecretsOnly reports whether err holds only errors of files a DSN names that the
// user may not read (config.LoadSecrets reads those whatever it is told), which an admin
// command does not need.
func unreadableSecretsOnly(err error) bool {
	var es config.Errors
	if !errors.As(err, &es) || len(es) == 0 {
		return false
	}
	for _, e := range es {
		switch e.Key {
		case "txshim.local_dsn", "txshim.peer_dsn":
		default:
			return false
		}
		if !strings.Contains(e.Msg, fs.ErrPermission.Error()) {
			return false
		}
	}
	return true
}

// argsAtMost refuses more than n arguments after a command's flags: Go's flag package stops at
// the first argument, so a flag after it (switchover site2 -admin ADDR) would be dropped and the
// command sent to another member than the one named, or without its token.
func argsAtMost(name string, rest []string, n int, stderr io.Writer) bool {
	if len(rest) <= n {
		return true
	}
	fmt.Fprintf(stderr, "tandem %s: unexpected %q: flags go before the arguments (see tandem help)\n", name, rest[n:])
	return false
}

// maxAdminReply bounds what a CLI command reads of the admin API's reply: a /status with every
// catalog entry the shim lists can be large, but not without end.
const maxAdminReply = 64 << 20

// replyError is an admin API's answer other than 200 OK.
type replyError struct {
	code int    // its status
	msg  string // the message it gave
	text string
}

func (e *replyError) Error() string { return e.text }

func (c *adminClient) do(method, path string, out io.Writer, headers ...string) error {
	return c.doContext(context.Background(), method, path, out, headers...)
}

// doContext is do for a request made on another's behalf, which ends with ctx (its caller gone).
func (c *adminClient) doContext(ctx context.Context, method, path string, out io.Writer, headers ...string) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for _, h := range headers {
		req.Header.Set(h, "1")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if c.guessed {
			return fmt.Errorf("%w\n(no -config or -admin given: asked the default admin address %s; name the member with -config FILE, its site file, or -admin ADDR, its admin.listen)",
				err, config.DefaultAdminListen)
		}
		return err
	}
	defer resp.Body.Close()
	tooLong := fmt.Errorf("%s %s: reply longer than %d MiB", method, path, maxAdminReply>>20)
	if resp.ContentLength > maxAdminReply {
		// Said by its header: refused on that word, not after reading 64 MiB of it, which
		// a slow link (or a loaded host) may not carry within the command's timeout — which
		// then said "context deadline exceeded" instead.
		return tooLong
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminReply+1))
	if err != nil {
		return err
	}
	if len(body) > maxAdminReply {
		// Cut, it would be printed as broken JSON with exit 0.
		return tooLong
	}
	if resp.StatusCode != http.StatusOK {
		shown := replyShown(body)
		msg := shown
		if resp.StatusCode == http.StatusUnauthorized && c.cli {
			if c.token == "" {
				msg += ": the member wants its admin token: give -config with its file (admin.token_file) or -token-file"
			} else {
				msg += ": the token given is not the member's (its admin.token_file)"
			}
		}
		return &replyError{code: resp.StatusCode, msg: shown,
			text: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, msg)}
	}
	_, err = out.Write(body)
	return err
}

// maxReplyShown bounds what is shown of an admin API's answer other than 200 OK: a member's
// message is a few lines at most, and what another server at the address given answers (a
// page) need not be shown whole.
const maxReplyShown = 2 << 10

// replyShown is the message of an answer other than 200 OK as a command prints it: its first
// maxReplyShown bytes, cut at a character's start, and a control character but the newline
// (a terminal's escape sequence) written as a Go escape (\x1b) (TestRefusalShownBounded).
func replyShown(body []byte) string {
	s := strings.TrimSpace(string(body))
	cut := len(s) > maxReplyShown
	if cut {
		n := maxReplyShown
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	if cut {
		b.WriteString("…")
	}
	return b.String()
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	c, rest, err := adminFlags("status", args, stderr)
	if err != nil {
		return usageExit(err)
	}
	if !argsAtMost("status", rest, 0, stderr) {
		return 2
	}
	var out bytes.Buffer
	if err := c.do(http.MethodGet, "/status", &out); err != nil {
		fmt.Fprintln(stderr, "tandem status:", err)
		return 1
	}
	if err := tandemStatus(out.Bytes()); err != nil {
		fmt.Fprintf(stderr, "tandem status: %s/status: %v\n", c.base, err)
		return 1
	}
	_, _ = stdout.Write(out.Bytes())
	return 0
}

// tandemStatus checks that a 200 reply to GET /status is a member's status (a JSON object
// naming its site and role): another HTTP server at that address (the port given wrong) had
// its page printed as the status, with exit 0.
func tandemStatus(body []byte) error {
	var st struct {
		Site, Role *string
	}
	if err := json.Unmarshal(body, &st); err != nil || st.Site == nil || *st.Site == "" || st.Role == nil || *st.Role == "" {
		return fmt.Errorf("not a Tandem admin API: its answer (%s) is not a member's status; check the address (the member's admin.listen)", quoteStart(body))
	}
	return nil
}

// quoteStart quotes the start of a reply, to show what answered.
func quoteStart(b []byte) string {
	const n = 80
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "…"
	}
	return strconv.Quote(string(b))
}

func cmdSwitchover(args []string, stdout, stderr io.Writer) int {
	c, rest, err := adminFlags("switchover", args, stderr)
	if err != nil {
		return usageExit(err)
	}
	if !argsAtMost("switchover", rest, 1, stderr) {
		return 2
	}
	path := "/switchover"
	if len(rest) > 0 {
		// An empty SITE (a variable left empty) is no "any other site": taken so, asked of
		// the site meant to keep control, it handed control away.
		if rest[0] == "" {
			fmt.Fprintln(stderr, "tandem switchover: SITE is empty: name a site, or give none for the best other site")
			return 2
		}
		path += "?to=" + url.QueryEscape(rest[0])
	}
	return c.action("switchover", path, stdout, stderr, saidSwitchover)
}

// action asks the admin API for what command name does (POST path) and prints the member's
// answer: a 200 that holds none of the phrases said (what the member says when it did it) came
// from something else than a member's admin API (another server at that address), and is an
// error, as tandem status takes it (tandemStatus).
func (c *adminClient) action(name, path string, stdout, stderr io.Writer, said ...string) int {
	var out bytes.Buffer
	if err := c.do(http.MethodPost, path, &out); err != nil {
		fmt.Fprintf(stderr, "tandem %s: %v\n", name, err)
		return 1
	}
	if err := tandemAnswer(out.Bytes(), said...); err != nil {
		fmt.Fprintf(stderr, "tandem %s: %s%s: %v\n", name, c.base, path, err)
		return 1
	}
	_, _ = stdout.Write(out.Bytes())
	return 0
}

// tandemAnswer checks that a 200 reply to an admin POST is a member's: it holds one of said.
func tandemAnswer(body []byte, said ...string) error {
	for _, s := range said {
		if bytes.Contains(body, []byte(s)) {
			return nil
		}
	}
	return fmt.Errorf("not a Tandem admin API: its answer (%s) is not a member's; check the address (the member's admin.listen)", quoteStart(body))
}

// cmdPromote lifts a site's cold-start wait (DESIGN §3): it asks for -force, since the site then
// takes control without knowing whether the other site committed more since its last term. With
// -accept-loss TERM it is an operator's word that the master of TERM is lost for good, and the
// site may take control though its database lacks what that master committed alone.
func cmdPromote(args []string, stdout, stderr io.Writer) int {
	var force bool
	var loss termFlag
	c, rest, err := adminFlags("promote", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "take control without seeing a member that knows the current term")
		fs.Var(&loss, "accept-loss", "the newest `term`, whose master is lost for good, or the older one a refused promotion names (status decision): take control though this site's database lacks what it committed alone (lost)")
	})
	if err != nil {
		return usageExit(err)
	}
	if !argsAtMost("promote", rest, 0, stderr) {
		return 2
	}
	if loss.set && loss.term == 0 {
		// Term 0 is no term: taken for "not given", it turned -force -accept-loss 0 into a plain -force.
		fmt.Fprintln(stderr, "tandem promote: -accept-loss needs the newest term, above 0 (tandem status shows it)")
		return 2
	}
	path := "/promote?force=1"
	switch {
	case loss.set:
		path = "/promote?accept_loss=" + strconv.FormatUint(loss.term, 10)
	case !force:
		fmt.Fprintln(stderr, "tandem promote: -force is required (or -accept-loss TERM): the site takes control without seeing anyone who knows the current term, "+
			"so whatever the other site committed after this site's last term record is lost if that site is master elsewhere")
		return 2
	}
	return c.action("promote", path, stdout, stderr, saidForced, saidLossAccepted)
}

// termFlag is a term given as a flag, and whether it was given.
type termFlag struct {
	term uint64
	set  bool
}

func (f *termFlag) String() string { return strconv.FormatUint(f.term, 10) }

func (f *termFlag) Set(s string) error {
	t, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return errors.New("not a term (a whole number)")
	}
	f.term, f.set = t, true
	return nil
}

// cmdClearSplitBrain tells a site that its split brain (DESIGN §3) is dealt with.
func cmdClearSplitBrain(args []string, stdout, stderr io.Writer) int {
	c, rest, err := adminFlags("clear-split-brain", args, stderr)
	if err != nil {
		return usageExit(err)
	}
	if !argsAtMost("clear-split-brain", rest, 0, stderr) {
		return 2
	}
	return c.action("clear-split-brain", "/split-brain/clear", stdout, stderr, saidSplitBrainCleared)
}

// cmdResync asks the master to copy its application tables to the peer database (DESIGN
// §5.5); it waits as long as that takes.
func cmdResync(args []string, stdout, stderr io.Writer) int {
	c, rest, err := adminFlags("resync", args, stderr)
	if err != nil {
		return usageExit(err)
	}
	if !argsAtMost("resync", rest, 0, stderr) {
		return 2
	}
	// The copy's request has no timeout: it takes as long as the tables need. A member that
	// never answers (frozen: its kernel still accepts the connection) would hold the command
	// for ever, so it must first answer within the bound of the other commands.
	if err := c.do(http.MethodGet, "/healthz", io.Discard); err != nil {
		fmt.Fprintln(stderr, "tandem resync:", err)
		return 1
	}
	c.http = newAdminHTTP(0)
	return c.action("resync", "/resync", stdout, stderr, saidResynced)
}
