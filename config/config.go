// Package config reads one Tandem member's TOML file (a site's or a witness's), fills in
// defaults and validates every field; each error names the file and the key, and the line
// when the key is in the file (a missing required key: the line of its table, if any).
package config

import (
	"crypto/tls"
	"net/netip"
	"time"
)

// Kind says what the file configures: a site (sidecar beside a server) or
// a witness (a gossip member that only votes).
type Kind int

const (
	// KindSite is a sidecar beside a WireServer: tandem run.
	KindSite Kind = iota
	// KindWitness is a member with no server that only votes: tandem witness.
	KindWitness
)

// Config is one member's resolved configuration.
type Config struct {
	File     string // the path it was loaded from
	Kind     Kind
	Site     string // unique member name
	Priority int    // lower wins the master role
	DataDir  string // holds the member's state files (state.json, vote.json, …)

	Gossip Gossip
	Server Server
	Proxy  Proxy
	TxShim *TxShim // nil when the file has no [txshim] table
	Admin  Admin
	Hooks  Hooks

	// Unread names the secret files LoadSecrets left unread: what they hold is missing, and
	// such a Config must not run a member (tandem run refuses it). 0 from Load and Parse.
	Unread Secrets

	lines keyLines // where each key is set in File (ErrorAt)
}

// ErrorAt is an error about key of the file c was loaded from, at the line that sets it (the
// first, for an array of tables): for a problem found beyond the file's own checks (gossip.New
// refusing the metadata its endpoints make), named as the file's errors are.
func (c *Config) ErrorAt(key, msg string) *Error {
	line := c.lines.line(key)
	if ls := c.lines.plain[key]; len(ls) > 0 {
		line = ls[0]
	}
	return &Error{File: c.File, Line: line, Key: key, Msg: msg}
}

// Failback modes.
const (
	FailbackAuto   = "auto"
	FailbackManual = "manual"
)

// Gossip profiles.
const (
	ProfileLAN  = "lan"
	ProfileWAN  = "wan"
	ProfileFast = "fast"
)

// Gossip configures membership and the role decision.
type Gossip struct {
	Bind          string   // host:port memberlist listens on (TCP and UDP)
	Advertise     string   // host:port others reach us at; defaults to Bind
	Join          []string // host:port of the other members, re-joined forever
	SecretKeyFile string
	SecretKey     []byte // 16, 24 or 32 bytes read from SecretKeyFile or $TANDEM_GOSSIP_KEY; nil: plaintext
	// DecryptKeys are further keys, beside SecretKey, that gossip received may be encrypted
	// with (a key rotation: the key file's lines after the first); gossip sent is encrypted
	// with SecretKey only. Nil with one key.
	DecryptKeys   [][]byte
	Profile       string // lan | wan | fast
	Failback      string // auto | manual
	FailbackDelay time.Duration
	FenceDelay    time.Duration // how long a lost master must be gone before another site takes over
	Witness       bool          // true when a witness is part of the cluster (majority rule applies)
}

// Health check kinds.
const (
	HealthTCP  = "tcp"
	HealthExec = "exec"
)

// Server describes the unmodified server beside this sidecar.
type Server struct {
	Health         string   // tcp | exec
	HealthCommand  []string // argv for exec; exit 0 is healthy
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	HealthFailures int // consecutive failures before the server counts as down
	Endpoints      []Endpoint
}

// Endpoint is one named TCP address of the server.
type Endpoint struct {
	Name    string
	Address string // host:port
	// With the tcp check: bytes written once connected (may be empty), and bytes the reply
	// must contain within health_timeout (empty: the connect alone is the check). A server
	// that accepts connections but hangs passes a bare connect; it fails this.
	HealthSend   string
	HealthExpect string
	// HealthProxy is not read from the file: Load sets it to the PROXY protocol version (v1,
	// v2) that every listener serving this endpoint sends (send_proxy), or "" when one sends
	// none. A server that takes connections only from those listeners may require the header:
	// the tcp check's health_send then goes after a LOCAL header of that version (a check of
	// the server's own, with no operator address).
	HealthProxy string
}

// Endpoint returns the address of the endpoint with the given name.
func (s Server) Endpoint(name string) (string, bool) {
	for _, e := range s.Endpoints {
		if e.Name == name {
			return e.Address, true
		}
	}
	return "", false
}

// PROXY protocol settings.
const (
	ProxyOff      = "off"
	ProxyOptional = "optional"
	ProxyRequired = "required"
	ProxyV1       = "v1"
	ProxyV2       = "v2"
)

// Proxy configures the operator listeners.
type Proxy struct {
	Listeners      []Listener
	TrustedCIDRs   []netip.Prefix // peers allowed to send a PROXY header
	ConnectTimeout time.Duration  // how long a new connection waits for a master
	IdleTimeout    time.Duration  // 0: none
	MaxConns       int            // per listener; further accepts wait
}

// Listener is one operator-facing listener.
type Listener struct {
	Endpoint    string // server endpoint name it serves
	Listen      string // host:port
	AcceptProxy string // off | optional | required
	SendProxy   string // off | v1 | v2
}

// Peer-down policies for the shim.
const (
	PeerDownContinue = "continue"
	PeerDownBlock    = "block"
)

// TxShim configures the PostgreSQL-wire shim.
type TxShim struct {
	Listen        string // host:port, or the absolute path of a Unix socket
	LocalDSN      string
	PeerDSN       string
	PeerDown      string // continue | block
	MaxMessage    int64  // bytes
	CommitTimeout time.Duration
	// VerifyCatchUp: compare both databases after each catch-up, as they were when it held
	// commits (DESIGN §5.5).
	VerifyCatchUp bool
	// UsersFile names the client users' file; Users is what it holds (user -> password), for
	// SCRAM-SHA-256. nil: every client is trusted (the listener is then loopback only).
	UsersFile string
	Users     map[string]string
	// TLS offered to clients that ask for it: the certificate and key files, and the pair
	// loaded from them (nil: SSL refused).
	TLSCertFile, TLSKeyFile string
	TLSCert                 *tls.Certificate
}

// Admin configures the admin HTTP API: on loopback, unless TokenFile is set.
type Admin struct {
	Listen    string
	TokenFile string
	Token     string // bearer token read from TokenFile; empty: none required
}

// Hooks are commands run on role changes.
type Hooks struct {
	OnPromote []string
	OnDemote  []string
	Timeout   time.Duration
}
