package txshim

import "testing"

// TestResolverOutsideLongApplyTrackActivitiesOff: TestResolverOutsideLeavesLongApply with the
// apply's session under track_activities = off (a setting of the peer's configuration, a role's
// or a connection's): pg_stat_activity then shows its state as "disabled", with no query and no
// state_change, though its application_name still names the gid. A pass of `tandem resolve` must
// not take such a session for gone (and roll the local copy back under a commit still going on):
// it cannot tell whether the apply is at work, so it leaves the gid alone and says why.
func TestResolverOutsideLongApplyTrackActivitiesOff(t *testing.T) {
	t.Parallel()
	outsideLongApply(t, true)
}

// TestResolverIgnoresIdleClientNamedAsApplyTrackActivitiesOff: TestResolverIgnoresIdleClientNamedAsApply
// with that client's session under track_activities = off. pg_stat_activity then cannot tell an
// idle transaction from an apply's start (its BEGIN and the statement naming it, in one
// pipeline), but an apply names its session within that pipeline: a session that stays unnamed
// in one and the same transaction (the same virtual xid) for longer than that can take is not
// an apply about to name the gid. The pass rolls back the gid prepared only on the own site
// without waiting stopAppliesWait for the client, and leaves the client alone. (Counted as busy
// at every look, it failed every pass with "try again" for as long as the client idled.)
func TestResolverIgnoresIdleClientNamedAsApplyTrackActivitiesOff(t *testing.T) {
	t.Parallel()
	idleClientNamedAsApply(t, true)
}
