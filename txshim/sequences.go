package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Sequences (DESIGN §5.2 "Sequences"): PostgreSQL 15 does not decode them, and the apply side
// inserts the master's values explicitly, so the peer's sequences stay where they were. Tandem
// copies their positions itself — periodically while the peer is synced (Shipper), at the end
// of catch-up, and at handover (AlignSequences) — and a new master moves each sequence past
// every value in use (BumpSequences), so it never hands out a value a committed row holds,
// even when the last copy was stale. Sequences of every schema but the system ones are
// covered, Tandem's own tandem.ddl id included.

// AlignSequences copies each sequence's position from the master's database (localDSN) to the
// peer: a peer sequence behind the master's is set to the master's last value (setval …, true);
// one ahead stays — but a CYCLE sequence takes the master's value as it is: one that wrapped on
// the master is behind its earlier copy, and left there the peer would hand out the values up
// to the bound and then, wrapped, those the master handed out since. A master sequence not
// called since its start, a restart or setval(…, false) counts as at the value before its next
// one. Sequences the master never used, or the peer lacks, are left alone.
func AlignSequences(ctx context.Context, localDSN, peerDSN string) error {
	local, err := OpenDB(localDSN)
	if err != nil {
		return fmt.Errorf("align sequences: local database: %w", err)
	}
	defer local.Close()
	peer, err := OpenDB(peerDSN)
	if err != nil {
		return fmt.Errorf("align sequences: peer database: %w", err)
	}
	defer peer.Close()
	_, err = alignSequences(ctx, local, peer, nil)
	return err
}

// alignSequences is AlignSequences by the Shipper's master, its term checked on the peer
// (alignSequencesAt): a catch-up with nothing left to ship checks it nowhere else.
func (s *Shipper) alignSequences(ctx context.Context) error {
	local, err := OpenDB(s.cfg.LocalDSN)
	if err != nil {
		return fmt.Errorf("align sequences: local database: %w", err)
	}
	defer local.Close()
	peer, err := OpenDB(s.cfg.PeerDSN)
	if err != nil {
		return fmt.Errorf("align sequences: peer database: %w", err)
	}
	defer peer.Close()
	_, err = alignSequencesAt(ctx, local, peer, nil, s.term.Load(), s.cfg.Site)
	return err
}

// alignSequences is AlignSequences on open databases; it returns how many peer sequences moved.
// With prev (the positions the previous copy read, updated here), each peer sequence is set
// ahead of the master's position by twice its advance since that copy, so that at a steady
// rate the peer stays ahead of what the master hands out until the next copy: at an unplanned
// takeover a sequence BumpSequences cannot move past the values in use (one the application
// calls itself, or a trigger does) then hands out none of them. The lead is left out for a
// CYCLE sequence, a sequence moved back, and where it would pass the sequence's bound. The
// values skipped are a gap, as a crash leaves in a sequence.
func alignSequences(ctx context.Context, local, peer *sql.DB, prev map[string]int64) (int, error) {
	return alignSequencesAt(ctx, local, peer, prev, 0, "")
}

// alignSequencesAt is alignSequences by the master of term (above 0) at site: the peer's term
// record is checked in the transaction that sets its sequences, as an apply checks it (DESIGN
// §3 fencing in the databases), so that a master that lost its role without knowing yet does
// not set its successor's sequences (a CYCLE one back onto values handed out since); that
// refusal wraps ErrStaleTerm.
func alignSequencesAt(ctx context.Context, local, peer *sql.DB, prev map[string]int64, term uint64, site string) (int, error) {
	// A sequence not called since its start, a restart or setval(s, v, false) (is_called false:
	// pg_sequences shows no last_value) hands out its stored value next: its position is the
	// value before that, where the sequence's bounds hold one. setval(s, 1000, false) on the
	// master — a function call, which the peer does not run — was left out, and the peer handed
	// out the values the master had skipped until it called it (TestAlignMasterSetNotCalled).
	// It is read by its name, which in a schema the user may not use is an error, not a
	// sequence left out: the schema's privilege is checked first, on its own, as a CASE
	// evaluates in order (TestAlignSchemaWithoutUsage).
	rows, err := local.QueryContext(ctx, `SELECT s.schemaname, s.sequencename, coalesce(s.last_value::numeric, x.next - s.increment_by)::bigint
FROM pg_sequences s
CROSS JOIN LATERAL (SELECT CASE WHEN s.last_value IS NULL AND has_schema_privilege(s.schemaname, 'USAGE')
  THEN CASE WHEN has_sequence_privilege(format('%I.%I', s.schemaname, s.sequencename), 'SELECT')
  THEN (xpath('/row/last_value/text()', query_to_xml(format('SELECT last_value FROM %I.%I', s.schemaname, s.sequencename), false, true, '')))[1]::text::numeric
  END END AS next) x
WHERE (s.last_value IS NOT NULL OR x.next - s.increment_by BETWEEN s.min_value AND s.max_value)
  AND s.schemaname NOT IN ('pg_catalog', 'information_schema') AND s.schemaname NOT LIKE 'pg_temp%'`)
	if err != nil {
		return 0, fmt.Errorf("align sequences: read them on the local database: %w", err)
	}
	var schemas, names []string
	var values []int64
	for rows.Next() {
		var sch, name string
		var v int64
		if err := rows.Scan(&sch, &name, &v); err != nil {
			rows.Close()
			return 0, fmt.Errorf("align sequences: read them on the local database: %w", err)
		}
		schemas, names, values = append(schemas, sch), append(names, name), append(values, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("align sequences: read them on the local database: %w", err)
	}
	if len(names) == 0 {
		return 0, nil
	}
	before := make([]int64, len(values)) // the previous copy's positions; the same value: no lead
	for i := range values {
		key := schemas[i] + "\x00" + names[i]
		before[i] = values[i]
		if v, ok := prev[key]; ok {
			before[i] = v
		}
	}
	// One statement: the comparison runs on the peer, against its sequences of that moment. A
	// peer sequence not called since its start or a restart (is_called false: pg_sequences
	// shows no last_value) hands out its stored value next, read through query_to_xml (the one
	// way to read a relation named at run time in a plain query): one restarted ahead of the
	// master's position was set back to it, and its next values could collide.
	// (TestAlignRestartedAhead)
	var q interface {
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	} = peer
	var tx *sql.Tx
	if term > 0 {
		if tx, err = peer.BeginTx(ctx, nil); err != nil {
			return 0, fmt.Errorf("align sequences: peer database: %w", err)
		}
		defer func() { _ = tx.Rollback() }() // after Commit: sql.ErrTxDone, nothing done
		if _, err := tx.ExecContext(ctx, `SELECT tandem.check_term($1, $2)`, int64(term), site); err != nil {
			if pgErrCode(err) == sqlstateStaleTerm {
				return 0, fmt.Errorf("align sequences: %w: %w", ErrStaleTerm, err)
			}
			return 0, fmt.Errorf("align sequences: peer database: term check: %w", err)
		}
		q = tx
	}
	var moved int
	err = q.QueryRowContext(ctx, `SELECT count(setval(format('%I.%I', q.sch, q.seq)::regclass, t.v, true))
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS q(sch, seq, v, prev)
JOIN pg_sequences p ON p.schemaname = q.sch AND p.sequencename = q.seq
CROSS JOIN LATERAL (SELECT CASE WHEN NOT p.cycle AND sign(q.v::numeric - q.prev) = sign(p.increment_by)
    AND q.v + 2 * (q.v::numeric - q.prev) BETWEEN p.min_value AND p.max_value
  THEN (q.v + 2 * (q.v::numeric - q.prev))::bigint ELSE q.v END AS v) t
CROSS JOIN LATERAL (SELECT CASE WHEN p.last_value IS NULL THEN (xpath('/row/last_value/text()',
    query_to_xml(format('SELECT last_value FROM %I.%I', q.sch, q.seq), false, true, '')))[1]::text::bigint END AS next) r
WHERE (p.last_value IS NULL AND (p.cycle OR (p.increment_by > 0 AND r.next <= t.v) OR (p.increment_by < 0 AND r.next >= t.v)))
  OR (p.increment_by > 0 AND p.last_value < t.v) OR (p.increment_by < 0 AND p.last_value > t.v)
  OR (p.cycle AND p.last_value <> t.v)`,
		pq.Array(schemas), pq.Array(names), pq.Array(values), pq.Array(before)).Scan(&moved)
	if err == nil && tx != nil {
		err = tx.Commit()
	}
	if err != nil {
		return 0, fmt.Errorf("align sequences: set them on the peer database: %w", err)
	}
	if prev != nil {
		clear(prev)
		for i := range values {
			prev[schemas[i]+"\x00"+names[i]] = values[i]
		}
	}
	return moved, nil
}

// seqColumnsSQL lists each sequence with the integer columns that take their values from it:
// serial and identity columns (the sequence depends on the column) and columns whose default
// calls nextval on it (the default depends on the sequence) — integer columns, or of a domain
// over an integer type (or over such a domain, at any depth). A late-bound default, nextval('s'::text) or
// nextval(('s'::text)::regclass), records no dependency: its name is read from the expression
// and resolved with this session's search_path (the default one), as an insert with the
// default search_path resolves it. The expression is printed without its table (a default
// refers to no column; a generated column's expression, which does, is not printed): naming
// the table would lock it, and a table another session holds locked would stop the listing. A CYCLE sequence is left out: once it has wrapped, the
// highest value in use is behind it, and moving it there would make it wrap onto values in use.
const seqColumnsSQL = `WITH RECURSIVE ints(typ) AS (
  SELECT unnest(ARRAY['int2'::regtype, 'int4'::regtype, 'int8'::regtype])::oid
  UNION SELECT ty.oid FROM pg_type ty JOIN ints ON ty.typbasetype = ints.typ
)
SELECT x.seq::regclass::text, quote_ident(n.nspname) || '.' || quote_ident(t.relname), quote_ident(a.attname), ps.seqincrement
FROM (
  SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid::int AS att FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
  UNION
  SELECT d.refobjid, ad.adrelid, ad.adnum::int FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
  WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
  UNION
  SELECT to_regclass(replace(m[1], '''''', ''''))::oid, ad.adrelid, ad.adnum::int
  FROM pg_attrdef ad, regexp_match(CASE WHEN ad.adbin::text !~ '\{VAR ' THEN pg_get_expr(ad.adbin, 0) END, 'nextval\(\(?''((?:[^'']|'''')*)''::text') m
) x
JOIN pg_sequence ps ON ps.seqrelid = x.seq
JOIN pg_class t ON t.oid = x.rel AND t.relkind IN ('r', 'p')
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = x.rel AND a.attnum = x.att AND NOT a.attisdropped
WHERE a.atttypid IN (SELECT typ FROM ints)
  AND NOT ps.seqcycle
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1, 2, 3`

// bumpLockTimeout bounds each wait of BumpSequences for a lock (its session's lock_timeout): a
// table locked by another session (an ALTER TABLE, LOCK TABLE or a prepared transaction that
// took such a lock) fails it then, naming the sequence, rather than stalling the promotion.
// bumpTimeout bounds the whole of it, whatever the caller's context allows: the scans of
// columns without an index on large tables take time, a database that stopped answering
// takes forever. Variables for tests.
var (
	bumpLockTimeout = 5 * time.Second
	bumpTimeout     = 2 * time.Minute
)

// BumpSequences moves every sequence of the database past the highest value (the lowest, for a
// descending one) in use in any column that takes its values from it — serial, identity, or a
// nextval default — so that a new master never hands out a value a committed row holds (DESIGN
// §5.2). A sequence already past stays where it is. Run it at takeover, before writes begin.
// It fails, rather than wait on, when a table it reads stays locked by another session for
// bumpLockTimeout, and when it is not done within bumpTimeout (or the earlier end of ctx).
func BumpSequences(parent context.Context, dsn string) (err error) {
	ctx, cancel := context.WithTimeout(parent, bumpTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	defer func() {
		// The socket's deadline may fire a moment before ctx's timer.
		if err != nil && parent.Err() == nil && !time.Now().Before(deadline) {
			err = fmt.Errorf("bump sequences: not done within %v: %w", bumpTimeout, err)
		}
	}()
	db, err := OpenDB(dsn)
	if err != nil {
		return fmt.Errorf("bump sequences: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("bump sequences: connect: %w", err)
	}
	defer conn.Close()
	// The server ends a statement at the bound too: one cut off by the socket's deadline
	// alone would stay queued for its lock. Every row or an error (allRows): under a policy
	// that applies to the DSN's user (FORCE ROW LEVEL SECURITY on a table it owns, or one it
	// does not own) the highest value in use was read from the rows it let through, and the
	// new master handed out the ids of the others again (TestBumpSequencesRowSecurity).
	if _, err := conn.ExecContext(ctx, "SELECT pg_catalog.set_config('lock_timeout', $1, false), pg_catalog.set_config('statement_timeout', $2, false), pg_catalog.set_config('row_security', $3, false)",
		strconv.FormatInt(bumpLockTimeout.Milliseconds(), 10), strconv.FormatInt(max(time.Until(deadline).Milliseconds(), 1), 10), allRows["row_security"]); err != nil {
		return fmt.Errorf("bump sequences: set lock_timeout, statement_timeout and row_security: %w", err)
	}
	rows, err := conn.QueryContext(ctx, seqColumnsSQL)
	if err != nil {
		return fmt.Errorf("bump sequences: list sequences and their columns: %w", err)
	}
	type seqUse struct {
		inc  int64
		cols []string // "SELECT agg(col) FROM table" parts
	}
	var order []string
	uses := map[string]*seqUse{}
	for rows.Next() {
		var seq, table, col string
		var inc int64
		if err := rows.Scan(&seq, &table, &col, &inc); err != nil {
			rows.Close()
			return fmt.Errorf("bump sequences: list sequences and their columns: %w", err)
		}
		u, ok := uses[seq]
		if !ok {
			u = &seqUse{inc: inc}
			uses[seq] = u
			order = append(order, seq)
		}
		agg := "max"
		if inc < 0 {
			agg = "min"
		}
		u.cols = append(u.cols, fmt.Sprintf("SELECT %s(%s)::bigint AS v FROM %s", agg, col, table))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("bump sequences: list sequences and their columns: %w", err)
	}
	for _, seq := range order {
		u := uses[seq]
		agg, behind, bound := "max", "<=", "LEAST(m.v, ps.seqmax)"
		if u.inc < 0 {
			agg, behind, bound = "min", ">=", "GREATEST(m.v, ps.seqmin)"
		}
		// next is what nextval would return; bump when it is not past every value in use. A
		// value in use beyond the sequence's bound (written by hand) leaves it at its bound,
		// where nextval fails rather than hand out a value in use: setval past the bound would
		// fail, and the promotion with it.
		q := fmt.Sprintf(`SELECT CASE WHEN m.v IS NOT NULL
  AND (CASE WHEN s.is_called THEN s.last_value::numeric + %d ELSE s.last_value END) %s m.v
  THEN setval(%s, %s, true) END IS NOT NULL
FROM %s s, pg_catalog.pg_sequence ps, (SELECT %s(v) AS v FROM (%s) u) m
WHERE ps.seqrelid = %s::regclass`, u.inc, behind, sqlLiteral(seq), bound, seq, agg, strings.Join(u.cols, " UNION ALL "), sqlLiteral(seq))
		var bumped bool
		if err := conn.QueryRowContext(ctx, q).Scan(&bumped); err != nil {
			if pe := (*pq.Error)(nil); errors.As(err, &pe) && pe.Code == "55P03" {
				return fmt.Errorf("bump sequence %s: a table that takes its values is locked by another session for longer than %v (lock_timeout): %w",
					seq, bumpLockTimeout, err)
			}
			return fmt.Errorf("bump sequence %s: %w", seq, err)
		}
	}
	return nil
}

// sequenceLoop copies sequence positions to the peer every SequenceInterval while this site is
// master and the peer synced: a few small queries, so a takeover finds the peer's sequences nearly current.
func (s *Shipper) sequenceLoop(ctx context.Context) {
	every := s.cfg.SequenceInterval
	if every < 0 {
		return
	}
	local, err := OpenDB(s.cfg.LocalDSN)
	if err != nil {
		s.logger.Error("sequence shipping off: local database", "err", err)
		return
	}
	defer local.Close()
	peer, err := OpenDB(s.cfg.PeerDSN)
	if err != nil {
		s.logger.Error("sequence shipping off: peer database", "err", err)
		return
	}
	defer peer.Close()
	for _, db := range []*sql.DB{local, peer} {
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(3 * every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	prev := map[string]int64{} // positions the last copy read, for the lead (alignSequences)
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		// A backup copies nothing: the positions flow from the master only. A backup's
		// Shipper may still take its peer for synced (a master's that handed over), and its
		// copies would carry the master's lead back to it as an advance, each site doubling
		// the other's until the sequences reach their bounds.
		if s.backup.Load() || !s.PeerSynced() {
			clear(prev) // an advance measured across a gap in the copies would be no rate
			continue
		}
		actx, cancel := context.WithTimeout(ctx, max(every, 5*time.Second))
		_, err := alignSequencesAt(actx, local, peer, prev, s.term.Load(), s.cfg.Site)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			s.logger.Warn("sequence positions not shipped; retrying", "err", err, "every", every)
			failing = true
		case err == nil:
			failing = false
			s.mu.Lock()
			s.stats.SeqSyncs++
			s.mu.Unlock()
		}
	}
}
