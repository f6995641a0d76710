package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ResolverConfig configures a Resolver.
type ResolverConfig struct {
	Site     string // the local database's site; the peer database belongs to the other site
	LocalDSN string // the local database
	PeerDSN  string // the peer database
	Logger   *slog.Logger
	// InFlight reports the gids whose dual commit this process is still carrying out: the
	// resolver never touches them. It must return true from before the local PREPARE until
	// the session is done with the gid. nil: none.
	InFlight func(gid string) bool
	// Settle: gids prepared on either database less than Settle ago are left alone, as in
	// flight. A resolver outside the running tandem (`tandem resolve`) cannot ask its shim
	// (InFlight), and a commit waits between its local PREPARE and the peer's for up to
	// commit_timeout: rolled back meanwhile, it fails although the peer prepares it. 0: none.
	// Settle also leaves alone an older gid whose apply is still at work on the other database
	// (stopApplies' spare): a large transaction's apply may take longer.
	Settle time.Duration
	// CommitAlone, the running shim's (Shim.CommitAlone), lets the resolver settle a gid of this
	// site that is prepared on the local database while the peer database is unreachable — in
	// doubt by DESIGN §5.4 — when the shim is now solo in a term after the gid's: it runs the
	// local COMMIT PREPARED (the func it is given) if so, and reports whether it did (see
	// commitOlderAlone). nil: such a gid stays in doubt (`tandem resolve`, outside the running
	// tandem).
	CommitAlone func(ctx context.Context, gid string, older uint64, commit func() error) (bool, error)
	// StartupTimeout bounds a control connection's start-up and first ping once its TCP
	// connect (bounded by 2 s) succeeded; a database that does not finish them within it
	// counts as unreachable in the pass. 0: 10 s.
	StartupTimeout time.Duration
}

// Resolver finishes the dual commits that a crash or a lost connection left prepared on
// either database, by the recovery table of DESIGN §5.4.
//
// Per gid found in pg_prepared_xacts (prefix tandem_) on either database, it reads the state
// of both sides. The gid's own site (the site name inside it) is the coordinator: on its
// database the gid's xid records the outcome (pg_xact_status: "in progress" while prepared,
// "committed", or "aborted" after a rollback or a crash before PREPARE). The other database
// holds the applied copy, whose commit leaves a decision row in tandem.decisions. On each
// side the resolver asks "still prepared?" before "committed?" in separate statements (each
// with a fresh snapshot), so that a commit between the two reads is never taken for
// "neither". Every action is idempotent: a COMMIT/ROLLBACK PREPARED that finds the gid gone
// checks that it went the intended way.
//
// A Resolver holds no connection between passes; its methods are safe for concurrent use and
// run one at a time.
type Resolver struct {
	cfg    ResolverConfig
	logger *slog.Logger

	mu    sync.Mutex      // serializes passes and operator decisions
	doubt map[string]bool // gids in doubt after the last pass: logged once at Warn
	down  [2]bool         // local, peer unreachable in the last pass: logged once at Warn
}

// Report is what one resolver pass did.
type Report struct {
	Committed  []string  // gids committed on every side where they were prepared
	RolledBack []string  // gids rolled back on every side where they were prepared
	InDoubt    []InDoubt // gids left prepared that need the other database or an operator
	// PeerUnreachable: the pass could not reach the peer database, so whatever is prepared
	// there is still unsettled.
	PeerUnreachable bool
}

// InDoubt is a prepared transaction the resolver may not decide (DESIGN §5.4, last row):
// `tandem resolve` (Decide) lets an operator decide it.
type InDoubt struct {
	GID    string
	Side   string // "local" or "peer": the database where it is prepared
	Reason string
}

// Timeouts of the resolver's control connections: a database that does not answer within
// them counts as unreachable (connect, start-up) or fails this pass (statements).
//
// resolveConnectTimeout bounds the TCP connect alone: a host that is gone, or a firewall that
// drops, is unreachable after it, and a refused connection at once. The start-up exchange and
// the ping that follow (several round trips: start-up, authentication, TLS) have their own,
// longer bound (ResolverConfig.StartupTimeout), so that a peer database over a slow link — a
// round trip of a second or more — is not taken for unreachable: catch-up waits for a pass
// that reaches the peer, and never began over such a link when one bound of 2 s covered it
// all. A promotion waits for a pass, so a peer database that accepts connections but then
// hangs delays a takeover by the start-up bound.
const (
	resolveConnectTimeout = 2 * time.Second
	resolveStartupTimeout = 10 * time.Second
	resolveStmtTimeout    = 10 * time.Second
)

// NewResolver returns a Resolver; it connects only when it runs.
func NewResolver(cfg ResolverConfig) *Resolver {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Resolver{
		cfg:    cfg,
		logger: logger.With("component", "resolver", "site", cfg.Site),
		doubt:  map[string]bool{},
	}
}

// Run resolves once at once and then every interval (0 means 10s) until ctx ends; it returns
// nil then. Failed passes are logged and retried at the next tick.
func (r *Resolver) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := r.ResolveOnce(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("resolver pass failed; retrying at the next tick", "err", err, "in", every)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// sideState is what one database says about a gid.
type sideState int

const (
	sideUnreachable sideState = iota // no connection to that database in this pass
	sidePrepared                     // listed in pg_prepared_xacts
	sideCommitted                    // committed there
	sideNeither                      // neither prepared nor committed: rolled back, or never prepared
	sideUnknown                      // the database cannot tell (see the reason)
)

// resolveStep is one COMMIT or ROLLBACK PREPARED; own: on the gid's own site's database,
// otherwise on the database holding the applied copy.
type resolveStep struct {
	own    bool
	commit bool
}

// recoveryRule is the table of DESIGN §5.4 for one gid, given what the gid's own site's
// database (own) and the other one (other) say. It returns the steps to take in order, or
// why the gid stays in doubt. Own-site steps come first: its xid status is the record that
// later passes trust. The last row's "stays in doubt" (own prepared, other unreachable) has
// one exception, which depends on the shim and not on the databases: this site's gid of an
// earlier term while this site is master alone (ResolveOnce, commitOlderAlone).
func recoveryRule(own, other sideState) (steps []resolveStep, doubt string) {
	switch {
	case own == sidePrepared:
		switch other {
		case sideCommitted:
			return []resolveStep{{own: true, commit: true}}, ""
		case sidePrepared: // both voted yes
			return []resolveStep{{own: true, commit: true}, {own: false, commit: true}}, ""
		case sideNeither:
			return []resolveStep{{own: true, commit: false}}, ""
		case sideUnreachable:
			return nil, "prepared on the database of the gid's own site; the other database is unreachable, so whether it committed there is unknown"
		default:
			return nil, "prepared on the database of the gid's own site; the other database cannot tell whether it committed there"
		}
	case other == sidePrepared:
		switch own {
		case sideCommitted:
			return []resolveStep{{own: false, commit: true}}, ""
		case sideNeither:
			return []resolveStep{{own: false, commit: false}}, ""
		case sideUnreachable:
			// The own site prepared first (DESIGN §5.3), so its coordinator had decided to commit.
			return []resolveStep{{own: false, commit: true}}, ""
		default:
			return nil, "prepared on the applied side; the gid's own site cannot tell whether its transaction committed"
		}
	}
	return nil, "" // prepared nowhere (any more): nothing to do
}

// commitOlderAlone commits gid — this site's, of term, prepared on the local database (ownDB)
// while the peer database is unreachable — on the local database alone, when the shim is solo
// now in a term after term (ResolverConfig.CommitAlone decides, and runs the COMMIT PREPARED
// past its commit gate); ran: it was so, and the COMMIT PREPARED ran; done: it changed the
// database (not finished by someone else meanwhile).
//
// A departure from DESIGN §5.4, whose last row ("prepared on the coordinator's own side, the
// other unreachable: stays in doubt") would keep such a gid prepared, with its row locks, until
// the peer's database answers again or an operator decides: every write of the new master that
// touches those rows waits that long. Such a gid is left by a master whose peer stopped
// answering during a dual commit while it gave up its role (a handover): not master any more,
// it could not go solo and commit it, as a master does (§5.3: an unknown outcome on the peer →
// solo, local COMMIT PREPARED). Solo in a newer term, this site is that master again, with
// peer_synced = false recorded (promote saves it before it sets solo mode), so the other site
// cannot take control before a catch-up, and committing the gid is the outcome §5.3 gives it:
//   - the peer database cannot have rolled back its copy: the resolver rolls back a copy on the
//     applied side only once the own site's (this database) rolled back, and a `tandem resolve`
//     roll-back runs here first too; it can have committed its copy only by a resolver that
//     could not reach this database (§5.4: "prepared on the peer side, the own site
//     unreachable: commit") — the same outcome — or after this database committed it;
//   - a copy prepared there meanwhile (an apply that was still on its way) is committed by the
//     first pass that reaches both (§5.4 first row), and the decision row makes the catch-up
//     skip it; without one, catch-up ships the gid's changes from the slot, which was never
//     confirmed past a transaction the peer had not committed (DESIGN §5.2), under the
//     current term, and its decision row makes it apply once;
//   - another master between the gid's term and this one either reached this database — its
//     passes settle the gid here, so it is prepared here no more, unless they kept failing on
//     it; then its copy there is committed (the same outcome), prepared (committed by the first
//     pass that reaches both) or absent, and the gid's row locks kept that master's writes from
//     conflicting with it: no client was told its outcome, and committing it is what an
//     operator's `tandem resolve -commit` does — or it did not, and then it reported
//     peer_synced = false and this site could not take the newer term, but for a forced
//     promotion (-accept-loss), whose operator accepted that the databases part.
//
// Kept narrow: the shim must be solo (a master whose peer is known down), in a term after the
// gid's (in its own term a commit in doubt is one the shim could not commit alone: OnPeerDown
// refused, peer_down = "block"), and only for this site's gids on its own database.
func (r *Resolver) commitOlderAlone(ctx context.Context, gid string, term, xid uint64, ownDB *resolveDB) (ran, done bool, err error) {
	ran, err = r.cfg.CommitAlone(ctx, gid, term, func() error {
		var ferr error
		done, ferr = ownDB.finish(ctx, gid, xid, true, true)
		return ferr
	})
	switch {
	case err != nil:
		r.logger.Error("resolver: could not commit an in-doubt transaction of an earlier term alone", "gid", gid, "err", err)
	case done:
		r.logger.Warn("resolver: committed an in-doubt transaction of an earlier term of this site on the local database alone: "+
			"the peer database is unreachable and this site is master again, alone; catch-up ships it", "gid", gid, "term", term)
	}
	return ran, done, err
}

// olderAloneCandidate tells whether a gid of site gidSite, found so on its own site's database
// (own) and the other (other) by the resolver of site self, is one commitOlderAlone may commit:
// this site's, prepared on this site's database, the peer database unreachable. The shim's
// mode and term decide the rest (Shim.CommitAlone).
func olderAloneCandidate(gidSite, self string, own, other sideState) bool {
	return gidSite == self && own == sidePrepared && other == sideUnreachable
}

type startupKey struct{}

// WithStartupTimeout makes the passes run under ctx bound their connections' start-up by d
// rather than by ResolverConfig.StartupTimeout: a promotion, which waits for its pass, must not
// wait long for a peer database that accepts connections and hangs (the old master's host
// frozen) — over a slow link the catch-up's later passes reach it.
func WithStartupTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, startupKey{}, d)
}

// resolveDB is one database's control connection during a pass.
type resolveDB struct {
	side string // "local" or "peer"
	db   *sql.DB
	conn *sql.Conn
	err  error // why the database is unreachable in this pass; conn is nil then
}

// connect opens a control connection to each database, both at once.
func (r *Resolver) connect(ctx context.Context) [2]*resolveDB {
	var dbs [2]*resolveDB
	var wg sync.WaitGroup
	startup := r.cfg.StartupTimeout
	if startup <= 0 {
		startup = resolveStartupTimeout
	}
	if d, ok := ctx.Value(startupKey{}).(time.Duration); ok && d > 0 {
		startup = d
	}
	for i, dsn := range []string{r.cfg.LocalDSN, r.cfg.PeerDSN} {
		d := &resolveDB{side: sideName(i)}
		dbs[i] = d
		wg.Go(func() { d.open(ctx, dsn, startup) })
	}
	wg.Wait()
	return dbs
}

// open connects d: the TCP connect within resolveConnectTimeout, the start-up and a ping
// within startup.
func (d *resolveDB) open(ctx context.Context, dsn string, startup time.Duration) {
	db, err := OpenDB(dsn)
	if err != nil {
		d.err = err
		return
	}
	d.db = db
	cctx, cancel := context.WithTimeout(ctx, startup)
	defer cancel()
	cctx = withDialTimeout(cctx, resolveConnectTimeout)
	conn, err := db.Conn(cctx)
	if err == nil {
		if err = conn.PingContext(cctx); err != nil {
			conn.Close()
		}
	}
	if err != nil {
		d.err = err
		return
	}
	d.conn = conn
}

func (d *resolveDB) close() {
	if d.conn != nil {
		d.conn.Close()
	}
	if d.db != nil {
		d.db.Close()
	}
}

func (d *resolveDB) reachable() bool { return d.conn != nil }

func (d *resolveDB) queryRow(ctx context.Context, dest any, q string, args ...any) error {
	qctx, cancel := context.WithTimeout(ctx, resolveStmtTimeout)
	defer cancel()
	return d.conn.QueryRowContext(qctx, q, args...).Scan(dest)
}

// listPrepared lists the tandem_ gids prepared on d; young: those of them prepared less than
// settle ago (none when settle is 0).
func (d *resolveDB) listPrepared(ctx context.Context, settle time.Duration) (gids, young []string, err error) {
	qctx, cancel := context.WithTimeout(ctx, resolveStmtTimeout)
	defer cancel()
	rows, err := d.conn.QueryContext(qctx, `SELECT gid, prepared > now() - make_interval(secs => $1) FROM pg_prepared_xacts
WHERE database = current_database() AND starts_with(gid, 'tandem_') ORDER BY gid`, settle.Seconds())
	if err != nil {
		return nil, nil, fmt.Errorf("list prepared transactions on the %s database: %w", d.side, err)
	}
	defer rows.Close()
	for rows.Next() {
		var g string
		var y bool
		if err := rows.Scan(&g, &y); err != nil {
			return nil, nil, fmt.Errorf("list prepared transactions on the %s database: %w", d.side, err)
		}
		gids = append(gids, g)
		if y && settle > 0 {
			young = append(young, g)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list prepared transactions on the %s database: %w", d.side, err)
	}
	return gids, young, nil
}

func (d *resolveDB) isPrepared(ctx context.Context, gid string) (bool, error) {
	var n int
	err := d.queryRow(ctx, &n, `SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()`, gid)
	if err != nil {
		return false, fmt.Errorf("look for prepared transaction %s on the %s database: %w", gid, d.side, err)
	}
	return n > 0, nil
}

// stopApplies ends, on d (the applied side of gid), any session still applying gid, waits
// until it is gone, and reads what d says about gid again. A Shipper whose Prepare gave up
// (timeout, lost connection) leaves its peer session running: blocked on a row lock, it would
// go on to PREPARE the gid once the lock is free, after the resolver had taken the gid for
// never prepared there and rolled back the own site's copy — and recovery commits such a copy
// when the own site is out of reach (DESIGN §5.4), which would leave the databases apart.
//
// An apply names its session after its gid in the first statement after BEGIN (apply.go);
// before that — a connection just opened, or a pipeline the backend has not got to yet — the
// session bears only the name its startup packet gave every apply connection (applyAppName).
// Such a session that is busy with a transaction's start (its BEGIN or the naming statement:
// not the COMMIT/ROLLBACK PREPARED and checks the same connections run between applies, which
// a busy peer runs all the time) may be about to apply gid. It is active: BEGIN and the naming
// statement go in one pipeline with no Sync between them, so the backend never reports the
// session idle in between — one that is idle in a transaction under that name is a client that
// took it (or resync's copy), and waiting for it to name a gid would fail every pass for as
// long as it idles (TestResolverIgnoresIdleClientNamedAsApply). stopApplies looks again until
// none is (stopAppliesWait at most), and takes the answer only from two clean looks in a row,
// stopAppliesGap apart, so that a pipeline still on its way to an idle session is seen too.
//
// spare (a resolver outside the running tandem: its Settle) leaves alone a session applying gid
// that is at work: one neither waiting for a lock since more than spare ago nor idle in its
// transaction since then. busy reports it, and gid is then to be left alone: the running tandem
// may be committing it, a large transaction whose apply takes its size allowance (a second per
// MiB, sizeAllowance) beyond what Settle covers, and ending it failed a commit nothing refused
// (TestResolverOutsideLeavesLongApply). An apply whose client went away ends on its own once
// it reads from that client again; one stuck that long on a lock (a running apply's watchdog
// ends its blockers within seconds) or idle is abandoned, and ended as before.
func (d *resolveDB) stopApplies(ctx context.Context, gid string, xid uint64, spare time.Duration) (st sideState, busy bool, err error) {
	deadline := time.Now().Add(stopAppliesWait)
	clean := 0
	// When each transaction of an unnamed blind apply session (pid and virtual xid) was first
	// seen.
	since := map[string]time.Time{}
	for clean < 2 {
		var left, named, unnamed, working, blind, blindUnnamed int
		var blindXacts sql.NullString
		// CASE, not AND, so that only the gid's sessions are ever terminated; named counts them
		// as they were before. at_work is false when spare is 0. blind: pg_stat_activity shows
		// the session's state but not what it does (track_activities = off for it: "disabled",
		// no query, no state_change), or not even that (NULL: kept from this user); only its
		// name and its locks tell of it then. at_work is NULL for a blind session of the gid
		// when spare is set (never terminated here, nor counted as named): whether it is at
		// work is unknown.
		qctx, cancel := context.WithTimeout(ctx, resolveStmtTimeout)
		err := d.conn.QueryRowContext(qctx, `WITH s AS (
  SELECT a.pid, a.application_name, a.state, a.query,
    a.state IS NULL OR a.state = 'disabled' AS blind,
    (SELECT l.virtualxid FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'virtualxid' AND l.granted
      AND l.virtualxid = l.virtualtransaction LIMIT 1) AS vxid,
    $3::float8 > 0 AND a.application_name = $1 AND CASE WHEN a.state IS NULL OR a.state = 'disabled' THEN NULL
      WHEN a.state = 'active'
      THEN NOT EXISTS (SELECT FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted AND l.waitstart < now() - make_interval(secs => $3))
      ELSE a.state_change >= now() - make_interval(secs => $3) END AS at_work
  FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend')
SELECT
  count(*) FILTER (WHERE CASE WHEN application_name = $1 AND NOT at_work THEN NOT pg_terminate_backend(pid, 5000) ELSE false END),
  count(*) FILTER (WHERE application_name = $1 AND NOT at_work),
  count(*) FILTER (WHERE application_name = $2 AND state = 'active' AND
    (starts_with(query, 'BEGIN') OR starts_with(query, 'SELECT set_config(''application_name'''))),
  count(*) FILTER (WHERE at_work),
  count(*) FILTER (WHERE application_name = $1 AND at_work IS NULL),
  string_agg(pid || ' ' || vxid, ',') FILTER (WHERE application_name = $2 AND blind AND vxid IS NOT NULL)
FROM s`,
			applySessionName(gid), applyAppName, spare.Seconds()).Scan(&left, &named, &unnamed, &working, &blind, &blindXacts)
		cancel()
		if err != nil {
			return sideUnknown, false, fmt.Errorf("end sessions still applying %s on the %s database: %w", gid, d.side, err)
		}
		if working > 0 {
			return sideUnknown, true, nil
		}
		if blind > 0 {
			// Taken for gone, the apply of a commit still going on was left to PREPARE after the
			// local copy was rolled back (TestResolverOutsideLongApplyTrackActivitiesOff).
			return sideUnknown, false, fmt.Errorf("%d session(s) on the %s database are applying %s, and pg_stat_activity does not show whether they are at work "+
				"(track_activities is off for them, or their state is kept from this user): a running tandem may still be committing it, so it is left alone; "+
				"turn track_activities on for the apply sessions (or end them) and run tandem resolve again", blind, d.side, gid)
		}
		// An apply session in a transaction whose statements pg_stat_activity does not show may
		// be on its way to naming gid: as unnamed, and said so if it stays. Only while that
		// transaction is young: an apply names its session in the pipeline that begins it, so one
		// still unnamed in the same transaction stopAppliesStart after it was first seen is not
		// an apply's start but, say, a client idle in a transaction under the name, which waiting
		// for would fail every pass for as long as it idles
		// (TestResolverIgnoresIdleClientNamedAsApplyTrackActivitiesOff).
		now := time.Now()
		if blindXacts.Valid {
			for _, x := range strings.Split(blindXacts.String, ",") {
				first, ok := since[x]
				if !ok {
					since[x], first = now, now
				}
				if now.Sub(first) < stopAppliesStart {
					blindUnnamed++
				}
			}
		}
		unnamed += blindUnnamed
		if left > 0 {
			return sideUnknown, false, fmt.Errorf("%d session(s) still applying %s on the %s database did not end within 5 s", left, gid, d.side)
		}
		if unnamed > 0 || named > 0 {
			clean = 0
		} else {
			clean++
		}
		if clean == 2 {
			break
		}
		if time.Now().After(deadline) {
			hint := ""
			if blindUnnamed > 0 {
				hint = fmt.Sprintf(" (%d of them in a transaction whose statements pg_stat_activity does not show: track_activities is off for them, or their state is kept from this user)", blindUnnamed)
			}
			return sideUnknown, false, fmt.Errorf("%d apply session(s) on the %s database are busy and have not said yet which transaction they apply%s; "+
				"one may be applying %s: try again", unnamed, d.side, hint, gid)
		}
		select {
		case <-ctx.Done():
			return sideUnknown, false, ctx.Err()
		case <-time.After(stopAppliesGap):
		}
	}
	st, _, err = d.observe(ctx, gid, xid, false)
	return st, false, err
}

// stopApplies' bounds: how long it waits for busy apply sessions to name their gid, and the
// pause between its looks.
const (
	stopAppliesWait = 10 * time.Second
	stopAppliesGap  = 50 * time.Millisecond
	// stopAppliesStart: how long a blind apply session (track_activities off) may be seen
	// unnamed in one transaction and still be taken for an apply on its way to naming its gid.
	stopAppliesStart = time.Second
)

// observe reads what d says about gid. own: d is the database of the gid's own site, where
// the xid's status is the record; otherwise the decision row is. The "prepared?" read comes
// first and the outcome read after it, in its own statement: a transaction that finishes in
// between then shows as finished, never as neither.
func (d *resolveDB) observe(ctx context.Context, gid string, xid uint64, own bool) (sideState, string, error) {
	if !d.reachable() {
		return sideUnreachable, fmt.Sprintf("the %s database is unreachable: %v", d.side, d.err), nil
	}
	prepared, err := d.isPrepared(ctx, gid)
	if err != nil {
		return sideUnknown, "", err
	}
	if prepared {
		return sidePrepared, "", nil
	}
	if !own {
		var n int
		if err := d.queryRow(ctx, &n, `SELECT count(*) FROM tandem.decisions WHERE gid = $1`, gid); err != nil {
			return sideUnknown, "", fmt.Errorf("read the decision row of %s on the %s database: %w", gid, d.side, err)
		}
		if n > 0 {
			return sideCommitted, "", nil
		}
		return sideNeither, "", nil
	}
	var status sql.NullString
	err = d.queryRow(ctx, &status, `SELECT pg_xact_status($1::xid8)`, strconv.FormatUint(xid, 10))
	if sqlState(err) == "22023" { // transaction ID is in the future
		return sideUnknown, fmt.Sprintf("xid %d of %s is in the future on the %s database: it is not the database that made it", xid, gid, d.side), nil
	}
	if err != nil {
		return sideUnknown, "", fmt.Errorf("read the status of xid %d of %s on the %s database: %w", xid, gid, d.side, err)
	}
	switch {
	case !status.Valid:
		return sideUnknown, fmt.Sprintf("xid %d of %s is too old for the %s database to remember its outcome", xid, gid, d.side), nil
	case status.String == "committed":
		return sideCommitted, "", nil
	case status.String == "aborted":
		return sideNeither, "", nil
	default: // "in progress" yet not prepared: a live transaction, not one this process runs
		return sideUnknown, fmt.Sprintf("xid %d of %s is %s but not prepared on the %s database", xid, gid, status.String, d.side), nil
	}
}

// finish runs COMMIT or ROLLBACK PREPARED gid on d. When the gid is no longer prepared
// there, someone else finished it; that is fine when it went the same way.
func (d *resolveDB) finish(ctx context.Context, gid string, xid uint64, own, commit bool) (done bool, err error) {
	verb := "ROLLBACK PREPARED"
	if commit {
		verb = "COMMIT PREPARED"
	}
	qctx, cancel := context.WithTimeout(ctx, resolveStmtTimeout)
	_, err = d.conn.ExecContext(qctx, verb+" "+sqlLiteral(gid))
	cancel()
	if err == nil {
		return true, nil
	}
	if sqlState(err) != "42704" { // anything but "no such prepared transaction"
		return false, fmt.Errorf("%s %s on the %s database: %w", verb, gid, d.side, err)
	}
	st, _, oerr := d.observe(ctx, gid, xid, own)
	switch {
	case oerr != nil:
		return false, fmt.Errorf("%s %s on the %s database found it finished already, and reading how failed: %w", verb, gid, d.side, oerr)
	case commit && st == sideCommitted, !commit && st == sideNeither:
		return false, nil
	}
	return false, fmt.Errorf("%s %s on the %s database: someone else finished it meanwhile, and it is now %s there",
		verb, gid, d.side, st)
}

func (st sideState) String() string {
	return [...]string{"unreachable", "prepared", "committed", "neither prepared nor committed", "of unknown outcome"}[st]
}

// sqlState is the SQLSTATE of a database error, or "".
func sqlState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// ResolveOnce makes one pass over both databases (DESIGN §5.4). One unreachable database is
// not an error: the rules cover it. The error joins every failure of the pass (both
// databases unreachable, a failed read or COMMIT/ROLLBACK PREPARED); the report holds what
// was done anyway.
func (r *Resolver) ResolveOnce(ctx context.Context) (Report, error) {
	return r.ResolveInTerm(ctx, 0)
}

// ResolveInTerm is ResolveOnce by the master of term at the Resolver's site (a running tandem's
// passes; 0: no term, as ResolveOnce). Such a pass settles only what is its term's to settle
// (DESIGN §3 fencing in the databases, as every apply checks tandem.check_term): once both
// databases are listed, it does nothing and fails with an error wrapping ErrStaleTerm when either
// reachable database holds a newer term record (or this term of another master), or a gid of a
// newer master is prepared on either. A master that lost its role without knowing yet (its
// process paused, its sidecar cut off) would otherwise settle its successor's dual commits in
// flight, which its InFlight does not know: one between its local PREPARE and the peer's,
// prepared on the successor's database alone, it rolled back there, failing a commit nothing
// had refused (TestStaleMasterResolverLeavesSuccessor). The check after the listing covers every
// gid listed: a successor saves its term record in its database before it prepares anything.
func (r *Resolver) ResolveInTerm(ctx context.Context, term uint64) (Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rep Report
	dbs := r.connect(ctx)
	defer dbs[0].close()
	defer dbs[1].close()
	rep.PeerUnreachable = !dbs[1].reachable()
	if !dbs[0].reachable() && !dbs[1].reachable() {
		return rep, fmt.Errorf("resolve: neither database is reachable: local: %v; peer: %v", dbs[0].err, dbs[1].err)
	}
	var errs []error
	found, young := map[string]bool{}, map[string]bool{}
	for i, d := range dbs {
		if r.down[i] != !d.reachable() {
			r.down[i] = !d.reachable()
			if r.down[i] {
				r.logger.Warn("resolver: database unreachable; resolving what the other one allows", "side", d.side, "err", d.err)
			} else {
				r.logger.Info("resolver: database reachable again", "side", d.side)
			}
		}
		if !d.reachable() {
			continue
		}
		gids, recent, err := d.listPrepared(ctx, r.cfg.Settle)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, g := range gids {
			found[g] = true
		}
		for _, g := range recent {
			young[g] = true
		}
	}
	gids := make([]string, 0, len(found))
	for g := range found {
		gids = append(gids, g)
	}
	sort.Strings(gids)
	if term > 0 {
		if err := r.checkTerm(ctx, dbs, term, gids); err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
	}
	doubt := map[string]bool{}
	for _, gid := range gids {
		if young[gid] || (r.cfg.InFlight != nil && r.cfg.InFlight(gid)) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		site, gterm, xid, ok := parseGID(gid)
		if !ok {
			side := "local"
			if !containsPrepared(ctx, dbs[0], gid) {
				side = "peer"
			}
			rep.InDoubt = append(rep.InDoubt, InDoubt{GID: gid, Side: side, Reason: "not a gid Tandem makes (tandem_<site>_<term>_<xid>)"})
			doubt[gid] = true
			continue
		}
		ownDB, otherDB := dbs[1], dbs[0]
		if site == r.cfg.Site {
			ownDB, otherDB = dbs[0], dbs[1]
		}
		own, ownWhy, err := ownDB.observe(ctx, gid, xid, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", gid, err))
			continue
		}
		other, otherWhy, err := otherDB.observe(ctx, gid, xid, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", gid, err))
			continue
		}
		if own == sidePrepared && other == sideNeither {
			// Rolled back here on the word of the other database, it must not be prepared there
			// later by an apply still running (stopApplies).
			var busy bool
			if other, busy, err = otherDB.stopApplies(ctx, gid, xid, r.cfg.Settle); err != nil {
				errs = append(errs, fmt.Errorf("resolve %s: %w", gid, err))
				continue
			}
			if busy {
				continue // still being applied there: as young
			}
		}
		steps, why := recoveryRule(own, other)
		if why != "" && r.cfg.CommitAlone != nil && olderAloneCandidate(site, r.cfg.Site, own, other) {
			ran, done, err := r.commitOlderAlone(ctx, gid, gterm, xid, ownDB)
			if err != nil {
				errs = append(errs, fmt.Errorf("resolve %s: %w", gid, err))
				continue
			}
			if ran {
				if done {
					rep.Committed = append(rep.Committed, gid)
				}
				continue
			}
		}
		if why != "" {
			side, detail := ownDB.side, otherWhy
			if own != sidePrepared {
				side, detail = otherDB.side, ownWhy
			}
			if detail != "" {
				why += " (" + detail + ")"
			}
			rep.InDoubt = append(rep.InDoubt, InDoubt{GID: gid, Side: side, Reason: why})
			doubt[gid] = true
			if !r.doubt[gid] {
				r.logger.Warn("resolver: transaction in doubt; `tandem resolve` lets an operator decide it", "gid", gid, "side", side, "reason", why)
			}
			continue
		}
		if len(steps) == 0 {
			continue
		}
		acted, err := r.apply(ctx, gid, xid, ownDB, otherDB, steps)
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %s: %w", gid, err))
		}
		if acted {
			if steps[0].commit {
				rep.Committed = append(rep.Committed, gid)
			} else {
				rep.RolledBack = append(rep.RolledBack, gid)
			}
		}
	}
	r.doubt = doubt
	return rep, errors.Join(errs...)
}

// checkTerm fails with an error wrapping ErrStaleTerm when a pass by the master of term at the
// Resolver's site meets a newer master: among gids (those listed on the databases) one of a newer
// term, or of this term and another site; on a reachable database of dbs a term record newer than
// term, or of term and another master (tandem.check_term). Any other failure to read a database's
// term record fails the pass too: whether the site is still master there is unknown.
func (r *Resolver) checkTerm(ctx context.Context, dbs [2]*resolveDB, term uint64, gids []string) error {
	for _, gid := range gids {
		site, gterm, _, ok := parseGID(gid)
		if ok && (gterm > term || (gterm == term && site != r.cfg.Site)) {
			return fmt.Errorf("resolve: %w: %s, of site %s's term %d, is prepared, and this site (%s) is master of term %d: "+
				"its master settles it; this pass settles nothing", ErrStaleTerm, gid, site, gterm, r.cfg.Site, term)
		}
	}
	for _, d := range dbs {
		if !d.reachable() {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, resolveStmtTimeout)
		_, err := d.conn.ExecContext(qctx, `SELECT tandem.check_term($1, $2)`, int64(term), r.cfg.Site)
		cancel()
		if pgErrCode(err) == sqlstateStaleTerm {
			return fmt.Errorf("resolve: the %s database: %w: %w; this pass settles nothing", d.side, ErrStaleTerm, err)
		}
		if err != nil {
			return fmt.Errorf("resolve: check the term record on the %s database: %w", d.side, err)
		}
	}
	return nil
}

// containsPrepared reports whether gid is prepared on d (false on any error).
func containsPrepared(ctx context.Context, d *resolveDB, gid string) bool {
	if !d.reachable() {
		return false
	}
	p, err := d.isPrepared(ctx, gid)
	return err == nil && p
}

// apply takes the steps of recoveryRule in order and logs each; acted: at least one of them
// changed a database.
func (r *Resolver) apply(ctx context.Context, gid string, xid uint64, ownDB, otherDB *resolveDB, steps []resolveStep) (acted bool, err error) {
	for _, s := range steps {
		d := otherDB
		if s.own {
			d = ownDB
		}
		done, err := d.finish(ctx, gid, xid, s.own, s.commit)
		if err != nil {
			r.logger.Error("resolver: could not finish transaction", "gid", gid, "side", d.side, "commit", s.commit, "err", err)
			return acted, err
		}
		if done {
			acted = true
			r.logger.Info("resolver: finished in-doubt transaction", "gid", gid, "side", d.side, "commit", s.commit)
		}
	}
	return acted, nil
}

// Decide carries out an operator's decision (`tandem resolve`) for gid: COMMIT PREPARED
// (commit) or ROLLBACK PREPARED on every reachable database where it is prepared, the gid's
// own site first. It refuses a gid this process has in flight, one prepared on no reachable
// database, a decision that contradicts an outcome a reachable database already records
// (committed on one side, rolled back on the gid's own site), and a roll-back while either
// database is unreachable (a later pass would commit a copy prepared on the applied side). A
// side that is unreachable now is finished by a later pass from the outcome recorded here.
// A commit of a gid prepared on its own site's database alone (the other database lacks it or
// cannot be reached) is refused unless that site is the master (commitAloneShips). A decision
// for a copy prepared only on the other database while the gid's own site's database cannot
// tell the outcome of its xid is refused too (see DecideOptions.AcceptUnknownOwnOutcome).
func (r *Resolver) Decide(ctx context.Context, gid string, commit bool) error {
	return r.DecideWith(ctx, gid, commit, DecideOptions{})
}

// DecideOptions are the operator's overrides of Decide's refusals.
type DecideOptions struct {
	// AcceptUnknownOwnOutcome lets the decision go ahead for a gid prepared only on the
	// database of the other site while the database of the gid's own site (its coordinator,
	// whose xid status is the record, DESIGN §5.4) answers but cannot tell whether the gid's
	// xid committed: pg_xact_status is NULL (the xid is older than what it remembers), the xid
	// is "in the future" there (that database was restored or re-initialised since), or it is
	// in progress without being prepared. Committing the copy when the own site rolled it back,
	// or rolling it back when the own site committed it, leaves the databases apart; the
	// operator sets this only after checking on the own site's database whether the
	// transaction's changes are there.
	AcceptUnknownOwnOutcome bool
}

// DecideWith is Decide with the operator's overrides.
func (r *Resolver) DecideWith(ctx context.Context, gid string, commit bool, opts DecideOptions) error {
	site, _, xid, ok := parseGID(gid)
	if !ok {
		return fmt.Errorf("resolve %s: not a gid Tandem makes (tandem_<site>_<term>_<xid>)", gid)
	}
	if r.cfg.InFlight != nil && r.cfg.InFlight(gid) {
		return fmt.Errorf("resolve %s: this process is still committing it; try again later", gid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	dbs := r.connect(ctx)
	defer dbs[0].close()
	defer dbs[1].close()
	ownDB, otherDB := dbs[1], dbs[0]
	if site == r.cfg.Site {
		ownDB, otherDB = dbs[0], dbs[1]
	}
	own, ownWhy, err := ownDB.observe(ctx, gid, xid, true)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", gid, err)
	}
	other, _, err := otherDB.observe(ctx, gid, xid, false)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", gid, err)
	}
	if !commit && other == sideNeither {
		if other, _, err = otherDB.stopApplies(ctx, gid, xid, 0); err != nil { // as in ResolveOnce; an operator's decision ends them all
			return fmt.Errorf("resolve %s: %w", gid, err)
		}
	}
	switch {
	case !commit && own == sideCommitted:
		return fmt.Errorf("resolve %s: refusing to roll back: it is committed on the %s database (the gid's own site)", gid, ownDB.side)
	case !commit && other == sideCommitted:
		return fmt.Errorf("resolve %s: refusing to roll back: it is committed on the %s database", gid, otherDB.side)
	case commit && own == sideNeither:
		return fmt.Errorf("resolve %s: refusing to commit: the %s database (the gid's own site) rolled it back", gid, ownDB.side)
	case !commit && (!ownDB.reachable() || !otherDB.reachable()):
		// A copy prepared on the applied side is committed whenever the gid's own site is out
		// of reach (DESIGN §5.4: its coordinator prepared first, so it decided commit): with the
		// own site unreachable that is the outcome already, and the other database, while
		// unreachable, may hold such a copy, which a later pass without the own site commits.
		return fmt.Errorf("resolve %s: refusing to roll back while a database is unreachable (%s: %s, %s: %s): "+
			"recovery commits a copy prepared on the %s database whenever the gid's own site is out of reach; commit it, or decide once both are back",
			gid, ownDB.side, own, otherDB.side, other, otherDB.side)
	case own != sidePrepared && other != sidePrepared:
		return fmt.Errorf("resolve %s: not prepared on any reachable database (%s: %s, %s: %s)",
			gid, ownDB.side, own, otherDB.side, other)
	}
	if own == sideUnknown && other == sidePrepared && !opts.AcceptUnknownOwnOutcome {
		verb, want := "roll back", "committed it"
		if commit {
			verb, want = "commit", "rolled it back"
		}
		return fmt.Errorf("resolve %s: refusing to %s: it is prepared only on the %s database, and the %s database (site %s's, the gid's own site, "+
			"whose xid status records the outcome) cannot tell whether its transaction committed (%s); if site %s %s, this decision leaves the databases apart: "+
			"check on the %s database whether the transaction's changes are there (its application's records, or tandem verify), "+
			"then decide with the override (tandem resolve -accept-unknown-outcome; DecideOptions.AcceptUnknownOwnOutcome) or %s PREPARED %s on the %s database by hand",
			gid, verb, otherDB.side, ownDB.side, site, ownWhy, site, want, ownDB.side,
			map[bool]string{true: "COMMIT", false: "ROLLBACK"}[commit], sqlLiteral(gid), otherDB.side)
	}
	if commit && own == sidePrepared && other != sidePrepared && other != sideCommitted {
		if err := commitAloneShips(ctx, gid, site, ownDB, otherDB, dbs); err != nil {
			return err
		}
	}
	var steps []resolveStep
	if own == sidePrepared {
		steps = append(steps, resolveStep{own: true, commit: commit})
	}
	if other == sidePrepared {
		steps = append(steps, resolveStep{own: false, commit: commit})
	}
	r.logger.Warn("resolver: operator decision", "gid", gid, "commit", commit, "accept_unknown_own_outcome", opts.AcceptUnknownOwnOutcome)
	if _, err := r.apply(ctx, gid, xid, ownDB, otherDB, steps); err != nil {
		return fmt.Errorf("resolve %s: %w", gid, err)
	}
	delete(r.doubt, gid)
	return nil
}

// commitAloneShips checks that committing gid on its own site's database (ownDB), while the
// other database holds no copy (or cannot be reached to tell), leaves the databases alike in
// the end: only the master's slot is shipped to the peer (DESIGN §5.5), so the commit reaches
// the other database only when the gid's site is the master. On the backup's database it would
// stay there alone — nothing ships a backup's commits, and resync copies the master's tables
// over it — so it is refused, saying why. The master is the one named by the highest term
// record among the reachable databases.
//
// While the other database cannot be reached, the commit is refused too when that record says
// peer_synced = true: the other site may then take control (DESIGN §3 rule 2) without what is
// committed here alone — the master records false when its peer fails with peer_down =
// "continue", never with "block", where a commit in doubt waits for the peer. This process
// (tandem resolve) cannot change the running master's published record.
func commitAloneShips(ctx context.Context, gid, site string, ownDB, otherDB *resolveDB, dbs [2]*resolveDB) error {
	var term uint64
	var master string
	var synced bool
	for _, d := range dbs {
		if !d.reachable() {
			continue
		}
		t, m, s, err := d.termRecord(ctx)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", gid, err)
		}
		if master == "" || t > term {
			term, master, synced = t, m, s
		}
	}
	if master == site && synced && !otherDB.reachable() {
		return fmt.Errorf("resolve %s: refusing to commit: it is prepared on the %s database only as far as can be told (the %s database does not answer), "+
			"and the master's term record (term %d) says the peer has every commit (peer_synced = true, as with peer_down = \"block\"): committed here alone, "+
			"a takeover by the other site would lose it; decide once the %s database answers (a resolver pass then settles it on both)",
			gid, ownDB.side, otherDB.side, term, otherDB.side)
	}
	if master == site {
		return nil
	}
	who := "no term record names a master"
	if master != "" {
		who = fmt.Sprintf("the master is site %s (term %d)", master, term)
	}
	return fmt.Errorf("resolve %s: refusing to commit: it is prepared only on the %s database, site %s's, which is not the master (%s); "+
		"committed there alone, its changes would never reach the other database (only the master's are shipped, and resync copies the master's tables over them): "+
		"roll it back (-rollback, while both databases answer) and redo its changes through the master",
		gid, ownDB.side, site, who)
}

// termRecord reads d's term record (DESIGN §3); term 0 and master "" when it has none.
func (d *resolveDB) termRecord(ctx context.Context) (uint64, string, bool, error) {
	qctx, cancel := context.WithTimeout(ctx, resolveStmtTimeout)
	defer cancel()
	var t int64
	var m string
	var synced bool
	err := d.conn.QueryRowContext(qctx, `SELECT term, master, peer_synced FROM tandem.state WHERE id = 1`).Scan(&t, &m, &synced)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("read the term record on the %s database: %w", d.side, err)
	}
	return uint64(t), m, synced, nil
}
