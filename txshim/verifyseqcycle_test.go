package txshim

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestVerifySequencesCycleWrapped: a CYCLE sequence was judged by its positions' numbers, but
// one that wrapped past its bound is ahead of the other with the lower number. Where neither
// database is known for the master, the one that had not wrapped — which hands out next the
// values the other handed out last — was not named, and the other was, as behind; and one
// position written on each side of the bound (last_value at the bound, called, and the least
// value, not called: both hand out the least next) was named too. The positions are compared
// on the cycle now: the one behind is the one from which the other is the nearer forward.
func TestVerifySequencesCycleWrapped(t *testing.T) {
	t.Parallel()
	cases := []verifyCase{
		{name: "peer wrapped", want: []string{`sequence public.s on the local database is behind the peer database's`}, count: 1,
			both:  []string{`CREATE SEQUENCE s MAXVALUE 10 CYCLE`},
			local: []string{`SELECT setval('s', 9)`},
			peer:  []string{`SELECT setval('s', 10)`, `SELECT nextval('s')`}},
		{name: "descending local wrapped", want: []string{`sequence public.s on the peer database is behind the local database's`}, count: 1,
			both:  []string{`CREATE SEQUENCE s INCREMENT -1 MINVALUE -10 MAXVALUE -1 CYCLE`},
			local: []string{`SELECT setval('s', -10)`, `SELECT nextval('s')`},
			peer:  []string{`SELECT setval('s', -9)`}},
		{name: "one position on each side of the bound",
			both:  []string{`CREATE SEQUENCE s MAXVALUE 10 CYCLE`},
			local: []string{`SELECT setval('s', 10, true)`},
			peer:  []string{`SELECT setval('s', 1, false)`}},
	}
	verifyCases(t, "seqcycle", cases)
}

// TestVerifySequencesCycleMasterWrapped: with the master known, its CYCLE sequence wrapped
// since the last copy of the positions (a copy gives a CYCLE sequence no lead) and the backup's
// not: the backup hands out next the values the master handed out last, and verify called the
// databases identical, its number being the greater.
func TestVerifySequencesCycleMasterWrapped(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE SCHEMA tandem`,
		`CREATE TABLE tandem.state (id int PRIMARY KEY DEFAULT 1, term bigint NOT NULL, master text NOT NULL, peer_synced boolean NOT NULL)`,
		`INSERT INTO tandem.state VALUES (1, 3, 'site1', true)`,
		`CREATE SEQUENCE s MAXVALUE 10 CYCLE`)
	p.local.Exec(t, `SELECT pg_create_logical_replication_slot('tandem_site1', 'pgoutput')`)
	t.Cleanup(func() { p.local.Exec(t, `SELECT pg_drop_replication_slot('tandem_site1')`) })
	p.local.Exec(t, `SELECT setval('s', 10)`)
	p.local.Exec(t, `SELECT nextval('s')`)
	p.peer.Exec(t, `SELECT setval('s', 8)`)
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`sequence public.s on the peer database is behind the local database's (the master's): after a takeover it hands out 9 next, the master 2`,
	}
	if !slices.Equal(diffs, want) {
		t.Fatalf("differences:\n%s\nwant:\n%s", strings.Join(diffs, "\n"), strings.Join(want, "\n"))
	}
}
