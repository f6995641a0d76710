package txshim

import "testing"

// TestVerifyTriggerFunctionOneSide: a function a trigger runs is compared with the trigger
// (its md5 among the table's facts), not on its own; where the trigger existed on one database
// only, the function's definition was compared nowhere, and one defined otherwise on each was
// not named — once the trigger the difference named was made on the other database (by the
// hint: run the DDL it lacks), it ran another function there. The function is compared on its
// own unless a trigger runs it on both.
func TestVerifyTriggerFunctionOneSide(t *testing.T) {
	t.Parallel()
	const table = `CREATE TABLE t (id int PRIMARY KEY, v int)`
	fn := func(add string) string {
		return `CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := NEW.v + ` + add + `; RETURN NEW; END$$`
	}
	const trigger = `CREATE TRIGGER bump BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION bump()`
	cases := []verifyCase{
		{name: "trigger on the local database only", want: []string{`function public.bump() is defined otherwise on each database`}, count: 2,
			both: []string{table}, local: []string{fn("1"), trigger}, peer: []string{fn("2")}},
		{name: "trigger on the peer only", want: []string{`function public.bump() is defined otherwise on each database`}, count: 2,
			both: []string{table}, local: []string{fn("1")}, peer: []string{fn("2"), trigger}},
		{name: "same function, trigger on one side", count: 1,
			want: []string{`bump`}, both: []string{table, fn("1")}, local: []string{trigger}},
	}
	verifyCases(t, "trigfn", cases)
}
