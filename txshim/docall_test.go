package txshim

import (
	"strings"
	"testing"
)

// TestDoMentionsCall: a DO block is taken for a procedure when it may CALL one, but a CALL in
// a comment runs nothing. On a read-only site such a block that only reads runs, as it did
// before CALL counted; in dual mode one that writes is in the dual commit.
func TestDoMentionsCall(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)
	r := dialRaw(t, s)
	for _, q := range []string{
		"DO $$BEGIN PERFORM count(*) FROM acct; -- call it a count\nEND$$",
		"DO $$BEGIN /* call nothing */ PERFORM 1; END$$",
	} {
		if got := r.query(q); got != "CZ" {
			t.Errorf("%q in read-only mode: %q, want CZ as before CALL counted", q, got)
		}
	}
	s.SetMode(ModeDual, 2)
	r.query("SELECT 1") // the mode change reaches the session (ParameterStatus)
	peer.take()
	q := "DO $$BEGIN INSERT INTO acct VALUES (1, 0); -- no call here\nEND$$"
	if got := r.query(q); got != "CZ" {
		t.Errorf("%q in dual mode: %q, want CZ", q, got)
	}
	if calls := peer.take(); !strings.HasPrefix(strings.Join(calls, " "), "prepare") {
		t.Errorf("%q in dual mode: peer calls %v, want a dual commit", q, calls)
	}
}
