package txshim

import "testing"

// TestResolverEndsUnnamedApply: an apply session on the peer that has not named itself after
// its gid yet — its connection just opened, or its backend not yet at the statement that names
// it — bears only the startup name of every apply connection. The resolver, before it rolls
// back the own copy on the word of the peer (prepared nowhere there), waits until such a busy
// session names itself and ends it, so that it never PREPAREs the gid on the peer afterwards.
// The delay before the naming is played by pg_sleep.
// (Before stopApplies waited for such sessions, the pass rolled the local copy back at once
// and the apply prepared the gid on the peer once free.)
func TestResolverEndsUnnamedApply(t *testing.T) {
	t.Parallel()
	resolverEndsApply(t, lateApply{
		startName: applyAppName, // as dialApply names every apply connection
		script: `BEGIN; SELECT pg_sleep(2); SELECT set_config('application_name', ` + sqlLiteral(applyAppName+" "+lateGID) + `, true);
UPDATE kv SET v = 'late' WHERE k = 1; PREPARE TRANSACTION ` + sqlLiteral(lateGID),
		what:      "the unnamed apply to start",
		ready:     `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND state = 'active'`,
		readyName: applyAppName,
	})
}
