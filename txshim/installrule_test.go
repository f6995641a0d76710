package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestInstallRuleFiringInApply: a rule of a table that fires in replica sessions (ALTER TABLE …
// ENABLE ALWAYS RULE, or ENABLE REPLICA RULE) rewrites the apply's statements on the peer, as a
// trigger enabled so fires in it — install compared those triggers but not such rules: one on
// the peer alone (ON INSERT … DO INSTEAD NOTHING) dropped every row shipped by INSERT there,
// silently, while the local database kept it. Install must refuse it, naming the table and the
// rule, as it does such a trigger, on the one line of that difference (pg_get_ruledef starts its
// definition on a line of its own, which the refusal kept); an ordinary rule (it fires only on
// the master) it still takes.
func TestInstallRuleFiringInApply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		local, peer []string
		want        []string // nil: install takes it
	}{
		{name: "always", want: []string{`table "public"."t"`, "rule firing in the apply (ENABLE ALWAYS): ON INSERT TO public.t DO INSTEAD NOTHING; on the peer database only"},
			peer: []string{`CREATE RULE keep_out AS ON INSERT TO t DO INSTEAD NOTHING`, `ALTER TABLE t ENABLE ALWAYS RULE keep_out`}},
		{name: "replica", want: []string{`table "public"."t"`, "rule firing in the apply (ENABLE REPLICA)", "on the local database only"},
			local: []string{`CREATE RULE keep_out AS ON UPDATE TO t DO INSTEAD NOTHING`, `ALTER TABLE t ENABLE REPLICA RULE keep_out`}},
		{name: "ordinary",
			peer: []string{`CREATE RULE keep_out AS ON INSERT TO t DO INSTEAD NOTHING`}},
		{name: "named differently",
			local: []string{`CREATE RULE a AS ON DELETE TO t DO INSTEAD NOTHING`, `ALTER TABLE t ENABLE ALWAYS RULE a`},
			peer:  []string{`CREATE RULE b AS ON DELETE TO t DO INSTEAD NOTHING`, `ALTER TABLE t ENABLE ALWAYS RULE b`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startCapPair(t)
			p.both(t, `CREATE TABLE t (id int PRIMARY KEY, v int)`)
			for _, s := range tc.local {
				p.local.Exec(t, s)
			}
			for _, s := range tc.peer {
				p.peer.Exec(t, s)
			}
			err := Install(capCtx(t, 60*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger())
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Install refused rules the apply does not meet differently: %v", err)
			case tc.want == nil:
			case err == nil:
				t.Fatal("Install accepted a rule firing in the apply on one database only")
			default:
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the refusal does not name %q:\n%v", w, err)
					}
				}
			}
		})
	}
}
