package gossip

import (
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The model runs two sites (and optionally a witness) as Decide sees them:
// each member decides on its own, possibly stale, view of the others, and
// the test checks the safety rules of DESIGN §3 after every step.

type modelParams struct {
	witness    bool
	partitions bool
	// consistent: no delays at all; every member decides on the truth.
	consistent bool

	gossipLag  time.Duration // max delay of a metadata update between connected members
	detectLag  time.Duration // max delay until memberlist flips a member's liveness
	probeLag   time.Duration // max delay of the direct probe's verdict
	fenceDelay time.Duration
	settle     time.Duration
	failback   time.Duration
	maxRelease time.Duration // longest BeforeRelease
	maxPromote time.Duration // longest CheckPromote and BeforePromote: the decision loop is held meanwhile
	voteDelay  time.Duration // a restarted member votes only after this
	// manual: failback = "manual" on both sites (Meta.ManualFailback, View.ManualFailback):
	// after healing either site may be master, but one must be.
	manual bool
	// dbs: each site's database is modelled (its term record, the commits it holds), and a
	// promotion runs the database side as cmd/tandem does: CheckPromote (mayPromote: the peer
	// database's record may refuse, or teach a newer term, PromoteRefusal), the term saved and
	// written into the peer database (terms only grow there), catch-up; a failed or refused
	// promotion holds the site aside (holdPromotion).
	dbs bool
	// dbCuts: a cut link between the sites cuts their databases' link too (a full partition).
	dbCuts bool
}

type published struct {
	at   time.Time
	seq  int
	meta Meta
}

type modelView struct {
	meta        Meta
	metaSeq     int // sequence number of the version shown
	has         bool
	alive       bool
	since       time.Time
	unreachable bool
	aliveFlip   time.Time // pending liveness change at this time (zero: none)
	unreachFlip time.Time
}

type modelMember struct {
	site    string
	prio    int
	witness bool

	up      bool
	record  TermRecord // durable
	healthy bool       // server health: outside the sidecar, survives restarts
	db      bool

	role        Role
	meta        Meta // what is published now
	history     []published
	claimedAt   time.Time
	releaseAt   time.Time // BeforeRelease ends; zero: not releasing
	releaseTerm uint64
	releaseTo   string
	// promoteAt: a promotion's work (CheckPromote, BeforePromote) ends then; zero: none runs.
	// The decision loop is held meanwhile; promoting is the action, promoteLost says the
	// member's view lacked a majority at some point since it began.
	promoteAt   time.Time
	promoting   Action
	promoteLost bool
	switchTo    string
	acceptLoss  uint64 // an operator's promote -accept-loss (View.AcceptLoss); kept in memory only
	views       map[string]*modelView
	// With modelParams.dbs: the site's database, up while db is true.
	dbRec     TermRecord   // its term record
	commits   map[int]bool // the commits it holds
	holdUntil time.Time    // a failed or refused promotion holds the site aside until then
	holds     int          // promotions in a row that failed
	refused   TermRecord   // the record the last refusal (CheckPromote) named
	ready     map[string]time.Time
	boots     map[string]uint64 // Meta.Boot each member was last seen with (Node.boots)
	readyTerm uint64            // Node.readyTerm: ready is cleared when a newer term shows
	started   time.Time
	// unsyncedSince: the term this site was promoted to with the peer database not in step,
	// its record unsynced since (0: none, or caught up since).
	unsyncedSince uint64
	// splitMark is the split-brain mark kept in the data directory (Node.splitMark): the term
	// this site committed alone in while another site took it or a newer one, and whether an
	// operator cleared it (ClearSplitBrain). It survives restarts; published as Meta.SplitBrain
	// unless cleared.
	splitMark splitBrainMark
	// takenOver: the term this site took last and the term of the record it held then, or the
	// newer term whose loss it had accepted (Node.TookOver, TakenOverFile): it survives restarts.
	takenOver takenOverMark
	// With modelParams.dbs, as a process knows it (lost at a restart): announced is the term
	// whose peer_synced = false it recorded (Node.announced, SetPeerSynced), wentSolo the terms
	// its shim committed alone in (Options.WentSolo), announcedOnly the term checkSplitBrain
	// found announced only.
	announced     uint64
	wentSolo      map[uint64]bool
	announcedOnly uint64
}

type model struct {
	t          *testing.T
	p          modelParams
	rng        *rand.Rand
	now        time.Time
	members    []*modelMember
	link       map[[2]string]bool // true = cut
	trace      []string
	steps      int
	seq        int
	promotions int
	accepts    int // operator accept-loss events
	commit     int // last commit number (modelParams.dbs)
	refusals   int // promotions CheckPromote refused (modelParams.dbs)
	adoptions  int // of those, the refusal's newer record adopted
	// promotionAcks: solo commits of a master promoted to a peer database not in step,
	// acknowledged by the other site's sidecar (not the witness): that site adopted the
	// master's newer unsynced record (Adopt, from a live master of it).
	promotionAcks int
	// forfeit: commits given up by design — an operator's accept-loss, or a site's database
	// down when the other took over (an unacknowledged solo master lost with its site).
	forfeit map[int]bool
	acked   map[int]bool // solo commits made after the other site's sidecar or the witness acknowledged the record
	healed  bool
	// newest is the newest term a site has been master of so far.
	newest uint64
	// masterOf: the site that has been master of each term so far (a term has one master, ever).
	masterOf map[uint64]string
	seed     int64
	// termMasters: every (term, master) a member's published record has named so far.
	termMasters map[uint64]map[string]bool
	// soloIn: the terms each site has committed alone in, ever (modelParams.dbs).
	soloIn      map[string]map[uint64]bool
	splitMarks  int // split-brain marks noted (checkSplitBrain)
	splitClears int // of those, cleared by an operator
	// failbackStopped: runs where, healed, the better site was not master for a split-brain mark.
	failbackStopped int
}

func newModel(t *testing.T, p modelParams, seed int64) *model {
	m := &model{t: t, p: p, rng: rand.New(rand.NewSource(seed)), now: t0, link: map[[2]string]bool{}, forfeit: map[int]bool{}, acked: map[int]bool{},
		masterOf: map[uint64]string{}, seed: seed, termMasters: map[uint64]map[string]bool{},
		soloIn: map[string]map[uint64]bool{}}
	m.members = append(m.members,
		&modelMember{site: "a", prio: 1, healthy: true, db: true},
		&modelMember{site: "b", prio: 2, healthy: true, db: true})
	if p.witness {
		m.members = append(m.members, &modelMember{site: "w", witness: true, healthy: true, db: true})
	}
	for _, mm := range m.members {
		m.start(mm)
	}
	return m
}

func (m *model) logf(format string, args ...any) {
	m.trace = append(m.trace, fmt.Sprintf("%6d %s ", m.steps, m.now.Sub(t0).Round(time.Millisecond))+fmt.Sprintf(format, args...))
	if len(m.trace) > 60 {
		m.trace = m.trace[len(m.trace)-60:]
	}
}

func (m *model) start(mm *modelMember) {
	mm.up = true
	mm.role = RoleStarting
	if mm.witness {
		mm.role = RoleWitness
	}
	mm.views = map[string]*modelView{}
	mm.ready = map[string]time.Time{}
	mm.boots = map[string]uint64{}
	mm.readyTerm = 0
	mm.releaseAt = time.Time{}
	mm.promoteAt = time.Time{}
	mm.switchTo = ""
	mm.acceptLoss = 0
	mm.started = m.now
	mm.announced, mm.wentSolo, mm.announcedOnly = 0, map[uint64]bool{}, 0
	mm.holdUntil, mm.holds, mm.refused = time.Time{}, 0, TermRecord{}
	if mm.commits == nil {
		mm.commits = map[int]bool{}
	}
	if m.p.dbs && !mm.witness && mm.db && mm.dbRec.Term > mm.record.Term {
		mm.record = mm.dbRec // recordStore.Load: the database's record
	}
	mm.history = nil
	vote, voteFor := mm.meta.Vote, mm.meta.VoteFor
	mm.meta = Meta{Site: mm.site, Priority: mm.prio, Witness: mm.witness, Role: mm.role,
		Record: mm.record, Cold: !mm.witness, ManualFailback: m.p.manual && !mm.witness}
	mm.meta.Vote, mm.meta.VoteFor = vote, voteFor // kept in data_dir (saveVote)
	if !mm.splitMark.Cleared {
		mm.meta.SplitBrain = mm.splitMark.Term // Node.New: loadSplitBrain
	}
	m.seq++
	mm.meta.Boot = uint64(m.seq) // a new process: a new Boot
	m.publish(mm)
}

// publish records the member's current meta as a new version.
func (m *model) publish(mm *modelMember) {
	mm.meta.ServerHealthy, mm.meta.DBReachable = mm.healthy, mm.db
	if m.p.dbs && m.now.Before(mm.holdUntil) {
		mm.meta.DBReachable = false // holdPromotion
	}
	if n := len(mm.history); n > 0 && equalMeta(mm.history[n-1].meta, mm.meta) {
		return
	}
	if r := mm.meta.Record; r.Term != 0 && r.Master != "" {
		if m.termMasters[r.Term] == nil {
			m.termMasters[r.Term] = map[string]bool{}
		}
		m.termMasters[r.Term][r.Master] = true
	}
	m.seq++
	mm.history = append(mm.history, published{m.now, m.seq, mm.meta})
	if len(mm.history) > 64 {
		mm.history = mm.history[len(mm.history)-64:]
	}
}

func equalMeta(a, b Meta) bool { return reflect.DeepEqual(a, b) }

func (m *model) cut(x, y string) bool {
	if x > y {
		x, y = y, x
	}
	return m.link[[2]string{x, y}]
}

func (m *model) member(site string) *modelMember {
	for _, mm := range m.members {
		if mm.site == site {
			return mm
		}
	}
	return nil
}

// reach: memberlist on x holds y alive (directly, or with a witness through
// the third member's indirect probe); direct: x's own probes reach y.
func (m *model) reach(x, y *modelMember) (reach, direct bool) {
	if !y.up || !x.up {
		return false, false
	}
	direct = !m.cut(x.site, y.site)
	if direct {
		return true, true
	}
	if m.p.witness {
		for _, z := range m.members {
			if z != x && z != y && z.up && !m.cut(x.site, z.site) && !m.cut(z.site, y.site) {
				return true, false
			}
		}
	}
	return false, false
}

func (m *model) lag(max time.Duration) time.Duration {
	if max <= 0 || m.p.consistent {
		return 0
	}
	return time.Duration(m.rng.Int63n(int64(max) + 1))
}

// observe updates x's view of every other member.
func (m *model) observe(x *modelMember) {
	for _, y := range m.members {
		if y == x {
			continue
		}
		v := x.views[y.site]
		if v == nil {
			v = &modelView{}
			x.views[y.site] = v
		}
		reach, direct := m.reach(x, y)
		aliveTarget := reach
		detect := m.p.detectLag
		if !m.p.witness {
			// Without a witness the direct probe decides liveness.
			aliveTarget, detect = direct, m.p.probeLag
		}
		flip(m, &v.alive, &v.aliveFlip, aliveTarget, detect, func() {
			v.since = m.now
			// A join is a two-way state exchange: y learns of x at once too.
			if w := y.views[x.site]; v.alive && w != nil && !w.alive && (reach || direct) {
				w.alive, w.since, w.aliveFlip = true, m.now, time.Time{}
			}
		})
		flip(m, &v.unreachable, &v.unreachFlip, !direct && v.has, m.p.probeLag, nil)
		if reach && v.alive {
			// Gossip: show the newest version published at least a random
			// lag ago, never an older one than shown.
			d := m.lag(m.p.gossipLag)
			for i := len(y.history) - 1; i >= 0; i-- {
				h := y.history[i]
				if !h.at.After(m.now.Add(-d)) {
					if !v.has || h.seq > v.metaSeq {
						v.meta, v.metaSeq, v.has = h.meta, h.seq, true
					}
					break
				}
			}
		}
	}
}

// flip moves *cur to target after a random delay up to maxLag.
func flip(m *model, cur *bool, pending *time.Time, target bool, maxLag time.Duration, changed func()) {
	if *cur == target {
		*pending = time.Time{}
		return
	}
	if pending.IsZero() {
		*pending = m.now.Add(m.lag(maxLag))
	}
	if !m.now.Before(*pending) {
		*cur = target
		*pending = time.Time{}
		if changed != nil {
			changed()
		}
	}
}

func (m *model) view(x *modelMember) View {
	members := []Member{{Meta: x.meta, Alive: true, Since: x.started}}
	for _, y := range m.members {
		if v := x.views[y.site]; y != x && v != nil && v.has {
			members = append(members, Member{Meta: v.meta, Alive: v.alive, Since: v.since, Unreachable: v.unreachable})
		}
	}
	voters := 2
	if m.p.witness {
		voters = 3
	}
	v := View{Self: x.site, Now: m.now, Members: members, WitnessConfigured: m.p.witness, Voters: voters,
		FailbackDelay: m.p.failback, FenceDelay: m.p.fenceDelay, Settle: m.p.settle, ClaimedAt: x.claimedAt,
		AcceptLoss: x.acceptLoss, ManualFailback: m.p.manual}
	if x.role == RoleMaster {
		v.Switchover = x.switchTo
	}
	return v
}

// decide runs one member's round as node.decide does.
func (m *model) decide(x *modelMember) {
	if !x.promoteAt.IsZero() {
		if m.p.witness {
			if seen, voters := m.view(x).votes(); 2*seen <= voters {
				x.promoteLost = true
			}
		}
		if m.now.Before(x.promoteAt) {
			return // the promotion's work still runs
		}
		x.promoteAt = time.Time{}
		m.finishPromote(x, x.promoting)
		m.publish(x)
		return
	}
	if !x.releaseAt.IsZero() {
		if m.now.Before(x.releaseAt) {
			return // BeforeRelease still running
		}
		x.releaseAt = time.Time{}
		x.meta.Role, x.meta.Released, x.meta.ReleasedTo = RoleBackup, x.releaseTerm, x.releaseTo
		m.logf("%s publishes released %d to %q", x.site, x.releaseTerm, x.releaseTo)
		m.publish(x)
	}
	if m.p.consistent {
		m.observe(x)
	}
	if x.meta.Cold {
		for _, v := range x.views {
			if v.alive && v.has {
				x.meta.Cold = false
			}
		}
	}
	v := m.view(x)
	m.checkSplitBrain(x, v) // as Node.decide: before Adopt replaces the record that shows it
	if rec, ok := Adopt(v.Members[0], v.Members[1:]); ok {
		x.record, x.meta.Record = rec, rec
		m.copyAdopted(x, rec)
		if x.meta.Released != 0 && rec.Term > x.meta.Released {
			x.meta.Released, x.meta.ReleasedTo = 0, ""
		}
		m.logf("%s adopts %+v", x.site, rec)
		v = m.view(x)
	}
	for _, o := range v.Members { // as Node.decide: a restart restarts a site's failback_delay
		if old, ok := x.boots[o.Site]; ok && old != o.Boot {
			delete(x.ready, o.Site)
		}
		x.boots[o.Site] = o.Boot
	}
	if top := v.maxTerm(); top > x.readyTerm { // as Node.decide: failback_delay from the takeover on
		clear(x.ready)
		x.readyTerm = top
	}
	v.Stamp(x.ready)
	a := Decide(v)
	if a.Kind == Claim && x.meta.Claim != a.Term {
		x.meta.Claim, x.claimedAt = a.Term, m.now
	} else if a.Kind != Claim && a.Kind != Promote {
		x.meta.Claim = 0
	}
	switch a.Kind {
	case Promote:
		if m.p.maxPromote > 0 {
			// Node.decide: the term is claimed while the promotion's work runs; Node.promote
			// saves its record before the work (published at the end, or by a restart).
			x.meta.Claim = a.Term
			rec := TermRecord{Term: a.Term, Master: x.site, PeerSynced: true}
			if m.p.dbs {
				// CheckPromote and the save run first, BeforePromote's work meanwhile.
				r, ok := m.promoteDBStart(x, a)
				if !ok {
					break
				}
				rec = r
			}
			x.record = rec
			x.promoteAt, x.promoting, x.promoteLost = m.now.Add(m.lag(m.p.maxPromote)), a, false
			break
		}
		m.finishPromote(x, a)
	case Release:
		x.role = RoleBackup
		x.switchTo = ""
		x.releaseTerm, x.releaseTo = x.record.Term, a.To
		x.releaseAt = m.now.Add(m.lag(m.p.maxRelease))
	case Fence:
		x.role, x.meta.Role = RoleFenced, RoleFenced
		x.switchTo = "" // Node.setRole: a switchover asked of the mastership ends with it
	case Unfence:
		x.role, x.meta.Role = RoleBackup, RoleBackup
	}
	if a.Kind != None && a.Kind != Claim {
		m.logf("%s %s term %d to %q: %s", x.site, a.Kind, a.Term, a.To, a.Reason)
	}
	if vt, vf := Vote(m.view(x), !m.now.Before(x.started.Add(m.p.voteDelay))); vt != x.meta.Vote || vf != x.meta.VoteFor {
		x.meta.Vote, x.meta.VoteFor = vt, vf
		m.logf("%s votes %s for term %d", x.site, vf, vt)
	}
	m.publish(x)
}

func (m *model) event() {
	r := m.rng.Intn(1000)
	sites := []*modelMember{m.members[0], m.members[1]}
	pick := m.members[m.rng.Intn(len(m.members))]
	if m.p.dbs && m.rng.Intn(150) == 0 { // sidecars die and come back more often: the solo master's word unheard
		s := sites[m.rng.Intn(2)]
		if s.up {
			s.up, s.role = false, ""
			m.logf("kill %s", s.site)
		} else {
			m.start(s)
			m.logf("restart %s", s.site)
		}
	}
	if m.p.dbs && m.rng.Intn(8) == 0 { // a client commits on the master
		for _, s := range sites {
			if s.up && s.role == RoleMaster {
				m.clientCommit(s)
			}
		}
	}
	switch {
	case r < 8: // kill -9 / restart a sidecar
		if pick.up {
			pick.up = false
			pick.role = ""
			m.logf("kill %s", pick.site)
		} else {
			m.start(pick)
			m.logf("restart %s", pick.site)
		}
	case r < 20: // server health flips
		s := sites[m.rng.Intn(2)]
		s.healthy = !s.healthy
		m.logf("%s server healthy=%v", s.site, s.healthy)
		if s.up {
			m.publish(s)
		}
	case r < 23: // database reachability flips
		s := sites[m.rng.Intn(2)]
		s.db = !s.db
		m.logf("%s db reachable=%v", s.site, s.db)
		if s.up {
			m.publish(s)
		}
	case r < 30 && m.p.partitions: // cut or heal a link
		x, y := m.members[0].site, m.members[1].site
		if m.p.witness {
			pair := [][2]string{{"a", "b"}, {"a", "w"}, {"b", "w"}}[m.rng.Intn(3)]
			x, y = pair[0], pair[1]
		}
		k := [2]string{x, y}
		m.link[k] = !m.link[k]
		m.logf("link %s-%s cut=%v", x, y, m.link[k])
	case r < 34: // the master goes solo / catches up
		for _, s := range sites {
			if s.up && s.role == RoleMaster && m.p.dbs {
				m.soloOrCatchUp(s)
				continue
			}
			if s.up && s.role == RoleMaster {
				s.record.PeerSynced = !s.record.PeerSynced
				s.meta.Record = s.record
				m.logf("%s peer_synced=%v", s.site, s.record.PeerSynced)
				m.publish(s)
			}
		}
	case r < 36: // an operator asks for a switchover
		for _, s := range sites {
			if s.up && s.role == RoleMaster {
				s.switchTo = m.members[1-slices.Index(sites, s)].site
				m.logf("switchover %s -> %s", s.site, s.switchTo)
			}
		}
	case r < 37 && m.rng.Intn(4) == 0: // an operator clears a split-brain mark
		if s := sites[m.rng.Intn(2)]; s.up {
			m.clearSplitBrain(s)
		}
	case r < 38: // an operator accepts the loss of the newest term, on a site that waits for its lost master
		s := sites[m.rng.Intn(2)]
		if !s.up || s.role == RoleMaster {
			break
		}
		v := m.view(s)
		top := v.maxTerm()
		if m.p.dbs && m.acceptRefused(s) {
			break
		}
		if ok, _ := v.current(v.Members[0]); ok || top == 0 {
			break
		}
		for _, o := range v.Members {
			if o.Record.Term == top && o.Record.Master != s.site {
				if master, ok := v.member(o.Record.Master); ok && master.Alive {
					top = 0 // Node.AcceptLoss refuses: the master is alive
				}
			}
		}
		if top != 0 {
			s.acceptLoss = top
			m.accepts++
			m.logf("%s accepts the loss of term %d", s.site, top)
		}
	}
}

// heal ends every fault; catchUp: a master that went on alone catches the peer up too.
func (m *model) heal(catchUp bool) {
	clear(m.link)
	for _, mm := range m.members {
		mm.healthy, mm.db = true, true
		if !mm.up {
			m.start(mm)
		}
		if catchUp {
			m.catchUp(mm)
		}
		m.publish(mm)
	}
	m.healed = true
	m.logf("heal (catch-up %v)", catchUp)
}

// catchUp: master mm, gone on alone, has the peer caught up (SetPeerSynced(true)).
func (m *model) catchUp(mm *modelMember) {
	if mm.role != RoleMaster || mm.record.PeerSynced {
		return
	}
	mm.record.PeerSynced = true
	mm.meta.Record = mm.record
	if m.p.dbs {
		o := m.other(mm)
		o.db = true
		for c := range mm.commits {
			o.commits[c] = true
		}
		if mm.dbRec.Term == mm.record.Term && mm.dbRec.Master == mm.site {
			mm.dbRec.PeerSynced = true
		}
	}
	m.logf("%s catches up: peer_synced=true", mm.site)
	m.publish(mm)
}

func (m *model) step(events bool) {
	m.steps++
	if m.p.consistent {
		m.now = m.now.Add(time.Duration(10+m.rng.Intn(90)) * time.Millisecond)
	} else {
		m.now = m.now.Add(time.Duration(5+m.rng.Intn(45)) * time.Millisecond)
	}
	if events {
		m.event()
	}
	if !m.p.consistent {
		for _, mm := range m.members {
			if mm.up {
				m.observe(mm)
			}
		}
	}
	order := m.rng.Perm(len(m.members))
	for _, i := range order {
		if mm := m.members[i]; mm.up {
			m.decide(mm)
			m.check()
		}
	}
}

// check asserts the safety rules: never two masters of one term; with
// consistent views, or with a witness (DESIGN §3: a site that loses the majority fences itself
// within the gossip timeout, and a new master waits fence_delay, longer than that), never two
// masters at all; and with a witness no site master of a term older than one a site has taken.
func (m *model) check() {
	m.t.Helper()
	byTerm := map[uint64]string{}
	var masters []string
	for _, mm := range m.members {
		if !mm.up || mm.role != RoleMaster {
			continue
		}
		if mm.witness {
			m.fail("witness %s is master", mm.site)
		}
		masters = append(masters, mm.site)
		if other, ok := byTerm[mm.record.Term]; ok {
			m.fail("%s and %s are both master of term %d", other, mm.site, mm.record.Term)
		}
		byTerm[mm.record.Term] = mm.site
		// A term has one master, ever, with a witness: its votes keep it. Two sites alone may
		// share one (DESIGN §3 split brain): a master lost with its database before the other
		// heard of its term (the other's database down then), whose database refuses the
		// second's term once back (a split brain in one term, for an operator).
		if other, ok := m.masterOf[mm.record.Term]; ok && other != mm.site && m.p.witness {
			m.fail("%s master of term %d, which %s was master of before", mm.site, mm.record.Term, other)
		}
		m.masterOf[mm.record.Term] = mm.site
	}
	if !m.p.partitions && len(masters) > 1 {
		// No link is ever cut: a member finds another dead only when it is, and nothing excuses
		// two sites serving at once (a handover releases first, a lost master is down).
		m.fail("two masters without partitions: %v", masters)
	}
	if m.p.consistent && len(masters) > 1 {
		m.fail("two masters with consistent views: %v", masters)
	}
	if m.p.witness && len(masters) > 1 {
		m.fail("two masters with a witness: %v", masters)
	}
	for term, site := range byTerm {
		if m.p.witness && term < m.newest {
			m.fail("%s master of term %d, after a site took term %d", site, term, m.newest)
		}
		m.newest = max(m.newest, term)
	}
}

func (m *model) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("seed %d step %d: %s\ntrace:\n%s", m.seed, m.steps, fmt.Sprintf(format, args...), strings.Join(m.trace, "\n"))
}

func TestModel(t *testing.T) {
	t.Parallel()
	base := modelParams{
		gossipLag: 100 * time.Millisecond, detectLag: 1500 * time.Millisecond, probeLag: 700 * time.Millisecond,
		fenceDelay: 2 * time.Second, settle: 250 * time.Millisecond, failback: 3 * time.Second,
		maxRelease: 500 * time.Millisecond, voteDelay: 2 * time.Second,
	}
	type variant struct {
		name string
		p    func(p *modelParams)
	}
	variants := []variant{
		{"witness with partitions", func(p *modelParams) { p.witness, p.partitions = true, true }},
		{"witness", func(p *modelParams) { p.witness = true }},
		// Without a witness a cut link makes two masters by design (DESIGN
		// §3 split brain): that variant runs without partitions; the
		// partition variant below checks convergence only.
		{"two sites", func(p *modelParams) { p.fenceDelay = 0 }},
		{"consistent witness", func(p *modelParams) { p.witness, p.consistent = true, true }},
		{"consistent two sites", func(p *modelParams) { p.consistent, p.fenceDelay = true, 0 }},
		{"manual failback, witness with partitions", func(p *modelParams) { p.witness, p.partitions, p.manual = true, true, true }},
		{"manual failback, two sites", func(p *modelParams) { p.fenceDelay, p.manual = 0, true }},
		{"manual failback, consistent witness", func(p *modelParams) { p.witness, p.consistent, p.manual = true, true, true }},
		{"databases, two sites", func(p *modelParams) { p.fenceDelay, p.dbs = 0, true }},
		{"databases, witness with partitions", func(p *modelParams) { p.witness, p.partitions, p.dbs = true, true, true }},
		{"databases, consistent two sites", func(p *modelParams) { p.consistent, p.fenceDelay, p.dbs = true, 0, true }},
		// Gossip cut between two sites, the databases' link up: two masters may serve (DESIGN §3
		// split brain), but the databases' terms keep them from sharing one, and neither takes
		// control over what the other committed alone while its database answers.
		{"databases, two sites with gossip cuts", func(p *modelParams) { p.partitions, p.fenceDelay, p.dbs = true, 0, true }},
		{"databases, witness with full partitions", func(p *modelParams) { p.witness, p.partitions, p.dbs, p.dbCuts = true, true, true, true }},
		// A promotion's work takes up to seconds (resolver, catch-up), the decision loop held:
		// links cut and heal meanwhile.
		{"slow promotions, witness with partitions", func(p *modelParams) { p.witness, p.partitions, p.maxPromote = true, true, 5*time.Second }},
		{"databases, slow promotions, witness with full partitions", func(p *modelParams) {
			p.witness, p.partitions, p.dbs, p.dbCuts, p.maxPromote = true, true, true, true, 5*time.Second
		}},
		{"databases, slow promotions, two sites", func(p *modelParams) { p.fenceDelay, p.dbs, p.maxPromote = 0, true, 5*time.Second }},
	}
	seeds, steps := 12, 6000
	short := testing.Short()
	if short {
		// A few hundred steps over a few seeds of every variant, a few seconds in all: each run
		// still heals, converges, fails over and fails back (converge), checked as ever. What a
		// variant's runs must have exercised is checked over all variants together (below): over
		// so few steps a variant's own count is chance — with slow promotions one role change
		// to master in some 3000 steps, the first election included.
		seeds, steps = 6, 500
	}
	// GOSSIP_MODEL_SEEDS=500 runs a longer search.
	if n, err := strconv.Atoi(os.Getenv("GOSSIP_MODEL_SEEDS")); err == nil && n > 0 {
		seeds = n
	}
	// GOSSIP_MODEL_SEED_BASE=1000 starts the seeds there, beyond those searched before.
	var seedBase int64
	if n, err := strconv.ParseInt(os.Getenv("GOSSIP_MODEL_SEED_BASE"), 10, 64); err == nil && n > 0 {
		seedBase = n
	}
	// Over the variants run: with -short what they exercised is checked together, once every
	// one ran (-run may pick some).
	ran := 0
	var all struct{ runs, promotions, promotionAcks int }
	for _, vr := range variants {
		t.Run(vr.name, func(t *testing.T) {
			ran++
			p := base
			vr.p(&p)
			promotions, accepts, refusals, adoptions, promotionAcks, splitMarks, splitClears := 0, 0, 0, 0, 0, 0, 0
			for seed := seedBase; seed < seedBase+int64(seeds); seed++ {
				m := newModel(t, p, seed)
				for range steps {
					m.step(true)
				}
				promotions += m.promotions
				accepts += m.accepts
				refusals += m.refusals
				adoptions += m.adoptions
				promotionAcks += m.promotionAcks
				m.converge()
				splitMarks += m.splitMarks
				splitClears += m.splitClears
			}
			t.Logf("%d runs x %d steps, %d role changes to master, %d accepted losses, %d refused promotions (%d adopted the peer database's record), %d solo commits after a promotion acknowledged by the other site, %d split-brain marks (%d cleared)",
				seeds, steps, promotions, accepts, refusals, adoptions, promotionAcks, splitMarks, splitClears)
			if !short {
				exercised(t, fmt.Sprintf("in %d runs", seeds), seeds, promotions, p.dbs && !p.witness, promotionAcks)
			}
			all.runs += seeds
			all.promotions += promotions
			if p.dbs && !p.witness {
				all.promotionAcks += promotionAcks
			}
		})
	}
	t.Run("two sites with partitions converge", func(t *testing.T) {
		p := base
		p.partitions, p.fenceDelay = true, 0
		splitMarks, stopped := 0, 0
		for seed := seedBase; seed < seedBase+int64(seeds); seed++ {
			m := newModel(t, p, seed)
			m.p.partitions = true
			for range steps {
				m.stepNoCheck()
			}
			m.converge()
			splitMarks += m.splitMarks
			stopped += m.failbackStopped
		}
		if seeds >= 12 && (splitMarks == 0 || stopped == 0) { // -short runs too few
			t.Fatalf("in %d runs %d split brains were marked, %d stopped failback after healing: the model exercises too little", seeds, splitMarks, stopped)
		}
		t.Logf("%d runs, %d split-brain marks, %d stopped failback after healing until cleared", seeds, splitMarks, stopped)
	})
	if short && ran == len(variants) && !t.Failed() {
		t.Logf("%d runs of %d variants x %d steps, %d role changes to master, %d solo commits after a promotion acknowledged by the other site (without a witness)",
			all.runs, ran, steps, all.promotions, all.promotionAcks)
		exercised(t, fmt.Sprintf("in %d runs of %d variants", all.runs, ran), all.runs, all.promotions, true, all.promotionAcks)
	}
}

// exercised fails the test when runs exercised too little: fewer role changes to master than
// runs, or, when acksWanted, no solo commit of a master promoted to a peer database not in step
// that the other site's sidecar acknowledged.
func exercised(t *testing.T, what string, runs, promotions int, acksWanted bool, promotionAcks int) {
	t.Helper()
	if promotions < runs {
		t.Fatalf("%s only %d promotions: the model exercises too little", what, promotions)
	}
	// A master promoted to a peer database not in step goes solo once the other site's
	// sidecar (or the witness) holds its newer unsynced record: without a witness only
	// that sidecar can say so while it is alive (Adopt from a live master of it).
	if acksWanted && promotionAcks == 0 {
		t.Fatalf("%s no solo commit of a master promoted to a peer database not in step was acknowledged by the other site's sidecar: the model exercises too little", what)
	}
}

// stepNoCheck is step without the safety check (split brain allowed).
func (m *model) stepNoCheck() {
	m.steps++
	m.now = m.now.Add(time.Duration(5+m.rng.Intn(45)) * time.Millisecond)
	if !m.healed {
		m.event()
	}
	for _, mm := range m.members {
		if mm.up {
			m.observe(mm)
		}
	}
	for _, i := range m.rng.Perm(len(m.members)) {
		if mm := m.members[i]; mm.up {
			m.decide(mm)
		}
	}
}

// converge heals everything and checks that the cluster settles on site a
// (best priority, auto failback) as the only master, seen by everyone.
func (m *model) converge() {
	m.t.Helper()
	// Two sites without a witness, cut off from each other, may both have gone on alone (DESIGN
	// §3 split brain): on odd seeds the heal leaves that as it is, for the split-brain marks to
	// show and stop failback, until an operator clears them and the master catches up.
	splitRun := m.p.partitions && !m.p.witness && !m.p.dbs && m.seed%2 == 1
	m.heal(!splitRun)
	if m.p.witness && m.seed%3 == 2 {
		// The witness lost for good: the two sites, a majority, must still settle on one master.
		w := m.members[2]
		w.up, w.role = false, ""
		m.logf("kill %s for good", w.site)
	}
	deadline := m.now.Add(m.p.detectLag + m.p.fenceDelay + m.p.failback + m.p.maxRelease + 10*time.Second)
	for m.now.Before(deadline) {
		if m.p.dbs {
			// Sites that refuse each other (a split brain in one term) wait for an operator,
			// as the refusal says.
			m.acceptRefused(m.members[m.rng.Intn(2)])
		}
		if m.p.partitions && !m.p.witness {
			m.stepNoCheck() // a split brain from before the heal resolves here
		} else {
			m.step(false)
		}
	}
	for range 200 {
		m.step(false)
	}
	a, b := m.members[0], m.members[1]
	if a.meta.SplitBrain != 0 || b.meta.SplitBrain != 0 {
		// A split brain marked: one master, and failback to the better site stops where the
		// mark says so (decideMaster), until an operator clears it.
		var master, backup *modelMember
		switch {
		case a.role == RoleMaster && b.role == RoleBackup:
			master, backup = a, b
		case b.role == RoleMaster && a.role == RoleBackup:
			master, backup = b, a
		default:
			m.fail("after healing, split brain marked (%s %d, %s %d): %s is %q, %s is %q; want one master",
				a.site, a.meta.SplitBrain, b.site, b.meta.SplitBrain, a.site, a.role, b.site, b.role)
		}
		// b keeps control from a better a also while its record of its term says peer_synced =
		// false (it went on alone, a acknowledged it, and the heal left that as it is): a lacks
		// what b committed alone and is not current (rule 2), mark or not, until b catches up
		// (below). A mark of b's own older term stops nothing.
		markStops := backup.meta.SplitBrain != 0 || master.meta.SplitBrain == master.record.Term
		if !m.p.manual && master == b && !markStops && master.record.PeerSynced {
			m.fail("after healing, split brain marked (%s %d, %s %d): %s is master of term %d though %s is better and nothing stops failback",
				a.site, a.meta.SplitBrain, b.site, b.meta.SplitBrain, b.site, b.record.Term, a.site)
		}
		if !m.p.manual && master == b && markStops {
			m.failbackStopped++
		}
		m.clearSplitBrain(a)
		m.clearSplitBrain(b)
	}
	if splitRun || a.splitMark.Term != 0 || b.splitMark.Term != 0 {
		m.catchUp(a)
		m.catchUp(b)
		for end := m.now.Add(m.p.failback + m.p.maxRelease + m.p.maxPromote + 10*time.Second); m.now.Before(end); {
			m.step(false)
		}
	}
	if m.p.manual && b.role == RoleMaster {
		a, b = b, a // failback = "manual": the site in control keeps it
	}
	if a.role != RoleMaster || b.role != RoleBackup {
		m.fail("after healing: %s is %q, %s is %q; want %s master, %s backup", a.site, a.role, b.site, b.role, a.site, b.site)
	}
	for _, mm := range m.members {
		if mm.up && mm.record.Term != a.record.Term && !(mm.witness && mm.record.Term > a.record.Term) {
			m.fail("after healing: %s holds term %d, master %s holds %d", mm.site, mm.record.Term, a.site, a.record.Term)
		}
	}
	m.failover(a, b)
}

// failover, from a settled cluster (master x, backup y), fails x's server for good: y must take
// over (DESIGN §3 failover). Then x's server is back: with failback = "auto" control goes back to
// x after failback_delay, with "manual" y keeps it.
func (m *model) failover(x, y *modelMember) {
	m.t.Helper()
	if !x.record.PeerSynced {
		// Caught up first (as heal does for a master): y may not take over from a master that
		// went on alone, and waits for it.
		x.record.PeerSynced = true
		x.meta.Record = x.record
		if m.p.dbs {
			for c := range x.commits {
				y.commits[c] = true
			}
			if x.dbRec.Term == x.record.Term && x.dbRec.Master == x.site {
				x.dbRec.PeerSynced = true
			}
		}
		m.publish(x)
	}
	x.healthy = false
	m.publish(x)
	m.logf("%s server healthy=false for the failover", x.site)
	until := func(d time.Duration, done func() bool) bool {
		for end := m.now.Add(d); m.now.Before(end); {
			m.step(false)
			if done() {
				return true
			}
		}
		return false
	}
	wait := m.p.detectLag + m.p.fenceDelay + m.p.settle + m.p.maxRelease + m.p.maxPromote + 10*time.Second
	if !until(wait, func() bool { return y.role == RoleMaster }) {
		m.fail("failover: %s's server failed, %s is %q after %s", x.site, y.site, y.role, wait)
	}
	x.healthy = true
	m.publish(x)
	m.logf("%s server healthy=true after the failover", x.site)
	want := y
	if !m.p.manual && better(Member{Meta: x.meta}, Member{Meta: y.meta}) {
		want = x
	}
	until(wait+m.p.failback, func() bool { return false })
	if want.role != RoleMaster {
		m.fail("after the failover: %s is %q, %s is %q; want %s master", x.site, x.role, y.site, y.role, want.site)
	}
}

// other is the other site.
func (m *model) other(x *modelMember) *modelMember {
	if x == m.members[0] {
		return m.members[1]
	}
	return m.members[0]
}

// acceptRefused is an operator's tandem promote -accept-loss on site s, refused by CheckPromote
// for the term its record holds, or for an older term of the other site's, s master of the
// newest (PeerSoloLost), as the refusal asks: Node.AcceptLoss takes it (the master of that term,
// or another master of s's own term or the older one the refusal named, is not alive as master)
// and lifts the hold.
func (m *model) acceptRefused(s *modelMember) bool {
	v := m.view(s)
	top := v.maxTerm()
	r := s.refused
	// An older term of the other site's, s master of the newest (PeerSoloLost), is taken too.
	older := r.Term != 0 && r.Term < top && s.record.Term == top && s.record.Master == s.site
	if r.Term == 0 || (!older && (r.Term != top || s.record.Term != top)) || !m.now.Before(s.holdUntil) {
		return false
	}
	for _, o := range v.Members {
		if o.Site == r.Master && o.Alive && (o.Role == RoleMaster || s.record.Master != s.site) {
			return false
		}
	}
	s.acceptLoss, s.holdUntil = r.Term, time.Time{}
	m.accepts++
	m.logf("%s accepts the loss of term %d (refused for %s's record)", s.site, r.Term, r.Master)
	m.publish(s)
	return true
}

// peerDB says whether x reaches the other site's database.
func (m *model) peerDB(x *modelMember) bool {
	o := m.other(x)
	return o.db && !(m.p.dbCuts && m.cut(x.site, o.site))
}

// writeTerm writes rec into the database of site db (txshim.WriteTermRecord): it must answer,
// and terms only grow there (a term of another master is refused too).
func (m *model) writeTerm(db *modelMember, rec TermRecord) bool {
	if !db.db || rec.Term < db.dbRec.Term || (rec.Term == db.dbRec.Term && db.dbRec.Master != "" && rec.Master != db.dbRec.Master) {
		return false
	}
	db.dbRec = rec
	return true
}

// copyAdopted puts an adopted record into the site's database (recordStore).
func (m *model) copyAdopted(x *modelMember, rec TermRecord) {
	if m.p.dbs && !x.witness {
		m.writeTerm(x, rec)
	}
}

// hold is holdPromotion, its times scaled down to the model's.
func (m *model) hold(x *modelMember, why string) {
	x.holds++
	x.holdUntil = m.now.Add(min(time.Second<<min(x.holds-1, 10), 8*time.Second))
	m.logf("%s stands aside until %s: %s", x.site, x.holdUntil.Sub(t0).Round(time.Millisecond), why)
}

// finishPromote is the end of Node.promote: with the databases, the work (the term written into
// the peer database, the catch-up) runs first; then the promotion is given up when, with a
// witness, the majority was lost while its work ran, or a newer term shows; else the site is
// master of a.Term.
func (m *model) finishPromote(x *modelMember, a Action) {
	rec := TermRecord{Term: a.Term, Master: x.site, PeerSynced: true}
	peer := false
	if m.p.dbs {
		if m.p.maxPromote == 0 {
			// CheckPromote and the save, at once (slow promotions ran them when they began).
			r, ok := m.promoteDBStart(x, a)
			if !ok {
				return
			}
			x.record = r
		}
		var ok bool
		if rec, peer, ok = m.promoteDBWork(x, a); !ok {
			return
		}
	}
	v := m.view(x)
	seen, voters := v.votes()
	if (m.p.witness && (2*seen <= voters || x.promoteLost)) || v.maxTerm() > a.Term {
		x.record = rec
		x.meta.Record = x.record
		m.logf("%s gives up the promotion to term %d (majority lost meanwhile %v, sees %d)", x.site, a.Term, x.promoteLost, seen)
		return
	}
	if m.p.dbs {
		m.promoteDBMaster(x, a, peer)
		return
	}
	m.promotions++
	x.record = rec
	x.meta.Record = x.record
	x.meta.Released, x.meta.ReleasedTo, x.meta.Claim = 0, "", 0
	x.role, x.meta.Role = RoleMaster, RoleMaster
}

// promoteDBStart is the start of Node.promote with cmd/tandem's CheckPromote (mayPromote): a
// refusal, and the term record saved (recordStore.Save, this site's database). It returns the
// record saved, or false when the promotion ends there.
func (m *model) promoteDBStart(x *modelMember, a Action) (TermRecord, bool) {
	o := m.other(x)
	own := x.record
	if m.peerDB(x) {
		r := o.dbRec
		over := x.takenOver.over(own.Term)
		if PeerSoloLost(x.site, own, over, r) && x.acceptLoss != r.Term {
			m.refusals++
			x.refused = r
			if own.Master == x.site && r.Term >= own.Term {
				// Node.promote: another master's record of this site's own term, or a newer one,
				// shows a split brain if this site committed alone in its term.
				v := m.view(x)
				v.Members = append(v.Members, Member{Meta: Meta{Site: r.Master, Record: r}})
				m.checkSplitBrain(x, v)
			}
			if r.Term > own.Term {
				rec := TermRecord{Term: r.Term, Master: r.Master}
				x.record, x.meta.Record = rec, rec
				if x.meta.Released != 0 && rec.Term > x.meta.Released {
					x.meta.Released, x.meta.ReleasedTo = 0, ""
				}
				m.copyAdopted(x, rec)
				m.adoptions++
				m.logf("%s refused for term %d: adopts %+v from %s's database", x.site, a.Term, rec, o.site)
				return TermRecord{}, false
			}
			m.hold(x, fmt.Sprintf("refused for term %d: %s's database says %s went on alone in term %d", a.Term, o.site, r.Master, r.Term))
			return TermRecord{}, false
		}
	}
	lacking := own.Term != 0 && own.Master == x.site && !own.PeerSynced
	rec := TermRecord{Term: a.Term, Master: x.site, PeerSynced: !lacking}
	known := own.Term
	if own.Master == x.site {
		known = x.takenOver.over(own.Term) // Node.promote: a term of its own knew no more
	}
	x.takenOver = x.takenOver.next(a.Term, max(known, x.acceptLoss), own.Term >= x.takenOver.Term) // kept before the term is
	if !m.writeTerm(x, rec) {
		if r := x.dbRec; x.db && r.Term >= a.Term && r.Master != x.site {
			v := m.view(x)
			v.Members = append(v.Members, Member{Meta: Meta{Site: r.Master, Record: r}})
			m.checkSplitBrain(x, v)
			// Node.promote: refused for another master's record of this term or a newer one
			// (recordStore.Load), the site takes it, and does not stand aside.
			x.record, x.meta.Record = r, r
			if x.meta.Released != 0 && r.Term > x.meta.Released {
				x.meta.Released, x.meta.ReleasedTo = 0, ""
			}
			m.logf("%s adopts %+v from its own database", x.site, r)
			return TermRecord{}, false
		}
		m.hold(x, fmt.Sprintf("term %d not saved", a.Term))
		x.meta.Record = rec
		return TermRecord{}, false
	}
	if x.acceptLoss != 0 {
		// Saved, the term is this site's word past the lost one, whether this promotion ends
		// master or is given up (a later one, the operator's word forgotten by a restart,
		// needs it no more): what it lacks of the other database is given up now.
		for c := range o.commits {
			if !x.commits[c] {
				m.forfeit[c] = true
			}
		}
	}
	return rec, true
}

// promoteDBWork is cmd/tandem's BeforePromote: the term written into the peer database when it
// answers, and the catch-up. It returns the record as the site holds it after (x.record), whether
// the peer database was reached, and false when the promotion ends there.
func (m *model) promoteDBWork(x *modelMember, a Action) (TermRecord, bool, bool) {
	o := m.other(x)
	rec := x.record
	peer := m.peerDB(x)
	synced := false
	if peer {
		if !m.writeTerm(o, TermRecord{Term: a.Term, Master: x.site}) {
			m.hold(x, fmt.Sprintf("%s's database refuses term %d", o.site, a.Term))
			x.meta.Record = rec
			return TermRecord{}, false, false
		}
		for c := range x.commits { // catch-up
			o.commits[c] = true
		}
		synced = true
	}
	rec.PeerSynced = synced
	x.dbRec, x.record = rec, rec
	x.unsyncedSince = 0
	if !synced {
		x.unsyncedSince = a.Term
	}
	return rec, peer, true
}

// promoteDBMaster ends a promotion with the databases: the site is master, and takes control
// over every commit the other site's database holds, which must not lack any but those given
// up by design.
func (m *model) promoteDBMaster(x *modelMember, a Action, peer bool) {
	o := m.other(x)
	lost := 0
	for c := range o.commits {
		if x.commits[c] || m.forfeit[c] {
			continue
		}
		switch {
		case x.acceptLoss != 0:
			m.forfeit[c] = true
		case !peer && !m.acked[c]:
			m.forfeit[c] = true // an unacknowledged solo master lost with its site (DESIGN §3)
		default:
			lost++
		}
	}
	m.promotions++
	x.meta.Record = x.record
	x.meta.Released, x.meta.ReleasedTo, x.meta.Claim = 0, "", 0
	x.role, x.meta.Role = RoleMaster, RoleMaster
	x.holds = 0
	m.logf("%s promotes term %d (synced=%v): %s", x.site, a.Term, x.record.PeerSynced, a.Reason)
	if lost > 0 {
		m.fail("%s took control of term %d lacking %d commits %s's database holds (accept-loss %d, %s database reached %v)",
			x.site, a.Term, lost, o.site, x.acceptLoss, o.site, peer)
	}
}

// clientCommit commits on master x as its shim would: dual while its record says the peer is
// in step, alone once the record saying otherwise was acknowledged (AwaitRecord) or nobody is
// alive to acknowledge it; never on a database that holds a newer term (fencing).
func (m *model) clientCommit(x *modelMember) {
	o := m.other(x)
	if !x.db || x.dbRec.Term != x.record.Term || x.dbRec.Master != x.site {
		return
	}
	m.commit++
	c := m.commit
	if x.record.PeerSynced {
		if !m.peerDB(x) || o.dbRec.Term > x.record.Term {
			return
		}
		x.commits[c], o.commits[c] = true, true
		return
	}
	anyAlive, acked, bySite := false, false, false
	for _, y := range m.members {
		if v := x.views[y.site]; y != x && v != nil && v.alive && v.has {
			anyAlive = true
			acked = acked || v.meta.Record == x.record
			bySite = bySite || (!y.witness && v.meta.Record == x.record)
		}
	}
	if acked || !anyAlive {
		x.wentSolo[x.record.Term] = true // the shim notes it first (commitsAlone)
		if m.soloIn[x.site] == nil {
			m.soloIn[x.site] = map[uint64]bool{}
		}
		m.soloIn[x.site][x.record.Term] = true
		x.commits[c] = true
		m.acked[c] = acked
		if bySite && x.unsyncedSince == x.record.Term {
			m.promotionAcks++
			if m.rng.Intn(4) == 0 {
				// Its whole site is lost right after (sidecar and database): the other site,
				// which acknowledged the record, must not take control without this commit
				// but by an operator's accept-loss — after a restart too, its view of this
				// site gone (the record it adopted is what it holds then).
				x.up, x.role, x.db = false, "", false
				m.logf("site %s lost (sidecar and database) after its acknowledged solo commit %d", x.site, c)
				return
			}
		}
		m.logf("%s commits %d alone (acked %v)", x.site, c, acked)
		if !acked && m.rng.Intn(4) == 0 {
			// Its sidecar dies before anyone heard it went solo (TestUnacknowledgedSoloNotOverridden):
			// the other site knows only its synced word, or none.
			x.up, x.role = false, ""
			m.logf("kill %s", x.site)
		}
	}
}

// soloOrCatchUp flips master x's peer_synced: alone (its database takes the word first), or
// caught up (the peer's database gets what it lacks).
func (m *model) soloOrCatchUp(x *modelMember) {
	o := m.other(x)
	if !x.db || x.dbRec.Term != x.record.Term || x.dbRec.Master != x.site {
		return
	}
	if x.record.PeerSynced {
		x.record.PeerSynced, x.dbRec.PeerSynced = false, false
		x.announced = x.record.Term
	} else {
		if !m.peerDB(x) || o.dbRec.Term > x.record.Term {
			return
		}
		for c := range x.commits {
			o.commits[c] = true
		}
		x.record.PeerSynced, x.dbRec.PeerSynced = true, true
		x.unsyncedSince = 0
	}
	x.meta.Record = x.record
	m.logf("%s peer_synced=%v", x.site, x.record.PeerSynced)
	m.publish(x)
}

// checkSplitBrain is Node.checkSplitBrain: a split brain the view shows (SplitBrain: this
// site's own record of a term says peer_synced = false, and another site's record holds that
// term or a newer one) is noted if this site may have committed alone in it (committedAlone);
// a term found announced only is looked at again every round, a solo commit may land after.
func (m *model) checkSplitBrain(x *modelMember, v View) {
	m.t.Helper()
	if sb := SplitBrain(v); sb != 0 {
		if r := x.meta.Record; r.Term != sb || r.Master != x.site || r.PeerSynced {
			m.fail("%s finds a split brain in term %d, its record is %+v", x.site, sb, r)
		}
		if m.committedAlone(x, sb) {
			m.noteSplitBrain(x, sb, v)
			return
		}
		x.announcedOnly = sb
	}
	if only := x.announcedOnly; only != 0 && x.wentSolo[only] {
		x.announcedOnly = 0
		m.noteSplitBrain(x, only, v)
	}
}

// committedAlone is Node.committedAlone: yes, unless this process recorded the term's
// peer_synced = false and its shim says it never went solo in it. Without the databases the
// model has no shim (Options.WentSolo nil): yes.
func (m *model) committedAlone(x *modelMember, term uint64) bool {
	if !m.p.dbs || x.announced != term {
		return true
	}
	return x.wentSolo[term]
}

// noteSplitBrain is Node.noteSplitBrain: the mark published as Meta.SplitBrain and kept, once
// per term. The mark must be true: this site was master of that term, another master's record
// of the term or a newer one has been published (or read from the other database), and, where
// this process knows (it announced going solo in the term), it committed alone in it.
func (m *model) noteSplitBrain(x *modelMember, sb uint64, v View) {
	m.t.Helper()
	if x.splitMark.Term == sb {
		return
	}
	if !m.termMasters[sb][x.site] {
		m.fail("%s marks a split brain in term %d, which it never published itself master of", x.site, sb)
	}
	other := false
	for term, masters := range m.termMasters {
		for site := range masters {
			other = other || (term >= sb && site != x.site)
		}
	}
	for _, o := range v.Members { // a record read from the other database (a refusal)
		other = other || (o.Record.Term >= sb && o.Record.Master != "" && o.Record.Master != x.site)
	}
	if !other {
		m.fail("%s marks a split brain in term %d, but no other master's record of that term or a newer one was seen", x.site, sb)
	}
	if m.p.dbs && x.announced == sb && !m.soloIn[x.site][sb] {
		m.fail("%s marks a split brain in term %d, which it announced going solo in but never committed alone in", x.site, sb)
	}
	x.splitMark = splitBrainMark{Term: sb}
	x.meta.SplitBrain = sb
	m.splitMarks++
	m.logf("%s split brain in term %d", x.site, sb)
	m.publish(x)
}

// clearSplitBrain is an operator's tandem clear-split-brain on x (Node.ClearSplitBrain).
func (m *model) clearSplitBrain(x *modelMember) {
	if x.meta.SplitBrain == 0 {
		return
	}
	x.splitMark = splitBrainMark{Term: x.meta.SplitBrain, Cleared: true}
	x.meta.SplitBrain = 0
	m.splitClears++
	m.logf("%s split brain of term %d cleared by an operator", x.site, x.splitMark.Term)
	if x.up {
		m.publish(x)
	}
}
