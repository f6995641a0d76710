package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/tandem-ha/tandem/config"
)

// PromoteRefusal is a CheckPromote error that names the term record it refused on (read from
// the other site's database, which may hold one the gossip never carried here).
type PromoteRefusal struct {
	Record TermRecord
	Err    error
}

func (e *PromoteRefusal) Error() string { return e.Err.Error() }
func (e *PromoteRefusal) Unwrap() error { return e.Err }

// Options are the parts of a Node that are not configuration.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	Store  RecordStore  // nil: a FileStore in cfg.DataDir
	// BeforeRelease runs after the local role has turned backup (the State
	// is delivered first, so the proxy cuts connections) and before the
	// release of term is published; cmd runs on_demote and drains there.
	// May be nil.
	BeforeRelease func(ctx context.Context, term uint64)
	// BeforePromote runs after the new term record is saved and before the
	// role is published, so that whatever the master serves (the shim) is
	// ready before anyone routes to it. It reports whether the peer's
	// database has everything (the record's peer_synced). An error cancels
	// the promotion. May be nil.
	BeforePromote func(ctx context.Context, term uint64) (peerSynced bool, err error)
	// CheckPromote runs before the new term record is saved: an error makes this site stand
	// aside without taking the term (no record of it is saved or published), as when it finds
	// its database behind what the gossip showed; a *PromoteRefusal names the record it
	// refused on, which the node adopts when it is newer than its own. May be nil.
	CheckPromote func(ctx context.Context, term uint64) error
	// ReleaseTimeout bounds BeforeRelease when Run ends; 0 means 30s.
	ReleaseTimeout time.Duration
	// WentSolo reports whether the master this process served may have committed alone in
	// term (its shim was solo while a client worked through it). A record saying peer_synced = false is announced before
	// the first solo commit (DESIGN §3), and a master that then hears of a newer term does not
	// commit alone: when this process recorded the announcement and WentSolo says no, a newer
	// term elsewhere is no split brain. nil: every such record counts as committed alone.
	WentSolo func(term uint64) bool
	// Cut, for tests only, names gossip addresses (host:port) whose link to this member is cut:
	// packets to and from them are dropped and dials to them time out (see cutTransport). A
	// test that partitions real processes cuts each link on both ends. nil: nothing is cut.
	Cut func(addr string) bool
}

// MemberStatus is one member as shown by /status.
type MemberStatus struct {
	Site     string     `json:"site"`
	Alive    bool       `json:"alive"`
	Role     MemberRole `json:"role"`
	Term     uint64     `json:"term"`
	Healthy  bool       `json:"healthy"`
	Priority int        `json:"priority"`
	Witness  bool       `json:"witness,omitempty"`
	Admin    string     `json:"admin,omitempty"`
	Addr     string     `json:"addr,omitempty"` // a peer's gossip address (ip:port)
}

// State is what the rest of the process sees of the member. It is a copy,
// safe to keep.
type State struct {
	Self            string
	Role            Role
	Term            uint64            // term of the record this member holds
	Record          TermRecord        // the record itself
	Master          string            // current master site, "" if none
	MasterEndpoints map[string]string // the master's endpoints by name (nil if none)
	Reason          string            // reason of the last role change
	Decision        string            // reason of the last decision round that kept the role (e.g. what it waits for)
	Members         []MemberStatus
	RoleChanges     uint64
	Cold            bool
	SplitBrain      uint64 // see Meta.SplitBrain
	// Releasing is the last term this member handed over (0: none). The backup State of a
	// release is delivered before Options.BeforeRelease runs, so a reader that acts on
	// demotions leaves the demotion of that term to BeforeRelease.
	Releasing uint64
	// Draining, while there is no master, is the site of a master handing over in a planned
	// handover (Action.Handover) whose drain is under way (DESIGN §3 handover): the connections
	// made to its server before the handover finish their requests; no new one goes there. ""
	// otherwise (a failure's release — an unhealthy server, a stronger or newer master — keeps
	// none, nor does a master that is not alive).
	Draining string
}

func (s State) clone() State {
	s.MasterEndpoints = maps.Clone(s.MasterEndpoints)
	s.Members = slices.Clone(s.Members)
	return s
}

// Node is one Tandem member over memberlist: it keeps re-joining its
// peers, publishes its Meta, runs Decide on every change and applies the
// action.
type Node struct {
	cfg           *config.Config
	log           *slog.Logger
	mlLog         *slog.Logger
	store         RecordStore
	beforeRelease func(ctx context.Context, term uint64)
	beforePromote func(ctx context.Context, term uint64) (bool, error)
	checkPromote  func(ctx context.Context, term uint64) error
	wentSolo      func(term uint64) bool
	cut           func(addr string) bool // Options.Cut
	// hadMajority: the last view saw a majority of the voters, since majoritySince
	// (View.MajoritySince); under mu. Kept up to date by every change of a peer's liveness
	// too (noteMajorityLocked), not only by decision rounds, which a promotion's work holds.
	hadMajority    bool
	majoritySince  time.Time
	releaseTimeout time.Duration
	prof           profile
	voters         int
	fenceDelay     time.Duration
	start          time.Time

	wake       chan struct{} // re-decide now
	dupWake    chan struct{} // a name conflict: probe the other process now
	rejoinWake chan struct{} // a peer left: re-join now
	changes    chan State    // latest state wins
	started    chan struct{} // closed once memberlist is up
	crash      chan struct{} // tests: stop like kill -9 (no release, no Leave)
	running    atomic.Bool
	// bound is the configuration whose transport Bind bound ahead of Run, which takes it
	// (and unbind, which ends its dials); nil when Run binds it itself.
	bindMu sync.Mutex
	bound  *memberlist.Config
	unbind context.CancelFunc

	readySince map[string]time.Time // owned by the decision loop
	// readyTerm is the newest term a view showed when readySince was last cleared for it:
	// failback_delay runs from the takeover on, in every member's view (decide); owned by the
	// decision loop.
	readyTerm uint64
	// boots is the Meta.Boot each site was last seen with: a new one is a restart, which
	// restarts its failback_delay (readySince); owned by the decision loop.
	boots map[string]uint64
	// voteUnkept is the vote last found unkeepable (decide logs it once, not every round, and
	// once more when a vote is kept again); owned by the decision loop.
	voteUnkept *voteMark
	// voteUnknown: with a witness, data_dir held no vote at start (VoteFile). A first start
	// and a lost data_dir (a host rebuilt, a disk replaced) look the same, and a voter that
	// lost its vote could vote again, for another site, in a term it helped decide, whose
	// winner (cut off, fenced) it no longer sees. While anyone in sight holds a term, it votes
	// only once it has seen every other voter since its start (voteSeen), and so learned the
	// newest term; owned by the decision loop.
	voteUnknown    bool
	voteSeen       map[string]bool
	voteHeldLogged bool
	// adoptUnkept is the term record adopt last failed to save (logged once, not every round,
	// and once more when a record is kept again); owned by the decision loop.
	adoptUnkept *TermRecord

	// recMu orders the Saves of the term record with what is published: a Save and the
	// meta.Record it sets happen under it, so that the store and the Seq of the master's words
	// never go back, while mu, which gossip callbacks and the decision need, is not held
	// across a Save that may wait for a database. Taken before mu.
	recMu sync.Mutex

	sendMu        sync.Mutex // held by deliver, before mu: one State sent at a time
	mu            sync.Mutex
	meta          Meta // what is published
	metaBytes     []byte
	metaDirty     bool
	metaChanged   time.Time // when metaBytes last changed (see publish)
	metaSent      time.Time // when publish last broadcast them
	role          Role      // local role; stays ahead of meta.Role while a release drains
	releasing     uint64    // see State.Releasing
	reason        string
	decision      string // see State.Decision
	coldLogged    bool   // the cold-start wait was logged (coldWaitLogAfter)
	splitMark     splitBrainMark
	splitSave     sync.Mutex // one save of splitMark at a time (keepSplitMark)
	dup           duplicate
	announced     uint64 // the term whose peer_synced = false this process recorded
	announcedOnly uint64 // the term checkSplitBrain found announced only (it may yet prove solo)
	roleChanges   uint64
	peers         map[string]*peer
	claimedAt     time.Time
	switchTo      string
	switchUntil   time.Time
	force         bool
	acceptLoss    uint64 // View.AcceptLoss
	// sameTerm is the record of another master of this site's own term that a refusal named
	// (PromoteRefusal: a split brain in that term), whose loss AcceptLoss may accept.
	sameTerm TermRecord
	// olderSolo is the record of the other site's older term that a refusal named, this site
	// master of a newer one (PeerSoloLost: that site went on alone in a term this site's
	// database lacks), whose loss AcceptLoss may accept.
	olderSolo TermRecord
	// takenOver: the term this site took last, and the term of the record it held then
	// (TookOver), kept in the data directory (TakenOverFile).
	takenOver takenOverMark
	// takenOverUnsaved: the term takenOver holds was not saved as this site's term record (its
	// promotion failed before, or the process died between the two saves), so the record
	// held is still of the term before it (takenOverMark.next).
	takenOverUnsaved bool
	// dbDown is what SetDBReachable last said (false: reachable); holdUntil, until when a
	// failed promotion keeps this site out of the running (holdPromotion). The published
	// DBReachable is neither.
	dbDown       bool
	holdUntil    time.Time
	holdErr      error // what the promotion that set holdUntil failed on
	promoteFails int   // promotions in a row that failed; 0 after one that did not
	state        State
	delivered    State
	ml           *memberlist.Memberlist
	addr         string
}

// duplicate is another process that claims this site's name, heard of through a name conflict
// (conflicts): memberlist keeps the member it knew first under a name and ignores the other,
// so a second process with a running site's name (its file copied with only the bind changed,
// a replacement host started before the old one stopped) sees the other site but not the
// process holding its name — master, maybe — and the other site never sees it: left alone it
// took the next term beside the first. A site restarted at another address hears of its dead
// predecessor so too, while the others still hold that one alive or suspect: a direct probe
// tells the two apart. Under mu.
type duplicate struct {
	addr     string    // its gossip address; "" none
	heard    time.Time // when a conflict last named it
	probed   bool      // a direct probe of it has ended since it was first heard of
	answered time.Time // when it last answered one
}

// heldByDupLocked says this member, not master, has another process answering as its site
// (duplicate): until a first probe of it ends, and for as long after its last answer as a
// peer's failed probes take to make it unreachable. A master keeps its role: it is the one the
// others know, unless they took a newer term meanwhile, which the rules settle.
func (n *Node) heldByDupLocked(now time.Time) bool {
	if n.role == RoleMaster || n.dup.addr == "" {
		return false
	}
	return !n.dup.probed || now.Sub(n.dup.answered) < n.dupWindow()
}

// dupWindow is how long a duplicate's last answer holds (heldByDupLocked).
func (n *Node) dupWindow() time.Duration {
	return time.Duration(n.prof.probeFailures)*n.prof.probeEvery + n.prof.ml.ProbeTimeout
}

// probeDup pings the process that claims this site's name at addr, and notes what it says.
// A duplicate not heard of by a conflict for two push/pull intervals (the others no longer
// hold it alive) and not answering is forgotten.
func (n *Node) probeDup(ml *memberlist.Memberlist, addr string) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err == nil {
		_, err = ml.Ping(n.cfg.Site, ua)
	}
	now := time.Now()
	n.mu.Lock()
	if n.dup.addr != addr {
		n.mu.Unlock()
		return
	}
	was := n.heldByDupLocked(now)
	n.dup.probed = true
	if err == nil {
		n.dup.answered = now
	} else if now.Sub(n.dup.answered) >= n.dupWindow() && now.Sub(n.dup.heard) >= 2*n.prof.ml.PushPullInterval {
		n.dup = duplicate{}
	}
	held := n.heldByDupLocked(now)
	n.publishDBLocked(now)
	n.mu.Unlock()
	switch {
	case held && !was:
		n.log.Error("another process answers as this site: gossip ignores one of the two, and this one takes no role while the other answers — stop one of them",
			"other", addr)
	case was && !held:
		n.log.Info("the other process that claimed this site's name does not answer: this one may take a role", "other", addr)
	}
	if held != was {
		n.poke()
	}
}

// peer is what the node knows of another member.
type peer struct {
	meta        Meta
	hasMeta     bool
	addr        *net.UDPAddr
	mlAlive     bool // memberlist holds it alive (or suspect)
	fails       int  // consecutive failed direct probes
	alive       bool // as in Member.Alive
	unreachable bool
	since       time.Time
}

// New prepares a member from cfg; cfg.Kind == config.KindWitness makes a
// witness. Nothing is bound until Run.
func New(cfg *config.Config, opts Options) (*Node, error) {
	if cfg == nil {
		return nil, errors.New("gossip: no configuration")
	}
	if cfg.Site == "" {
		return nil, errors.New("gossip: configuration has no site name")
	}
	prof, err := newProfile(cfg.Gossip.Profile)
	if err != nil {
		return nil, err
	}
	if _, _, err := splitBind(cfg.Gossip.Bind); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("site", cfg.Site)
	store := opts.Store
	if store == nil {
		if cfg.DataDir == "" {
			return nil, errors.New("gossip: no data_dir for the term record")
		}
		store = NewFileStore(cfg.DataDir)
	}
	rec, err := store.Load()
	if err != nil {
		return nil, err
	}
	witness := cfg.Kind == config.KindWitness
	var mark splitBrainMark
	var over takenOverMark
	if cfg.DataDir != "" && !witness {
		if mark, err = loadSplitBrain(cfg.DataDir); err != nil {
			return nil, err
		}
		if over, err = loadTakenOver(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	meta := Meta{
		Site: cfg.Site, Priority: cfg.Priority, Witness: witness,
		DBReachable: true, Record: rec, Admin: cfg.Admin.Listen,
		Cold: !witness && len(cfg.Gossip.Join) > 0, Boot: uint64(time.Now().UnixMilli()),
		ManualFailback: !witness && cfg.Gossip.Failback == config.FailbackManual,
	}
	if !mark.Cleared {
		meta.SplitBrain = mark.Term
	}
	if cfg.DataDir != "" && cfg.Gossip.Witness {
		vote, err := loadVote(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		meta.Vote, meta.VoteFor = vote.Term, vote.For
	}
	voteUnknown := cfg.Gossip.Witness && meta.Vote == 0
	if witness {
		meta.Role = RoleWitness
	} else if len(cfg.Server.Endpoints) > 0 {
		meta.Endpoints = make(map[string]string, len(cfg.Server.Endpoints))
		for _, e := range cfg.Server.Endpoints {
			meta.Endpoints[e.Name] = e.Address
		}
	}
	b, err := EncodeMeta(meta)
	if err != nil {
		return nil, err
	}
	// What fits now must fit once the member holds a term, a role, a claim and a vote:
	// memberlist keeps the last metadata that fitted, so a master, fenced or released word
	// that did not was never heard of by the others.
	if _, err := EncodeMeta(longestMeta(meta)); err != nil {
		return nil, fmt.Errorf("no room left for the term, role and vote it publishes later: %w", err)
	}
	voters := 2
	if len(cfg.Gossip.Join) == 0 {
		voters = 1
	}
	fence := cfg.Gossip.FenceDelay
	if cfg.Gossip.Witness {
		// Two sites and the witness, whoever joins whom: a witness needs no gossip.join (the
		// sites join it), and counted as a lone site's one voter plus itself it took the two
		// sites for a stray member.
		voters = 3
		if fence == 0 {
			fence = config.DefaultFenceDelay(cfg.Gossip.Profile)
		}
		// DESIGN §3: a new master waits fence_delay for the lost one to have fenced itself,
		// which takes it this long at most; shorter, two masters could serve at once.
		if fence < prof.fenceNotice() {
			return nil, fmt.Errorf("gossip.fence_delay %v is shorter than the %v a cut-off master of profile %q may take to notice it lost the majority and fence itself",
				fence, prof.fenceNotice(), cfg.Gossip.Profile)
		}
	}
	rt := opts.ReleaseTimeout
	if rt <= 0 {
		rt = 30 * time.Second
	}
	n := &Node{
		cfg: cfg, log: logger.With("component", "gossip"), mlLog: logger.With("component", "memberlist"), store: store, beforeRelease: opts.BeforeRelease, beforePromote: opts.BeforePromote, releaseTimeout: rt,
		wentSolo: opts.WentSolo,
		cut:      opts.Cut,
		prof:     prof, voters: voters, fenceDelay: fence, checkPromote: opts.CheckPromote,
		wake: make(chan struct{}, 1), dupWake: make(chan struct{}, 1), rejoinWake: make(chan struct{}, 1), changes: make(chan State, 1),
		started: make(chan struct{}), crash: make(chan struct{}),
		readySince: map[string]time.Time{}, boots: map[string]uint64{},
		voteUnknown: voteUnknown, voteSeen: map[string]bool{},
		meta: meta, metaBytes: b, role: meta.Role, peers: map[string]*peer{},
		splitMark: mark, takenOver: over, takenOverUnsaved: over.Term > rec.Term,
	}
	n.state = n.stateLocked()
	n.delivered = n.state
	return n, nil
}

// longestMeta is m with every field it may publish later at its longest: roles, flags, the
// other site's name (32 characters, the most config allows) and terms of up to 10 digits. An
// admin address of port 0 (any free port: tandem check-config measures the file as written)
// gets the widest port, as tandem run publishes the port it was given.
//
// DrainKeeps is left out: it is set only while a master drains (release), whose Released,
// ReleasedTo and Claim are empty (release clears them with it), and those, counted here, are
// far longer; counted on top of them, it took 10 bytes that no metadata ever uses, and a file
// that fitted before no longer did (TestLongestMetaCoversDrain).
func longestMeta(m Meta) Meta {
	const term = 9_999_999_999
	if host, port, err := net.SplitHostPort(m.Admin); err == nil && port == "0" {
		m.Admin = net.JoinHostPort(host, "65535")
	}
	other := strings.Repeat("x", 32)
	m.ServerHealthy, m.DBReachable, m.Cold, m.Draining, m.Leaving, m.ManualFailback = true, true, true, true, true, true
	if !m.Witness {
		m.Role = RoleMaster
	}
	m.Record = TermRecord{Term: term, Master: other, PeerSynced: true, Seq: math.MaxUint64}
	m.Released, m.ReleasedTo, m.Claim, m.Vote, m.VoteFor, m.SplitBrain = term, other, term, term, other, term
	return m
}

func splitBind(bind string) (string, int, error) {
	host, p, err := net.SplitHostPort(bind)
	if err != nil {
		return "", 0, fmt.Errorf("gossip bind %q: %w", bind, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("gossip bind %q: bad port", bind)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("gossip bind %q: want an IP address, not a host name", bind)
	}
	return host, port, nil
}

// memberlistConfig makes memberlist's configuration and binds its transport; the transport's
// stream dials end with dials.
func (n *Node) memberlistConfig(dials context.Context) (*memberlist.Config, error) {
	c := *n.prof.ml
	c.Name = n.cfg.Site
	host, port, err := splitBind(n.cfg.Gossip.Bind)
	if err != nil {
		return nil, err
	}
	c.BindAddr, c.BindPort = host, port
	c.AdvertiseAddr, c.AdvertisePort = "", port
	if a := n.cfg.Gossip.Advertise; a != "" {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise %q: %w", a, err)
		}
		ap, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("gossip advertise %q: bad port", a)
		}
		c.AdvertiseAddr, c.AdvertisePort = h, ap
	}
	// A keyring: the primary key encrypts what is sent, every key is tried on what is received
	// (a key rotation has two). GossipVerifyIncoming/Outgoing stay on (the profiles' defaults):
	// with a key, unencrypted gossip is refused.
	c.SecretKey = nil
	if g := n.cfg.Gossip; len(g.SecretKey) > 0 || len(g.DecryptKeys) > 0 {
		kr, err := memberlist.NewKeyring(g.DecryptKeys, g.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("gossip key: %w", err)
		}
		c.Keyring = kr
	}
	c.Delegate = delegate{n}
	c.Events = events{n}
	c.Conflict = conflicts{n}
	c.LogOutput = nil
	c.Logger = log.New(mlWriter{n.mlLog}, "", 0)
	if n.cut != nil {
		t, err := newCutTransport(&c, n.cut)
		if err != nil {
			return nil, err
		}
		c.Transport = t
	} else {
		t, err := newStoppableTransport(dials, &c)
		if err != nil {
			return nil, err
		}
		c.Transport = t
	}
	return &c, nil
}

// Bind binds the gossip port now, ahead of Run, which uses it: a member whose port is taken
// (by another process, or a second sidecar started on this host by mistake) fails its start
// with this error before it serves anything or runs a hook. Without Bind, Run binds the port
// itself. A node bound and never run lets go of the port with Unbind. From Bind on, LocalAddr
// is the address bound (with port 0, the port chosen).
func (n *Node) Bind() error {
	n.bindMu.Lock()
	defer n.bindMu.Unlock()
	if n.bound != nil || n.running.Load() {
		return errors.New("gossip: Bind called twice, or after Run")
	}
	dials, stop := context.WithCancel(context.Background())
	c, err := n.memberlistConfig(dials)
	if err != nil {
		stop()
		return err
	}
	n.bound, n.unbind = c, stop
	n.mu.Lock()
	n.addr = net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)) // LocalAddr: the port bound, for port 0
	n.mu.Unlock()
	return nil
}

// Unbind lets go of the port Bind bound, for a start that fails before Run; it does nothing
// once Run took the port (or without Bind).
func (n *Node) Unbind() {
	n.bindMu.Lock()
	c, stop := n.bound, n.unbind
	n.bound, n.unbind = nil, nil
	n.bindMu.Unlock()
	if c != nil {
		_ = c.Transport.Shutdown()
		stop()
	}
}

// Run joins the cluster and keeps deciding and publishing until ctx ends.
// Then, if master, it releases the role (BeforeRelease first), leaves the
// cluster gracefully and shuts memberlist down. It returns once all its
// goroutines are gone; Changes is closed then.
func (n *Node) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("gossip: Run called twice")
	}
	// Dials end once the role is handed over and the node stops (stopDials below), not with
	// ctx: the release before that may still need them.
	n.bindMu.Lock()
	c, stopDials := n.bound, n.unbind
	n.bound, n.unbind = nil, nil
	n.bindMu.Unlock()
	if c == nil {
		var dials context.Context
		dials, stopDials = context.WithCancel(context.WithoutCancel(ctx))
		var err error
		if c, err = n.memberlistConfig(dials); err != nil {
			stopDials()
			close(n.changes)
			return err
		}
	}
	defer stopDials()
	if k := len(n.cfg.Gossip.DecryptKeys); k > 0 {
		n.log.Info("gossip key rotation: encrypting with the first key, decrypting with any of them", "keys", k+1)
	}
	if !c.EncryptionEnabled() {
		n.log.Warn("gossip is NOT encrypted: anyone who reaches the gossip port can join and steer roles; set gossip.secret_key_file")
	}
	if !n.meta.Witness && !n.cfg.Gossip.Witness && len(n.cfg.Gossip.Join) > 0 {
		n.log.Warn("no witness configured: a cut link between the sites makes both masters (DESIGN §3 split brain)")
	}
	ml, err := memberlist.Create(c)
	if err != nil {
		// The transport is bound already (memberlistConfig): its sockets go with the failure.
		_ = c.Transport.Shutdown()
		close(n.changes)
		return fmt.Errorf("start gossip on %s: %w", n.cfg.Gossip.Bind, err)
	}
	n.mu.Lock()
	n.ml = ml
	n.addr = net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort))
	n.start = time.Now()
	term := n.meta.Record.Term
	n.mu.Unlock()
	close(n.started)
	n.log.Info("gossip started", "addr", n.LocalAddr(), "profile", n.cfg.Gossip.Profile,
		"voters", n.voters, "fence_delay", n.fenceDelay, "term", term)

	inner, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.rejoinLoop(inner, ml) })
	wg.Go(func() { n.probeLoop(inner, ml) })

	crashed := n.decideLoop(ctx, ml)
	if !crashed {
		n.mu.Lock()
		master := n.role == RoleMaster
		n.mu.Unlock()
		if master {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.releaseTimeout)
			n.release(rctx, ml, n.stopRelease())
			cancel()
			// The waits for the release and the Leave below to go out follow the profile
			// (settle is a few gossip intervals more than a broadcast takes): when every
			// member stops at once, nobody is left to send them to, and memberlist waits out
			// its whole timeout — with a fixed 1 s + 2 s, a whole fast-profile cluster took
			// up to 3 s to stop.
			if err := ml.UpdateNode(n.prof.settle); err != nil {
				n.log.Debug("publish release before leaving", "err", err)
			}
		}
	}
	stop()
	stopDials() // a re-join stuck dialling a peer that drops packets ends now
	wg.Wait()
	if !crashed {
		// Said before the Leave: once gone, this member no longer counts among the members
		// the others know of (View.votes), as a stray one stopped or a replaced witness.
		n.mu.Lock()
		n.meta.Leaving = true
		n.encodeLocked()
		n.mu.Unlock()
		if err := ml.UpdateNode(n.prof.settle); err != nil {
			n.log.Debug("publish leaving", "err", err)
		}
		if err := ml.Leave(2 * n.prof.settle); err != nil {
			n.log.Warn("leave gossip", "err", err)
		}
	}
	if err := ml.Shutdown(); err != nil {
		n.log.Warn("shut down gossip", "err", err)
	}
	n.log.Info("gossip stopped")
	close(n.changes)
	return nil
}

// stopRelease is the release of a master that stops: a planned handover (Action.Handover),
// unless the decision would have this master give up the role for a failure now — its server
// unhealthy, its database unreachable, the majority lost, a stronger or newer master. A stop
// that comes before the decision round that would have released for it is no handover: like
// that round's release, it keeps no connection to a server that failed (Meta.DrainKeeps).
// Either way "released" goes out after the drain, as it does for any release.
func (n *Node) stopRelease() Action {
	n.mu.Lock()
	v := n.viewLocked(time.Now())
	n.mu.Unlock()
	a := Action{Kind: Release, Reason: "shutting down", Handover: true}
	if d := Decide(v); d.Kind == Fence || d.Kind == Release && !d.Handover {
		a.Reason, a.Handover = "shutting down: "+d.Reason, false
	}
	return a
}

// Changes delivers the State on every role, master, term or split-brain
// change; a slow reader gets the latest. It is closed when Run returns.
func (n *Node) Changes() <-chan State { return n.changes }

// State returns the current state.
func (n *Node) State() State {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state.clone()
}

// LocalAddr is the gossip address bound by Bind or Run (the configured one before).
func (n *Node) LocalAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.addr != "" {
		return n.addr
	}
	return n.cfg.Gossip.Bind
}

// SetServerHealthy publishes the local server's health and re-decides at
// once: a master whose server fails gives up the role immediately.
func (n *Node) SetServerHealthy(ok bool) {
	n.mu.Lock()
	if n.meta.ServerHealthy != ok {
		n.meta.ServerHealthy = ok
		n.encodeLocked()
	}
	n.mu.Unlock()
	n.poke()
}

// SetDBReachable publishes whether the local database answers (true when
// no database is configured) and re-decides at once.
func (n *Node) SetDBReachable(ok bool) {
	n.mu.Lock()
	n.dbDown = !ok
	n.publishDBLocked(time.Now())
	n.mu.Unlock()
	n.poke()
}

// publishDBLocked publishes DBReachable: the database answers, no failed promotion holds
// this site back (holdPromotion), and no live duplicate of this site does (heldByDupLocked).
func (n *Node) publishDBLocked(now time.Time) {
	if ok := !n.dbDown && !now.Before(n.holdUntil) && !n.heldByDupLocked(now); n.meta.DBReachable != ok {
		n.meta.DBReachable = ok
		n.encodeLocked()
	}
}

// Promotion hold-off: after a promotion that failed, the site says it is not ready for
// promoteHold, doubled for each failure in a row up to promoteHoldMax.
const (
	promoteHold    = 10 * time.Second
	promoteHoldMax = 5 * time.Minute
)

// holdPromotion keeps this site out of the running for a while after its promotion failed
// (its database reachable, but, say, a sequence that cannot be moved): it stays the best site,
// and would claim, fail and claim again while the other site, which could serve, waited
// behind it. Meanwhile it publishes DBReachable = false, so that the others pass it over.
func (n *Node) holdPromotion(term uint64, err error) {
	n.mu.Lock()
	n.promoteFails++
	hold := min(promoteHold<<min(n.promoteFails-1, 10), promoteHoldMax)
	n.holdUntil, n.holdErr = time.Now().Add(hold), err
	n.publishDBLocked(time.Now())
	n.mu.Unlock()
	n.log.Error("cannot promote: not ready to serve; this site stands aside meanwhile, so that another may take over",
		"term", term, "err", err, "stands_aside", hold, "failures_in_a_row", n.promoteFails)
}

// SetPeerSynced records on the master whether the peer's database has
// everything it committed (DESIGN §3, §5.5) and publishes it.
func (n *Node) SetPeerSynced(ok bool) error {
	n.recMu.Lock()
	defer n.recMu.Unlock()
	n.mu.Lock()
	rec := n.meta.Record
	// A master that lost its role drains its shim, and may still say false of its own term: a
	// commit that finished during the drain may have left the peer lacking it. While it drains
	// a release (role backup already, "released" not published yet), "released" must not go
	// out saying the peer has everything (DESIGN §3 rule 2); fenced (or unfenced since, the
	// drain still running), the word is what the other site must hear before taking the next
	// term, and, should it have taken it meanwhile, what shows this site the split brain.
	// False only: a word that costs nothing but a wait for catch-up.
	draining := !ok && rec.Term != 0 && rec.Master == n.cfg.Site && n.meta.Released != rec.Term
	if n.role != RoleMaster && !draining {
		n.mu.Unlock()
		return fmt.Errorf("set peer_synced on %s: not the master", n.cfg.Site)
	}
	n.mu.Unlock()
	if rec.PeerSynced == ok {
		return nil
	}
	rec.PeerSynced, rec.Seq = ok, nextSeq(rec.Seq)
	// Not under mu: the Save may wait for a database that hangs (recordStore in cmd/tandem),
	// and the node must go on gossiping and deciding meanwhile (a master whose server fails
	// must release at once). recMu keeps every other record from being saved or published
	// until this word is. If the role was lost meanwhile, the word is saved all the same and
	// so published: the store holds it.
	if err := n.store.Save(rec); err != nil {
		return err
	}
	n.mu.Lock()
	n.meta.Record = rec
	if !ok {
		n.announced = rec.Term
	}
	n.encodeLocked()
	n.mu.Unlock()
	n.poke()
	return nil
}

// saveRecord saves rec under recMu (see there); the caller publishes it.
func (n *Node) saveRecord(rec TermRecord) error {
	n.recMu.Lock()
	defer n.recMu.Unlock()
	return n.store.Save(rec)
}

// committedAlone reports whether this site may have committed alone in term, whose record of
// this site says peer_synced = false: yes, unless this process recorded that and its shim
// says it never went solo (Options.WentSolo).
func (n *Node) committedAlone(term uint64) bool {
	n.mu.Lock()
	announced := n.announced
	n.mu.Unlock()
	if n.wentSolo == nil || announced != term {
		return true // recorded by an earlier process: nothing tells
	}
	return n.wentSolo(term)
}

// AwaitRecord waits until a member the other site would ask before promoting — that site's
// sidecar or the witness — publishes this member's term record, which it does once it has
// adopted and stored it (DESIGN §3 "going solo is announced first": the master calls it after
// SetPeerSynced(false), before its first solo commit). acked is false, at once, when no such
// member is alive: the master then goes on unacknowledged, which without a witness is the
// split-brain case. ctx bounds the wait.
func (n *Node) AwaitRecord(ctx context.Context) (acked bool, err error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		n.mu.Lock()
		rec, anyAlive := n.meta.Record, false
		for _, p := range n.peers {
			if !p.hasMeta || !p.alive {
				continue
			}
			anyAlive = true
			if p.meta.Record == rec {
				n.mu.Unlock()
				return true, nil
			}
		}
		n.mu.Unlock()
		if !anyAlive {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

// AwaitMaster waits until this member is master of term — a promotion has published it — and
// reports whether it is; false once ctx ends.
func (n *Node) AwaitMaster(ctx context.Context, term uint64) bool {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		n.mu.Lock()
		ok := n.role == RoleMaster && n.meta.Record.Term == term
		n.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// Force makes this member ignore the cold-start wait (tandem promote
// -force).
func (n *Node) Force() {
	n.mu.Lock()
	n.force = true
	n.mu.Unlock()
	n.log.Warn("forced: ignoring the cold-start wait; anything the other site committed after this site's last term record is lost if that site is master elsewhere",
		"term", n.State().Term)
	n.poke()
}

// AcceptLoss is an operator's word that the master of term is lost for good: this member may
// take control though its database lacks what that master committed alone (View.AcceptLoss),
// once that master has been away for fence_delay and, with a witness, with a majority. It lifts
// the cold-start wait too, and holds only while term is the newest term. It is refused when
// term is not the newest term this member knows of, when this member is its master, or when
// that master is alive: it catches this site up instead. This member's own term is taken when a
// refusal (PromoteRefusal) named another master of it: the sites' split brain in that term; and
// an older term when a refusal named it, this member master of the newest (PeerSoloLost).
func (n *Node) AcceptLoss(term uint64) error {
	n.mu.Lock()
	top, master, alive := n.meta.Record.Term, n.meta.Record.Master, false
	for _, p := range n.peers {
		if p.hasMeta && p.meta.Record.Term > top {
			top, master = p.meta.Record.Term, p.meta.Record.Master
		}
	}
	same := master == n.cfg.Site && n.sameTerm.Term == top
	if same {
		// A refusal named another master of this site's own term (both took it alone, cut off
		// from each other): what that master committed alone is what an operator may accept
		// to lose, else each site refuses the other for good. That site, alive, is refused the
		// next term by this site's database likewise, and cannot catch it up: only as master
		// does it stand in the way.
		master = n.sameTerm.Master
	}
	// A refusal named an older term of the other site's, this site master of the newest one
	// (PeerSoloLost: both went on alone, that site in a term this site did not take over). That
	// site, not current, can neither take control nor catch this one up: as for the same term,
	// only as master does it stand in the way.
	older := term < top && master == n.cfg.Site && n.olderSolo.Term == term
	if older {
		master = n.olderSolo.Master
	}
	for _, p := range n.peers {
		alive = alive || (p.hasMeta && p.alive && p.meta.Site == master && (!(same || older) || p.meta.Role == RoleMaster))
	}
	var err error
	switch {
	case term != top && !older:
		err = fmt.Errorf("term %d is not the newest term %s knows of (%d)", term, n.cfg.Site, top)
	case master == n.cfg.Site:
		err = fmt.Errorf("%s is the master of term %d itself: nothing of it to lose", n.cfg.Site, term)
	case alive:
		err = fmt.Errorf("%s, the master of term %d, is alive: it catches this site's database up or hands over", master, term)
	}
	if err != nil {
		n.mu.Unlock()
		return err
	}
	n.force, n.acceptLoss = true, term
	// A site whose promotions were refused for want of this word (CheckPromote: the other
	// site's database says its master went on alone) stands aside for a hold that grows with
	// each refusal, up to promoteHoldMax: the word lifts it, so that the site takes control
	// now rather than after what is left of it. A promotion that fails again holds it again.
	n.holdUntil = time.Time{}
	n.publishDBLocked(time.Now())
	n.mu.Unlock()
	n.log.Error("an operator accepted the loss of what the master of the term committed that this site's database lacks: this site may take control without it",
		"term", term, "master", master)
	n.poke()
	return nil
}

// TookOver returns the term of the record this site held when it took term, its own, or the
// newer term whose loss an operator had accepted then (0: not known, or term not taken here):
// the terms up to it were known then (PeerSoloLost). A term taken over one of this site's own
// was taken over what that one was: it knew no more of the other site's terms.
func (n *Node) TookOver(term uint64) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.takenOver.over(term)
}

// AcceptedLoss is the term whose master's solo commits an operator accepted to lose
// (AcceptLoss), 0 when none.
func (n *Node) AcceptedLoss() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.acceptLoss
}

// checkSplitBrain notes a split brain (DESIGN §3) the view shows. A newer term taken elsewhere
// after this site announced going solo in its term, but before it committed anything alone, is
// none: that is logged once, and looked at again every round, since a solo switch racing the
// step-down may still land after the verdict.
func (n *Node) checkSplitBrain(v View) {
	if sb := SplitBrain(v); sb != 0 {
		if n.committedAlone(sb) {
			n.noteSplitBrain(sb)
			return
		}
		n.mu.Lock()
		seen := n.announcedOnly == sb
		n.announcedOnly = sb
		n.mu.Unlock()
		if !seen {
			n.log.Warn("another site took a newer term (or this one) after this site announced going solo in its term, "+
				"but it committed nothing alone: no split brain", "term", sb)
		}
	}
	n.mu.Lock()
	only := n.announcedOnly
	n.mu.Unlock()
	if only != 0 && n.wentSolo(only) {
		n.mu.Lock()
		n.announcedOnly = 0
		n.mu.Unlock()
		n.noteSplitBrain(only)
	}
}

// noteSplitBrain records that this site committed alone in term while another site took a
// newer one, or the same one (DESIGN §3): published (failback to this site stops), kept in the data directory,
// and reported once per term.
func (n *Node) noteSplitBrain(term uint64) {
	n.mu.Lock()
	if n.splitMark.Term == term {
		n.mu.Unlock()
		return
	}
	n.splitMark = splitBrainMark{Term: term}
	n.meta.SplitBrain = term
	n.encodeLocked()
	n.mu.Unlock()
	n.log.Error("split brain: this site committed alone in a term while another site took a newer one (or the same one); "+
		"its database holds commits the other lacks, and automatic failback to it stops until an operator "+
		"compares the databases (tandem verify) and clears it (tandem clear-split-brain)", "term", term)
	if err := n.keepSplitMark(); err != nil {
		n.log.Error("cannot keep the split-brain mark", "err", err)
	}
	n.poke()
}

// keepSplitMark saves the split-brain mark the node holds now in the data directory. Saves
// run outside n.mu, one at a time, each of the mark as it is when it starts: a mark noted while
// an operator cleared an earlier one was saved in either order, and a file left saying
// "cleared" for the earlier term forgot the newer one at the next start — failback to a site
// that committed alone allowed again (TestSplitBrainMarkSavedInOrder).
func (n *Node) keepSplitMark() error {
	if n.cfg.DataDir == "" {
		return nil
	}
	n.splitSave.Lock()
	defer n.splitSave.Unlock()
	n.mu.Lock()
	m := n.splitMark
	n.mu.Unlock()
	return saveSplitBrain(n.cfg.DataDir, m)
}

// ClearSplitBrain is an operator's word that the split brain this site was found in is dealt
// with: failback to it is allowed again, and that term is not reported again.
func (n *Node) ClearSplitBrain() (uint64, error) {
	n.mu.Lock()
	term := n.meta.SplitBrain
	if term == 0 {
		n.mu.Unlock()
		return 0, errors.New("no split brain recorded on this site")
	}
	n.splitMark = splitBrainMark{Term: term, Cleared: true}
	n.meta.SplitBrain = 0
	n.encodeLocked()
	n.mu.Unlock()
	if err := n.keepSplitMark(); err != nil {
		return term, err
	}
	n.log.Warn("split brain cleared by an operator", "term", term)
	n.poke()
	return term, nil
}

// Switchover asks the master to hand over to target ("" = the best other
// site that qualifies). It returns once the request is accepted; the
// handover follows within a decision round. On a member that is not the
// master it fails and names the master.
func (n *Node) Switchover(target string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.role != RoleMaster {
		if m := n.state.Master; m != "" {
			return fmt.Errorf("switchover: %s is not the master; the master is %s", n.cfg.Site, m)
		}
		return fmt.Errorf("switchover: %s is not the master and no master is known right now", n.cfg.Site)
	}
	now := time.Now()
	v := n.viewLocked(now)
	if target == "" {
		var best Member
		for _, m := range v.Members {
			if m.Site == n.cfg.Site {
				continue
			}
			if ok, _ := v.ready(m); ok && (best.Site == "" || better(m, best)) {
				best = m
			}
		}
		if best.Site == "" {
			return errors.New("switchover: no other site is ready to take over")
		}
		target = best.Site
	} else {
		m, ok := v.member(target)
		switch {
		case target == n.cfg.Site:
			return fmt.Errorf("switchover: %s is already the master", target)
		case !ok:
			return fmt.Errorf("switchover: unknown site %q", target)
		case m.Witness:
			return fmt.Errorf("switchover: %s is the witness: it only votes and never takes control; name a site", target)
		}
		if ok, why := v.ready(m); !ok {
			return fmt.Errorf("switchover to %s: not ready: %s", target, why)
		}
	}
	n.switchTo = target
	n.switchUntil = now.Add(max(30*time.Second, 3*n.fenceDelay))
	n.log.Info("switchover requested", "to", target)
	n.poke()
	return nil
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// encodeLocked re-encodes the published meta after a change.
func (n *Node) encodeLocked() {
	b, err := EncodeMeta(n.meta)
	if err != nil {
		n.log.Error("cannot publish state", "err", err)
		return
	}
	if !slices.Equal(b, n.metaBytes) {
		n.metaChanged = time.Now()
	}
	n.metaBytes = b
	n.metaDirty = true
}

// publish pushes changed metadata to the cluster without waiting. memberlist sends an update
// a few times within a few gossip intervals (RetransmitMult) and never again: a peer that
// missed them all — a link down for a second, a few packets lost — kept the metadata it had
// until the next push/pull (30 s with lan, 60 s with wan), a release, a claim or a vote
// unseen meanwhile. So for a push/pull interval after each change the metadata is sent again
// every settle (more than twice the time an update takes to reach the others).
func (n *Node) publish(ml *memberlist.Memberlist) {
	now := time.Now()
	n.mu.Lock()
	dirty := n.metaDirty ||
		(now.Sub(n.metaChanged) < n.prof.ml.PushPullInterval && now.Sub(n.metaSent) >= n.prof.settle)
	n.metaDirty = false
	if dirty {
		n.metaSent = now
	}
	n.mu.Unlock()
	if dirty {
		// UpdateNode queues the broadcast at once, then waits until it is
		// sent (forever with timeout 0): do not hold the decision loop.
		if err := ml.UpdateNode(time.Millisecond); err != nil {
			n.log.Debug("publish state: broadcast not sent yet", "err", err)
		}
	}
}

// decideLoop re-decides on every wake-up and tick until ctx ends (false)
// or a test crashes the node (true).
func (n *Node) decideLoop(ctx context.Context, ml *memberlist.Memberlist) (crashed bool) {
	t := time.NewTicker(n.prof.tick)
	defer t.Stop()
	for {
		n.decide(ctx, ml)
		select {
		case <-ctx.Done():
			// A test's crash closes n.crash and then ends ctx: a round that ran meanwhile
			// finds both ready, and select picks either — half such kills were clean stops
			// that released the role.
			select {
			case <-n.crash:
				return true
			default:
				return false
			}
		case <-n.crash:
			return true
		case <-n.wake:
		case <-t.C:
		}
	}
}

func (n *Node) viewLocked(now time.Time) View {
	members := make([]Member, 0, len(n.peers)+1)
	members = append(members, Member{Meta: n.meta, Alive: true, Since: n.start})
	for _, p := range n.peers {
		if p.hasMeta {
			members = append(members, Member{Meta: p.meta, Alive: p.alive, Since: p.since, Unreachable: p.unreachable})
		}
	}
	v := View{
		Self: n.cfg.Site, Now: now, Members: members,
		WitnessConfigured: n.cfg.Gossip.Witness, Voters: n.voters,
		FailbackDelay: n.cfg.Gossip.FailbackDelay, FenceDelay: n.fenceDelay,
		ManualFailback: n.cfg.Gossip.Failback == config.FailbackManual,
		Force:          n.force,
		AcceptLoss:     n.acceptLoss,
		Settle:         n.prof.settle,
		ClaimedAt:      n.claimedAt,
	}
	if n.heldByDupLocked(now) {
		v.Duplicate = n.dup.addr
	}
	if n.switchTo != "" && now.Before(n.switchUntil) {
		v.Switchover = n.switchTo
	}
	if seen, voters := v.votes(); 2*seen > voters {
		if !n.hadMajority {
			n.majoritySince = now
		}
		n.hadMajority = true
	} else {
		n.hadMajority = false
	}
	v.MajoritySince = n.majoritySince
	return v
}

// coldWaitLogAfter is how long a site waits at cold start before it logs that it does: the
// members it joins usually answer well within it.
const coldWaitLogAfter = 3 * time.Second

// decide runs one round: leave the cold start, adopt a newer record,
// Decide, apply, publish, deliver.
func (n *Node) decide(ctx context.Context, ml *memberlist.Memberlist) {
	now := time.Now()
	n.mu.Lock()
	n.publishDBLocked(now) // a promotion's hold-off may have ended
	if n.meta.Cold {
		// A peer whose metadata cannot be read tells nothing of the term (DESIGN §3).
		for _, p := range n.peers {
			if p.alive && p.hasMeta {
				n.meta.Cold = false
				n.encodeLocked()
				n.log.Info("cold start over: sees a peer", "peer", p.meta.Site)
				break
			}
		}
	}
	v := n.viewLocked(now)
	n.mu.Unlock()

	n.checkSplitBrain(v) // before Adopt replaces the record that shows it
	if rec, ok := Adopt(v.Members[0], v.Members[1:]); ok {
		if av, ok := n.adopt(rec, v.Members[0].Record, now); ok {
			v = av
		}
	}

	// A site restarted (killed and started again, say) within its failback_delay was not ready
	// throughout, though the others may never have seen it gone: a quick restart at the same
	// address keeps it alive in memberlist, and its first word may already say it is healthy.
	for _, m := range v.Members {
		if old, ok := n.boots[m.Site]; ok && old != m.Boot {
			delete(n.readySince, m.Site)
		}
		n.boots[m.Site] = m.Boot
	}
	// Failback waits failback_delay from the takeover on (as promote clears the new master's
	// readySince), in the view of the better site too: it decides once the master loses the
	// role for a moment without releasing it (fenced by a short cut), and a readiness counted
	// from before a switchover to a worse site gave it control back at once.
	if top := v.maxTerm(); top > n.readyTerm {
		clear(n.readySince)
		n.readyTerm = top
	}
	v.Stamp(n.readySince)
	a := Decide(v)
	n.mu.Lock()
	switch {
	case a.Kind == None:
		n.decision = a.Reason
		if a.Reason == "database unreachable" && !n.dbDown && now.Before(n.holdUntil) && n.holdErr != nil {
			// Its database answers: the site stands aside after a failed promotion
			// (holdPromotion), and the status says why, as its log does.
			n.decision = fmt.Sprintf("stands aside until %s after a promotion that failed: %v", n.holdUntil.Format(time.TimeOnly), n.holdErr)
		}
	case a.Kind == Claim && n.meta.Claim == a.Term && now.Sub(n.claimedAt) >= n.prof.settle:
		// A claim out for longer than it takes to settle waits for something (votes, a rival's
		// withdrawal), possibly for good: the status says what, as for every other wait.
		n.decision = a.Reason
	default:
		n.decision = ""
	}
	// The State shows it at once, not only from the deliver at the end of the round: a
	// promotion runs before that (BeforePromote may take seconds), and the State would go on
	// saying its claim waits for votes while it takes the term.
	n.state.Decision = n.decision
	if a.Kind == None && a.Reason == coldWaitReason && !n.coldLogged && now.Sub(n.start) >= coldWaitLogAfter {
		// A site started alone waited without a word in its log (its status alone said so):
		// to an operator who started one sidecar to try it, it looked hung.
		n.coldLogged = true
		n.log.Info("waiting at cold start: sees no member that knows the current term; start the other site or the witness, or run tandem promote -force if that site is gone for good",
			"waited", now.Sub(n.start).Round(time.Second))
	}
	if a.Kind == Claim && n.meta.Claim != a.Term {
		n.meta.Claim, n.claimedAt = a.Term, now
		n.encodeLocked()
		n.log.Debug("claiming term", "term", a.Term, "settle", n.prof.settle)
	} else if a.Kind != Claim && a.Kind != Promote && n.meta.Claim != 0 {
		n.meta.Claim = 0
		n.encodeLocked()
		n.log.Debug("claim withdrawn", "reason", a.Reason)
	}
	n.mu.Unlock()
	switch a.Kind {
	case Promote:
		if ctx.Err() != nil {
			break // stopping: a round that raced the stop starts no promotion
		}
		// The term is claimed where everyone sees it while the promotion's work runs (its
		// BeforePromote may take seconds before the term is published): a handover promotes
		// without letting a claim settle, and a releaser that restarts meanwhile — its
		// release is kept in memory only — would otherwise see no sign of the term and take
		// it too. Seeing this claim, it waits for it (claim: a rival's claim of the term).
		n.mu.Lock()
		if n.meta.Claim != a.Term {
			n.meta.Claim = a.Term
			n.encodeLocked()
		}
		n.mu.Unlock()
		n.publish(ml)
		// A stop (SIGTERM) meanwhile lets the promotion finish, and Run hands the term over:
		// given up, it would leave a saved term that nobody hears of, which the other site
		// would then take too (and this site's database refuse).
		actx, cancel := n.finishing(ctx)
		n.promote(actx, a)
		cancel()
	case Release:
		// A stop meanwhile lets the drain finish, as Run's release of a master does.
		actx, cancel := n.finishing(ctx)
		n.release(actx, ml, a)
		cancel()
	case Fence:
		n.setRole(RoleFenced, a.Reason, 0)
	case Unfence:
		n.setRole(RoleBackup, a.Reason, 0)
	}
	// With a witness every member votes on the claims it sees (see Vote);
	// a restarted one only after it has had time to learn the cluster, and
	// not before fence_delay: a site that starts without a sign of the other
	// (a master cut off before this start) is blocked by nothing else, and
	// DESIGN §3 has a new master wait fence_delay, the configured one when
	// longer than the profile's.
	// The vote is kept in data_dir before it is published: a restart must not vote again, for
	// another site, in a term whose winner this member no longer sees (the wait above lets a
	// cut-off master fence itself, but that master holds the term all the same).
	n.mu.Lock()
	vv := n.viewLocked(time.Now())
	n.mu.Unlock()
	withheld := false
	if n.voteUnknown {
		for _, m := range vv.Members[1:] {
			if m.Alive {
				n.voteSeen[m.Site] = true
			}
		}
		switch {
		case len(n.voteSeen) >= n.voters-1:
			n.voteUnknown = false
			n.log.Info("every voter seen since the start: votes", "term", vv.maxTerm())
		case vv.maxTerm() == 0:
			// Nobody in sight holds any term: the cluster's first election (a site and the
			// witness elect the first term while the other site is not up yet).
		default:
			withheld = true
			if !n.voteHeldLogged && time.Since(n.start) >= max(n.prof.fenceDelay, n.fenceDelay) {
				n.voteHeldLogged = true
				n.log.Warn("no vote on record in data_dir (a first start, or the directory was lost): votes only once it has seen every voter, "+
					"lest it vote again in a term it helped decide", "seen", len(n.voteSeen)+1, "voters", n.voters, "term", vv.maxTerm())
			}
		}
	}
	n.mu.Lock()
	vt, vf := Vote(vv, !withheld && time.Since(n.start) >= max(n.prof.fenceDelay, n.fenceDelay))
	changed := vt != n.meta.Vote || vf != n.meta.VoteFor
	n.mu.Unlock()
	if changed {
		var err error
		if n.cfg.DataDir != "" {
			err = saveVote(n.cfg.DataDir, voteMark{Term: vt, For: vf})
		}
		if err != nil {
			// Tried again every round; a disk that keeps failing is logged once per vote.
			if m := (voteMark{Term: vt, For: vf}); n.voteUnkept == nil || *n.voteUnkept != m {
				n.voteUnkept = &m
				n.log.Error("vote not cast: it cannot be kept (tried again every round, logged once)", "term", vt, "for", vf, "err", err)
			}
		} else {
			n.mu.Lock()
			n.meta.Vote, n.meta.VoteFor = vt, vf
			n.encodeLocked()
			n.mu.Unlock()
			n.voteUnknown = false // kept: a restart finds it
			if n.voteUnkept != nil {
				n.voteUnkept = nil
				n.log.Info("vote kept again: cast", "term", vt, "for", vf)
			} else {
				n.log.Debug("vote", "term", vt, "for", vf)
			}
		}
	}
	n.publish(ml)
	n.deliver()
}

// adopt saves and publishes rec, adopted over from (the record the view showed), and returns
// the view with it. A record that changed since the view was taken (a word of this master's
// SetPeerSynced saved meanwhile) is left to the next round, which decides on it.
func (n *Node) adopt(rec, from TermRecord, now time.Time) (View, bool) {
	n.recMu.Lock()
	defer n.recMu.Unlock()
	n.mu.Lock()
	changed := n.meta.Record != from
	n.mu.Unlock()
	if changed {
		return View{}, false
	}
	if err := n.store.Save(rec); err != nil {
		// Tried again every round; a store that keeps failing is logged once per record.
		if n.adoptUnkept == nil || *n.adoptUnkept != rec {
			n.adoptUnkept = &rec
			n.log.Error("cannot keep newer term record: not adopted (tried again every round, logged once)",
				"term", rec.Term, "master", rec.Master, "err", err)
		}
		return View{}, false
	}
	if n.adoptUnkept != nil {
		n.adoptUnkept = nil
		n.log.Info("term record kept again", "term", rec.Term, "master", rec.Master)
	}
	n.mu.Lock()
	n.meta.Record = rec
	if n.meta.Released != 0 && rec.Term > n.meta.Released {
		n.meta.Released, n.meta.ReleasedTo = 0, ""
	}
	// A hold for a refusal (CheckPromote) of an older term ends: the other site took a newer
	// one since, and what its database said then holds no more. Left, the hold (up to
	// promoteHoldMax after refusals in a row) kept this site from taking over after that
	// site's next loss.
	var pr *PromoteRefusal
	lifted := errors.As(n.holdErr, &pr) && rec.Term > pr.Record.Term && now.Before(n.holdUntil)
	if lifted {
		n.holdUntil, n.promoteFails = time.Time{}, 0
		n.publishDBLocked(now)
	}
	n.encodeLocked()
	v := n.viewLocked(now)
	n.mu.Unlock()
	n.log.Info("adopted term record", "term", rec.Term, "master", rec.Master, "peer_synced", rec.PeerSynced, "previous_term", from.Term)
	if lifted {
		n.log.Info("stands aside no more: the promotion was refused for an older term", "refused_for", pr.Record.Term)
	}
	return v, true
}

// finishing returns the context for a promotion or release started under ctx: it ends
// ReleaseTimeout after ctx does, so that a stop lets the step finish, bounded.
func (n *Node) finishing(ctx context.Context) (context.Context, context.CancelFunc) {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(n.releaseTimeout, cancel) })
	return fctx, func() {
		stop()
		cancel()
	}
}

func (n *Node) promote(ctx context.Context, a Action) {
	started := time.Now()
	if n.checkPromote != nil {
		if err := n.checkPromote(ctx, a.Term); err != nil {
			// A refusal that names a newer term than this site's record (the other site's
			// database holds it, the gossip never carried it here) is taken as the gossip's
			// word would be: the site is not current, its status says what it waits for, and
			// tandem promote -accept-loss takes that term, which it would otherwise refuse as
			// newer than any this site knows of.
			var pr *PromoteRefusal
			n.mu.Lock()
			own := n.meta.Record
			n.mu.Unlock()
			if errors.As(err, &pr) && pr.Record.Term == own.Term && own.Master == n.cfg.Site && pr.Record.Master != n.cfg.Site {
				n.mu.Lock()
				n.sameTerm = pr.Record
				v := n.viewLocked(time.Now())
				n.mu.Unlock()
				// Another master of this site's own term: a split brain in that term if this
				// site committed alone in it (SplitBrain), noted as for a newer term below.
				v.Members = append(v.Members, Member{Meta: Meta{Site: pr.Record.Master, Record: pr.Record}})
				n.checkSplitBrain(v)
			}
			if errors.As(err, &pr) && pr.Record.Term < own.Term && own.Master == n.cfg.Site && pr.Record.Master != n.cfg.Site {
				// The other site went on alone in an older term this site did not take over
				// (PeerSoloLost): only an operator's word for that term lets this site through.
				n.mu.Lock()
				n.olderSolo = pr.Record
				n.mu.Unlock()
			}
			if errors.As(err, &pr) && pr.Record.Term > own.Term {
				// As in decide, the split brain the record shows is noted before the adoption
				// replaces the record that shows it.
				now := time.Now()
				n.mu.Lock()
				v := n.viewLocked(now)
				n.mu.Unlock()
				v.Members = append(v.Members, Member{Meta: Meta{Site: pr.Record.Master, Record: pr.Record}})
				n.checkSplitBrain(v)
				if _, ok := n.adopt(pr.Record, own, now); ok {
					n.log.Warn("cannot promote: not current", "term", a.Term, "err", err)
					return
				}
			}
			n.holdPromotion(a.Term, err)
			return
		}
	}
	n.mu.Lock()
	own := n.meta.Record
	n.mu.Unlock()
	// A site whose own last term left the peer lacking what it committed alone starts the next
	// term so too, until BeforePromote says the peer has caught up: saved as synced first, a
	// crash before that word (the resolver and the catch-up may take many seconds) would leave
	// a record that lets the other site take over without those commits (DESIGN §3 rule 2).
	lacking := n.beforePromote != nil && own.Term != 0 && own.Master == n.cfg.Site && !own.PeerSynced
	rec := TermRecord{Term: a.Term, Master: n.cfg.Site, PeerSynced: !lacking, Seq: nextSeq(0)}
	// What this term is taken over, kept before the term is (TookOver): the record this site
	// holds, or the newer term whose loss an operator accepted (AcceptLoss: this site was
	// current by that word, its record older). A restart that forgot it would refuse the next
	// promotion over an older term of the other site's the check let through, never let one
	// through it refused.
	// Over a term of this site's own, the new term knows no more than that one did when it was
	// taken: what that term was taken over (TestTookOverRepromotion).
	n.mu.Lock()
	known := own.Term
	if own.Master == n.cfg.Site {
		known = n.takenOver.over(own.Term)
	}
	over := n.takenOver.next(a.Term, max(known, n.acceptLoss), !n.takenOverUnsaved)
	n.mu.Unlock()
	if n.cfg.DataDir != "" {
		if err := saveTakenOver(n.cfg.DataDir, over); err != nil {
			n.log.Warn("cannot keep what the term is taken over: after a restart, a promotion over an older term the other site went on alone in waits for an operator",
				"term", a.Term, "over", over.Over, "err", err)
		}
	}
	n.mu.Lock()
	n.takenOver, n.takenOverUnsaved = over, true
	n.mu.Unlock()
	// DESIGN §3: the term record is durable before anyone hears of the term.
	err := n.saveRecord(rec)
	if err == nil {
		n.mu.Lock()
		n.takenOverUnsaved = false
		n.mu.Unlock()
	}
	if err != nil {
		// This site stays the best one and would claim, fail and claim again every round
		// while the other site, which could serve, waited behind it: it stands aside. And
		// the Save may have gone part of the way (into its database, which then refuses this
		// term of any other master): publish the term, as a failed BeforePromote does, so
		// that the others take a newer one.
		// Unless the store refused it for the record it holds: another master's of this
		// term or a newer one (the other site promoted too, and wrote its term into this
		// site's database first). That record is this site's word then, as the database's
		// is after a restart (recordStore.Load): published as this site's own, a term it
		// never held, it would keep this site from ever taking that master's records of the
		// term (Adopt), so the master going solo would wait in vain for its acknowledgement.
		// As in the refusal above, a split brain the own record shows is noted first, and, as
		// there, the site does not stand aside: it is a backup of that master's term, which it
		// must be ready to take over (nothing of its own failed, and it claims no more).
		if held, lerr := n.store.Load(); lerr == nil && held.Term >= a.Term && held.Master != n.cfg.Site {
			now := time.Now()
			n.mu.Lock()
			v := n.viewLocked(now)
			n.mu.Unlock()
			v.Members = append(v.Members, Member{Meta: Meta{Site: held.Master, Record: held}})
			n.checkSplitBrain(v)
			if _, ok := n.adopt(held, own, now); ok {
				n.log.Warn("cannot promote: the database holds another master's term", "term", a.Term, "err", err,
					"held_term", held.Term, "held_master", held.Master)
				return
			}
		}
		n.holdPromotion(a.Term, fmt.Errorf("term record not saved: %w", err))
		n.mu.Lock()
		n.meta.Record = rec
		n.encodeLocked()
		n.mu.Unlock()
		return
	}
	if n.beforePromote != nil {
		synced, err := n.beforePromote(ctx, a.Term)
		if err != nil {
			n.holdPromotion(a.Term, err)
			// The record is saved, into this site's database too, which now refuses this term
			// of any other master: publish it, so that the others take a newer one.
			n.mu.Lock()
			n.meta.Record = rec
			n.encodeLocked()
			n.mu.Unlock()
			return
		}
		if synced != rec.PeerSynced || !synced {
			// BeforePromote's word on the peer, durable before anyone hears of the term:
			// unsynced, the peer lacks what this site commits alone (DESIGN §3 rule 2). An
			// unsynced word is saved even when the record says so already: BeforePromote may
			// have saved it without its Seq (cmd/tandem's database.promote).
			word := rec
			word.PeerSynced, word.Seq = synced, nextSeq(rec.Seq)
			if err := n.saveRecord(word); err != nil {
				// BeforePromote has readied the shim, to commit alone or dual. Left so, it
				// would take commits on a site that is not master, and the next round would
				// claim this term again over them. The promotion fails as a whole instead:
				// the State delivered (this term, not master) puts the shim back to
				// read-only, and the unsynced one of the two records is published, the last
				// word that may hold (the shim may have committed alone, or the lack of the
				// last term still holds), so that the other site does not take over without
				// those commits (DESIGN §3 rule 2).
				n.holdPromotion(a.Term, fmt.Errorf("record peer_synced = %v: %w", synced, err))
				pub := word
				if synced {
					pub = rec
				}
				n.mu.Lock()
				n.meta.Record = pub
				if !synced {
					n.announced = a.Term
				}
				n.encodeLocked()
				n.mu.Unlock()
				return
			}
			rec = word
		}
		if !synced {
			n.mu.Lock()
			n.announced = a.Term
			n.mu.Unlock()
		}
	}
	// The work may have taken seconds, and with a witness this site may have lost its majority
	// meanwhile: only a master is fenced by the rules, so it would serve until its next round,
	// while the other side, counting fence_delay from when it lost sight of this site, may have
	// taken over. The promotion fails then: the term record is saved (into this site's database
	// too, which refuses this term of any other master), so it is published, and the others
	// take a newer term; this site, once it sees a majority again, claims one as well.
	// Lost and seen again meanwhile is no better: cut off for longer than fence_delay, this
	// site was taken for lost, and the other site may have taken a newer term, which need not
	// have reached this site yet.
	n.mu.Lock()
	v := n.viewLocked(time.Now())
	seen, voters := v.votes()
	flapped, top := n.majoritySince.After(started), v.maxTerm()
	n.mu.Unlock()
	if (n.cfg.Gossip.Witness && (2*seen <= voters || flapped)) || top > a.Term {
		n.log.Warn("promotion given up: the majority was lost while it ran, or a newer term was taken meanwhile",
			"term", a.Term, "sees", seen, "voters", voters, "lost_meanwhile", flapped, "newest_term", top)
		n.mu.Lock()
		n.meta.Record = rec
		n.encodeLocked()
		n.mu.Unlock()
		return
	}
	n.mu.Lock()
	n.meta.Record = rec
	n.meta.Released, n.meta.ReleasedTo, n.meta.Claim, n.meta.Draining, n.meta.DrainKeeps = 0, "", 0, false, false
	n.promoteFails = 0
	n.mu.Unlock()
	// Failback waits failback_delay from the takeover on: a better site that stayed ready
	// throughout (a switchover, a handover) must not get the role back at once.
	clear(n.readySince)
	n.setRole(RoleMaster, a.Reason, a.Term)
}

// setRole changes the local and the published role.
func (n *Node) setRole(r Role, reason string, term uint64) {
	n.mu.Lock()
	old := n.role
	n.role = r
	n.meta.Role = r
	n.reason = reason
	n.roleChanges++
	// A switchover is asked of a master, for the mastership it holds: one not carried out
	// before that ends (fenced, say, while the target was not ready) is dropped, as a release
	// drops it. Kept, a later mastership of this site handed control over at once, failback
	// manual or not, and before failback_delay.
	n.switchTo = ""
	if term == 0 {
		term = n.meta.Record.Term
	}
	n.encodeLocked()
	n.mu.Unlock()
	n.log.Info("role change", "from", old.String(), "to", r.String(), "term", term, "reason", reason)
}

// release hands the role over (DESIGN §3 handover): the local role turns
// backup and is delivered at once, "draining" is published (no proxy routes
// new connections here any more; those made before stay until BeforeRelease
// calls EndDrain in a planned handover, and are cut at once in a failure's
// release), BeforeRelease drains, and only then is "released T" published, so
// the next master starts after the drain.
func (n *Node) release(ctx context.Context, ml *memberlist.Memberlist, a Action) {
	n.mu.Lock()
	term := n.meta.Record.Term
	old := n.role
	n.role = RoleBackup
	n.releasing = term
	n.reason = a.Reason
	n.roleChanges++
	n.switchTo = ""
	n.meta.Draining, n.meta.DrainKeeps = true, a.Handover
	// A master's are empty already (promote); cleared all the same, since longestMeta counts
	// DrainKeeps only in their place.
	n.meta.Released, n.meta.ReleasedTo, n.meta.Claim = 0, "", 0
	n.encodeLocked()
	n.mu.Unlock()
	n.log.Info("role change", "from", old.String(), "to", RoleBackup.String(), "term", term, "reason", a.Reason, "to_site", a.To)
	n.deliver()
	n.publish(ml)
	stopWatch := n.watchDrainMajority(term, a.Handover)
	if n.beforeRelease != nil {
		n.beforeRelease(ctx, term)
	}
	stopWatch()
	// A word of SetPeerSynced accepted while this site was master may still be being saved
	// (recMu): "released" goes out with it, not before it — with peer_synced = true the other
	// site took the next term at once, without the commit the word was about (DESIGN §3 rule 2).
	n.recMu.Lock()
	n.mu.Lock()
	n.meta.Role = RoleBackup
	n.meta.Draining, n.meta.DrainKeeps = false, false
	n.meta.Released = term
	n.meta.ReleasedTo = a.To
	n.encodeLocked()
	n.mu.Unlock()
	n.recMu.Unlock()
	n.publish(ml)
	n.log.Info("released term", "term", term, "to_site", a.To)
}

// EndDrain says that the drain of the handover of term ended (Options.BeforeRelease calls it
// once the commits in flight are done): the connections made to this site's server before the
// handover are cut from now on, here (State.Draining clears) and on the other members, which
// read it from the published metadata. Nothing when term is not being released. Only from
// BeforeRelease, which runs where the State is delivered from.
func (n *Node) EndDrain(term uint64) {
	n.endKeep(term, "")
}

// endKeep ends the keeping of the connections of the drain of term (EndDrain), with why
// logged when it is not the drain's own end.
func (n *Node) endKeep(term uint64, why string) {
	n.mu.Lock()
	if !n.meta.Draining || !n.meta.DrainKeeps || n.releasing != term || n.meta.Record.Term != term {
		n.mu.Unlock()
		return
	}
	n.meta.DrainKeeps = false
	n.encodeLocked()
	ml := n.ml
	n.mu.Unlock()
	if why != "" {
		n.log.Warn("handover drain: the connections to this site's server are cut before the drain ends", "term", term, "reason", why)
	}
	n.deliver()
	if ml != nil {
		n.publish(ml)
	}
}

// watchDrainMajority watches, while the drain of a planned handover of term runs (handover:
// Action.Handover) and a witness is configured, for this site losing the majority: it then
// ends the keeping of the connections to its server at once (endKeep), as a fence would have
// cut them (DESIGN §3 split brain: a site that loses the majority stops serving within the
// gossip timeout; the other site takes over after fence_delay). The drain itself goes on: the
// decision loop, which would fence this site, waits for the release. The returned stop ends
// the watch and returns once it is gone.
func (n *Node) watchDrainMajority(term uint64, handover bool) (stop func()) {
	if !handover || !n.cfg.Gossip.Witness {
		return func() {}
	}
	done, gone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(gone)
		t := time.NewTicker(n.prof.tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			n.mu.Lock()
			seen, voters := n.viewLocked(time.Now()).votes()
			n.mu.Unlock()
			if 2*seen <= voters {
				n.endKeep(term, fmt.Sprintf("the majority is lost (sees %d of %d voters)", seen, voters))
				return
			}
		}
	}()
	return func() {
		close(done)
		<-gone
	}
}

// deliver recomputes the State and sends it when something the rest of
// the process acts on changed.
func (n *Node) deliver() {
	// One at a time (a drain's watch, watchDrainMajority, delivers beside the decision loop):
	// the State sent last is the newest, and the send below cannot block.
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	n.mu.Lock()
	n.state = n.stateLocked()
	s, last := n.state, n.delivered
	changed := s.Role != last.Role || s.Master != last.Master || s.Term != last.Term ||
		s.Cold != last.Cold || s.SplitBrain != last.SplitBrain || !maps.Equal(s.MasterEndpoints, last.MasterEndpoints) ||
		s.Draining != last.Draining
	if changed {
		n.delivered = s
	}
	n.mu.Unlock()
	if !changed {
		return
	}
	s = s.clone()
	// Only one deliver sends at a time (sendMu), so after draining the send cannot block.
	select {
	case n.changes <- s:
	default:
		select {
		case <-n.changes:
		default:
		}
		n.changes <- s
	}
}

func (n *Node) stateLocked() State {
	s := State{
		Self: n.cfg.Site, Role: n.role, Term: n.meta.Record.Term, Record: n.meta.Record,
		Reason: n.reason, Decision: n.decision, RoleChanges: n.roleChanges, Cold: n.meta.Cold,
		SplitBrain: n.meta.SplitBrain, Releasing: n.releasing,
	}
	s.Members = append(s.Members, MemberStatus{
		Site: n.meta.Site, Alive: true, Role: MemberRole(n.role), Term: n.meta.Record.Term,
		Healthy: n.meta.ServerHealthy, Priority: n.meta.Priority, Witness: n.meta.Witness, Admin: n.meta.Admin,
	})
	if n.role == RoleMaster {
		s.Master, s.MasterEndpoints = n.cfg.Site, maps.Clone(n.meta.Endpoints)
	}
	draining := ""
	if n.meta.Draining && n.meta.DrainKeeps {
		draining = n.cfg.Site
	}
	var master *Meta
	for _, p := range n.peers {
		if !p.hasMeta {
			continue
		}
		m := p.meta
		ms := MemberStatus{
			Site: m.Site, Alive: p.alive, Role: MemberRole(m.Role), Term: m.Record.Term,
			Healthy: m.ServerHealthy, Priority: m.Priority, Witness: m.Witness, Admin: m.Admin,
		}
		if p.addr != nil {
			ms.Addr = p.addr.String()
		}
		s.Members = append(s.Members, ms)
		if p.alive && m.Role == RoleMaster && m.Draining && m.DrainKeeps && !released(Member{Meta: m}) && draining == "" {
			draining = m.Site
		}
		if n.role == RoleMaster || !p.alive || m.Role != RoleMaster || m.Draining || released(Member{Meta: m}) {
			continue
		}
		if master == nil || strongerClaim(Member{Meta: m}, Member{Meta: *master}) {
			master = &p.meta
		}
	}
	if master != nil {
		s.Master, s.MasterEndpoints = master.Site, maps.Clone(master.Endpoints)
	}
	if s.Master == "" {
		s.Draining = draining
	}
	slices.SortFunc(s.Members, func(a, b MemberStatus) int { return strings.Compare(a.Site, b.Site) })
	return s
}

// refreshLocked recomputes p's liveness and reports whether it changed.
// Without a witness a peer whose direct probes fail is not alive even
// while memberlist still holds it (fast failover); with a witness only
// memberlist's verdict counts (it probes through the witness and so tells
// a cut link from a dead member), and failed probes only take the peer out
// of the majority count.
func (n *Node) refreshLocked(p *peer, now time.Time) bool {
	unreachable := p.fails >= n.prof.probeFailures
	alive := p.mlAlive && (n.cfg.Gossip.Witness || !unreachable)
	changed := alive != p.alive || unreachable != p.unreachable
	if alive != p.alive {
		p.since = now
	}
	p.alive, p.unreachable = alive, unreachable
	if changed {
		n.noteMajorityLocked(now)
	}
	return changed
}

// noteMajorityLocked brings hadMajority and majoritySince up to date with the peers' liveness
// now (viewLocked does it): decision rounds do too, but a promotion's work holds them, and a
// majority lost and seen again meanwhile must not go unnoticed (promote).
func (n *Node) noteMajorityLocked(now time.Time) {
	n.viewLocked(now)
}

// notify handles a memberlist event for node (join, update or leave).
func (n *Node) notify(node *memberlist.Node, up bool, kind string) {
	if node.Name == n.cfg.Site {
		return
	}
	meta, err := DecodeMeta(node.Meta)
	if err == nil && meta.Site != node.Name {
		err = fmt.Errorf("metadata names site %q", meta.Site)
	}
	addr := &net.UDPAddr{IP: slices.Clone(node.Addr), Port: int(node.Port)}
	n.mu.Lock()
	p := n.peers[node.Name]
	if p == nil {
		p = &peer{}
		n.peers[node.Name] = p
	}
	if err == nil {
		p.meta, p.hasMeta = meta, true
	} else {
		// What it said before (an earlier process of that site, say: master of a term) no
		// longer holds: a member whose metadata cannot be read tells nothing.
		p.meta, p.hasMeta = Meta{}, false
	}
	p.addr = addr
	p.mlAlive = up
	if kind == "join" {
		p.fails = 0
	}
	n.refreshLocked(p, time.Now())
	known := 1
	for _, q := range n.peers {
		if q.hasMeta && (q.alive || !q.meta.Leaving) {
			known++
		}
	}
	stray := kind == "join" && err == nil && n.cfg.Gossip.Witness && known > n.voters
	n.mu.Unlock()
	if err != nil {
		n.log.Warn("ignoring member with unreadable metadata", "member", node.Name, "err", err)
	}
	if stray {
		// A second witness or a third site: counted against the configured voters it let both
		// sides of a partition see a majority; View.votes counts every member known instead.
		n.log.Error("more members than configured voters (two sites and one witness): a second witness or a stray site joined; "+
			"a majority is now counted among all of them — stop the stray member gracefully (one killed stays counted until this member restarts)",
			"member", node.Name, "witness", meta.Witness, "known", known, "voters", n.voters)
	}
	switch kind {
	case "join":
		n.log.Info("member joined", "member", node.Name, "addr", addr.String())
	case "leave":
		n.log.Info("member left or failed", "member", node.Name)
		select {
		case n.rejoinWake <- struct{}{}:
		default:
		}
	}
	n.poke()
}

// probeLoop pings every peer memberlist holds alive each probe interval,
// directly, so a dead peer is noticed before memberlist's suspicion
// timeout (DESIGN §3: kill -9 of the master fails over in < 2 s with the
// fast profile).
func (n *Node) probeLoop(ctx context.Context, ml *memberlist.Memberlist) {
	t := time.NewTicker(n.prof.probeEvery)
	defer t.Stop()
	type target struct {
		name string
		addr *net.UDPAddr
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.dupWake:
		}
		var targets []target
		n.mu.Lock()
		for name, p := range n.peers {
			if p.mlAlive && p.addr != nil {
				targets = append(targets, target{name, p.addr})
			}
		}
		dup := n.dup.addr
		n.mu.Unlock()
		var wg sync.WaitGroup
		if dup != "" {
			wg.Go(func() { n.probeDup(ml, dup) })
		}
		for _, tg := range targets {
			wg.Go(func() {
				_, err := ml.Ping(tg.name, tg.addr)
				n.mu.Lock()
				p := n.peers[tg.name]
				if p == nil {
					n.mu.Unlock()
					return
				}
				if err != nil {
					p.fails++
				} else {
					p.fails = 0
				}
				changed := n.refreshLocked(p, time.Now())
				unreachable := p.unreachable
				n.mu.Unlock()
				if changed {
					if unreachable {
						n.log.Warn("peer does not answer direct probes", "member", tg.name, "failures", n.prof.probeFailures)
					} else {
						n.log.Info("peer answers direct probes again", "member", tg.name)
					}
					n.poke()
				}
			})
		}
		wg.Wait()
	}
}

// rejoinLoop keeps joining the configured peers that are not alive:
// memberlist forgets dead members and never re-joins them by itself.
func (n *Node) rejoinLoop(ctx context.Context, ml *memberlist.Memberlist) {
	const minBackoff, maxBackoff, idle = 200 * time.Millisecond, 2 * time.Second, 2 * time.Second
	backoff := minBackoff
	for {
		missing := n.missingPeers(ctx)
		wait := idle
		if len(missing) == 0 {
			backoff = minBackoff
		} else {
			// Each at once: a peer whose host drops packets holds its Join for the profile's
			// TCPTimeout (10 s with lan), and the others — the witness, say, whose vote this
			// site needs — must not wait behind it.
			var joins sync.WaitGroup
			for _, addr := range missing {
				joins.Go(func() {
					if _, err := ml.Join([]string{addr}); err != nil {
						n.log.Debug("join failed", "peer", addr, "err", err)
					}
				})
			}
			joins.Wait()
			if ctx.Err() != nil {
				return
			}
			wait = backoff
			backoff = min(2*backoff, maxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-n.rejoinWake:
			backoff = minBackoff
		case <-t.C:
		}
		t.Stop()
	}
}

// missingPeers returns the configured join addresses that match no member
// memberlist holds alive.
func (n *Node) missingPeers(ctx context.Context) []string {
	n.mu.Lock()
	alive := map[string]bool{}
	for _, p := range n.peers {
		if p.mlAlive && p.addr != nil {
			alive[p.addr.String()] = true
		}
	}
	self := n.addr
	n.mu.Unlock()
	var missing []string
	for _, j := range n.cfg.Gossip.Join {
		if j == self {
			continue
		}
		host, port, err := net.SplitHostPort(j)
		if err != nil {
			missing = append(missing, j) // let memberlist report it
			continue
		}
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			missing = append(missing, j)
			continue
		}
		found := false
		for _, ip := range ips {
			if alive[net.JoinHostPort(ip.IP.String(), port)] {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, j)
		}
	}
	return missing
}

// delegate publishes the node's metadata to memberlist.
type delegate struct{ n *Node }

func (d delegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	if len(d.n.metaBytes) > limit {
		return nil // EncodeMeta keeps it under MetaMaxSize; never panic memberlist
	}
	return slices.Clone(d.n.metaBytes)
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events turns memberlist's membership events into re-decisions. They run
// on memberlist's goroutines, sometimes under its locks: they never call
// back into memberlist.
type events struct{ n *Node }

func (e events) NotifyJoin(node *memberlist.Node)   { e.n.notify(node, true, "join") }
func (e events) NotifyUpdate(node *memberlist.Node) { e.n.notify(node, true, "update") }
func (e events) NotifyLeave(node *memberlist.Node)  { e.n.notify(node, false, "leave") }

// conflicts hears of two members with one name at different addresses (see duplicate). Of
// another site's name only memberlist's own log line tells: this member cannot probe the one it
// ignores by name.
type conflicts struct{ n *Node }

func (c conflicts) NotifyConflict(existing, other *memberlist.Node) {
	n := c.n
	if existing.Name != n.cfg.Site {
		return
	}
	addr := other.Address()
	n.mu.Lock()
	fresh := n.dup.addr != addr
	if fresh {
		n.dup = duplicate{addr: addr}
		n.publishDBLocked(time.Now())
	}
	n.dup.heard = time.Now()
	n.mu.Unlock()
	if fresh {
		n.log.Warn("another process claims this site's name; probing it: while it answers, this one takes no role unless master", "other", addr)
		select {
		case n.dupWake <- struct{}{}:
		default:
		}
		n.poke()
	}
}

// mlWriter sends memberlist's log lines to slog one level lower than
// memberlist gives them: it logs the normal comings and goings of peers
// as [WARN]/[ERR].
type mlWriter struct{ log *slog.Logger }

func (w mlWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level, msg := "", line
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			level, msg = line[1:i], strings.TrimSpace(line[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	for _, noisy := range []string{"Failed to join", "Failed to resolve", "Failed to send", "Failed fallback", "Failed UDP ping",
		"Push/Pull", "Failed to receive", "Was able to connect", "Got ping for unexpected node", "Refuting"} {
		if strings.HasPrefix(msg, noisy) {
			level = "DEBUG"
		}
	}
	switch level {
	case "ERR", "ERROR":
		w.log.Warn(msg)
	case "WARN":
		w.log.Info(msg)
	default:
		w.log.Debug(msg)
	}
	return len(p), nil
}
