package gossip

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ActionKind is what Decide asks a member to do.
type ActionKind int

// Actions a member can be asked to take.
const (
	None    ActionKind = iota // keep the current role
	Promote                   // become master of Action.Term
	Release                   // give up the master role (handover, unhealthy server, a better claim)
	Fence                     // a master that lost the majority refuses writes
	Unfence                   // become backup: a fenced member that regained the majority, or a starting member
	Claim                     // publish the intent to take Action.Term and let it settle before Promote
)

func (k ActionKind) String() string {
	switch k {
	case None:
		return "none"
	case Promote:
		return "promote"
	case Release:
		return "release"
	case Fence:
		return "fence"
	case Unfence:
		return "unfence"
	case Claim:
		return "claim"
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Action is the outcome of Decide.
type Action struct {
	Kind   ActionKind
	Term   uint64 // Promote: the new term
	To     string // Release: the site the role is handed to ("" = whoever qualifies)
	Reason string // why, in words for the log and status
	// Handover, of a Release, says it is planned (a switchover, a failback, a stop that finds
	// no failure, Node.stopRelease): the connections made to the server before it stay while
	// its drain lasts, for the requests being served (Meta.DrainKeeps). A failure's release (an
	// unhealthy server, an unreachable database, a stronger or newer master) has them cut at
	// once.
	Handover bool
}

// Member is one member as seen by the member deciding.
type Member struct {
	Meta
	// Alive says the member is up as far as the decider knows: memberlist
	// holds it alive (and, without a witness, direct probes reach it).
	Alive bool
	// Since is when Alive last changed.
	Since time.Time
	// Unreachable says the decider's own direct probes to it fail. With a
	// witness memberlist may still hold it alive through the witness (a cut
	// link, not a dead member), so it keeps blocking a takeover, but it no
	// longer counts towards the decider's majority.
	Unreachable bool
	// ReadySince is since when the member has qualified for the master role
	// without a break (see Stamp); zero when it does not or is unknown.
	ReadySince time.Time
}

// View is everything one member knows when it decides.
type View struct {
	Self              string
	Now               time.Time
	Members           []Member // every known member including self (witness members too)
	WitnessConfigured bool     // a witness is part of the cluster: the majority rule applies
	Voters            int      // configured voters: 2 sites (1 without peers) or, with a witness, 3
	FailbackDelay     time.Duration
	FenceDelay        time.Duration
	ManualFailback    bool
	Switchover        string // a requested handover target site ("" none); set on the master
	Force             bool   // tandem promote -force: ignore the cold-start wait
	// AcceptLoss is an operator's word (tandem promote -accept-loss T) that the master of term
	// T is lost for good and what it committed that self's database lacks may be lost with it:
	// while T is the newest term and its master is not alive, self counts as current (rule 2).
	// 0: none.
	AcceptLoss uint64
	// Duplicate is the address of another live process that claims self's site name (""
	// none; see Node's duplicate): gossip ignores one of the two, and the other site may see
	// only the other one — master, maybe. Self, unless master, takes no role while it holds.
	Duplicate string
	// Settle, when positive, makes a promotion two-step: the candidate
	// first publishes Claim = T and promotes only after its claim has been
	// out for Settle without a better claim for T showing up. With Settle
	// longer than twice the gossip delay between members that see each
	// other, two of them can never both take the same term on stale views.
	Settle    time.Duration
	ClaimedAt time.Time // when self published its current Claim
	// MajoritySince is when the decider last came to see a majority of the voters (witness
	// configured; zero: not known). Cut off before that, it could not tell who was alive, so
	// rule 4 counts a lost member's absence from then at the earliest: a site that rejoins the
	// witness after a partition must not take over from a master it does not see yet.
	MajoritySince time.Time
}

// Decide applies the role rules of DESIGN §3 to one member's view and says
// what that member must do. It is a pure function: every member runs it on
// its own view.
//
// A site may become master only when all hold (DESIGN §3):
//  1. it is alive, its server is healthy and its database reachable;
//  2. it is current: its term record has the highest term anyone reported,
//     and it was that term's master or that term's master reported
//     peer_synced = true;
//  3. with a witness configured, it sees a majority of the voters;
//  4. no other member claims master, or that member is dead (its last word
//     was "master") for at least FenceDelay, or it published that it
//     released its term.
//
// Among sites that qualify the best priority (lowest number) wins, ties
// broken by name; a better site that is not current waits. A site that
// started cold and sees nobody else waits too (unless Force, or it is the
// only voter). Witnesses never become master.
func Decide(v View) Action {
	self, ok := v.member(v.Self)
	if !ok {
		return Action{Reason: fmt.Sprintf("%q is not in its own view", v.Self)}
	}
	if self.Witness {
		return Action{Reason: "witnesses only vote"}
	}
	seen, voters := v.votes()
	majority := !v.WitnessConfigured || 2*seen > voters
	noMajority := fmt.Sprintf("sees %d of %d voters, no majority", seen, voters)
	if stray := v.strayMembers(); stray != "" {
		noMajority += ": " + stray
	}

	switch self.Role {
	case RoleMaster:
		return v.decideMaster(self, majority, noMajority)
	case RoleFenced:
		// A fenced member that regains the majority becomes backup; it may
		// be promoted again only through the rules below, on a later round.
		if majority {
			return Action{Kind: Unfence, Reason: "majority regained"}
		}
		return Action{Reason: noMajority}
	}

	// A starting member becomes backup as soon as it knows it is not
	// waiting for a peer; until then it stays "starting".
	wait := func(reason string) Action {
		if self.Role == RoleStarting && !v.coldWait(self) {
			return Action{Kind: Unfence, Reason: reason}
		}
		return Action{Reason: reason}
	}
	if v.Duplicate != "" {
		return Action{Reason: fmt.Sprintf("another process answers as site %s at %s: this one takes no role while it does — stop one of them", self.Site, v.Duplicate)}
	}
	if v.coldWait(self) {
		return Action{Reason: coldWaitReason}
	}
	// Rule 3.
	if !majority {
		return wait(noMajority)
	}
	// Rules 1 and 2.
	if ok, why := v.ready(self); !ok {
		return wait(why)
	}
	// Rule 4.
	if why := v.blockedBy(self.Site); why != "" {
		return wait(why)
	}
	if best, _ := v.best(); best.Site != self.Site {
		if v.excluded(self) {
			return wait(fmt.Sprintf("released term %d to %s", self.Released, cmp.Or(self.ReleasedTo, "another site")))
		}
		if better(self, best) && self.SplitBrain != 0 {
			return wait(fmt.Sprintf("site %s, master of term %d, takes control back: failback to this site stopped, it committed alone in term %d while another site was master (split brain)",
				best.Site, best.Record.Term, self.SplitBrain))
		}
		if better(self, best) && best.ManualFailback {
			return wait(fmt.Sprintf("site %s, master of term %d, takes control back: its failback is manual (tandem switchover hands it over)", best.Site, best.Record.Term))
		}
		if better(self, best) {
			return wait(fmt.Sprintf("site %s, master of term %d, takes control back: this site has not qualified for failback_delay %s yet", best.Site, best.Record.Term, v.FailbackDelay))
		}
		return wait(fmt.Sprintf("site %s is preferred", best.Site))
	}
	top := v.maxTerm()
	term := top + 1
	if self.Released != 0 && self.Released == self.Record.Term && self.Record.Term == top {
		// Releasing term T granted T+1 to the others: a target that has
		// taken it may not be visible yet, so the releaser skips it and
		// two masters can never share a term.
		term++
	}
	if !v.WitnessConfigured {
		// Another site claims a newer term than this one would take (a releaser skips the term
		// it released): its claim may have settled and its promotion's work be running, the
		// term not published yet. Taking the older term beside it made two masters until this
		// site saw the newer one. With a witness the votes decide (claim, blockedBy).
		for _, m := range v.Members {
			if m.Site != self.Site && !m.Witness && m.Alive && m.Claim > term {
				return wait(fmt.Sprintf("site %s claims term %d, newer than term %d: its promotion may be under way", m.Site, m.Claim, term))
			}
		}
		// A site lost while it claimed this term or a later one (the link cut, say) may have
		// taken it out of sight: taking the same term beside it made two masters of one term,
		// which the databases' term fencing (it refuses only older terms) cannot tell apart and
		// the split-brain check finds only once both records meet. Take the term past its claim
		// (TestDecideSkipsLostSiteClaim).
		for _, m := range v.Members {
			if m.Site != self.Site && !m.Witness && !m.Alive && m.Claim >= term {
				term = m.Claim + 1
			}
		}
	}
	if v.Settle <= 0 {
		return Action{Kind: Promote, Term: term, Reason: v.promoteReason(self)}
	}
	term = max(term, self.Claim)
	handover := v.handedOver(self, term)
	if handover && !v.WitnessConfigured {
		return Action{Kind: Promote, Term: term, Reason: v.promoteReason(self)}
	}
	return v.claim(self, term, handover)
}

// handedOver says the term before term was released by its holder to self (or
// to any site) and no other site claims term or later: then self may take
// term without letting a claim settle. Settle makes two claimants of one
// term see each other; here the only other site is the releaser, which
// skips the term it released the role for (see Decide), and should it
// restart and claim term anyway, its own claim settles for longer than
// self's promotion takes to reach it, and rule 4 then stops it. With a
// witness the votes still decide.
func (v View) handedOver(self Member, term uint64) bool {
	top := v.maxTerm()
	if term != top+1 {
		return false
	}
	handed := false
	for _, m := range v.Members {
		if m.Site == self.Site || m.Witness {
			continue
		}
		if m.Alive && m.Claim >= term {
			return false
		}
		if m.Alive && released(m) && m.Released == top && m.Record.Master == m.Site && (m.ReleasedTo == "" || m.ReleasedTo == self.Site) {
			handed = true
		}
	}
	return handed
}

// claim runs the two-step promotion (View.Settle): claim the term, let the
// claim settle, and with a witness win a majority of votes for it.
func (v View) claim(self Member, term uint64, handover bool) Action {
	// Between two claims for one term the better site wins, but only once
	// the other has withdrawn: it may see us late, or not at all.
	rival := ""
	for _, m := range v.Members {
		if m.Site == self.Site || !m.Alive || m.Witness || m.Claim != term {
			continue
		}
		if better(m, self) {
			return Action{Reason: fmt.Sprintf("site %s claims term %d", m.Site, term)}
		}
		rival = m.Site
	}
	claim := Action{Kind: Claim, Term: term, Reason: "claim settling: " + v.promoteReason(self)}
	if self.Claim != term || (!handover && v.Now.Sub(v.ClaimedAt) < v.Settle) {
		return claim
	}
	if rival != "" {
		claim.Reason = fmt.Sprintf("waiting for site %s to withdraw its claim of term %d", rival, term)
		return claim
	}
	if !v.WitnessConfigured {
		return Action{Kind: Promote, Term: term, Reason: v.promoteReason(self)}
	}
	// With a witness two sites may each see a majority through the witness
	// without seeing each other; every voter votes once per term, so only
	// one of them can collect a majority for the term.
	votes, spent := 0, uint64(0)
	for _, m := range v.Members {
		if m.Site != self.Site && !m.Alive {
			continue
		}
		switch {
		case m.Vote == term && m.VoteFor == self.Site:
			votes++
		case m.Vote >= term:
			spent = max(spent, m.Vote) // this voter will not vote for us in term
		}
	}
	_, voters := v.votes()
	if 2*votes > voters {
		return Action{Kind: Promote, Term: term, Reason: fmt.Sprintf("%s; %d of %d votes", v.promoteReason(self), votes, voters)}
	}
	if spent != 0 {
		// Split vote, or voters already spent on a later term: claim past
		// it; voters vote anew for a newer term.
		return Action{Kind: Claim, Term: spent + 1, Reason: fmt.Sprintf("votes for term %d went elsewhere", spent)}
	}
	claim.Reason = fmt.Sprintf("claim of term %d waits for votes: %d of %d", term, votes, voters)
	return claim
}

// Vote returns the vote self should publish (term, site) when a witness is
// configured: for the newest term that some alive member claims beyond the
// newest term anyone holds, the best claimant. A vote is never changed
// within its term (the node keeps it in data_dir across restarts, VoteFile),
// and a master votes only for itself, as a member that sees another alive
// master that has not released, or a site taking a term whose votes it won,
// votes only for it. ready is false while the member has not
// been up long enough to know the cluster (and a master cut off before this
// start to have fenced itself); it then keeps its vote.
func Vote(v View, ready bool) (uint64, string) {
	self, ok := v.member(v.Self)
	if !ok || !v.WitnessConfigured || !ready {
		return self.Vote, self.VoteFor
	}
	top := v.maxTerm()
	// A master this voter sees alive, which has not released its term, or a site it sees alive
	// taking a newer term whose votes it won (its promotion's work runs): a claim of another
	// site's would take over from it (rule 4, blockedBy), which the claimant's view may lack (a
	// member back moments ago, seen late), and the vote would make two masters. The vote waits
	// for its release or its loss, as a master's own vote does.
	master := ""
	for _, m := range v.Members {
		if m.Site != self.Site && m.Alive && !m.Witness && (m.Role == RoleMaster && !released(m) || m.Claim > top && v.wonVotes(m)) {
			master = m.Site
		}
	}
	var term uint64
	var best Member
	for _, m := range v.Members {
		if (m.Site != self.Site && !m.Alive) || m.Witness || m.Claim <= top || m.Claim < term {
			continue
		}
		if self.Role == RoleMaster && m.Site != self.Site || master != "" && m.Site != master {
			continue
		}
		if m.Claim > term || better(m, best) {
			term, best = m.Claim, m
		}
	}
	if term == 0 || self.Vote >= term {
		return self.Vote, self.VoteFor
	}
	return term, best.Site
}

func (v View) promoteReason(self Member) string {
	for _, m := range v.Members {
		if m.Site == self.Site || m.Witness {
			continue
		}
		if released(m) && m.Released == v.maxTerm() {
			return fmt.Sprintf("site %s released term %d", m.Site, m.Released)
		}
		if m.Role == RoleMaster && !m.Alive {
			return fmt.Sprintf("master %s lost for %s", m.Site, v.Now.Sub(m.Since).Round(time.Millisecond))
		}
	}
	if v.maxTerm() == 0 {
		return "first master of the cluster"
	}
	return "best qualifying site"
}

func (v View) decideMaster(self Member, majority bool, noMajority string) Action {
	// DESIGN §3 split brain: a master that loses the majority fences itself.
	if !majority {
		return Action{Kind: Fence, Reason: noMajority}
	}
	// DESIGN §3 failover: a failing server gives up the role at once.
	if !self.ServerHealthy {
		return Action{Kind: Release, Reason: "server unhealthy"}
	}
	if !self.DBReachable {
		return Action{Kind: Release, Reason: "database unreachable"}
	}
	// Two masters (after a partition without witness, or stale views): the
	// weaker claim steps down.
	for _, m := range v.Members {
		if m.Site == self.Site || m.Witness || !m.Alive || m.Role != RoleMaster || released(m) {
			continue
		}
		if strongerClaim(m, self) {
			return Action{Kind: Release, To: m.Site,
				Reason: fmt.Sprintf("site %s is master of term %d (own term %d)", m.Site, m.Record.Term, self.Record.Term)}
		}
	}
	// Someone holds a newer term than this master's (it was master in
	// between, out of sight): a database holds that term and would refuse
	// this master's commits (DESIGN §3 fencing), so step down and let the
	// current site start a newer term.
	if top := v.maxTerm(); top > self.Record.Term {
		return Action{Kind: Release, Reason: fmt.Sprintf("term %d exists, newer than own term %d", top, self.Record.Term)}
	}
	if v.Switchover != "" && v.Switchover != self.Site {
		t, ok := v.member(v.Switchover)
		if !ok {
			return Action{Reason: fmt.Sprintf("switchover to unknown site %s", v.Switchover)}
		}
		if ok, why := v.ready(t); !ok {
			return Action{Reason: fmt.Sprintf("switchover to %s waits: %s", t.Site, why)}
		}
		return Action{Kind: Release, To: t.Site, Reason: fmt.Sprintf("switchover to %s", t.Site), Handover: true}
	}
	if v.ManualFailback {
		return Action{}
	}
	// Failback: a better site that has qualified without a break for
	// FailbackDelay gets the role back.
	best, ok := v.bestReady()
	if !ok || best.Site == self.Site || !better(best, self) {
		return Action{}
	}
	if self.SplitBrain != 0 && self.SplitBrain == self.Record.Term {
		// DESIGN §3: this master committed alone in its term, which the better site took too
		// (cut off from each other without a witness, TestSplitBrainSameTermStopsFailback).
		// That site's record of the term is its own, so rule 2 does not stop it; handing
		// control to it would bury what this site committed alone. An operator decides.
		return Action{Reason: fmt.Sprintf("failback to %s stopped: this site committed alone in term %d, which %s took too (split brain); "+
			"compare the databases (tandem verify), then clear it here (tandem clear-split-brain) or hand over by tandem switchover", best.Site, self.SplitBrain, best.Site)}
	}
	if best.SplitBrain != 0 {
		// DESIGN §3: its database holds commits of its own from term
		// best.SplitBrain that this site's lacks; handing control back would
		// bury them. An operator compares the databases and decides.
		return Action{Reason: fmt.Sprintf("failback to %s stopped: it committed alone in term %d while another site was master (split brain); "+
			"compare the databases (tandem verify), then clear it there (tandem clear-split-brain) or hand over by tandem switchover", best.Site, best.SplitBrain)}
	}
	if best.ReadySince.IsZero() {
		return Action{Reason: fmt.Sprintf("failback to %s: waiting for it to stay ready", best.Site)}
	}
	if ready := v.Now.Sub(best.ReadySince); ready < v.FailbackDelay {
		return Action{Reason: fmt.Sprintf("failback to %s in %s", best.Site, (v.FailbackDelay - ready).Round(time.Millisecond))}
	}
	return Action{Kind: Release, To: best.Site, Reason: fmt.Sprintf("failback to %s", best.Site), Handover: true}
}

// PeerSoloLost reports whether site, holding record own, would lose commits a client saw by
// taking a new term over peer, the term record the other site's database holds (read before the
// promotion, cmd/tandem's CheckPromote): that its master went on alone (peer_synced = false) in
// a term this site's database lacks the commits of (DESIGN §3 rule 2). over is the term of the
// record this site held when it took own.Term, when own is its own (that record's own over, when
// it was this site's too), or the newer term whose loss an operator had accepted then
// (Node.TookOver; 0: not known).
//
// A term of the peer's as new as own, or newer, is one this site never took over. An older one
// was taken over when this site took own.Term knowing of it (peer.Term <= over): caught up, its
// loss accepted by an operator (tandem promote -accept-loss), or its master's database down
// then (an unacknowledged solo master lost with its site). An older term this site did not know
// of then was taken after own.Term, by a site that did not know of own.Term (the gossip cut, this
// site's database down): both sites went on alone, and the peer's commits of that term are in
// its database only (a split brain, for an operator: TestPeerSoloLost). The caller lets an
// operator's accept-loss of peer.Term through.
func PeerSoloLost(site string, own TermRecord, over uint64, peer TermRecord) bool {
	if peer.PeerSynced || peer.Master == "" || peer.Master == site {
		return false
	}
	if peer.Term >= own.Term {
		return true
	}
	return own.Master == site && peer.Term > over
}

// SplitBrain returns the term in which the deciding site committed alone while another site
// took a newer term or the same one (DESIGN §3 split brain), or 0. Its term record says it was master of term T
// with peer_synced = false: it committed what the other database lacks. A site goes solo only
// after the backup (or the witness) acknowledged that record, and a backup that knows it never
// takes a newer term (rule 2), so a newer term seen now was taken by a site that did not know:
// both sites wrote alone in the same period. So does a record of T itself naming another
// master: cut off from each other without a witness, both sites took T, the other without
// this site's commits (TestSplitBrainSameTerm); unnoted, it stopped no failback to this site
// and status never said so. Witness members cannot be in split brain.
func SplitBrain(v View) uint64 {
	self, ok := v.member(v.Self)
	if !ok || self.Witness {
		return 0
	}
	r := self.Record
	if r.Term == 0 || r.Master != self.Site || r.PeerSynced {
		return 0
	}
	for _, m := range v.Members {
		if m.Site == self.Site || m.Record.Master == self.Site || m.Record.Master == "" {
			continue
		}
		if m.Record.Term >= r.Term {
			return r.Term
		}
	}
	return 0
}

// member returns the member named site.
func (v View) member(site string) (Member, bool) {
	for _, m := range v.Members {
		if m.Site == site {
			return m, true
		}
	}
	return Member{}, false
}

// votes counts the voters the decider sees (itself included) and the
// number of voters: the configured ones, or every member it knows of (alive or
// not) when it knows of more — a second witness or a third site joined by
// mistake votes too, and counted against the configured number it let both
// sides of a partition see a majority ({site, witness} and {site, second
// witness}: two masters).
func (v View) votes() (seen, voters int) {
	for _, m := range v.Members {
		if m.Site == v.Self || (m.Alive && !m.Unreachable) {
			seen++
		}
	}
	return seen, max(v.Voters, v.known())
}

// known counts the members the decider knows of, less those gone after saying they were
// leaving (a witness replaced by one of another name, a stray member stopped): they vote no
// more, and counted forever they kept a normal cluster from a majority once a site was lost.
func (v View) known() int {
	n := 0
	for _, m := range v.Members {
		if m.Site == v.Self || !m.Leaving || m.Alive {
			n++
		}
	}
	return n
}

// strayMembers says, when the view holds more members than the configured voters, who they
// are: the sites and witnesses it knows of ("" when there are no more).
func (v View) strayMembers() string {
	if v.Voters <= 0 || v.known() <= v.Voters {
		return ""
	}
	var sites, witnesses []string
	for _, m := range v.Members {
		if m.Site != v.Self && m.Leaving && !m.Alive {
			continue
		}
		if m.Witness {
			witnesses = append(witnesses, m.Site)
		} else {
			sites = append(sites, m.Site)
		}
	}
	return fmt.Sprintf("%d members known but %d voters configured (sites %s; witnesses %s): only one witness and two sites may "+
		"join; a majority is counted among all of them until the stray one is stopped (or, killed, until this member restarts)",
		v.known(), v.Voters, strings.Join(sites, ", "), strings.Join(witnesses, ", "))
}

// coldWaitReason is Decide's reason while a site waits at cold start.
const coldWaitReason = "cold start: waiting to see a peer that knows the current term (tandem promote -force overrides)"

// coldWait reports whether self must wait because it started cold and sees
// no other member that could tell it the current term (DESIGN §3).
func (v View) coldWait(self Member) bool {
	if !self.Cold || v.Force || v.Voters == 1 {
		return false
	}
	for _, m := range v.Members {
		if m.Site != self.Site && m.Alive {
			return false
		}
	}
	return true
}

// maxTerm is the highest term anyone reported (members and witness).
func (v View) maxTerm() uint64 {
	var t uint64
	for _, m := range v.Members {
		t = max(t, m.Record.Term)
	}
	return t
}

// synced says whether the master of term reported peer_synced = true. The
// alive master's own report is the latest word; without it every copy of that
// record must say so. A lost master's last report may be stale: it may have
// gone solo since, acknowledged by the witness alone (DESIGN §3 "going solo is
// announced first"), so the witness's copy counts then.
func (v View) synced(term uint64, master string) bool {
	if m, ok := v.member(master); ok && m.Alive && m.Record.Term == term && m.Record.Master == master {
		return m.Record.PeerSynced
	}
	// The master's latest word that anyone holds (Seq); copies whose order is not known
	// (equal Seq) must all say synced.
	found, synced, seq := false, false, uint64(0)
	for _, m := range v.Members {
		r := m.Record
		if r.Term != term || r.Master != master {
			continue
		}
		switch {
		case !found || r.Seq > seq:
			found, synced, seq = true, r.PeerSynced, r.Seq
		case r.Seq == seq:
			synced = synced && r.PeerSynced
		}
	}
	return found && synced
}

// current applies rule 2 to m.
func (v View) current(m Member) (bool, string) {
	top := v.maxTerm()
	if top == 0 {
		return true, "" // no term yet: nothing to lack
	}
	if m.Record.Term < top {
		if v.lossAccepted(m, top) {
			return true, ""
		}
		return false, fmt.Sprintf("not current: holds term %d, term %d exists", m.Record.Term, top) + v.lossHint(m, top)
	}
	if m.Record.Master == m.Site {
		return true, ""
	}
	if !v.synced(top, m.Record.Master) && !v.lossAccepted(m, top) {
		return false, fmt.Sprintf("not current: master %s of term %d has not reported peer_synced", m.Record.Master, top) + v.lossHint(m, top)
	}
	return true, ""
}

// lossHint, for a self that is not current while no member names an alive master of term top,
// names the operator's way out should that master be lost for good (AcceptLoss).
func (v View) lossHint(m Member, top uint64) string {
	if m.Site != v.Self || v.masterAlive(top, m.Site) {
		return ""
	}
	return fmt.Sprintf(" (its master is away; if that site is lost for good, tandem promote -accept-loss %d takes control here and loses what it committed alone)", top)
}

// lossAccepted says the operator accepted, on m itself, losing what the master of term top
// committed that m's database lacks (View.AcceptLoss), and no member that holds a record of
// top names an alive master: a master that is back catches m up instead. The other site's
// view of m never counts it: only m's own decision takes the word.
func (v View) lossAccepted(m Member, top uint64) bool {
	return m.Site == v.Self && v.AcceptLoss != 0 && v.AcceptLoss == top && !v.masterAlive(top, m.Site)
}

// masterAlive says a member that holds a record of term names as its master a site other than
// self that is alive in the view.
func (v View) masterAlive(term uint64, self string) bool {
	for _, o := range v.Members {
		if o.Record.Term != term || o.Record.Master == self {
			continue
		}
		if master, ok := v.member(o.Record.Master); ok && master.Alive {
			return true
		}
	}
	return false
}

// ready applies rules 1 and 2 to site m as far as the decider can tell.
func (v View) ready(m Member) (bool, string) {
	switch {
	case m.Witness:
		return false, "witness"
	case m.Site != v.Self && !m.Alive:
		return false, "not alive"
	case m.Site != v.Self && v.WitnessConfigured && m.Role == RoleFenced && m.Unreachable:
		// It published that it sees no majority (rule 3), and the decider cannot reach it
		// either: it does not qualify, and must not hold back a site that does for as long
		// as memberlist keeps it alive through the witness (a fenced site the decider
		// reaches sees the decider too, and regains its majority at its next round).
		return false, "fenced: sees no majority"
	case !m.ServerHealthy:
		return false, "server unhealthy"
	case !m.DBReachable:
		return false, "database unreachable"
	}
	return v.current(m)
}

// released says m published that it released the term it holds.
func released(m Member) bool {
	return m.Released != 0 && m.Released == m.Record.Term
}

// blockedBy applies rule 4 for candidate site: it names the member that
// may still be master, or returns "". A site lost from view may have
// become master after its last word reached us (stale views), so any lost
// site blocks for FenceDelay unless its last word released the newest term.
func (v View) blockedBy(site string) string {
	for _, m := range v.Members {
		if m.Site == site || m.Witness {
			continue
		}
		if m.Alive && v.WitnessConfigured && m.Claim > v.maxTerm() && v.wonVotes(m) {
			// Its promotion's work runs (it publishes master once that is done): a claim
			// of a newer term than its own would win the voters anew, and both would
			// promote. It may still publish that it released the newest term held (it
			// claims again after a release of its own), which counts for nothing now.
			return fmt.Sprintf("site %s won the votes for term %d and is taking it", m.Site, m.Claim)
		}
		if released(m) && m.Released == v.maxTerm() {
			continue
		}
		if m.Alive {
			if m.Role == RoleMaster && !released(m) {
				return fmt.Sprintf("site %s is master (term %d)", m.Site, m.Record.Term)
			}
			continue
		}
		if gone := v.Now.Sub(m.Since); gone < v.FenceDelay {
			return fmt.Sprintf("site %s (last seen as %s) lost %s ago, fence_delay %s", m.Site, m.Role, gone.Round(time.Millisecond), v.FenceDelay)
		}
		if back := v.Now.Sub(v.MajoritySince); v.WitnessConfigured && back < v.FenceDelay {
			return fmt.Sprintf("site %s (last seen as %s) not seen since this site regained the majority %s ago, fence_delay %s",
				m.Site, m.Role, back.Round(time.Millisecond), v.FenceDelay)
		}
	}
	return ""
}

// wonVotes says a majority of the voters voted for m in the term it claims.
func (v View) wonVotes(m Member) bool {
	votes := 0
	for _, o := range v.Members {
		if (o.Site == v.Self || o.Alive) && o.Vote == m.Claim && o.VoteFor == m.Site {
			votes++
		}
	}
	_, voters := v.votes()
	return 2*votes > voters
}

// excluded says m released the newest term and a site it released to
// qualifies: m must leave the role to it.
//
// Not when another site is master of that very term (two sites took it alone, cut off from
// each other without a witness: DESIGN §3 split brain): the release hands nothing over, as that
// site holds the term already and takes no newer one for it, and kept m out of the role for
// good — failback to a better m stopped, with no word of why.
func (v View) excluded(m Member) bool {
	if !released(m) || m.Record.Term != v.maxTerm() {
		return false
	}
	for _, o := range v.Members {
		if o.Site != m.Site && !o.Witness && o.Alive && o.Role == RoleMaster && !released(o) &&
			o.Record.Term == m.Record.Term && o.Record.Master == o.Site {
			return false
		}
	}
	for _, o := range v.Members {
		if o.Site == m.Site || (m.ReleasedTo != "" && m.ReleasedTo != o.Site) {
			continue
		}
		if ok, _ := v.ready(o); ok {
			return true
		}
	}
	return false
}

// best is bestReady, but a site that holds the newest term keeps the role from a better one
// that has not qualified for failback_delay, or for good with failback = "manual" or while
// the better one is in split brain (see there).
func (v View) best() (Member, bool) {
	b, found := v.bestReady()
	// DESIGN §3: control goes back to a better site only after it has qualified for
	// failback_delay, or with failback = "manual" only by tandem switchover. The master of the
	// newest term that lost the role for a moment (fenced by a short cut, say) and did not
	// release it qualifies again: until then it, not the better site, takes control back. Its
	// own word says whether its failback is manual, so every view agrees on that; so does the
	// better site's on a split brain, which stops failback to it (decideMaster) here too.
	if h, ok := v.holder(); found && ok && h.Site != b.Site {
		if h.ManualFailback || b.SplitBrain != 0 || b.ReadySince.IsZero() || v.Now.Sub(b.ReadySince) < v.FailbackDelay {
			return h, true
		}
	}
	return b, found
}

// bestReady returns the best site among those that qualify (rules 1 and 2),
// leaving out a site that released the newest term to another that
// qualifies. When every qualifying site released (two masters of one
// split brain both stepped down), the best of them.
func (v View) bestReady() (Member, bool) {
	var b, r Member
	found, foundReleased := false, false
	for _, m := range v.Members {
		if ok, _ := v.ready(m); !ok {
			continue
		}
		if v.excluded(m) {
			if !foundReleased || better(m, r) {
				r, foundReleased = m, true
			}
			continue
		}
		if !found || better(m, b) {
			b, found = m, true
		}
	}
	if !found && foundReleased {
		return r, true
	}
	return b, found
}

// holder returns the site that was master of the newest term, did not release it and
// qualifies (rules 1 and 2).
func (v View) holder() (Member, bool) {
	top := v.maxTerm()
	for _, m := range v.Members {
		if top == 0 || m.Witness || m.Record.Term != top || m.Record.Master != m.Site || released(m) {
			continue
		}
		if ok, _ := v.ready(m); ok {
			return m, true
		}
	}
	return Member{}, false
}

// better orders sites by priority, then name.
func better(a, b Member) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	return a.Site < b.Site
}

// strongerClaim orders two masters: the higher term wins, then the better site.
func strongerClaim(a, b Member) bool {
	if a.Record.Term != b.Record.Term {
		return a.Record.Term > b.Record.Term
	}
	return better(a, b)
}

// Stamp fills in Members[i].ReadySince from what earlier views showed:
// since remembers, per site, when it started to qualify without a break.
// The caller keeps since between views (one map per deciding member).
func (v *View) Stamp(since map[string]time.Time) {
	for i := range v.Members {
		m := &v.Members[i]
		if ok, _ := v.ready(*m); !ok {
			delete(since, m.Site)
			m.ReadySince = time.Time{}
			continue
		}
		t, had := since[m.Site]
		if !had {
			t = v.Now
			since[m.Site] = t
		}
		m.ReadySince = t
	}
}

// Adopt returns the term record a member should hold after seeing the
// others (DESIGN §3): a site takes a newer record from an alive member that is (or
// was) its master and reports peer_synced = true (and follows that master's peer_synced for the
// term it already holds), so the backup knows the newest term after a
// restart; a site takes back a newer record naming itself master from any alive member (its
// own word, lost); a witness keeps the newest record anyone reported. A master
// never adopts.
func Adopt(self Member, others []Member) (TermRecord, bool) {
	own := self.Record
	if self.Role == RoleMaster {
		return own, false
	}
	rec, changed := own, false
	witness := slices.ContainsFunc(others, func(m Member) bool { return m.Witness })
	for _, m := range others {
		if m.Site == self.Site {
			continue
		}
		r := m.Record
		fromMaster := r.Master == m.Site
		sameTerm := r.Term == rec.Term && r.Master == rec.Master
		if self.Witness {
			if r.Term > rec.Term || (sameTerm && (r.Seq > rec.Seq || fromMaster && laterWord(r, rec))) {
				rec, changed = r, true
			}
			continue
		}
		// A later word of this term's master (Seq), from whoever passed it on: the master may
		// be gone before this site heard it directly.
		if m.Alive && sameTerm && r.Seq > rec.Seq {
			rec, changed = r, true
			continue
		}
		// The witness keeps the newest record its term's master reported
		// (DESIGN §3): a synced record from it says that master reported
		// peer_synced, even when the master left before this site heard
		// from it directly (a quick graceful stop).
		if m.Alive && m.Witness && r.Term > rec.Term && r.PeerSynced {
			rec, changed = r, true
			continue
		}
		// A newer record naming this site its master is its own word that it no longer
		// holds: a promotion whose Save failed publishes its term all the same (its database
		// may hold it), and a restart lost it. Without it back this site is not current, and
		// waits for good if the other site cannot serve.
		if m.Alive && r.Master == self.Site && r.Term > rec.Term {
			rec, changed = r, true
			continue
		}
		// Without a witness, a newer synced record from its master that this site's probes
		// no longer reach (one-way reachability, or a master lost right after it published
		// the term): that master could go solo after it only with this site's ack, which this
		// site, holding an older term, cannot have given, so its last word stands (DESIGN §3
		// rule 2). Not adopted, this site would stay not current for good. With a witness,
		// the witness may hold a later word (synced).
		if !m.Alive && !witness && fromMaster && r.Term > rec.Term && r.PeerSynced {
			rec, changed = r, true
			continue
		}
		if !m.Alive || !fromMaster {
			continue
		}
		// A newer synced record from its own master, whatever that member's role now: a
		// master that stepped down or could not finish its promotion (its database holds the
		// term) committed nothing alone after saying synced, since going solo is announced.
		// A newer unsynced one from a member that is master of it: a site promoted while the
		// peer database was not in step goes solo once this site (or the witness) holds that
		// word (DESIGN §3 "going solo is announced first"; cmd/tandem's peerDown), which this
		// site could otherwise never acknowledge — and without it, that master lost, this
		// site's older record made it current over what that master committed alone. Not from
		// one whose promotion failed (not master): it committed nothing alone in that term.
		if (r.Term > rec.Term && (r.PeerSynced || m.Role == RoleMaster)) || (m.Role == RoleMaster && sameTerm && laterWord(r, rec)) {
			rec, changed = r, true
		}
	}
	return rec, changed && rec != own
}
