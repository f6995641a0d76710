package gossip

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// mem builds a healthy, alive backup site member; options adjust it.
func mem(name string, prio int, opts ...func(*Member)) Member {
	m := Member{
		Meta:  Meta{Site: name, Priority: prio, ServerHealthy: true, DBReachable: true, Role: RoleBackup},
		Alive: true, Since: t0,
	}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func wit(name string, opts ...func(*Member)) Member {
	m := Member{Meta: Meta{Site: name, Witness: true, Role: RoleWitness}, Alive: true, Since: t0}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func role(r Role) func(*Member) { return func(m *Member) { m.Role = r } }
func record(t uint64, master string, synced bool) func(*Member) {
	return func(m *Member) { m.Record = TermRecord{Term: t, Master: master, PeerSynced: synced} }
}
func dead(since time.Time) func(*Member) { return func(m *Member) { m.Alive, m.Since = false, since } }
func unhealthy(m *Member)                { m.ServerHealthy = false }
func noDB(m *Member)                     { m.DBReachable = false }
func cold(m *Member)                     { m.Cold = true }
func claim(t uint64) func(*Member)       { return func(m *Member) { m.Claim = t } }
func votes(t uint64, site string) func(*Member) {
	return func(m *Member) { m.Vote, m.VoteFor = t, site }
}
func unreachable(m *Member) { m.Unreachable = true }
func readySince(t time.Time) func(*Member) {
	return func(m *Member) { m.ReadySince = t }
}
func releasedTerm(t uint64, to string) func(*Member) {
	return func(m *Member) { m.Released, m.ReleasedTo = t, to }
}

// view is self's view at t0+1h of members; the witness rule applies when a
// witness member is listed.
func view(self string, ms ...Member) View {
	v := View{Self: self, Now: t0.Add(time.Hour), Members: ms, FailbackDelay: 30 * time.Second, Voters: 2}
	for _, m := range ms {
		if m.Witness {
			v.WitnessConfigured = true
			v.Voters = 3
		}
	}
	return v
}

func with(v View, f func(*View)) View { f(&v); return v }

func TestDecide(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	tests := []struct {
		name   string
		view   View
		kind   ActionKind
		term   uint64
		to     string
		reason string // substring of Action.Reason
	}{
		// Cold start of both sites of a new cluster: they see each other, the
		// better one takes term 1, the other becomes backup.
		{"cold start both: better promotes",
			view("a", mem("a", 1, cold, role(RoleStarting)), mem("b", 2, cold, role(RoleStarting))),
			Promote, 1, "", "first master"},
		{"cold start both: worse becomes backup",
			view("b", mem("a", 1, cold, role(RoleStarting)), mem("b", 2, cold, role(RoleStarting))),
			Unfence, 0, "", "site a is preferred"},
		{"cold start alone waits",
			view("a", mem("a", 1, cold, role(RoleStarting), record(4, "a", true)), mem("b", 2, dead(t0), role(RoleMaster), record(4, "a", true))),
			None, 0, "", "cold start: waiting to see a peer that knows the current term (tandem promote -force overrides)"},
		{"cold start alone with force promotes",
			with(view("a", mem("a", 1, cold, role(RoleStarting), record(4, "a", true))), func(v *View) { v.Force = true }),
			Promote, 5, "", ""},
		{"single-member cluster promotes alone",
			with(view("a", mem("a", 1, cold, role(RoleStarting))), func(v *View) { v.Voters = 1 }),
			Promote, 1, "", ""},
		{"cold start seeing only the witness that knows the term",
			view("a", mem("a", 1, cold, role(RoleStarting), record(4, "a", true)), wit("w", record(4, "a", true)), mem("b", 2, dead(t0), record(3, "b", true))),
			Promote, 5, "", ""},
		{"restarted site behind the master's term becomes backup",
			view("a", mem("a", 1, role(RoleStarting), record(3, "a", true)), mem("b", 2, role(RoleMaster), record(4, "b", true))),
			Unfence, 0, "", "not current"},

		// Master's server fails: it releases at once.
		{"master server unhealthy releases",
			view("a", mem("a", 1, role(RoleMaster), record(5, "a", true), unhealthy), mem("b", 2, record(5, "a", true))),
			Release, 0, "", "server unhealthy"},
		{"master database unreachable releases",
			view("a", mem("a", 1, role(RoleMaster), record(5, "a", true), noDB), mem("b", 2, record(5, "a", true))),
			Release, 0, "", "database unreachable"},
		{"backup takes over a released term",
			view("b", mem("a", 1, unhealthy, record(5, "a", true), releasedTerm(5, "")), mem("b", 2, record(5, "a", true))),
			Promote, 6, "", "released term 5"},
		{"backup waits while the master still claims the role",
			view("b", mem("a", 1, role(RoleMaster), unhealthy, record(5, "a", true)), mem("b", 2, record(5, "a", true))),
			None, 0, "", "site a is master"},

		// Master's sidecar killed.
		{"master dead, no witness: backup promotes at once",
			view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), dead(now.Add(-time.Second))), mem("b", 2, record(5, "a", true))),
			Promote, 6, "", "master a lost"},
		{"master dead, not synced: backup is not current and waits",
			view("b", mem("a", 1, role(RoleMaster), record(5, "a", false), dead(now.Add(-time.Minute))), mem("b", 2, record(5, "a", true))),
			None, 0, "", "peer_synced (its master is away; if that site is lost for good, tandem promote -accept-loss 5"},
		{"master dead, backup missed the term: waits",
			view("b", mem("a", 1, role(RoleMaster), record(6, "a", true), dead(now.Add(-time.Minute))), mem("b", 2, record(5, "a", true))),
			None, 0, "", "not current"},
		{"master dead with witness: waits fence_delay",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), dead(now.Add(-time.Second))), mem("b", 2, record(5, "a", true)), wit("w", record(5, "a", true))),
				func(v *View) { v.FenceDelay = 3 * time.Second }),
			None, 0, "", "fence_delay"},
		{"master dead with witness: promotes after fence_delay",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), dead(now.Add(-4*time.Second))), mem("b", 2, record(5, "a", true)), wit("w", record(5, "a", true))),
				func(v *View) { v.FenceDelay = 3 * time.Second }),
			Promote, 6, "", "master a lost"},
		// The witness acknowledged the master's peer_synced = false (DESIGN §3 "going solo is
		// announced first") while b, cut off, kept the master's earlier word: b's own copy and
		// the dead master's last report say synced, the witness — whom b must ask — says not.
		{"master dead with witness: the witness holds its unsynced record, b's copies are stale",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), dead(now.Add(-time.Minute))), mem("b", 2, record(5, "a", true)), wit("w", record(5, "a", false))),
				func(v *View) { v.FenceDelay = 3 * time.Second }),
			None, 0, "", "peer_synced"},
		{"master alive through the witness only is still master",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), unreachable), mem("b", 2, record(5, "a", true)), wit("w", record(5, "a", true))),
				func(v *View) { v.FenceDelay = 3 * time.Second }),
			None, 0, "", "site a is master"},

		// The better site returns.
		{"auto failback waits failback_delay",
			view("b", mem("a", 1, record(6, "b", true), readySince(now.Add(-10*time.Second))), mem("b", 2, role(RoleMaster), record(6, "b", true))),
			None, 0, "", "failback to a in 20s"},
		{"auto failback after failback_delay",
			view("b", mem("a", 1, record(6, "b", true), readySince(now.Add(-31*time.Second))), mem("b", 2, role(RoleMaster), record(6, "b", true))),
			Release, 0, "a", "failback to a"},
		// The master of the newest term, fenced by a short cut, and a better site whose
		// failback_delay has not passed (counted from that master's takeover): while the better
		// site reaches it, it holds the role (it regains the majority at its next round); out
		// of reach it does not qualify (View.ready), and the better site takes over — failover
		// of a fenced master, not failback (TestNodeFailbackDelayAfterSwitchoverFence).
		{"fenced master in reach keeps control within failback_delay",
			view("a", mem("a", 1, record(6, "b", true), readySince(now.Add(-time.Second))), mem("b", 2, role(RoleFenced), record(6, "b", true)), wit("w", record(6, "b", true))),
			None, 0, "", "site b, master of term 6, takes control back"},
		{"fenced master out of reach: the better site takes over",
			view("a", mem("a", 1, record(6, "b", true), readySince(now.Add(-time.Second))), mem("b", 2, role(RoleFenced), record(6, "b", true), unreachable), wit("w", record(6, "b", true))),
			Promote, 7, "", "best qualifying site"},
		{"manual failback does not hand back",
			with(view("b", mem("a", 1, record(6, "b", true), readySince(now.Add(-time.Hour))), mem("b", 2, role(RoleMaster), record(6, "b", true))),
				func(v *View) { v.ManualFailback = true }),
			None, 0, "", ""},
		{"manual failback hands back on switchover",
			with(view("b", mem("a", 1, record(6, "b", true), readySince(now)), mem("b", 2, role(RoleMaster), record(6, "b", true))),
				func(v *View) { v.ManualFailback = true; v.Switchover = "a" }),
			Release, 0, "a", "switchover to a"},
		{"switchover to a site that is not ready waits",
			with(view("a", mem("a", 1, role(RoleMaster), record(6, "a", true)), mem("b", 2, unhealthy, record(6, "a", true))),
				func(v *View) { v.Switchover = "b" }),
			None, 0, "", "switchover to b waits: server unhealthy"},
		{"switchover to a worse site",
			with(view("a", mem("a", 1, role(RoleMaster), record(6, "a", true)), mem("b", 2, record(6, "a", true))),
				func(v *View) { v.Switchover = "b" }),
			Release, 0, "b", "switchover to b"},

		// A better site that is not current waits.
		{"better site not current: master keeps the role",
			view("b", mem("a", 1, record(5, "a", true), readySince(now.Add(-time.Hour))), mem("b", 2, role(RoleMaster), record(6, "b", false))),
			None, 0, "", ""},
		{"better site not current: it does not promote",
			view("a", mem("a", 1, record(5, "a", true)), mem("b", 2, role(RoleMaster), record(6, "b", false), dead(t0))),
			None, 0, "", "not current"},
		{"better site not current: the current worse site promotes",
			view("b", mem("a", 1, record(5, "a", true)), mem("b", 2, record(6, "b", true))),
			Promote, 7, "", ""},
		{"better site current and master gone: better promotes",
			view("a", mem("a", 1, record(6, "b", true)), mem("b", 2, role(RoleMaster), record(6, "b", true), dead(t0))),
			Promote, 7, "", ""},

		// Majority with a witness.
		{"witness majority lost: master fences",
			view("a", mem("a", 1, role(RoleMaster), record(5, "a", true)), mem("b", 2, dead(now)), wit("w", dead(now))),
			Fence, 0, "", "sees 1 of 3 voters"},
		{"witness majority lost by failed probes: master fences",
			view("a", mem("a", 1, role(RoleMaster), record(5, "a", true)), mem("b", 2, unreachable), wit("w", unreachable)),
			Fence, 0, "", "no majority"},
		{"master keeps the majority through the witness",
			view("a", mem("a", 1, role(RoleMaster), record(5, "a", true)), mem("b", 2, dead(now)), wit("w")),
			None, 0, "", ""},
		{"fenced member regains majority",
			view("a", mem("a", 1, role(RoleFenced), record(5, "a", true)), mem("b", 2, dead(now)), wit("w")),
			Unfence, 0, "", "majority regained"},
		{"fenced member without majority stays fenced",
			view("a", mem("a", 1, role(RoleFenced), record(5, "a", true)), mem("b", 2, dead(now)), wit("w", dead(now))),
			None, 0, "", "no majority"},
		{"backup without majority does not promote",
			view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), dead(t0)), mem("b", 2, record(5, "a", true)), wit("w", dead(t0))),
			None, 0, "", "no majority"},
		{"majority regained a moment ago: a lost master still blocks",
			with(view("a", mem("a", 1, record(6, "b", true)), mem("b", 2, role(RoleMaster), record(6, "b", true), dead(t0)), wit("w", record(6, "b", true))),
				func(v *View) { v.FenceDelay, v.MajoritySince = 2*time.Second, now.Add(-500*time.Millisecond) }),
			None, 0, "", "regained the majority"},
		{"majority regained fence_delay ago: the lost master is gone",
			with(view("a", mem("a", 1, record(6, "b", true)), mem("b", 2, role(RoleMaster), record(6, "b", true), dead(t0)), wit("w", record(6, "b", true))),
				func(v *View) { v.FenceDelay, v.MajoritySince = 2*time.Second, now.Add(-3*time.Second) }),
			Promote, 7, "", ""},
		{"witness never becomes master",
			view("w", mem("a", 1, dead(t0)), mem("b", 2, dead(t0)), wit("w", record(3, "a", true))),
			None, 0, "", "witnesses only vote"},

		// Two sites without witness.
		{"two sites: master alone keeps the role",
			view("a", mem("a", 1, role(RoleMaster), record(5, "a", true)), mem("b", 2, dead(now))),
			None, 0, "", ""},
		{"two sites: after a split the lower-term master steps down",
			view("a", mem("a", 1, role(RoleMaster), record(5, "a", true)), mem("b", 2, role(RoleMaster), record(6, "b", true))),
			Release, 0, "b", "site b is master of term 6"},
		{"two sites: the higher-term master stays",
			view("b", mem("a", 1, role(RoleMaster), record(5, "a", true)), mem("b", 2, role(RoleMaster), record(6, "b", true))),
			None, 0, "", ""},

		// Handover via "released".
		{"released to b: b takes the next term",
			view("b", mem("a", 1, record(7, "a", true), releasedTerm(7, "b")), mem("b", 2, record(7, "a", true))),
			Promote, 8, "", "released term 7"},
		{"released to b: the better releaser does not take it back",
			view("a", mem("a", 1, record(7, "a", true), releasedTerm(7, "b")), mem("b", 2, record(7, "a", true))),
			None, 0, "", "released term 7"},
		{"released to b that fails: releaser takes the term after next",
			view("a", mem("a", 1, record(7, "a", true), releasedTerm(7, "b")), mem("b", 2, unhealthy, record(7, "a", true))),
			Promote, 9, "", ""},
		{"released for anyone: a third party waits for the target",
			view("b", mem("a", 1, unhealthy, record(7, "a", true), releasedTerm(7, "")), mem("b", 2, record(7, "a", true))),
			Promote, 8, "", ""},
		{"old release does not count once a newer term exists",
			view("a", mem("a", 1, record(7, "a", true), releasedTerm(7, "b")), mem("b", 2, role(RoleMaster), record(8, "b", true))),
			None, 0, "", "not current"},

		{"equal priority: name breaks the tie",
			view("b", mem("a", 1, role(RoleStarting)), mem("b", 1, role(RoleStarting))),
			Unfence, 0, "", "site a is preferred"},
		{"starting site not ready becomes backup",
			view("a", mem("a", 1, role(RoleStarting), unhealthy), mem("b", 2, role(RoleMaster), record(1, "b", true))),
			Unfence, 0, "", "server unhealthy"},
		// Two-step promotion (View.Settle).
		{"settle: candidate claims first",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), dead(t0)), mem("b", 2, record(5, "a", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond }),
			Claim, 6, "", "claim settling"},
		{"settle: claim still settling",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), dead(t0)), mem("b", 2, record(5, "a", true), claim(6))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now.Add(-100 * time.Millisecond) }),
			Claim, 6, "", "claim settling"},
		{"settle: settled claim promotes",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", true), dead(t0)), mem("b", 2, record(5, "a", true), claim(6))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now.Add(-300 * time.Millisecond) }),
			Promote, 6, "", "master a lost"},
		{"settle: a better claim for the same term wins",
			with(view("b", mem("a", 1, unhealthy, record(5, "a", true), claim(6)), mem("b", 2, record(5, "a", true), claim(6))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now.Add(-time.Second) }),
			None, 0, "", "site a claims term 6"},
		{"settle: a better site waits for a worse claim to be withdrawn",
			with(view("a", mem("a", 1, record(5, "a", true), claim(6)), mem("b", 2, record(5, "a", true), claim(6))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now.Add(-time.Second) }),
			Claim, 6, "", "waiting for site b to withdraw"},
		{"settle: with a witness the claim needs a majority of votes",
			with(view("a", mem("a", 1, record(5, "a", true), claim(6), votes(6, "a")), mem("b", 2, dead(t0), record(5, "a", true)), wit("w", record(5, "a", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now.Add(-time.Second) }),
			Claim, 6, "", "waits for votes: 1 of 3"},
		{"settle: with a witness a majority of votes promotes",
			with(view("a", mem("a", 1, record(5, "a", true), claim(6), votes(6, "a")), mem("b", 2, dead(t0), record(5, "a", true)), wit("w", record(5, "a", true), votes(6, "a"))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now.Add(-time.Second) }),
			Promote, 6, "", "2 of 3 votes"},
		{"settle: votes spent elsewhere move the claim past them",
			with(view("a", mem("a", 1, record(5, "a", true), claim(6), votes(6, "a")), mem("b", 2, record(5, "a", true), votes(7, "b")), wit("w", record(5, "a", true), votes(6, "b"))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now.Add(-time.Second) }),
			Claim, 8, "", "went elsewhere"},
		// A term released to the candidate needs no settling (View.handedOver).
		{"settle: a term released to b is taken at once",
			with(view("b", mem("a", 1, record(7, "a", true), releasedTerm(7, "b")), mem("b", 2, record(7, "a", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond }),
			Promote, 8, "", "released term 7"},
		{"settle: a term released for anyone (unhealthy server) is taken at once",
			with(view("b", mem("a", 1, unhealthy, record(7, "a", true), releasedTerm(7, "")), mem("b", 2, record(7, "a", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond }),
			Promote, 8, "", "released term 7"},
		{"settle: a release to another site is no handover",
			with(view("b", mem("a", 1, unhealthy, record(7, "a", true), releasedTerm(7, "c")), mem("b", 2, record(7, "a", true)), mem("c", 3, dead(t0), record(7, "a", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond }),
			Claim, 8, "", "claim settling"},
		{"settle: a release of an older term is no handover",
			with(view("b", mem("a", 1, unhealthy, record(7, "a", true), releasedTerm(7, "")), mem("b", 2, record(8, "c", true)), mem("c", 3, dead(t0), unhealthy, record(8, "c", true), releasedTerm(8, "x"))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.FenceDelay = time.Second }),
			Claim, 9, "", "claim settling"},
		{"settle: a releaser that claims the term again makes it settle",
			with(view("b", mem("c", 3, record(7, "c", true), releasedTerm(7, ""), claim(8)), mem("b", 2, record(7, "c", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond }),
			Claim, 8, "", "claim settling"},
		{"settle: with a witness a handover still needs votes",
			with(view("b", mem("a", 1, record(7, "a", true), releasedTerm(7, "b")), mem("b", 2, record(7, "a", true)), wit("w", record(7, "a", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond }),
			Claim, 8, "", "claim settling"},
		{"settle: with a witness a handover promotes on a majority of votes without settling",
			with(view("b", mem("a", 1, record(7, "a", true), releasedTerm(7, "b"), votes(8, "b")), mem("b", 2, record(7, "a", true), claim(8), votes(8, "b")), wit("w", record(7, "a", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now }),
			Promote, 8, "", "2 of 3 votes"},
		{"settle: with a witness a handover without a majority of votes waits",
			with(view("b", mem("a", 1, record(7, "a", true), releasedTerm(7, "b")), mem("b", 2, record(7, "a", true), claim(8), votes(8, "b")), wit("w", record(7, "a", true))),
				func(v *View) { v.Settle = 200 * time.Millisecond; v.ClaimedAt = now }),
			Claim, 8, "", "waits for votes: 1 of 3"},
		{"witness: a lost backup may have become master: wait fence_delay",
			with(view("a", mem("a", 1, record(5, "b", true)), mem("b", 2, dead(now.Add(-time.Second)), record(5, "b", true)), wit("w", record(5, "b", true))),
				func(v *View) { v.FenceDelay = 3 * time.Second }),
			None, 0, "", "site b (last seen as backup) lost"},

		// The master of the newest term is lost for good after committing alone: an operator
		// accepts the loss of what it committed (tandem promote -accept-loss T).
		{"accept loss: the lost unsynced master's term is written off",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", false), dead(now.Add(-time.Minute))), mem("b", 2, record(5, "a", false))),
				func(v *View) { v.AcceptLoss = 5 }),
			Promote, 6, "", "master a lost"},
		{"accept loss: a site that missed the whole term",
			with(view("b", mem("a", 1, role(RoleMaster), record(6, "a", true), dead(now.Add(-time.Minute))), mem("b", 2, record(5, "a", true))),
				func(v *View) { v.AcceptLoss = 6 }),
			Promote, 7, "", "master a lost"},
		{"accept loss of another term changes nothing",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", false), dead(now.Add(-time.Minute))), mem("b", 2, record(5, "a", false))),
				func(v *View) { v.AcceptLoss = 4 }),
			None, 0, "", "peer_synced"},
		{"accept loss while the master is alive changes nothing",
			with(view("b", mem("a", 1, role(RoleBackup), record(5, "a", false)), mem("b", 2, record(5, "a", false))),
				func(v *View) { v.AcceptLoss = 5 }),
			None, 0, "", "has not reported peer_synced"},
		{"accept loss counts for the site that was told only",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", false), dead(now.Add(-time.Minute))), mem("c", 0, record(5, "a", false)), mem("b", 2, record(5, "a", false))),
				func(v *View) { v.AcceptLoss = 5 }),
			Promote, 6, "", "master a lost"},
		{"accept loss still waits fence_delay",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", false), dead(now.Add(-time.Second))), mem("b", 2, record(5, "a", false)), wit("w", record(5, "a", false))),
				func(v *View) { v.AcceptLoss, v.FenceDelay = 5, 3*time.Second }),
			None, 0, "", "fence_delay"},
		{"accept loss still needs a majority",
			with(view("b", mem("a", 1, role(RoleMaster), record(5, "a", false), dead(now.Add(-time.Minute))), mem("b", 2, record(5, "a", false)), wit("w", dead(now.Add(-time.Minute)), record(5, "a", false))),
				func(v *View) { v.AcceptLoss = 5 }),
			None, 0, "", "no majority"},

		{"self missing from its view",
			view("x", mem("a", 1)),
			None, 0, "", "not in its own view"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := Decide(tc.view)
			if a.Kind != tc.kind || a.Term != tc.term || a.To != tc.to {
				t.Fatalf("Decide = %v term %d to %q (%s), want %v term %d to %q", a.Kind, a.Term, a.To, a.Reason, tc.kind, tc.term, tc.to)
			}
			if !strings.Contains(a.Reason, tc.reason) {
				t.Fatalf("reason %q does not mention %q", a.Reason, tc.reason)
			}
			// Only a planned handover keeps the connections to the server while it drains; a
			// failure's release (unhealthy server, stronger or newer master) cuts them at once.
			planned := a.Kind == Release && (strings.HasPrefix(a.Reason, "switchover to ") || strings.HasPrefix(a.Reason, "failback to "))
			if a.Handover != planned {
				t.Fatalf("Decide = %v (%s) with Handover %v, want %v", a.Kind, a.Reason, a.Handover, planned)
			}
		})
	}
}

func TestStampReadySince(t *testing.T) {
	t.Parallel()
	since := map[string]time.Time{}
	v := view("b", mem("a", 1, record(3, "b", true)), mem("b", 2, role(RoleMaster), record(3, "b", true)))
	v.Now = t0
	v.Stamp(since)
	if got := v.Members[0].ReadySince; !got.Equal(t0) {
		t.Fatalf("first ready view: ReadySince %v, want %v", got, t0)
	}
	v.Now = t0.Add(10 * time.Second)
	v.Stamp(since)
	if got := v.Members[0].ReadySince; !got.Equal(t0) {
		t.Fatalf("still ready: ReadySince %v, want %v", got, t0)
	}
	// A break (server unhealthy) restarts the clock.
	v.Members[0].ServerHealthy = false
	v.Stamp(since)
	if !v.Members[0].ReadySince.IsZero() {
		t.Fatalf("not ready: ReadySince %v, want zero", v.Members[0].ReadySince)
	}
	v.Members[0].ServerHealthy = true
	v.Now = t0.Add(20 * time.Second)
	v.Stamp(since)
	if got := v.Members[0].ReadySince; !got.Equal(v.Now) {
		t.Fatalf("ready again: ReadySince %v, want %v", got, v.Now)
	}
}

func TestAdopt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		self    Member
		others  []Member
		want    TermRecord
		changed bool
	}{
		{"backup adopts newer synced record from the alive master",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, role(RoleMaster), record(4, "b", true))},
			TermRecord{Term: 4, Master: "b", PeerSynced: true}, true},
		{"backup adopts an unsynced newer record from the alive master (its solo goes on once held)",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, role(RoleMaster), record(4, "b", false))},
			TermRecord{Term: 4, Master: "b", PeerSynced: false}, true},
		{"backup ignores an unsynced newer record of a promotion that failed (not master)",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, record(4, "b", false))},
			TermRecord{Term: 3, Master: "a", PeerSynced: true}, false},
		{"without a witness, backup adopts a newer synced record from a master it cannot reach",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, role(RoleMaster), record(4, "b", true), dead(t0))},
			TermRecord{Term: 4, Master: "b", PeerSynced: true}, true},
		{"without a witness, backup ignores a newer unsynced record from a master it cannot reach",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, role(RoleMaster), record(4, "b", false), dead(t0))},
			TermRecord{Term: 3, Master: "a", PeerSynced: true}, false},
		{"without a witness, backup ignores a copy held by a member it cannot reach",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, record(4, "c", true), dead(t0))},
			TermRecord{Term: 3, Master: "a", PeerSynced: true}, false},
		{"with a witness, backup ignores a dead master (the witness may hold a later word)",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, role(RoleMaster), record(4, "b", true), dead(t0)), wit("w", record(3, "a", true))},
			TermRecord{Term: 3, Master: "a", PeerSynced: true}, false},
		{"backup adopts a newer synced record from its master that is not master (its promotion failed)",
			mem("a", 2, record(3, "a", true)), []Member{mem("b", 1, record(4, "b", true))},
			TermRecord{Term: 4, Master: "b", PeerSynced: true}, true},
		{"backup ignores a newer unsynced record from its master that is not master",
			mem("a", 2, record(3, "a", true)), []Member{mem("b", 1, role(RoleFenced), record(4, "b", false))},
			TermRecord{Term: 3, Master: "a", PeerSynced: true}, false},
		{"site takes back its own newer record from a copy (its Save had failed, then it restarted)",
			mem("a", 1, record(3, "b", true)), []Member{mem("b", 2, unhealthy, record(4, "a", true))},
			TermRecord{Term: 4, Master: "a", PeerSynced: true}, true},
		{"site takes back its own newer unsynced record from a copy",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, record(4, "a", false))},
			TermRecord{Term: 4, Master: "a", PeerSynced: false}, true},
		{"backup ignores a backup's copy",
			mem("a", 1, record(3, "a", true)), []Member{mem("b", 2, record(4, "c", true))},
			TermRecord{Term: 3, Master: "a", PeerSynced: true}, false},
		{"backup follows the master going solo",
			mem("a", 1, record(4, "b", true)), []Member{mem("b", 2, role(RoleMaster), record(4, "b", false))},
			TermRecord{Term: 4, Master: "b", PeerSynced: false}, true},
		{"backup adopts the witness's synced record (master already gone)",
			mem("a", 2, record(0, "", false)), []Member{wit("w", record(1, "b", true)), mem("b", 1, record(1, "b", true), dead(t0))},
			TermRecord{Term: 1, Master: "b", PeerSynced: true}, true},
		{"backup ignores the witness's unsynced record",
			mem("a", 2, record(1, "b", true)), []Member{wit("w", record(2, "b", false))},
			TermRecord{Term: 1, Master: "b", PeerSynced: true}, false},
		{"master never adopts",
			mem("a", 1, role(RoleMaster), record(3, "a", true)), []Member{mem("b", 2, role(RoleMaster), record(4, "b", true))},
			TermRecord{Term: 3, Master: "a", PeerSynced: true}, false},
		{"witness keeps the newest record anyone reported",
			wit("w", record(3, "a", true)), []Member{mem("a", 1, record(5, "b", false), dead(t0)), mem("b", 2, record(4, "b", true))},
			TermRecord{Term: 5, Master: "b", PeerSynced: false}, true},
		{"witness follows the master's peer_synced",
			wit("w", record(5, "b", true)), []Member{mem("b", 2, role(RoleMaster), record(5, "b", false))},
			TermRecord{Term: 5, Master: "b", PeerSynced: false}, true},
		{"witness ignores a copy's peer_synced",
			wit("w", record(5, "b", false)), []Member{mem("a", 1, record(5, "b", true))},
			TermRecord{Term: 5, Master: "b", PeerSynced: false}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := Adopt(tc.self, tc.others)
			if got != tc.want || changed != tc.changed {
				t.Fatalf("Adopt = %+v, %v; want %+v, %v", got, changed, tc.want, tc.changed)
			}
		})
	}
}

// seq sets the Seq of a member's record (after record).
func seq(n uint64) func(*Member) { return func(m *Member) { m.Record.Seq = n } }

// TestSyncedLatestWord: with the master of a term gone, its latest word about peer_synced that
// any member holds decides (Seq), whoever holds it; words whose order is unknown (equal Seq)
// must all say synced. The alive master's own record always decides.
func TestSyncedLatestWord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		members []Member
		want    bool
	}{
		{"backup holds the later synced word, the witness an earlier unsynced one",
			[]Member{mem("a", 1, record(11, "a", true), seq(5), dead(t0)), mem("b", 2, record(11, "a", true), seq(5)), wit("w", record(11, "a", false), seq(4))}, true},
		{"the witness holds the later unsynced word (the master went solo after)",
			[]Member{mem("a", 1, record(11, "a", true), seq(4), dead(t0)), mem("b", 2, record(11, "a", true), seq(4)), wit("w", record(11, "a", false), seq(5))}, false},
		{"order unknown: every copy must say synced",
			[]Member{mem("b", 2, record(11, "a", true)), wit("w", record(11, "a", false))}, false},
		{"order unknown, all synced",
			[]Member{mem("b", 2, record(11, "a", true)), wit("w", record(11, "a", true))}, true},
		{"the alive master's own word decides",
			[]Member{mem("a", 1, role(RoleMaster), record(11, "a", false), seq(3)), mem("b", 2, record(11, "a", true), seq(9))}, false},
	} {
		if got := (View{Members: tc.members}).synced(11, "a"); got != tc.want {
			t.Errorf("%s: synced = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAdoptLatestWord: a later word of the term's master (larger Seq) is adopted from any
// alive member — the witness takes it from the backup, the backup from the witness — and an
// earlier one never.
func TestAdoptLatestWord(t *testing.T) {
	t.Parallel()
	later := mem("b", 2, record(11, "a", true), seq(6))
	earlier := wit("w", record(11, "a", false), seq(5))
	if rec, ok := Adopt(wit("w", record(11, "a", false), seq(5)), []Member{later}); !ok || rec.Seq != 6 || !rec.PeerSynced {
		t.Errorf("witness: Adopt = %+v, %v; want the backup's later word", rec, ok)
	}
	if rec, ok := Adopt(mem("b", 2, record(11, "a", true), seq(4)), []Member{earlier}); !ok || rec.Seq != 5 || rec.PeerSynced {
		t.Errorf("backup: Adopt = %+v, %v; want the witness's later word", rec, ok)
	}
	if rec, ok := Adopt(mem("b", 2, record(11, "a", true), seq(6)), []Member{earlier}); ok {
		t.Errorf("backup: Adopt = %+v, %v; an earlier word was taken", rec, ok)
	}
}

// TestLossHintOnlyWhenMasterAway: a site that is not current names promote -accept-loss only
// while no member shows the newest term's master alive: in a wait that ends by itself (the
// master catching it up) the hint would invite an operator to lose commits for nothing.
func TestLossHintOnlyWhenMasterAway(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	alive := Decide(view("b", mem("a", 1, role(RoleMaster), record(5, "a", false)), mem("b", 2, record(5, "a", false))))
	away := Decide(view("b", mem("a", 1, role(RoleMaster), record(5, "a", false), dead(now.Add(-time.Minute))), mem("b", 2, record(5, "a", false))))
	if strings.Contains(alive.Reason, "accept-loss") {
		t.Errorf("master alive: %q names accept-loss", alive.Reason)
	}
	if !strings.Contains(away.Reason, "tandem promote -accept-loss 5") {
		t.Errorf("master away: %q does not name tandem promote -accept-loss 5", away.Reason)
	}
}
