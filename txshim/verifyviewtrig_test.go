package txshim

import "testing"

// TestVerifyViewTriggers: an INSTEAD OF trigger (or a rule) on a view, made, dropped or
// changed on one database only, makes the applications' writes to the view do otherwise after
// a failover; verify compared tables' triggers only and called such databases identical. Each
// is a difference; the same trigger under another name is not.
func TestVerifyViewTriggers(t *testing.T) {
	t.Parallel()
	base := []string{`CREATE TABLE t (id int PRIMARY KEY)`, `CREATE VIEW v AS SELECT id FROM t`,
		`CREATE FUNCTION ins() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO t VALUES (NEW.id); RETURN NEW; END$$`}
	trig := `CREATE TRIGGER ins INSTEAD OF INSERT ON v FOR EACH ROW EXECUTE FUNCTION ins()`
	cases := []verifyCase{
		// The function is on both databases: it is named with the trigger, not as on one only.
		{name: "trigger on one side", want: []string{`view "public"."v": trigger INSTEAD OF INSERT ON public.v FOR EACH ROW EXECUTE FUNCTION public.ins()`, "on the local database only"}, count: 1,
			both: base, local: []string{trig}},
		{name: "table trigger on one side", want: []string{`table "public"."t": trigger BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.ins()`, "on the peer database only"}, count: 1,
			both: base, peer: []string{`CREATE TRIGGER ins BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION ins()`}},
		{name: "trigger function", want: []string{`view "public"."v": trigger INSTEAD OF INSERT`, "function definition md5"}, count: 2,
			both: append(append([]string{}, base...), trig),
			peer: []string{`CREATE OR REPLACE FUNCTION ins() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO t VALUES (NEW.id + 1); RETURN NEW; END$$`}},
		{name: "rule", want: []string{`rule: ON DELETE TO public.v DO INSTEAD  DELETE FROM public.t`, "on the peer database only"}, count: 1,
			both: base, peer: []string{`CREATE RULE del AS ON DELETE TO v DO INSTEAD DELETE FROM t WHERE t.id = OLD.id`}},
		{name: "named otherwise", both: base,
			local: []string{trig},
			peer:  []string{`CREATE TRIGGER other INSTEAD OF INSERT ON v FOR EACH ROW EXECUTE FUNCTION ins()`}},
	}
	verifyCases(t, "vtrig", cases)
}
