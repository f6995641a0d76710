package txshim

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Sequences in a verification (DESIGN §5.2 "no sequence on a new master may hand out a value
// a committed row already holds"). A sequence's position is not a row: the peer's apply
// inserts the master's values explicitly and leaves the peer's sequences where they were, the
// master copies its positions to the peer now and then (alignSequences, with a lead: the
// peer's set ahead of the master's), and a takeover moves every sequence past the values its
// columns hold (BumpSequences: serial, identity and nextval-default integer columns, not CYCLE
// sequences). So the two databases' last_value and is_called legitimately differ, and verify
// compares neither as such. It compares what a failover would make of them:
//
//   - next is the value nextval hands out next on a database (last_value + increment once
//     called, else last_value: is_called false and last_value v, and is_called true and v - 1,
//     are one position);
//   - after a takeover is next moved past the values its columns hold on that database, as
//     BumpSequences moves it (not a CYCLE sequence, nor one no column takes its values from).
//
// A sequence differs when on the backup's database (or on either, where neither is known) its
// position after a takeover is behind the master's next: the new master would hand out values
// the old one handed out already — to rows, or to the applications' own calls of nextval,
// which no column shows. The backup ahead of the master is the lead, not a difference. A
// master's sequence behind the values its own columns hold (rows written with their keys) is
// not named: the application made it so, on both databases alike, and verify names what
// differs between the two (the full suite's tests that write keys by hand: TestFidelity).
//
// A CYCLE sequence's positions are compared on its cycle (one that wrapped past its bound is
// ahead of the other's greater number): the one behind is the one from which the other is less
// than half the cycle forward.
//
// The master is the one the term records of both databases name (tandem.state, the newer
// term's; both alike where they are of one term), its database the one holding its site's
// slot (tandem_<site>); without records, slots, or with records of one term naming two
// masters, neither is known. The positions are read right after the snapshots (readSeqPositions:
// a sequence is not under the snapshot, and after a catch-up commits go on before the
// comparison reads the rows), the values in use under the snapshots.

// seqPos is a sequence's position on one database: its increment, bounds, CYCLE, and the
// value nextval hands out next (past its bound where it is exhausted; the other bound where a
// CYCLE sequence wraps).
type seqPos struct {
	inc      int64
	min, max int64
	cycle    bool
	next     *big.Int
}

// verifySeqs is what beginVerify reads of the sequences: each database's positions, keyed by
// the sequence's name (regclass text under verify's search path), and which of the two is the
// master's (-1: neither is known).
type verifySeqs struct {
	pos    [2]map[string]seqPos
	master int
}

// seqPositionsSQL lists the permanent sequences of the application schemas with their next
// values, read from each sequence itself (query_to_xml: a relation named at run time in a
// plain query; pg_sequences shows no last_value where is_called is false).
const seqPositionsSQL = `SELECT c.oid::regclass::text, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle,
  (CASE WHEN x.called THEN x.lv + s.seqincrement ELSE x.lv END)::text
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace,
  LATERAL (SELECT query_to_xml(format('SELECT last_value, is_called FROM %I.%I', n.nspname, c.relname), false, true, '') AS doc) q,
  LATERAL (SELECT (xpath('/row/last_value/text()', q.doc))[1]::text::numeric AS lv, (xpath('/row/is_called/text()', q.doc))[1]::text::boolean AS called) x
WHERE c.relpersistence = 'p' AND ` + appSchemaFilter

// seqRoleSQL reads the sites whose slots the database holds and its term record ("term
// master"), "" for none (as a table: a forest of no row is no XML document).
const seqRoleSQL = `SELECT coalesce((SELECT string_agg(substr(slot_name, 8), ',') FROM pg_replication_slots
    WHERE database = current_database() AND starts_with(slot_name::text, 'tandem_')), ''),
  coalesce(CASE WHEN to_regclass('tandem.state') IS NOT NULL THEN (xpath('/table/row/r/text()',
    query_to_xml('SELECT term::text || '' '' || master AS r FROM tandem.state WHERE id = 1', false, false, '')))[1]::text END, '')`

// readSeqPositions reads the positions of both databases' sequences, and which is the master's.
// A sequence moves outside any transaction, so the two databases' positions are of two
// moments: the master's are read first, the backup's after them (the local's first where
// neither is known). A nextval on the master between the two reads leaves its position read
// as it was, not one the backup's copy has not reached yet. copied, when not nil, copies the
// local database's positions to the peer (catch-up's alignSequences) between the two reads, the
// local's first: the positions compared are then the ones copied from or before them, and
// one handed out after the copy is not named (TestVerifyCatchUpNextvalAfterCopy).
func (v *verifySnapshots) readSeqPositions(ctx context.Context, copied func() error) (verifySeqs, error) {
	s := verifySeqs{master: -1}
	var slots, records [2]string
	err := v.unlocking(ctx, func() error {
		for i, tx := range v.txs {
			if err := tx.QueryRowContext(ctx, seqRoleSQL).Scan(&slots[i], &records[i]); err != nil {
				return fmt.Errorf("verify: slots and term record on the %s database: %w", sideName(i), err)
			}
		}
		s.master = masterSide(slots, records)
		first := 0
		if copied == nil && s.master >= 0 {
			first = s.master
		}
		for _, i := range []int{first, 1 - first} {
			if i != first && copied != nil {
				if err := copied(); err != nil {
					return err
				}
			}
			var err error
			if s.pos[i], err = readSeqPositionsIn(ctx, v.txs[i]); err != nil {
				return fmt.Errorf("verify: sequences on the %s database: %w", sideName(i), err)
			}
		}
		return nil
	})
	return s, err
}

// readSeqPositionsIn reads the positions of the sequences of one database (seqPositionsSQL).
func readSeqPositionsIn(ctx context.Context, tx *sql.Tx) (map[string]seqPos, error) {
	rows, err := tx.QueryContext(ctx, seqPositionsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	pos := map[string]seqPos{}
	for rows.Next() {
		var name, next string
		var p seqPos
		if err := rows.Scan(&name, &p.inc, &p.min, &p.max, &p.cycle, &next); err != nil {
			return nil, err
		}
		var ok bool
		if p.next, ok = new(big.Int).SetString(next, 10); !ok {
			return nil, fmt.Errorf("sequence %s: position %q", name, next)
		}
		if p.cycle && p.next.Cmp(big.NewInt(p.max)) > 0 {
			p.next.SetInt64(p.min) // nextval wraps
		} else if p.cycle && p.next.Cmp(big.NewInt(p.min)) < 0 {
			p.next.SetInt64(p.max)
		}
		pos[name] = p
	}
	return pos, rows.Err()
}

// masterSide tells which database (0 local, 1 peer) is the master's, from each one's slots
// (sites, comma-separated) and term record ("term master"); -1 when it cannot be told.
func masterSide(slots, records [2]string) int {
	var term int64 = -1
	master := ""
	for _, r := range records {
		t, m, ok := strings.Cut(r, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(t, 10, 64)
		switch {
		case err != nil:
			continue
		case n > term:
			term, master = n, m
		case n == term && m != master:
			return -1 // one term, two masters: not told
		}
	}
	if master == "" {
		return -1
	}
	side := -1
	for i, s := range slots {
		for _, site := range strings.Split(s, ",") {
			if site == master {
				if side >= 0 {
					return -1
				}
				side = i
			}
		}
	}
	return side
}

// seqInUse is the furthest value a sequence's columns hold on a database (the greatest, the
// least for a descending one), and the column holding it.
type seqInUse struct {
	v   *big.Int
	col string
}

// readSeqInUse reads, under the snapshot tx, the furthest value each sequence of pos that is
// not CYCLE holds in the integer columns that take their values from it (seqColumnsSQL, as
// BumpSequences finds them).
func readSeqInUse(ctx context.Context, tx *sql.Tx, pos map[string]seqPos) (map[string]seqInUse, error) {
	rows, err := tx.QueryContext(ctx, seqColumnsSQL)
	if err != nil {
		return nil, fmt.Errorf("list sequences' columns: %w", err)
	}
	var parts []string
	var args []any
	for rows.Next() {
		var seq, table, col string
		var inc int64
		if err := rows.Scan(&seq, &table, &col, &inc); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list sequences' columns: %w", err)
		}
		if _, ok := pos[seq]; !ok {
			continue // Tandem's own, or of another kind
		}
		agg := "max"
		if inc < 0 {
			agg = "min"
		}
		args = append(args, seq, table+"."+col)
		parts = append(parts, fmt.Sprintf("SELECT $%d::text, $%d::text, %s(%s)::text FROM %s", len(args)-1, len(args), agg, col, table))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sequences' columns: %w", err)
	}
	out := map[string]seqInUse{}
	if len(parts) == 0 {
		return out, nil
	}
	vals, err := tx.QueryContext(ctx, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, fmt.Errorf("read the values sequences' columns hold: %w", err)
	}
	defer vals.Close()
	for vals.Next() {
		var seq, col string
		var v sql.NullString
		if err := vals.Scan(&seq, &col, &v); err != nil {
			return nil, fmt.Errorf("read the values sequences' columns hold: %w", err)
		}
		if !v.Valid {
			continue
		}
		n, ok := new(big.Int).SetString(v.String, 10)
		if !ok {
			return nil, fmt.Errorf("read the values sequences' columns hold: %s holds %q", col, v.String)
		}
		cur, had := out[seq]
		if !had || n.Cmp(cur.v)*sign(pos[seq].inc) > 0 {
			out[seq] = seqInUse{v: n, col: col}
		}
	}
	return out, vals.Err()
}

func sign(n int64) int {
	if n < 0 {
		return -1
	}
	return 1
}

// diffSequences names the sequences behind on either database (see above): pos and master as
// beginVerify read them, inUse the values their columns hold on each.
func diffSequences(seqs verifySeqs, inUse [2]map[string]seqInUse) []string {
	var diffs []string
	l, p := seqs.pos[0], seqs.pos[1]
	for _, name := range unionKeys(l, p) {
		lp, lok := l[name]
		pp, pok := p[name]
		if !lok || !pok {
			continue // named by the schema comparison
		}
		both := [2]seqPos{lp, pp}
		// behind: a is behind b for a sequence of increment inc. A CYCLE sequence's values go
		// round (TestVerifySequencesCycleWrapped): the lower number may be the one that wrapped
		// past the bound, ahead of the other. On the cycle each position is behind the other,
		// and it is taken to be behind the one it reaches in less than half the cycle — the
		// one a copy is nearer (it copies the master's position, with no lead for a CYCLE
		// sequence).
		behind := func(a, b *big.Int, inc int64) bool { return a.Cmp(b)*sign(inc) < 0 }
		if lp.cycle && pp.cycle && lp.min == pp.min && lp.max == pp.max {
			behind = func(a, b *big.Int, inc int64) bool {
				n := new(big.Int).Sub(big.NewInt(lp.max), big.NewInt(lp.min))
				n.Add(n, big.NewInt(1))
				d := new(big.Int).Sub(b, a)
				if inc < 0 {
					d.Neg(d)
				}
				d.Mod(d, n) // the steps from a forward to b
				return d.Sign() > 0 && d.Cmp(new(big.Int).Sub(n, d)) <= 0
			}
		}
		var takeover [2]*big.Int
		for i, s := range both {
			takeover[i] = s.next
			u, ok := inUse[i][name]
			if s.cycle || !ok {
				continue
			}
			if past := new(big.Int).Add(u.v, big.NewInt(s.inc)); behind(s.next, past, s.inc) {
				takeover[i] = past
			}
		}
		for i := range both {
			o := 1 - i
			if seqs.master == i || both[i].inc != both[o].inc || !behind(takeover[i], both[o].next, both[i].inc) {
				continue
			}
			other, whose := sideName(o)+" database", sideName(o)+" database's"
			if seqs.master == o {
				other, whose = "master", whose+" (the master's)"
			}
			diffs = append(diffs, fmt.Sprintf("sequence %s on the %s database is behind the %s: after a takeover it hands out %s next, the %s %s",
				name, sideName(i), whose, takeover[i], other, both[o].next))
		}
	}
	return diffs
}
