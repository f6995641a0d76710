// Package gossip runs a Tandem member over memberlist, publishes its state
// and decides its role.
package gossip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Role is what a member currently does (DESIGN §3).
type Role string

// Roles a member publishes.
const (
	RoleStarting Role = ""        // started, has not decided yet
	RoleMaster   Role = "master"  // its server serves operators and writes
	RoleBackup   Role = "backup"  // follows the master
	RoleFenced   Role = "fenced"  // lost the majority: refuses writes
	RoleWitness  Role = "witness" // votes only
)

func (r Role) valid() bool {
	switch r {
	case RoleStarting, RoleMaster, RoleBackup, RoleFenced, RoleWitness:
		return true
	}
	return false
}

func (r Role) String() string {
	if r == RoleStarting {
		return "starting"
	}
	return string(r)
}

// MemberRole is a member's role as /status shows it: RoleStarting, which the metadata carries
// as "", reads "starting" there, as the member's own role does (a starting member's entry in
// the members list read "" beside its top-level "starting").
type MemberRole Role

// MarshalText writes Role's String.
func (r MemberRole) MarshalText() ([]byte, error) { return []byte(Role(r).String()), nil }

// UnmarshalText reads what MarshalText writes.
func (r *MemberRole) UnmarshalText(b []byte) error {
	*r = MemberRole(b)
	if string(b) == "starting" {
		*r = MemberRole(RoleStarting)
	}
	return nil
}

// TermRecord is the record (term, master, peer_synced) a member holds
// (DESIGN §3). Term 0 means no term has been started yet.
type TermRecord struct {
	Term       uint64
	Master     string
	PeerSynced bool // the master of Term has committed nothing the peer lacks
	// Seq orders the master's words about PeerSynced within its term: each one it records
	// gets a larger Seq (nextSeq: its clock, never going back), so that of two copies of the
	// same term's record the later word is known whoever passed it on. 0: not known (a copy
	// read from the database after a restart).
	Seq uint64
}

// nextSeq is the Seq of a master's next word after one of prev: its clock in nanoseconds,
// and never less than prev+1.
func nextSeq(prev uint64) uint64 { return max(uint64(time.Now().UnixNano()), prev+1) }

// laterWord reports whether r is a later word of the same term's master than rec: a larger
// Seq or, when neither is ordered (equal Seq), a different one.
func laterWord(r, rec TermRecord) bool {
	return r.Seq > rec.Seq || (r.Seq == rec.Seq && r.PeerSynced != rec.PeerSynced)
}

// Meta is what a member publishes in its memberlist node metadata.
type Meta struct {
	Site          string
	Priority      int // lower wins the master role
	Witness       bool
	ServerHealthy bool
	DBReachable   bool // true when no database is configured
	Role          Role
	Record        TermRecord        // the term record this member holds
	Released      uint64            // term this member released (handover), 0 = none
	ReleasedTo    string            // site the release is meant for, "" = any
	Endpoints     map[string]string // its server's endpoints by name (host:port)
	Admin         string            // its admin API address
	Cold          bool              // has not yet seen any configured peer since start
	Claim         uint64            // term this member is about to take, settling (see View.Settle); 0 = none
	Vote          uint64            // with a witness: the term of this voter's latest vote (see Vote)
	VoteFor       string            // the site it voted for in that term
	// SplitBrain is the term in which this site committed alone while another site took a
	// newer term or the same one (DESIGN §3 split brain, see SplitBrain); 0 = none. Failback to it stops
	// until an operator clears it.
	SplitBrain uint64
	// Draining says a master is handing over (DESIGN §3 handover): it holds the role until it
	// publishes Released, but no proxy routes new connections to it any more.
	Draining bool
	// DrainKeeps says a master handing over (Draining) in a planned handover (Action.Handover)
	// has its drain under way: the proxies keep the connections made to its server before the
	// handover, for the requests being served (State.Draining), and cut them once it is false
	// again (Node.EndDrain). A failure's release never sets it.
	DrainKeeps bool
	// Leaving says the member is stopping gracefully (published just before memberlist's
	// Leave): once it is gone it no longer counts among the members known (View.votes).
	Leaving bool
	// ManualFailback says this site's file sets failback = "manual": master of the newest term,
	// it keeps control from a better site until an operator's switchover, also across a
	// moment in which it lost the role (View.best). Every view reads the holder's own word.
	ManualFailback bool
	// Boot tells this member's process from an earlier one of the same site (when it was
	// created, Unix milliseconds): a restart is a break in its readiness for failback even
	// when the others never saw it gone (Node.decide). 0: not known.
	Boot uint64
}

// metaVersion is the first field of the encoding so that a later change
// of the format is recognised instead of misread.
const metaVersion = 1

// wireMeta is the compact JSON form of Meta: short keys, empty fields left out.
type wireMeta struct {
	V          int               `json:"v"`
	Site       string            `json:"s"`
	Priority   int               `json:"p,omitempty"`
	Witness    bool              `json:"w,omitempty"`
	Healthy    bool              `json:"h,omitempty"`
	DB         bool              `json:"d,omitempty"`
	Role       Role              `json:"r,omitempty"`
	Term       uint64            `json:"t,omitempty"`
	Master     string            `json:"m,omitempty"`
	Synced     bool              `json:"y,omitempty"`
	Seq        uint64            `json:"sq,omitempty"`
	Released   uint64            `json:"rl,omitempty"`
	ReleasedTo string            `json:"rt,omitempty"`
	Endpoints  map[string]string `json:"e,omitempty"`
	Admin      string            `json:"a,omitempty"`
	Cold       bool              `json:"c,omitempty"`
	Claim      uint64            `json:"cl,omitempty"`
	Vote       uint64            `json:"vo,omitempty"`
	VoteFor    string            `json:"vf,omitempty"`
	SplitBrain uint64            `json:"sb,omitempty"`
	Draining   bool              `json:"dr,omitempty"`
	DrainKeeps bool              `json:"dk,omitempty"`
	Leaving    bool              `json:"lv,omitempty"`
	Manual     bool              `json:"mf,omitempty"`
	Boot       uint64            `json:"bt,omitempty"`
}

// ErrMetaTooLarge is returned by EncodeMeta when the encoded metadata does
// not fit memberlist's limit.
var ErrMetaTooLarge = errors.New("gossip metadata too large")

// EncodeMeta returns the compact form of m published through memberlist.
// It fails with ErrMetaTooLarge when the result exceeds memberlist.MetaMaxSize
// (512 bytes); long endpoint lists or names are the usual cause.
func EncodeMeta(m Meta) ([]byte, error) {
	w := wireMeta{
		V: metaVersion, Site: m.Site, Priority: m.Priority, Witness: m.Witness,
		Healthy: m.ServerHealthy, DB: m.DBReachable, Role: m.Role,
		Term: m.Record.Term, Master: m.Record.Master, Synced: m.Record.PeerSynced, Seq: m.Record.Seq,
		Released: m.Released, ReleasedTo: m.ReleasedTo, Endpoints: m.Endpoints,
		Admin: m.Admin, Cold: m.Cold, Claim: m.Claim,
		Vote: m.Vote, VoteFor: m.VoteFor, SplitBrain: m.SplitBrain, Draining: m.Draining, DrainKeeps: m.DrainKeeps, Leaving: m.Leaving, Manual: m.ManualFailback, Boot: m.Boot,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("encode gossip metadata of %q: %w", m.Site, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes for site %q, memberlist allows %d; shorten endpoint names and addresses",
			ErrMetaTooLarge, len(b), m.Site, memberlist.MetaMaxSize)
	}
	return b, nil
}

// DecodeMeta parses metadata published by EncodeMeta. It rejects anything
// else with an error.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, errors.New("decode gossip metadata: empty")
	}
	if len(b) > memberlist.MetaMaxSize {
		return Meta{}, fmt.Errorf("decode gossip metadata: %d bytes exceeds %d", len(b), memberlist.MetaMaxSize)
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("decode gossip metadata: %w", err)
	}
	if w.V != metaVersion {
		return Meta{}, fmt.Errorf("decode gossip metadata: version %d, want %d (members run different Tandem versions?)", w.V, metaVersion)
	}
	if w.Site == "" {
		return Meta{}, errors.New("decode gossip metadata: no site name")
	}
	if !w.Role.valid() {
		return Meta{}, fmt.Errorf("decode gossip metadata of %q: unknown role %q", w.Site, w.Role)
	}
	for name := range w.Endpoints {
		if name == "" {
			return Meta{}, fmt.Errorf("decode gossip metadata of %q: endpoint without a name", w.Site)
		}
	}
	if len(w.Endpoints) == 0 {
		w.Endpoints = nil
	}
	return Meta{
		Site: w.Site, Priority: w.Priority, Witness: w.Witness,
		ServerHealthy: w.Healthy, DBReachable: w.DB, Role: w.Role,
		Record:   TermRecord{Term: w.Term, Master: w.Master, PeerSynced: w.Synced, Seq: w.Seq},
		Released: w.Released, ReleasedTo: w.ReleasedTo, Endpoints: w.Endpoints,
		Admin: w.Admin, Cold: w.Cold, Claim: w.Claim,
		Vote: w.Vote, VoteFor: w.VoteFor, SplitBrain: w.SplitBrain, Draining: w.Draining, DrainKeeps: w.DrainKeeps, Leaving: w.Leaving, ManualFailback: w.Manual, Boot: w.Boot,
	}, nil
}
