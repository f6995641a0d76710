package config

import (
	"cmp"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
)

// DefaultFenceDelay is fence_delay's default with a witness for a gossip profile: longer than
// the time a cut-off master of that profile needs to notice it lost the majority (gossip
// checks that any fence_delay is).
func DefaultFenceDelay(profile string) time.Duration {
	switch profile {
	case ProfileWAN:
		return 40 * time.Second
	case ProfileFast:
		return 2 * time.Second
	}
	return 10 * time.Second
}

// MinFenceDelay is the shortest fence_delay with a witness for a gossip profile: the longest a
// cut-off master of that profile takes to notice it lost the majority and fence itself (gossip
// refuses a shorter one at start; a test there keeps the two equal).
func MinFenceDelay(profile string) time.Duration {
	switch profile {
	case ProfileWAN:
		return 19 * time.Second
	case ProfileFast:
		return 750 * time.Millisecond
	}
	return 3750 * time.Millisecond
}

// ConnectTimeoutFor is connect_timeout's default for a gossip profile and fence_delay: a new
// operator connection waits that long for a master (DESIGN §4), so it must outlast a failover
// — the others finding a lost master gone (at most MinFenceDelay's time, the same suspicion)
// and fence_delay after that — with as much again to spare; never under
// DefaultConnectTimeout. A fixed 10 s timed out every connection made in a lan failover with a
// witness (some 3.5 s + 10 s).
func ConnectTimeoutFor(profile string, fenceDelay time.Duration) time.Duration {
	return max(DefaultConnectTimeout, fenceDelay+2*MinFenceDelay(profile))
}

// GossipKeyEnv names the environment variable that may hold the gossip key
// (base64) when no secret_key_file is set.
const GossipKeyEnv = "TANDEM_GOSSIP_KEY"

// raw mirrors the file. Durations and sizes are strings here so that every
// bad value becomes one collected error instead of stopping the decoder.
type raw struct {
	Site     string
	Priority *int
	DataDir  string `toml:"data_dir"`
	Gossip   struct {
		Bind          string
		Advertise     string
		Join          []string
		SecretKeyFile string `toml:"secret_key_file"`
		Profile       string
		Failback      string
		FailbackDelay string `toml:"failback_delay"`
		FenceDelay    string `toml:"fence_delay"`
		Witness       bool
	}
	Server *struct {
		Health         string
		HealthCommand  []string `toml:"health_command"`
		HealthInterval string   `toml:"health_interval"`
		HealthTimeout  string   `toml:"health_timeout"`
		HealthFailures *int     `toml:"health_failures"`
		Endpoint       []struct {
			Name         string
			Address      string
			HealthSend   string `toml:"health_send"`
			HealthExpect string `toml:"health_expect"`
		}
	}
	Proxy *struct {
		TrustedCIDRs   []string `toml:"trusted_cidrs"`
		ConnectTimeout string   `toml:"connect_timeout"`
		IdleTimeout    string   `toml:"idle_timeout"`
		MaxConns       *int     `toml:"max_conns"`
		Listener       []struct {
			Endpoint    string
			Listen      string
			AcceptProxy string `toml:"accept_proxy"`
			SendProxy   string `toml:"send_proxy"`
		}
	}
	TxShim *struct {
		Listen        string
		LocalDSN      string `toml:"local_dsn"`
		PeerDSN       string `toml:"peer_dsn"`
		PeerDown      string `toml:"peer_down"`
		MaxMessage    string `toml:"max_message"`
		CommitTimeout string `toml:"commit_timeout"`
		VerifyCatchUp *bool  `toml:"verify_after_catchup"`
		UsersFile     string `toml:"users_file"`
		TLSCertFile   string `toml:"tls_cert_file"`
		TLSKeyFile    string `toml:"tls_key_file"`
	} `toml:"txshim"`
	Admin struct {
		Listen    string
		TokenFile string `toml:"token_file"`
	}
	Hooks struct {
		OnPromote []string `toml:"on_promote"`
		OnDemote  []string `toml:"on_demote"`
		Timeout   string
	}
}

// Defaults for keys the file leaves out.
const (
	DefaultPriority       = 100
	DefaultFailbackDelay  = 30 * time.Second
	DefaultHealthInterval = time.Second
	DefaultHealthTimeout  = time.Second
	DefaultHealthFailures = 2
	maxHealthProbe        = 1024 // bytes of health_send / health_expect
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxConns       = 10000
	DefaultMaxMessage     = 64 << 20
	DefaultCommitTimeout  = 10 * time.Second
	DefaultHookTimeout    = 30 * time.Second
	DefaultAdminListen    = "127.0.0.1:7180"
)

// Secrets names the secret files beside the configuration that loading reads (and checks:
// a small regular file other users cannot read). The files its connection strings name
// (sslrootcert, sslkey, passfile) are read whatever it says: checking a connection string
// reads them.
type Secrets uint

const (
	SecretGossipKey  Secrets = 1 << iota // gossip.secret_key_file, or $TANDEM_GOSSIP_KEY
	SecretAdminToken                     // admin.token_file
	SecretUsers                          // txshim.users_file
	SecretShimTLS                        // txshim.tls_cert_file and tls_key_file
	// AllSecrets is what Load reads: every secret a running member needs.
	AllSecrets = SecretGossipKey | SecretAdminToken | SecretUsers | SecretShimTLS
)

// Load reads, defaults and validates the file at path, and reads every secret file it names.
// On failure the error is an Errors value holding every problem found, each with file and
// line.
func Load(path string, kind Kind) (*Config, error) { return LoadSecrets(path, kind, AllSecrets) }

// LoadSecrets is Load reading only the secret files in read, for a command that has no use for
// the others (tandem install, verify and resolve need none): an operator need not be able to
// read them. The Config keeps the names of the files left unread, without what they hold
// (Gossip.SecretKey, Admin.Token, TxShim.Users, TxShim.TLSCert are zero): it must not be run
// as a member.
func LoadSecrets(path string, kind Kind, read Secrets) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error()}}
	}
	return parse(path, src, kind, read)
}

// Parse is Load on bytes already read; name is used in errors.
func Parse(name string, src []byte, kind Kind) (*Config, error) {
	return parse(name, src, kind, AllSecrets)
}

func parse(name string, src []byte, kind Kind, read Secrets) (*Config, error) {
	l := &loader{file: name, read: read}
	var r raw
	var typeErrs Errors
	rewritten := map[int]bool{}          // table headers read as the other kind (fixHeader)
	var blankedTables []string           // the paths of those blanked instead
	inlineBlanked := map[*Error]string{} // the indexed key an error's blanking took from an inline table
	text := string(src)
	for {
		md, err := toml.Decode(text, &r)
		if err == nil {
			l.lines = scanKeyLines(text)
			l.unknown(md.Undecoded())
			l.otherCase(md)
			l.defined = md.IsDefined
			break
		}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			if typeErrs != nil { // a syntax error of blanking's making: report what was found
				return nil, typeErrs
			}
			// A bad escape's message repeats the string up to it, which may be a password.
			msg := badEscape.ReplaceAllString(pe.Message, `$1: write a backslash in a string as \\ (or use a 'literal string')`)
			e := &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: msg}
			if m := definedTwice.FindStringSubmatch(pe.Message); m != nil {
				givenTwice(e, text, m[1])
			}
			return nil, Errors{e}
		}
		// Type mismatches come back as plain errors; their text is the only
		// place the line and key are given.
		e := &Error{File: name, Msg: err.Error()}
		if m := decodeErrLine.FindStringSubmatch(e.Msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Key, e.Msg = m[2], m[3]
			if m[1] == "" {
				// No position: a table made by dotted keys alone (health.interval = "2s" under
				// [server], where health takes a string). It is where the first of them is set.
				e.Line = firstLineUnder(text, e.Key)
			}
			e.Line = wrongTypeLine(text, e.Key, e.Line)
			if want, ok := quotedValues[e.Key]; ok && strings.HasSuffix(e.Msg, "destination has type string") {
				e.Msg = "want " + want // not "destination has type string": the key takes 30s or 64MiB
			}
			e.Msg = typeWords(e.Msg)
		}
		if !rewritten[e.Line] || !slices.ContainsFunc(typeErrs, func(o *Error) bool { return o.Line == e.Line && o.Key == e.Key }) {
			typeErrs = append(typeErrs, e) // once: a header read as the other kind may be refused again
		}
		// The decoder stops at the first mismatch: blank that key's lines (or, in an inline
		// table, that key and its value alone; or make a table header of the wrong kind one it
		// reads) and decode again, so that every other error is found too.
		var ok bool
		var indexed string
		if text, indexed, ok = blankInline(text, e.Line, e.Key); ok {
			inlineBlanked[e] = indexed
		} else {
			if text, ok = blankKey(text, e.Line); !ok {
				var blanked bool
				if text, blanked, ok = fixHeader(text, e.Line, e.Msg, rewritten); !ok {
					return nil, typeErrs
				}
				if blanked {
					blankedTables = append(blankedTables, e.Key)
				}
			}
		}
		r = raw{}
	}
	cfg := l.resolve(&r, kind)
	cfg.Unread = AllSecrets &^ read
	cfg.lines = l.lines
	// A blanked key is not also "required". Its error names it without the index of its table in
	// an array (proxy.listener.listen): the file as written gives the index, so that another
	// table's missing key is still reported.
	written := scanKeyLines(string(src))
	for _, te := range typeErrs {
		blanked := written.keyAt(te.Line, te.Key)
		if k, ok := inlineBlanked[te]; ok {
			blanked = k // of several on the line, the one blanked
		}
		l.errs = slices.DeleteFunc(l.errs, func(e *Error) bool {
			if blanked != "" {
				return e.Key == blanked
			}
			return arrayIndex.ReplaceAllString(e.Key, "") == te.Key
		})
	}
	// Nor is a key of a table blanked for its header (its line is 0: the file sets none now).
	for _, t := range blankedTables {
		l.errs = slices.DeleteFunc(l.errs, func(e *Error) bool {
			plain := arrayIndex.ReplaceAllString(e.Key, "")
			return e.Line == 0 && (plain == t || strings.HasPrefix(plain, t+"."))
		})
	}
	// Each named as Error.Key names the file's keys, with the index of its table in an array
	// (proxy.listener[1].send_proxy), but a table header's, named as written.
	for _, te := range typeErrs {
		k, ok := inlineBlanked[te]
		if !ok && !slices.ContainsFunc(written.headers, func(h tableHeader) bool { return h.line == te.Line }) {
			k = written.keyAt(te.Line, te.Key)
		}
		if k != "" && arrayIndex.ReplaceAllString(k, "") == te.Key {
			te.Key = k
		}
	}
	l.errs = append(l.errs, typeErrs...)
	if len(l.errs) > 0 {
		sort.SliceStable(l.errs, func(i, j int) bool { return l.errs[i].Line < l.errs[j].Line })
		return nil, l.errs
	}
	return cfg, nil
}

type loader struct {
	file  string
	read  Secrets // the secret files to read
	lines keyLines
	errs  Errors
	seen  map[string]int // plain key -> undecoded occurrences reported
	// defined tells whether the file sets a key (toml.MetaData.IsDefined).
	defined func(key ...string) bool
}

func (l *loader) errorf(key, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Line: l.lines.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) unknown(keys []toml.Key) {
	l.seen = map[string]int{}
	for _, k := range keys {
		line, key := l.occurrence(k, l.seen)
		l.errs = append(l.errs, &Error{File: l.file, Line: line, Key: key, Msg: "unknown key"})
	}
}

// occurrence is the line of k's next place in the file, the decoder's keys coming in the
// file's order (seen counts those met of each path without indices), and k named as Error.Key
// names the file's keys: with the index of each table of an array of tables it is in
// (server.endpoint[1].nmae), which the decoder's key lacks.
func (l *loader) occurrence(k toml.Key, seen map[string]int) (int, string) {
	plain := strings.Join(k, ".") // as scanKeyLines records it: parts unquoted ("token file")
	line, indexed := l.lines.nth(plain, seen[plain])
	seen[plain]++
	if indexed == "" {
		return l.lines.line(plain), k.String() // a table made by the keys under it alone
	}
	return line, withIndices(k, indexed)
}

// otherCase refuses the keys the decoder took though they are spelled in another case than the
// file's keys, all lower-case: it matches a key to a field whatever its case (Priority for
// priority). No rule of the key it stands for checked one so spelled (a witness's file refuses
// priority, not Priority), nor was it found at its line, and a file giving both spellings of
// a key gave either value, as the decoder's map order fell. Each is reported once: a table's
// keys (bind in [Gossip]) not again.
func (l *loader) otherCase(md toml.MetaData) {
	undecoded, keys := map[string]bool{}, map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	for _, k := range md.Keys() {
		keys[k.String()] = true
	}
	seen := map[string]int{}
	for _, k := range md.Keys() {
		plain := strings.Join(k, ".")
		if plain == strings.ToLower(plain) || undecoded[k.String()] {
			continue
		}
		if parent := k[:len(k)-1]; len(parent) > 0 && keys[parent.String()] && strings.Join(parent, ".") != strings.ToLower(strings.Join(parent, ".")) {
			continue // its table is reported
		}
		line, key := l.occurrence(k, seen)
		l.errs = append(l.errs, &Error{File: l.file, Line: line, Key: key, Msg: fmt.Sprintf("unknown key: keys are lower-case (%s)", strings.ToLower(plain))})
	}
}

var arrayIndex = regexp.MustCompile(`\[\d+\]`)

// blankKey empties the key/value line at line (1-based) and the lines its
// value continues on; false when that line holds no key.
func blankKey(src string, line int) (string, bool) {
	lines := strings.Split(src, "\n")
	if line < 1 || line > len(lines) {
		return src, false
	}
	s := strings.TrimSpace(lines[line-1])
	eq := keyEnd(s)
	if s == "" || s[0] == '[' || s[0] == '#' || eq < 0 {
		return src, false
	}
	var v valueScanner
	v.feed(s[eq+1:])
	lines[line-1] = ""
	for i := line; i < len(lines) && v.pending(); i++ {
		v.feed(lines[i])
		lines[i] = ""
	}
	return strings.Join(lines, "\n"), true
}

// fixHeader makes the table header on line, which the decoder refused (msg), one it reads: a
// [table] where an array of tables is wanted is read as [[table]], and an [[array]] where a table
// is, as [array] when it is the only one; each line is read so once (rewritten). Else that header
// and every other of its path and kind are blanked with the keys under them (blanked). False
// when line holds no table header.
func fixHeader(src string, line int, msg string, rewritten map[int]bool) (fixed string, blanked, ok bool) {
	kl := scanKeyLines(src)
	i := slices.IndexFunc(kl.headers, func(h tableHeader) bool { return h.line == line })
	if i < 0 {
		return src, false, false
	}
	h := kl.headers[i]
	same := func(o tableHeader) bool { return o.array == h.array && o.path == h.path }
	lines := strings.Split(src, "\n")
	text := lines[line-1]
	open, end := strings.IndexByte(text, '['), strings.IndexByte(text, ']')
	var other string // the header as the other kind
	switch {
	case rewritten[line] || open < 0 || end < open:
	case !h.array && strings.Contains(msg, "want an array, found a table"):
		other = text[:open] + "[[" + text[open+1:end] + "]]" + text[end+1:]
	case h.array && strings.Contains(msg, "want a table, found an array of tables") && end > open+1 &&
		len(slices.DeleteFunc(slices.Clone(kl.headers), func(o tableHeader) bool { return !same(o) })) == 1:
		other = text[:open] + "[" + text[open+2:end] + "]" + text[end+2:]
	}
	if other != "" {
		rewritten[line] = true
		lines[line-1] = other
		fixed = strings.Join(lines, "\n")
		var pe toml.ParseError
		if _, err := toml.Decode(fixed, &raw{}); !errors.As(err, &pe) {
			return fixed, false, true
		}
		lines[line-1] = text
	}
	for j, o := range kl.headers {
		if !same(o) {
			continue
		}
		last := len(lines) // the table's lines run to the next header
		if j+1 < len(kl.headers) {
			last = kl.headers[j+1].line - 1
		}
		for n := o.line; n <= last; n++ {
			lines[n-1] = ""
		}
	}
	return strings.Join(lines, "\n"), true, true
}

// wrongTypeLine is the line of the value of key the decoder refused, which it said was on line.
// The decoder keeps one position per key, without the index of its table in an array: for a key
// of an array of tables it names the line of the key's last occurrence, wherever the value it
// refused is. It stops at the first value of a wrong type, in the order of the file: that is the
// first occurrence that, with the others blanked, is refused alone.
func wrongTypeLine(src, key string, line int) int {
	lines := scanKeyLines(src).plain[key]
	if len(lines) < 2 {
		return line
	}
	for i, n := range lines {
		text := src
		for j, other := range lines {
			if j != i {
				var ok bool
				if text, _, ok = blankInline(text, other, key); !ok {
					text, _ = blankKey(text, other)
				}
			}
		}
		var r raw
		_, err := toml.Decode(text, &r)
		if err == nil {
			continue
		}
		if m := decodeErrLine.FindStringSubmatch(err.Error()); m != nil && m[2] == key {
			return n
		}
	}
	return line
}

// typeWords says a type error of the decoder's in TOML's words: what the key wants, and what
// the file gives. The decoder names the program's Go types ("TOML value has type int64;
// destination has type string"), and for a table given another value the Go struct it is read
// into, every field and tag of it. Any other message is returned as it is.
func typeWords(msg string) string {
	if m := mismatchTable.FindStringSubmatch(msg); m != nil {
		return "incompatible types: want a table, found " + tomlTypeName(m[1])
	}
	if m := mismatchValue.FindStringSubmatch(msg); m != nil {
		want := map[string]string{"string": "a string", "integer": "an integer", "int": "an integer", "bool": "a boolean",
			"float": "a float", "slice": "an array", "array": "an array", "struct": "a table", "map": "a table"}[m[2]]
		if want != "" {
			return "incompatible types: want " + want + ", found " + tomlTypeName(m[1])
		}
	}
	return msg
}

var (
	mismatchTable = regexp.MustCompile(`^type mismatch for .*: expected table but found (\S+)$`)
	mismatchValue = regexp.MustCompile(`^incompatible types: TOML value has type (\S+); destination has type (\S+)$`)
)

// tomlTypeName names the Go type the decoder holds a TOML value in as TOML names the value.
func tomlTypeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "int64":
		return "an integer"
	case "float64":
		return "a float"
	case "bool":
		return "a boolean"
	case "time.Time":
		return "a date or time"
	case "map[string]any":
		return "a table"
	case "[]map[string]any":
		return "an array of tables"
	}
	if strings.HasPrefix(goType, "[]") {
		return "an array"
	}
	return goType
}

// definedTwice matches the decoder's error about a key or table given a second time.
var definedTwice = regexp.MustCompile(`^Key '(.+)' has already been defined\.$`)

// givenTwice says e, the decoder's error about key (a plain path) given a second time at
// e.Line, in words of ours: the key with the index of its table in an array (the decoder's has
// none, and for a table is empty), and the line of the first.
func givenTwice(e *Error, src, key string) {
	e.Key, e.Msg = key, "given twice: a key or table is set once"
	lines := strings.SplitAfter(src, "\n")
	if e.Line < 1 || e.Line > len(lines) {
		return
	}
	// Up to the second: its table's index is the last one opened, and the first is the latest
	// line set for the key before it (the scan keeps a key's first line), or its own when an
	// inline table gives the key twice on it.
	kl := scanKeyLines(strings.Join(lines[:e.Line], ""))
	sameLine := len(slices.DeleteFunc(slices.Clone(kl.plain[key]), func(n int) bool { return n != e.Line })) > 1
	first := 0
	for k, n := range kl.indexed {
		if n > first && (n < e.Line || n == e.Line && sameLine) && arrayIndex.ReplaceAllString(k, "") == key {
			e.Key, first = k, n
		}
	}
	switch {
	case first == e.Line:
		e.Msg = "given twice on this line: a key or table is set once"
	case first > 0:
		e.Msg = fmt.Sprintf("given twice, first at line %d: a key or table is set once", first)
	}
}

var badEscape = regexp.MustCompile(`^(expected \w+ hexadecimal digits after '\\[xuU]'), but got .* instead$`)

// quotedValues are the keys whose values are durations or sizes, written as strings: a bare
// number there is a type error, which says what to write instead.
var quotedValues = map[string]string{
	"gossip.failback_delay":  durationInQuotes,
	"gossip.fence_delay":     durationInQuotes,
	"server.health_interval": durationInQuotes,
	"server.health_timeout":  durationInQuotes,
	"proxy.connect_timeout":  durationInQuotes,
	"proxy.idle_timeout":     durationInQuotes,
	"txshim.commit_timeout":  durationInQuotes,
	"hooks.timeout":          durationInQuotes,
	"txshim.max_message":     `a size in quotes ("64MiB", "512KiB", "1048576")`,
}

const durationInQuotes = `a duration in quotes, in Go syntax ("500ms", "30s", "2m")`

var decodeErrLine = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// firstLineUnder is the first line of src that sets a key under the table key (a plain path), or 0.
func firstLineUnder(src, key string) int {
	first := 0
	for k, lines := range scanKeyLines(src).plain {
		if strings.HasPrefix(k, key+".") && (first == 0 || lines[0] < first) {
			first = lines[0]
		}
	}
	return first
}

var siteName = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,31}$`)

// ValidSite tells whether name is one a site may be given (site): 1-32 lower-case letters,
// digits or _, starting with a letter or digit.
func ValidSite(name string) bool { return siteName.MatchString(name) }

func (l *loader) resolve(r *raw, kind Kind) *Config {
	c := &Config{File: l.file, Kind: kind, Site: r.Site, DataDir: r.DataDir, Priority: DefaultPriority}
	switch {
	case r.Site == "":
		l.errorf("site", "required: a unique name for this member")
	case !siteName.MatchString(r.Site):
		l.errorf("site", "%q: use 1-32 lower-case letters, digits or _ (it names the replication slot), starting with a letter or digit", r.Site)
	}
	if r.Priority != nil {
		c.Priority = *r.Priority
		if c.Priority < 0 || c.Priority > 1000 {
			l.errorf("priority", "%d: must be 0..1000 (lower wins)", c.Priority)
		}
	}
	if r.DataDir == "" {
		l.errorf("data_dir", "required: a directory for this member's state file")
	} else if fi, err := os.Stat(r.DataDir); err == nil && !fi.IsDir() || errors.Is(err, syscall.ENOTDIR) {
		// tandem run makes it when it is not there; a file there, or on its path, it cannot.
		// Any other failure to look (permission denied) is left to tandem run: a command that
		// reads the file without the member's rights (tandem install) need not see into it.
		l.errorf("data_dir", "%s is not a directory (or is under a file): give the directory for this member's state files", r.DataDir)
	}
	l.gossip(r, c)
	l.admin(r, c)
	l.argv("hooks.on_promote", r.Hooks.OnPromote)
	l.argv("hooks.on_demote", r.Hooks.OnDemote)
	c.Hooks = Hooks{OnPromote: r.Hooks.OnPromote, OnDemote: r.Hooks.OnDemote,
		// A zero timeout would kill every hook before it starts (DESIGN §6: bounded, not skipped).
		Timeout: l.positive("hooks.timeout", r.Hooks.Timeout, DefaultHookTimeout)}

	if kind == KindWitness {
		c.Priority = 0
		c.Gossip.Witness = true
		for _, t := range []struct {
			key     string
			present bool
		}{{"server", r.Server != nil}, {"proxy", r.Proxy != nil}, {"txshim", r.TxShim != nil}} {
			if t.present {
				hint := ""
				if t.key == "server" {
					// A site's file given to tandem witness (or check-config -witness): every
					// key a witness refuses is listed; this says what the file is for.
					hint = "; a site's file, for tandem run, is checked with tandem check-config (without -witness)"
				}
				l.errorf(t.key, "a witness has no [%s]%s", t.key, hint)
			}
		}
		if l.defined("hooks") {
			l.errorf("hooks", "a witness never changes role; it runs no hooks")
		}
		// Keys a witness would ignore: refused, as unknown keys are, so none is set in vain.
		if l.defined("priority") {
			l.errorf("priority", "a witness never becomes master; it has no priority")
		}
		if l.defined("gossip", "witness") {
			l.errorf("gossip.witness", "a witness file makes a witness; set gossip.witness in the sites' files")
		}
		for _, k := range []string{"failback", "failback_delay"} {
			if l.defined("gossip", k) {
				l.errorf("gossip."+k, "a witness never holds the role: the master site decides failback by its own file's gossip.%s", k)
			}
		}
		l.conflicts(c)
		return c
	}
	l.server(r, c)
	l.proxy(r, c)
	l.txshim(r, c)
	l.conflicts(c)
	return c
}

// conflicts reports a listening address of this member that another one (or
// the server beside it) already takes: the second bind would fail at start,
// and a proxy listener on its own server's address would forward to itself.
func (l *loader) conflicts(c *Config) {
	type bind struct{ key, addr string }
	binds := []bind{{"gossip.bind", c.Gossip.Bind}, {"admin.listen", c.Admin.Listen}}
	if c.TxShim != nil {
		binds = append(binds, bind{"txshim.listen", c.TxShim.Listen})
	}
	for i, ln := range c.Proxy.Listeners {
		binds = append(binds, bind{fmt.Sprintf("proxy.listener[%d].listen", i), ln.Listen})
	}
	for i, b := range binds {
		for _, a := range binds[:i] {
			if overlap(listenIP(a.addr), listenIP(b.addr), true) {
				l.errorf(b.key, "%s overlaps %s (%s): both cannot be bound", b.addr, a.key, a.addr)
			}
		}
		for j, e := range c.Server.Endpoints {
			if slices.ContainsFunc(localhostIPs(e.Address), func(ip string) bool { return overlap(listenIP(b.addr), ip, false) }) {
				l.errorf(b.key, "%s overlaps server.endpoint[%d].address (%s), where the server listens", b.addr, j, e.Address)
			}
		}
	}
}

// listenIP is the address a listener on hostPort binds: for the name localhost, 127.0.0.1 (Go's
// Listen binds one address of a name, its first IPv4 one), else hostPort as it is.
func listenIP(hostPort string) string {
	if host, port, err := net.SplitHostPort(hostPort); err == nil && strings.EqualFold(host, "localhost") {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return hostPort
}

// overlap reports whether listening on a and on b (or dialing b, when
// anyHost is false: b is then only local when it is loopback) take the same
// port on one host. Port 0 (any free port) overlaps nothing.
func overlap(a, b string, anyHost bool) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	na, _ := strconv.Atoi(pa)
	nb, _ := strconv.Atoi(pb)
	if errA != nil || errB != nil || na != nb || na == 0 {
		return false
	}
	if ha == hb {
		return true
	}
	ia, errA := netip.ParseAddr(ha)
	ib, errB := netip.ParseAddr(hb)
	if errA != nil || errB != nil {
		return false
	}
	ia, ib = ia.Unmap(), ib.Unmap()
	covers := func(wild, ip netip.Addr) bool { // wild is 0.0.0.0 or ::, which also takes IPv4
		return wild.IsUnspecified() && (wild.Is6() || ip.Is4()) && (anyHost || ip.IsLoopback() || ip.IsUnspecified())
	}
	return ia == ib || covers(ia, ib) || covers(ib, ia)
}

func (l *loader) gossip(r *raw, c *Config) {
	g := &c.Gossip
	rg := r.Gossip
	g.Bind = l.hostPort("gossip.bind", rg.Bind, true)
	g.Advertise = l.hostPort("gossip.advertise", rg.Advertise, false)
	// memberlist takes only IP addresses, and tells the others the bind
	// address (or the advertised one) to reach this member at.
	if host, _, err := net.SplitHostPort(g.Bind); err == nil {
		if ip, err := netip.ParseAddr(host); err != nil {
			l.errorf("gossip.bind", "%q: give an IP address, not a host name", g.Bind)
		} else if ip.Zone() != "" {
			l.errorf("gossip.bind", "%q: %s", g.Bind, zoneRefused)
		} else if ip.Is6() && ip.Unmap().IsUnspecified() && g.Advertise == "" {
			// [::], or 0.0.0.0 written as [::ffff:0.0.0.0]: memberlist picks an address of the
			// host's to advertise only for a bind written 0.0.0.0, else it advertises the wildcard.
			l.errorf("gossip.bind", "%q: the others cannot reach [%s]: set gossip.advertise", g.Bind, ip)
		}
	}
	if host, port, err := net.SplitHostPort(g.Advertise); err == nil {
		if ip, err := netip.ParseAddr(host); err != nil {
			l.errorf("gossip.advertise", "%q: give an IP address, not a host name", g.Advertise)
		} else if ip.Zone() != "" {
			l.errorf("gossip.advertise", "%q: %s", g.Advertise, zoneRefused)
		} else if n, _ := strconv.Atoi(port); ip.Unmap().IsUnspecified() || n == 0 {
			l.errorf("gossip.advertise", "%q: give the address and port the other members reach this one at", g.Advertise)
		}
	}
	// The others dial the advertised address, which must reach the bound one: a loopback bind is
	// reached at its own address only, and a loopback advertise address at none but a loopback
	// or wildcard bind. (Any other may be the bind's address through NAT.)
	if bh, _, err := net.SplitHostPort(g.Bind); err == nil {
		if ah, _, err := net.SplitHostPort(g.Advertise); err == nil {
			bip, berr := netip.ParseAddr(bh)
			aip, aerr := netip.ParseAddr(ah)
			bip, aip = bip.Unmap(), aip.Unmap()
			switch {
			case berr != nil || aerr != nil:
			case bip.IsLoopback() && aip != bip:
				l.errorf("gossip.advertise", "%s: gossip.bind %s listens on that loopback address only, where the others cannot reach this member at %s: advertise %s, or bind an address they reach", g.Advertise, g.Bind, ah, bh)
			case aip.IsLoopback() && !bip.IsLoopback() && !bip.IsUnspecified():
				l.errorf("gossip.advertise", "%s is loopback, but gossip.bind %s does not listen there: no member reaches this one at it", g.Advertise, g.Bind)
			}
		}
	}
	self := g.Advertise
	if self == "" {
		self = g.Bind
	}
	for i, j := range rg.Join {
		key := fmt.Sprintf("gossip.join[%d]", i)
		j = l.hostPort(key, j, true)
		if host, port, err := net.SplitHostPort(j); err == nil && strings.Contains(host, "%") {
			l.errorf(key, "%q: %s", j, zoneRefused)
		} else if err == nil && strings.Trim(port, "0") == "" {
			// Port 0 is "any free port" to listen on: no member listens there, and the
			// re-join would dial it for ever.
			l.errorf(key, "%s: port 0 is never dialable: give the port the other member's gossip listens on", j)
		} else if j != "" && slices.ContainsFunc(localhostIPs(j), func(ip string) bool { return overlap(self, ip, false) || overlap(g.Bind, ip, false) }) {
			// The member would count a peer that is itself among the voters. It is reached at
			// its advertise address, and at its bind address too (a wildcard's on loopback).
			l.errorf(key, "%s is this member's own gossip address: list the other members", j)
		}
		g.Join = append(g.Join, j)
	}
	g.Profile = l.oneOf("gossip.profile", rg.Profile, ProfileLAN, ProfileLAN, ProfileWAN, ProfileFast)
	g.Failback = l.oneOf("gossip.failback", rg.Failback, FailbackAuto, FailbackAuto, FailbackManual)
	g.FailbackDelay = l.duration("gossip.failback_delay", rg.FailbackDelay, DefaultFailbackDelay)
	g.Witness = rg.Witness
	if g.Witness || c.Kind == KindWitness {
		// With a witness a new master waits fence_delay for a lost one to have fenced itself.
		g.FenceDelay = l.positive("gossip.fence_delay", rg.FenceDelay, DefaultFenceDelay(g.Profile))
		if least := MinFenceDelay(g.Profile); g.FenceDelay < least {
			l.errorf("gossip.fence_delay", "%q is shorter than the %v a cut-off master of profile %q may take to notice it lost the majority and fence itself",
				rg.FenceDelay, least, g.Profile)
		}
	} else {
		g.FenceDelay = l.duration("gossip.fence_delay", rg.FenceDelay, 0)
	}
	g.SecretKeyFile = rg.SecretKeyFile
	switch {
	case l.read&SecretGossipKey == 0:
	case rg.SecretKeyFile != "":
		b, err := readSecret(rg.SecretKeyFile)
		if err != nil {
			l.errorf("gossip.secret_key_file", "%v", err)
		} else if keys, err := parseKeyFile(rg.SecretKeyFile, b); err != nil {
			l.errorf("gossip.secret_key_file", "%v", err)
		} else {
			g.SecretKey, g.DecryptKeys = keys[0], keys[1:]
		}
	case os.Getenv(GossipKeyEnv) != "":
		keys, err := parseKeyEnv(os.Getenv(GossipKeyEnv))
		if err != nil {
			l.errorf("gossip.secret_key_file", "$%s: %v", GossipKeyEnv, err)
		} else {
			g.SecretKey, g.DecryptKeys = keys[0], keys[1:]
		}
	}
	if len(g.DecryptKeys) == 0 {
		g.DecryptKeys = nil
	}
}

// zoneRefused says why a gossip address with an IPv6 zone (fe80::1%eth0) is refused: memberlist
// reads its addresses with net.ParseIP, which takes none (a bind or advertise address failed the
// start, a join address was looked up as a host name for ever).
const zoneRefused = "an IPv6 zone (%) is not supported by the gossip layer: give an address without one"

// maxSecret bounds a secret file: a key or a token is a line, not a stream.
const maxSecret = 4096

// readSecret reads a gossip key or admin token file: a small regular file that
// other users cannot read or change. Opening with O_NONBLOCK and checking the
// type first means a FIFO or device named by mistake is an error, not a hang.
func readSecret(path string) ([]byte, error) { return readSecretMax(path, maxSecret) }

// readSecret64K is readSecret for a users file, which holds a line per user.
func readSecret64K(path string) ([]byte, error) { return readSecretMax(path, 64<<10) }

func readSecretMax(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	case fi.Mode().Perm()&0o007 != 0:
		return nil, fmt.Errorf("%s is accessible to every user (mode %#o): chmod o-rwx %s", path, fi.Mode().Perm(), path)
	case fi.Mode().Perm()&0o020 != 0:
		// Readable by a group is fine (root:tandem 0640); writable, its members could put in a
		// key or token of their own.
		return nil, fmt.Errorf("%s is writable by its group (mode %#o): chmod g-w %s", path, fi.Mode().Perm(), path)
	case fi.Size() > limit:
		return nil, fmt.Errorf("%s is %d bytes: a secret file holds at most %d", path, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s is more than %d bytes", path, limit)
	}
	return b, err
}

// readCert reads txshim.tls_cert_file, which is no secret: a regular file (a FIFO, opened
// without blocking, would otherwise be read without end) of at most 1 MiB.
func readCert(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const limit = 1 << 20
	switch fi, err := f.Stat(); {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	case fi.Size() > limit:
		return nil, fmt.Errorf("%s is %d bytes: a certificate chain holds at most %d", path, fi.Size(), limit)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// readUsers reads txshim.users_file: one "user:password" per line (blank lines and lines
// starting with # skipped), with readSecret's checks; the shim authenticates clients against
// it with SCRAM-SHA-256.
func readUsers(path string) (map[string]string, error) {
	b, err := readSecret64K(path)
	if err != nil {
		return nil, err
	}
	users := map[string]string{}
	// A byte order mark (a file saved by a Windows editor) is no part of the first user's name.
	for i, line := range strings.Split(strings.TrimPrefix(string(b), byteOrderMark), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		name, pw, ok := strings.Cut(line, ":")
		switch {
		case !ok || name == "" || pw == "":
			return nil, fmt.Errorf("%s:%d: want user:password", path, i+1) // not the line: it holds a password
		case users[name] != "":
			return nil, fmt.Errorf("%s:%d: user %q is listed twice", path, i+1, name)
		}
		users[name] = pw
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s lists no user", path)
	}
	return users, nil
}

// byteOrderMark is UTF-8's byte order mark, which some editors write at the start of a text file.
const byteOrderMark = "\ufeff"

// ReadToken reads an admin API bearer token from path (admin.token_file, or a
// client's -token-file), with readSecret's checks.
func ReadToken(path string) (string, error) {
	b, err := readSecret(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(strings.TrimPrefix(string(b), byteOrderMark)) // no part of the token
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	// A control character (a second line) cannot go in an Authorization header: no client
	// could send the token, and the admin API would serve nobody.
	if strings.ContainsFunc(tok, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }) {
		return "", fmt.Errorf("%s holds a control character (a line break?): an HTTP header cannot carry the token; write it on one line", path)
	}
	return tok, nil
}

// parseKeyFile reads the gossip key file's content b: one key, read as it always was (the
// whole file: raw bytes or base64 text, see parseKey), or a keyring for a key rotation — a key
// per line (base64, or raw text without surrounding spaces), blank lines and lines starting
// with # skipped, the first key the primary (gossip is encrypted with it), every key tried on
// what is received. A file of one key line and no comment is read the old way; so is a file
// that is no text (a raw binary key, which may hold a newline or a #), and one that reads as no
// keyring but as one key so (a raw text key starting with # or holding a newline). Errors name
// the line, never its content. A file that holds no key so but does once a leading byte order
// mark (a file saved by a Windows editor) is dropped is read without the mark; a file read
// before as it is (a raw key whose bytes start as the mark does) still is.
func parseKeyFile(path string, b []byte) ([][]byte, error) {
	keys, err := parseKeyContent(path, b)
	if rest, ok := strings.CutPrefix(string(b), byteOrderMark); err != nil && ok {
		if k, kerr := parseKeyContent(path, []byte(rest)); kerr == nil {
			return k, nil
		}
	}
	return keys, err
}

// parseKeyContent is parseKeyFile on the file's content as it is.
func parseKeyContent(path string, b []byte) ([][]byte, error) {
	lines := strings.Split(string(b), "\n")
	var keyLines []int // indexes into lines
	comments := false
	for i, line := range lines {
		switch t := strings.TrimSpace(line); {
		case t == "":
		case strings.HasPrefix(t, "#"):
			comments = true
		default:
			keyLines = append(keyLines, i)
		}
	}
	if !isText(b) || len(keyLines) <= 1 && !comments {
		k, err := parseKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		return [][]byte{k}, nil
	}
	keys, err := parseKeyLines(path, lines, keyLines)
	if err != nil {
		// A raw text key read whole before keyrings may look like lines of one: it may start
		// with # (a comment, line by line) or hold a newline (two keys of the wrong size). A
		// file that does not read as a keyring but reads as one key, as it always did, is
		// that key: it must load after an upgrade as it did before.
		if k, kerr := parseKey(b); kerr == nil {
			return [][]byte{k}, nil
		}
		return nil, err
	}
	return keys, nil
}

// parseKeyLines reads the keys of a keyring file, lines[keyLines] (see parseKeyFile).
func parseKeyLines(path string, lines []string, keyLines []int) ([][]byte, error) {
	if len(keyLines) == 0 {
		return nil, fmt.Errorf("%s holds no key, only comments", path)
	}
	var keys [][]byte
	for _, i := range keyLines {
		k, err := parseKeyText(strings.TrimSpace(lines[i]))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, i+1, err)
		}
		if j := slices.IndexFunc(keys, func(o []byte) bool { return string(o) == string(k) }); j >= 0 {
			return nil, fmt.Errorf("%s:%d: the same key as line %d", path, i+1, keyLines[j]+1)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parseKeyEnv reads $TANDEM_GOSSIP_KEY: one key (see parseKey), or several separated by
// commas, the first the primary, as the lines of a key file. A value that is one valid key
// is that key: no list of valid keys (each 16 bytes at least) is 32 bytes or less.
func parseKeyEnv(s string) ([][]byte, error) {
	k, err := parseKey([]byte(s))
	if err == nil || !strings.Contains(s, ",") {
		if err != nil {
			return nil, err
		}
		return [][]byte{k}, nil
	}
	var keys [][]byte
	for i, part := range strings.Split(s, ",") {
		k, err := parseKeyText(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("key %d of the comma-separated list: %v", i+1, err)
		}
		if j := slices.IndexFunc(keys, func(o []byte) bool { return string(o) == string(k) }); j >= 0 {
			return nil, fmt.Errorf("key %d of the comma-separated list is the same as key %d", i+1, j+1)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parseKeyText reads one key of a keyring: base64 text, or raw text, of 16, 24 or 32 bytes.
func parseKeyText(t string) ([]byte, error) {
	if t == "" {
		return nil, errors.New("empty key")
	}
	k, err := base64.StdEncoding.DecodeString(t)
	switch {
	case err == nil && validKeyLen(len(k)):
		return k, nil
	case validKeyLen(len(t)):
		return []byte(t), nil
	case err == nil:
		return nil, fmt.Errorf("key must be 16, 24 or 32 bytes (raw or base64), got base64 of %d bytes", len(k))
	}
	return nil, fmt.Errorf("key must be 16, 24 or 32 bytes (raw or base64), got %d bytes", len(t))
}

// isText reports whether b is UTF-8 text without control characters but tab, CR and LF: a
// key file written by hand or by base64, rather than a raw binary key.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) && r != '\t' && r != '\r' && r != '\n' {
			return false
		}
	}
	return true
}

// parseKey accepts a gossip key as raw bytes or base64 text, 16, 24 or 32 bytes long.
func parseKey(b []byte) ([]byte, error) {
	text := strings.TrimSpace(string(b))
	if k, err := base64.StdEncoding.DecodeString(text); err == nil && validKeyLen(len(k)) {
		return k, nil
	}
	if validKeyLen(len(b)) {
		return b, nil
	}
	if validKeyLen(len(text)) {
		return []byte(text), nil
	}
	return nil, fmt.Errorf("key must be 16, 24 or 32 bytes (raw or base64), got %d bytes", len(b))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

func (l *loader) admin(r *raw, c *Config) {
	c.Admin.Listen = l.hostPort("admin.listen", r.Admin.Listen, false)
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	c.Admin.TokenFile = r.Admin.TokenFile
	if r.Admin.TokenFile != "" && l.read&SecretAdminToken != 0 {
		tok, err := ReadToken(r.Admin.TokenFile)
		if err != nil {
			l.errorf("admin.token_file", "%v", err)
		}
		c.Admin.Token = tok
	}
	// Beyond loopback, anyone who reaches the port could switch over, force a
	// promotion or start a resync (DESIGN §6: loopback, or a bearer token).
	if host, _, err := net.SplitHostPort(c.Admin.Listen); err == nil && r.Admin.TokenFile == "" && !isLoopback(host) {
		l.errorf("admin.listen", "%s is reachable beyond loopback: set admin.token_file", c.Admin.Listen)
	}
}

// isLoopback tells whether host is a loopback address, or the name localhost in any case (as
// the resolver reads names, and listenIP and localhostIPs take it).
func isLoopback(host string) bool {
	ip, err := netip.ParseAddr(host)
	return strings.EqualFold(host, "localhost") || err == nil && ip.Unmap().IsLoopback()
}

// isUnspecified tells whether host is 0.0.0.0 or ::, which a connect takes for loopback.
func isUnspecified(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsUnspecified()
}

func (l *loader) server(r *raw, c *Config) {
	s := &c.Server
	if r.Server == nil {
		hint := ""
		if r.Proxy == nil && r.TxShim == nil && !l.defined("hooks") {
			hint = "; a witness's file, for tandem witness, is checked with tandem check-config -witness"
		}
		l.errorf("server", "required: the server beside this sidecar ([server] with at least one [[server.endpoint]])%s", hint)
		return
	}
	rs := r.Server
	s.Health = l.oneOf("server.health", rs.Health, HealthTCP, HealthTCP, HealthExec)
	s.HealthCommand = rs.HealthCommand
	switch {
	case s.Health == HealthExec && len(rs.HealthCommand) == 0:
		l.errorf("server.health_command", "required when health = \"exec\"")
	case s.Health != HealthExec && len(rs.HealthCommand) > 0:
		// Set in vain, the command would never run: the tcp check would stand in for it.
		l.errorf("server.health_command", "only used by the exec check (server.health = %q): set health = \"exec\" to run it", s.Health)
	}
	l.argv("server.health_command", rs.HealthCommand)
	s.HealthInterval = l.positive("server.health_interval", rs.HealthInterval, DefaultHealthInterval)
	s.HealthTimeout = l.positive("server.health_timeout", rs.HealthTimeout, DefaultHealthTimeout)
	s.HealthFailures = DefaultHealthFailures
	if rs.HealthFailures != nil {
		if s.HealthFailures = *rs.HealthFailures; s.HealthFailures < 1 {
			l.errorf("server.health_failures", "%d: must be at least 1", s.HealthFailures)
		}
	}
	if len(rs.Endpoint) == 0 {
		l.errorf("server", "at least one [[server.endpoint]] is required")
	}
	// The other site's proxy dials the addresses as they are written, when this site is master:
	// a loopback one reaches the other site's own host, unless both sites share this one (the
	// gossip address is loopback then). A site without a proxy is taken for one of a pair that
	// routes operators otherwise (its hooks move an address, say): its endpoints serve its own
	// health check only, for which loopback is right. A [proxy] table without listeners is no
	// proxy either (check-config prints one, defaults filled in, for every site).
	var remote string // this site's gossip address, when the other members reach it beyond loopback
	gossipAddr := cmp.Or(c.Gossip.Advertise, c.Gossip.Bind)
	if host, _, err := net.SplitHostPort(gossipAddr); err == nil && r.Proxy != nil && len(r.Proxy.Listener) > 0 {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.Unmap().IsLoopback() {
			remote = gossipAddr
		}
	}
	names := map[string]bool{}
	for i, e := range rs.Endpoint {
		key := fmt.Sprintf("server.endpoint[%d]", i)
		switch {
		case e.Name == "":
			l.errorf(key+".name", "required")
		case names[e.Name]:
			l.errorf(key+".name", "%q is defined twice", e.Name)
		}
		names[e.Name] = true
		switch {
		case e.HealthSend != "" && s.Health != HealthTCP:
			l.errorf(key+".health_send", "only used by the tcp check (server.health = %q)", s.Health)
		case e.HealthSend != "" && e.HealthExpect == "":
			l.errorf(key+".health_send", "needs health_expect: the reply that shows the server answered")
		}
		if e.HealthExpect != "" && s.Health != HealthTCP {
			l.errorf(key+".health_expect", "only used by the tcp check (server.health = %q)", s.Health)
		}
		if len(e.HealthSend) > maxHealthProbe {
			l.errorf(key+".health_send", "%d bytes: at most %d", len(e.HealthSend), maxHealthProbe)
		}
		if len(e.HealthExpect) > maxHealthProbe {
			l.errorf(key+".health_expect", "%d bytes: at most %d", len(e.HealthExpect), maxHealthProbe)
		}
		addr := l.hostPort(key+".address", e.Address, true)
		switch host, port, err := net.SplitHostPort(addr); {
		case err != nil: // reported by hostPort
		case strings.Trim(port, "0") == "":
			// Port 0 is "any free port" to listen on; an endpoint is dialled, and no server is there.
			l.errorf(key+".address", "%s: port 0 is never dialable: give the port the server listens on", addr)
		case remote != "" && isLoopback(host):
			l.errorf(key+".address", "%s is a loopback address, but the other site reaches this one beyond loopback (gossip at %s): its proxy dials the address as written and would reach its own host; give the address the other site reaches the server at", addr, remote)
		case remote != "" && isUnspecified(host):
			l.errorf(key+".address", "%s is every address of this host, not one to dial: the other site reaches this one beyond loopback (gossip at %s), and its proxy, dialling the address as written, would reach loopback on its own host; give the address the other site reaches the server at", addr, remote)
		case remote != "" && strings.Contains(host, "%"):
			// The zone names an interface of this host: the other site's proxy would dial
			// through its own interface of that name, or fail on a name it does not have.
			_, zone, _ := strings.Cut(host, "%")
			l.errorf(key+".address", "%s: an IPv6 zone (%%%s) names an interface of this host, but the other site reaches this one beyond loopback (gossip at %s) and its proxy dials the address as written, through its own interfaces; give an address without a zone that the other site reaches the server at (not a link-local one)", addr, zone, remote)
		}
		s.Endpoints = append(s.Endpoints, Endpoint{Name: e.Name, Address: addr, HealthSend: e.HealthSend, HealthExpect: e.HealthExpect})
	}
}

func (l *loader) proxy(r *raw, c *Config) {
	p := &c.Proxy
	p.ConnectTimeout = ConnectTimeoutFor(c.Gossip.Profile, c.Gossip.FenceDelay)
	p.MaxConns = DefaultMaxConns
	if r.Proxy == nil {
		return
	}
	rp := r.Proxy
	for i, s := range rp.TrustedCIDRs {
		key := fmt.Sprintf("proxy.trusted_cidrs[%d]", i)
		if addr, zone, ok := strings.Cut(s, "%"); ok {
			// netip reads "fe80::1%eth0/64" as an address in the zone "eth0/64", and a prefix
			// made of it drops the zone: the entry would be fe80::1/128, on every interface.
			zone, bits, hasBits := strings.Cut(zone, "/")
			without := addr
			if hasBits {
				without += "/" + bits
			}
			l.errorf(key, "%q: an IPv6 zone (%%%s) cannot be given: the proxy matches a peer's address without its interface; write %s, which holds on every interface", s, zone, without)
			continue
		}
		if pfx, err := netip.ParsePrefix(s); err == nil {
			p.TrustedCIDRs = append(p.TrustedCIDRs, unmapPrefix(pfx))
		} else if ip, err := netip.ParseAddr(s); err == nil {
			ip = ip.Unmap()
			p.TrustedCIDRs = append(p.TrustedCIDRs, netip.PrefixFrom(ip, ip.BitLen()))
		} else {
			l.errorf(key, "%q is not a CIDR or an IP address", s)
		}
	}
	p.ConnectTimeout = l.positive("proxy.connect_timeout", rp.ConnectTimeout, p.ConnectTimeout)
	p.IdleTimeout = l.duration("proxy.idle_timeout", rp.IdleTimeout, 0)
	if rp.MaxConns != nil {
		if p.MaxConns = *rp.MaxConns; p.MaxConns < 1 {
			l.errorf("proxy.max_conns", "%d: must be at least 1", p.MaxConns)
		}
	}
	for i, rl := range rp.Listener {
		key := fmt.Sprintf("proxy.listener[%d]", i)
		ln := Listener{Endpoint: rl.Endpoint, Listen: l.hostPort(key+".listen", rl.Listen, true)}
		if rl.Endpoint == "" {
			l.errorf(key+".endpoint", "required: the name of a [[server.endpoint]]")
		} else if _, ok := c.Server.Endpoint(rl.Endpoint); !ok && !c.Server.unnamed() {
			l.errorf(key+".endpoint", "%q names no [[server.endpoint]]%s", rl.Endpoint, known(c.Server.Endpoints))
		}
		ln.AcceptProxy = l.oneOf(key+".accept_proxy", rl.AcceptProxy, ProxyOff, ProxyOff, ProxyOptional, ProxyRequired)
		ln.SendProxy = l.oneOf(key+".send_proxy", rl.SendProxy, ProxyOff, ProxyOff, ProxyV1, ProxyV2)
		if ln.AcceptProxy != ProxyOff && len(rp.TrustedCIDRs) == 0 {
			l.errorf(key+".accept_proxy", "%q needs proxy.trusted_cidrs: the addresses allowed to send a PROXY header", ln.AcceptProxy)
		}
		p.Listeners = append(p.Listeners, ln)
	}
	for i, e := range c.Server.Endpoints {
		c.Server.Endpoints[i].HealthProxy = healthProxy(e.Name, p.Listeners)
	}
}

// healthProxy is the PROXY protocol version every listener serving endpoint sends, or "" when
// none serves it or one sends no header (Endpoint.HealthProxy). Listeners sending v1 and v2
// give v2: that server reads both.
func healthProxy(endpoint string, listeners []Listener) string {
	v := ""
	for _, ln := range listeners {
		switch {
		case ln.Endpoint != endpoint:
		case ln.SendProxy == ProxyOff:
			return ""
		case v == "" || ln.SendProxy == ProxyV2:
			v = ln.SendProxy
		}
	}
	return v
}

// unnamed tells whether an endpoint has no name: an error reported already (a missing name, or
// one of another type), after which a listener naming it is not one more.
func (s Server) unnamed() bool {
	return slices.ContainsFunc(s.Endpoints, func(e Endpoint) bool { return e.Name == "" })
}

func known(eps []Endpoint) string {
	if len(eps) == 0 {
		return ""
	}
	names := make([]string, len(eps))
	for i, e := range eps {
		names[i] = strconv.Quote(e.Name)
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}

func (l *loader) txshim(r *raw, c *Config) {
	rt := r.TxShim
	if rt == nil {
		return
	}
	t := &TxShim{
		Listen:        l.shimListen(rt.Listen),
		LocalDSN:      rt.LocalDSN,
		PeerDSN:       rt.PeerDSN,
		PeerDown:      l.oneOf("txshim.peer_down", rt.PeerDown, PeerDownContinue, PeerDownContinue, PeerDownBlock),
		MaxMessage:    l.size("txshim.max_message", rt.MaxMessage, DefaultMaxMessage),
		CommitTimeout: l.positive("txshim.commit_timeout", rt.CommitTimeout, DefaultCommitTimeout),
		VerifyCatchUp: rt.VerifyCatchUp == nil || *rt.VerifyCatchUp,
	}
	t.UsersFile = rt.UsersFile
	if rt.UsersFile != "" && l.read&SecretUsers != 0 {
		users, err := readUsers(rt.UsersFile)
		if err != nil {
			l.errorf("txshim.users_file", "%v", err)
		}
		t.Users = users
	}
	switch {
	case rt.TLSCertFile == "" && rt.TLSKeyFile == "":
	case rt.TLSCertFile == "":
		l.errorf("txshim.tls_key_file", "tls_cert_file and tls_key_file go together") // at the one set
	case rt.TLSKeyFile == "":
		l.errorf("txshim.tls_cert_file", "tls_cert_file and tls_key_file go together")
	case l.read&SecretShimTLS == 0:
		t.TLSCertFile, t.TLSKeyFile = rt.TLSCertFile, rt.TLSKeyFile
	default:
		if keyPEM, err := readSecret(rt.TLSKeyFile); err != nil {
			l.errorf("txshim.tls_key_file", "%v", err)
		} else if certPEM, err := readCert(rt.TLSCertFile); err != nil {
			l.errorf("txshim.tls_cert_file", "%v", err)
		} else if cert, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			l.errorf("txshim.tls_cert_file", "%v", err)
		} else {
			t.TLSCertFile, t.TLSKeyFile, t.TLSCert = rt.TLSCertFile, rt.TLSKeyFile, &cert
		}
	}
	// Without users_file the shim trusts every client, and each session reaches the database
	// as local_dsn's user: beyond loopback, anyone who reaches the port could read and write
	// the application's data.
	if host, _, err := net.SplitHostPort(t.Listen); err == nil && !isLoopback(host) && rt.UsersFile == "" {
		l.errorf("txshim.listen", "%s is reachable beyond loopback, and without txshim.users_file the shim authenticates no client: listen on a loopback address, beside the server, or set users_file", t.Listen)
	}
	// The shim ends a session on any larger message, the server's replies
	// included, and never allows more than PostgreSQL's own 1 GiB.
	if t.MaxMessage < 16<<10 || t.MaxMessage > 1<<30 {
		l.errorf("txshim.max_message", "%q: must be 16KiB..1GiB", rt.MaxMessage)
	}
	var parsed []*pgconn.Config // of the DSNs read without a problem
	var local *pgconn.Config    // local_dsn's, read without a problem
	for _, d := range [][2]string{{"txshim.local_dsn", rt.LocalDSN}, {"txshim.peer_dsn", rt.PeerDSN}} {
		key, dsn := d[0], d[1]
		isURL := strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
		if dsn == "" {
			l.errorf(key, "required: a PostgreSQL connection string")
		} else if !isURL && urlScheme.MatchString(dsn) {
			l.errorf(key, "must be a postgres:// URL or key=value connection string")
		} else if u, err := url.Parse(dsn); isURL && (err != nil || u.Fragment != "") {
			// Not the URL's text in the message: it may hold the password.
			l.errorf(key, "not a valid URL: %s", urlHint)
		} else if isURL && atAfterHost(dsn) {
			// It reads as a URL, but not as the one meant: part of the password would be the
			// host or port, the rest the database's name, shown wherever that is.
			l.errorf(key, "a '@' after the host: %s (a '@' in the database name or a parameter as well)", urlHint)
		} else if pc, msg := dsnProblem(dsn); msg != "" {
			l.errorf(key, "%s", msg)
		} else if msg := clientsDisagree(dsn, pc); msg != "" {
			l.errorf(key, "%s", msg)
		} else if msg := dsnHostProblem(pc); msg != "" {
			l.errorf(key, "%s", msg)
		} else {
			parsed = append(parsed, pc)
			if key == "txshim.local_dsn" {
				local = pc
			}
		}
	}
	// local_dsn naming the shim itself (the application's connection string, which now points
	// at the shim, copied into local_dsn): every session of the shim would connect to the shim.
	if local != nil && t.Listen != "" && dialsShim(local, t.Listen) {
		l.errorf("txshim.local_dsn", "connects to txshim.listen (%s), the shim itself: give the local database's own address", t.Listen)
	}
	// One database as both (a file copied from the other site and half edited): every dual
	// commit would apply its rows to the database a second time, and resync would copy the
	// master's tables over themselves.
	// Without a database name PostgreSQL connects to the user's.
	dbName := func(c *pgconn.Config) string { return cmp.Or(c.Database, c.User) }
	if len(parsed) == 2 && parsed[0].Host == parsed[1].Host && parsed[0].Port == parsed[1].Port && dbName(parsed[0]) == dbName(parsed[1]) {
		l.errorf("txshim.peer_dsn", "names the same database as txshim.local_dsn (%s): give the other site's database",
			net.JoinHostPort(parsed[0].Host, strconv.Itoa(int(parsed[0].Port)))+"/"+dbName(parsed[0]))
	}
	c.TxShim = t
}

// dsnHostProblem says which host of a connection string, reached over TCP, is neither an IP
// address nor a host name (hostProblem), or "". By its place in the list, not its value: as
// every message about a connection string, it shows nothing that may be part of the password.
func dsnHostProblem(pc *pgconn.Config) string {
	// pgconn lists a host once per TLS attempt (sslmode=prefer and allow try it twice).
	hosts := slices.CompactFunc(append([]*pgconn.FallbackConfig{{Host: pc.Host, Port: pc.Port}}, pc.Fallbacks...),
		func(a, b *pgconn.FallbackConfig) bool { return a.Host == b.Host && a.Port == b.Port })
	for i, h := range hosts {
		if network, _ := pgconn.NetworkAddress(h.Host, h.Port); network != "unix" {
			if msg := hostProblem(h.Host); msg != "" {
				if len(hosts) > 1 {
					return fmt.Sprintf("host (the %d. of %d): %s", i+1, len(hosts), msg)
				}
				return "host: " + msg
			}
		}
	}
	return ""
}

// urlScheme matches a string that starts as a URL does (scheme://): the database clients read a
// connection string as a URL only at a postgres:// or postgresql:// prefix, and any other as
// key=value settings, whose values may hold "://" (password=pw://x).
var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// dialsShim tells whether a connection by pc, to any of its hosts, reaches the shim listening
// on listen: the same Unix socket, or the same port on an address listen takes.
func dialsShim(pc *pgconn.Config, listen string) bool {
	hosts := append([]*pgconn.FallbackConfig{{Host: pc.Host, Port: pc.Port}}, pc.Fallbacks...)
	for _, h := range hosts {
		network, addr := pgconn.NetworkAddress(h.Host, h.Port)
		if network == "unix" {
			if filepath.Clean(addr) == listen {
				return true
			}
			continue
		}
		if strings.HasPrefix(listen, "/") {
			continue
		}
		for _, a := range localhostIPs(listen) {
			for _, b := range localhostIPs(addr) {
				if overlap(a, b, false) {
					return true
				}
			}
		}
	}
	return false
}

// localhostIPs is host:port, or for the name localhost the loopback addresses it stands for.
func localhostIPs(hostPort string) []string {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil || !strings.EqualFold(host, "localhost") {
		return []string{hostPort}
	}
	return []string{net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("::1", port)}
}

// dsnProblem reads a connection string as pgx does, or says why it is one the shim's database
// clients refuse (pgx for sessions, applies and decoding; lib/pq for control work). The reason
// is in words of ours, never the clients' own: theirs quote the string (pgconn's redaction is
// best effort), or a piece of it (`missing "=" after "WORD"` names the second word of an
// unquoted password with a space), and any piece may be part of the password.
func dsnProblem(dsn string) (*pgconn.Config, string) {
	if msg := dsnFileProblem(dsn); msg != "" {
		return nil, "cannot be read as a connection string: " + msg
	}
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, "cannot be read as a connection string: " + dsnReason(err, pgconnMsg(err))
	}
	if _, err := pq.NewConnector(dsn); err != nil {
		return nil, "cannot be read as a connection string: " + dsnReason(err, err.Error())
	}
	return pc, ""
}

// dsnFileProblem says which file dsn names (or the clients take by default, in the home
// directory) is there but neither a regular file, a directory nor /dev/null: pgconn reads them while it
// parses the string, and the read of a FIFO nobody writes to, or of a device, never ends. ""
// when none is, or when lib/pq cannot read the string (dsnProblem says why). lib/pq reads the
// settings without opening the files.
func dsnFileProblem(dsn string) string {
	home, _ := os.UserHomeDir()
	if msg := serviceFileProblem(dsn, home); msg != "" {
		return msg
	}
	pc, err := pq.NewConfig(dsn)
	if err != nil {
		return ""
	}
	for _, f := range []struct{ setting, path, def string }{
		{"passfile", pc.Passfile, ".pgpass"},
		{"sslrootcert", pc.SSLRootCert, filepath.Join(".postgresql", "root.crt")},
		{"sslcert", pc.SSLCert, filepath.Join(".postgresql", "postgresql.crt")},
		{"sslkey", pc.SSLKey, filepath.Join(".postgresql", "postgresql.key")},
	} {
		path := f.path
		if path == "" && home != "" {
			path = filepath.Join(home, f.def)
		}
		if path == "" || f.setting == "sslrootcert" && path == "system" {
			continue
		}
		fi, err := os.Stat(path)
		if err == nil && !fi.Mode().IsRegular() && !fi.IsDir() && !devNull(fi) {
			return fmt.Sprintf("%s: not a regular file (%v): reading it would never end", f.setting, fi.Mode().Type())
		}
		// A passfile named (the setting, $PGPASSFILE) that is there but cannot be read, the
		// clients skip without a word, and connect without its password: said here, as the
		// TLS files are (tlsReason). One that is not there is none, for them as for us; nor
		// is it read when the string (or $PGPASSWORD) gives the password.
		if f.setting == "passfile" && f.path != "" && pc.Password == "" && err == nil {
			if fi.IsDir() {
				return "passfile: a directory, not a file"
			}
			pf, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			switch {
			case errors.Is(err, fs.ErrPermission):
				return "passfile: the file cannot be read (permission denied)"
			case err != nil:
				return "passfile: the file cannot be read"
			}
			pf.Close()
		}
	}
	return ""
}

// serviceFileProblem is dsnFileProblem for the service file, read when the string or
// $PGSERVICE names a service, by pgconn and by lib/pq (in pq.NewConfig itself): the
// servicefile setting pgconn takes from the string, $PGSERVICEFILE or ~/.pg_service.conf.
func serviceFileProblem(dsn, home string) string {
	if !strings.Contains(dsn, "service") && os.Getenv("PGSERVICE") == "" {
		return ""
	}
	paths := []string{dsnValue(dsn, "servicefile"), os.Getenv("PGSERVICEFILE")}
	if home != "" {
		paths = append(paths, filepath.Join(home, ".pg_service.conf"))
	}
	for _, path := range paths {
		if path == "" {
			continue
		}
		if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() && !devNull(fi) {
			return fmt.Sprintf("servicefile: not a regular file (%v): reading it would never end", fi.Mode().Type())
		}
	}
	return ""
}

// dsnValue is the value of key in dsn, a URL or a keyword/value string, as far as a plain
// reading tells ("" when it is not there).
func dsnValue(dsn, key string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return ""
		}
		return u.Query().Get(key)
	}
	for s := dsn; ; {
		i := strings.Index(s, key)
		if i < 0 {
			return ""
		}
		before, rest := s[:i], strings.TrimLeftFunc(s[i+len(key):], unicode.IsSpace)
		s = s[i+len(key):]
		if (before != "" && !unicode.IsSpace(rune(before[len(before)-1]))) || !strings.HasPrefix(rest, "=") {
			continue
		}
		rest = strings.TrimLeftFunc(rest[1:], unicode.IsSpace)
		if !strings.HasPrefix(rest, "'") {
			if j := strings.IndexFunc(rest, unicode.IsSpace); j >= 0 {
				return rest[:j]
			}
			return rest
		}
		var b strings.Builder
		for j := 1; j < len(rest) && rest[j] != '\''; j++ {
			if rest[j] == '\\' && j+1 < len(rest) {
				j++
			}
			b.WriteByte(rest[j])
		}
		return b.String()
	}
}

// devNull says fi is os.DevNull: a device, but its read ends at once, empty (passfile=/dev/null
// or PGPASSFILE=/dev/null is the usual way to keep a client from reading ~/.pgpass).
func devNull(fi os.FileInfo) bool {
	null, err := os.Stat(os.DevNull)
	return err == nil && os.SameFile(fi, null)
}

// pgconnMsg is what pgconn says went wrong (invalid port, failed to configure TLS, ...): its
// error reads "cannot parse `DSN`: msg (cause)", and only msg, a phrase of pgconn's, says which
// setting. "" when err is not pgconn's ParseConfigError.
func pgconnMsg(err error) string {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return ""
	}
	msg := pe.Error()
	if cause := errors.Unwrap(pe); cause != nil {
		msg = strings.TrimSuffix(msg, " ("+cause.Error()+")")
	}
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+3:]
	}
	return msg
}

const (
	// urlHint says how to write what a postgres:// URL cannot hold as it is.
	urlHint = "percent-encode special characters of the user name and password (% as %25, # as %23, / as %2F, ? as %3F, @ as %40)"
	// kvHint says how to write a key=value value that is not one word.
	kvHint = `not key=value settings: a value with a space, a quote or a backslash must be single-quoted (password='two words', with \' for a quote and \\ for a backslash inside)`
)

// dsnSettings are the settings whose values the clients check, each with what it takes: a
// value they refuse is reported by the setting's name, never the value.
var dsnSettings = []struct{ name, want string }{
	{"port", "a port number 1..65535 for each host"},
	{"connect_timeout", "whole seconds, 0 or more"},
	{"sslmode", "disable, allow, prefer, require, verify-ca or verify-full"},
	{"sslnegotiation", "postgres or direct"},
	{"sslcertmode", "disable, allow or require"},
	{"sslrootcert", "a readable file of PEM certificates (or system)"},
	{"sslcert", "a readable PEM certificate, given with sslkey"},
	{"sslkey", "a readable PEM key, given with sslcert (sslpassword if it is encrypted)"},
	{"sslpassword", "the password of sslkey"},
	{"target_session_attrs", "any, read-write, read-only, primary, standby or prefer-standby"},
	{"load_balance_hosts", "disable or random"},
	{"min_protocol_version", "3.0, 3.2 or latest, not above max_protocol_version"},
	{"max_protocol_version", "3.0, 3.2 or latest"},
	{"channel_binding", "disable, prefer or require"},
	{"require_auth", "a comma-separated list of authentication methods (password, md5, scram-sha-256, none, ...), each or all negated with !"},
	{"client_encoding", "UTF8"},
	{"datestyle", "ISO, MDY"},
	{"service", "a service that the service file (~/.pg_service.conf, $PGSERVICEFILE) defines"},
}

// dsnReason turns a client's error about a connection string into a reason of ours: msg is the
// error's text (pgconnMsg's for pgconn), searched for what went wrong, none of it repeated.
func dsnReason(err error, msg string) string {
	switch {
	case strings.Contains(msg, "as URL"):
		return "not a valid URL: " + urlHint
	case strings.Contains(msg, "keyword/value") || strings.Contains(msg, "missing \"=\"") ||
		strings.Contains(msg, "unterminated quoted") || strings.Contains(msg, "after backslash"):
		if strings.Contains(err.Error(), "NUL byte") {
			return "it holds a NUL character"
		}
		return kvHint
	case strings.Contains(msg, "could not match"):
		return "host, hostaddr and port list different numbers of entries (give a port for each host, or one for all)"
	case strings.Contains(msg, "cannot be greater than"):
		return "min_protocol_version is above max_protocol_version"
	case strings.Contains(msg, "failed to configure TLS"):
		return tlsReason(errors.Unwrap(err))
	}
	if m := dsnSetting.FindString(msg); m != "" { // the first named: the clients name the setting before its value
		return settingReason(m)
	}
	return "the database clients refuse it"
}

var dsnSetting = func() *regexp.Regexp {
	names := make([]string, len(dsnSettings))
	for i, s := range dsnSettings {
		names[i] = s.name
	}
	return regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
}()

func settingReason(name string) string {
	for _, s := range dsnSettings {
		if s.name == name {
			return fmt.Sprintf("%s: want %s", s.name, s.want)
		}
	}
	return name + ": the database clients refuse its value"
}

// tlsReason says which TLS setting pgconn could not use; its cause names a file the setting
// gives, and says only whether it was missing or unreadable.
func tlsReason(cause error) string {
	var text string
	if cause != nil {
		text = cause.Error()
	}
	setting := "sslmode"
	switch {
	case strings.Contains(text, "CA"), strings.Contains(text, "certificate pool"):
		setting = "sslrootcert"
	case strings.Contains(text, "sslkey"), strings.Contains(text, "decode"), strings.Contains(text, "decrypt"), strings.Contains(text, "sslpassword"):
		setting = "sslkey"
	case strings.Contains(text, "cert"):
		setting = "sslcert"
	}
	switch {
	case errors.Is(cause, fs.ErrNotExist):
		return setting + ": the file does not exist"
	case errors.Is(cause, fs.ErrPermission):
		return setting + ": the file cannot be read (permission denied)"
	}
	return settingReason(setting)
}

// argv checks a command line: an empty program name would fail at every run.
func (l *loader) argv(key string, argv []string) {
	if len(argv) > 0 && strings.TrimSpace(argv[0]) == "" {
		l.errorf(key, "the first element, the program to run, is empty")
	}
	// A variable assignment where the program goes, as a shell reads it (PGPASSWORD=... psql):
	// no shell runs the command, and every run failed naming the "program", its value too, in
	// the log. Refused without its value, which may be a password (TestCommandProgramIsAssignment).
	if len(argv) > 0 {
		if name, ok := assignment(argv[0]); ok {
			l.errorf(key, "the first element, the program to run, is a variable assignment (%s=...): no shell runs the command; set the variable with env: [\"env\", \"%s=...\", \"PROGRAM\", ...]", name, name)
		}
	}
}

// assignment tells whether arg is a shell's variable assignment NAME=value, and its NAME.
func assignment(arg string) (name string, ok bool) {
	name, _, ok = strings.Cut(arg, "=")
	if !ok || name == "" || name[0] >= '0' && name[0] <= '9' {
		return "", false
	}
	for _, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "", false
		}
	}
	return name, true
}

// maxSocketPath is the longest Unix-socket path Linux binds (sun_path, 108 bytes with its NUL).
const maxSocketPath = 107

// shimListen checks txshim.listen: host:port, or the absolute path of a Unix socket in a
// directory that exists.
func (l *loader) shimListen(s string) string {
	const key = "txshim.listen"
	if !strings.HasPrefix(s, "/") {
		return l.hostPort(key, s, true)
	}
	switch fi, err := os.Stat(filepath.Dir(s)); {
	case len(s) > maxSocketPath:
		l.errorf(key, "%q: a Unix socket path can be at most %d bytes, this one is %d", s, maxSocketPath, len(s))
	case strings.HasSuffix(s, "/"):
		l.errorf(key, "%q: give the socket's file name, not only its directory (e.g. %s.s.PGSQL.6432)", s, s)
	case err != nil:
		l.errorf(key, "%q: its directory: %v", s, err)
	case !fi.IsDir():
		l.errorf(key, "%q: %s is not a directory", s, filepath.Dir(s))
	default:
		return filepath.Clean(s)
	}
	return ""
}

func (l *loader) hostPort(key, s string, required bool) string {
	if s == "" {
		if required {
			l.errorf(key, "required: host:port")
		}
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// SplitHostPort's *net.AddrError repeats the address; say only its reason.
		msg := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			msg = ae.Err
		}
		l.errorf(key, "%q is not host:port: %s", s, msg)
		return ""
	}
	// Digits only: Atoi takes a sign ("+7180"), which net.Listen takes too, but no URL does
	// (tandem status -config builds one of admin.listen), nor memberlist's join (ParseUint), and
	// an endpoint on "+0" passed the check against port 0.
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		l.errorf(key, "%q: port must be a number 0..65535", s)
		return ""
	}
	if host == "" {
		if listened(key) {
			l.errorf(key, "%q: give a host (0.0.0.0 for every address)", s)
		} else {
			// Dialled: 0.0.0.0 reaches loopback, and a server endpoint of it is refused
			// when the other site dials it (server).
			l.errorf(key, "%q: give the host to connect to", s)
		}
		return ""
	}
	if msg := hostProblem(host); msg != "" {
		l.errorf(key, "%q: %s", s, msg)
		return ""
	}
	return s
}

// hostProblem says why host, of an address, is neither an IP address nor a host name a resolver
// looks up, or "". Go's resolver finds no address for such a name ("no such host"), and glibc's
// reads a dotted number short of four parts (127.1, 0) the old inet_aton way: what the address
// means would hang on how tandem was built. A name's last label is never a number (RFC 3696),
// in decimal or in the hex inet_aton reads too (0x7f000001 is 127.0.0.1 to glibc). A name is
// at most 253 characters, its trailing dot aside (RFC 1035's 255 bytes on the wire).
func hostProblem(host string) string {
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	const neither = "neither an IP address nor a host name"
	name := strings.TrimSuffix(host, ".")
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; last != "" && strings.Trim(last, "0123456789") == "" ||
		len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') && strings.Trim(last[2:], "0123456789abcdefABCDEF") == "" {
		return neither + ": an IPv4 address is four decimal numbers 0..255 (10.0.0.1), an IPv6 one goes in brackets ([::1]:5432); a host name's last label is no number"
	}
	if len(name) > 253 {
		return neither + ": a host name is at most 253 characters"
	}
	for _, label := range labels {
		switch {
		case label == "":
			return neither + ": a host name has no empty label (two dots in a row, or a leading dot)"
		case len(label) > 63:
			return neither + ": a label of a host name is at most 63 characters"
		case label[0] == '-' || label[len(label)-1] == '-':
			return neither + ": a label of a host name neither starts nor ends with '-'"
		case strings.TrimFunc(label, func(r rune) bool {
			return r < utf8.RuneSelf && (r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r))
		}) != "":
			return neither + ": a host name holds ASCII letters, digits, '-', '_' and dots only"
		}
	}
	return ""
}

// listened tells a key whose address is listened on (gossip.bind, the listen addresses)
// from one that is dialled (gossip.advertise and join, server endpoints).
func listened(key string) bool {
	return key == "gossip.bind" || strings.HasSuffix(key, ".listen")
}

func (l *loader) oneOf(key, s, def string, allowed ...string) string {
	if s == "" {
		return def
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	l.errorf(key, "%q: must be one of %s", s, strings.Join(allowed, ", "))
	return def
}

func (l *loader) duration(key, s string, def time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		l.errorf(key, "%q is not a duration (use Go syntax: 500ms, 30s, 2m)", s)
		return def
	}
	if d < 0 {
		l.errorf(key, "%q: must not be negative", s)
		return def
	}
	if d > maxDuration {
		// Added to a clock reading, or doubled, one near the int64 limit would wrap to the past.
		l.errorf(key, "%q: at most %v", s, maxDuration)
		return def
	}
	return d
}

// maxDuration bounds every duration; minPositive is the least a duration that must not be
// zero may be (a health_interval of "1ns" would run the check in a busy loop).
const (
	maxDuration = 30 * 24 * time.Hour
	minPositive = time.Millisecond
)

func (l *loader) positive(key, s string, def time.Duration) time.Duration {
	d := l.duration(key, s, def)
	if s != "" && d < minPositive {
		if d == 0 {
			l.errorf(key, "must be greater than zero")
		} else {
			l.errorf(key, "%q: at least %v", s, minPositive)
		}
		return def
	}
	return d
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}

func (l *loader) size(key, s string, def int64) int64 {
	if s == "" {
		return def
	}
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		l.errorf(key, "%q is not a size (e.g. 64MiB, 512KiB, 1048576)", s)
		return def
	}
	return n * mult
}

// unmapPrefix writes an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) as the
// IPv4 prefix it covers (10.0.0.0/8): the proxy compares peers' addresses in
// IPv4 form, which a mapped prefix never contains.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}
