package txshim

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Decision rows (tandem.decisions, one per transaction applied on a database) are the
// idempotency keys of shipping and catch-up and what the resolver reads on the side that holds
// an applied copy (DESIGN §5.4). DESIGN has them "pruned after a retention period"; unpruned they
// grow by one row per write transaction for ever, and a plain commit's key, made from its 32-bit
// xid, would meet an old row once the xids wrap around (shipping tells such a row by its lsn and
// replaces it, as it does one left from before the site's database was restored: plainGID).
//
// A row is needed while its transaction may still be sent again by its source's slot, or may
// still be prepared on either database. PruneDecisions deletes a row only when:
//   - its lsn (the end of the transaction in the source's stream) is before the restart_lsn of
//     the source site's slot: after any restart, even of the source database after a crash (a
//     slot's restart_lsn is written to disk as soon as it moves, its confirmed position only at
//     checkpoints), decoding resumes past it;
//   - its gid is prepared neither on the database that holds it nor on the source's;
//   - it is older than the retention period (DecisionRetention), for whoever reads them by hand;
//   - it is not the site's newest by lsn: that one tells the master whether the database it
//     ships to still holds what it committed (Shipper.checkPeerHolds), however long ago.
//
// A row without an lsn (written before it was recorded, or by a peer whose tandem.decisions
// still lacks the column) goes once a row of the same site that is past the slot by its lsn
// was applied more than the retention period after it: shipping applies in stream order (a
// few transactions at once), so its transaction is past the slot too. Kept for ever, as they
// were, a plain commit's row outlived its 32-bit xid, and the commit that got that xid again
// was taken for one the peer had, and never shipped.

// decisionRetention is DecisionRetention's default; pruneEvery PruneInterval's, the period of
// the master's pruning; pruneBatch the rows one DELETE takes at most (short transactions,
// short locks).
const (
	decisionRetention = time.Hour
	pruneEvery        = time.Minute
	pruneBatch        = 10000
	pruneTimeout      = time.Minute
)

// PruneDecisions deletes the decision rows nobody needs any more on both databases: on the
// peer those of this site's transactions, on the local database those the other site shipped
// while it was master. It returns how many rows went.
func (s *Shipper) PruneDecisions(ctx context.Context) (int64, error) {
	if s.cfg.DecisionRetention < 0 {
		return 0, nil
	}
	retention := s.cfg.DecisionRetention
	if retention == 0 {
		retention = decisionRetention
	}
	local, err := OpenDB(s.cfg.LocalDSN)
	if err != nil {
		return 0, fmt.Errorf("prune decision rows: local database: %w", err)
	}
	defer local.Close()
	peer, err := OpenDB(s.cfg.PeerDSN)
	if err != nil {
		return 0, fmt.Errorf("prune decision rows: peer database: %w", err)
	}
	defer peer.Close()
	n, err := pruneDecisionsOn(ctx, peer, local, retention)
	if err != nil {
		return n, fmt.Errorf("prune decision rows on the peer database: %w", err)
	}
	m, err := pruneDecisionsOn(ctx, local, peer, retention)
	if err != nil {
		return n + m, fmt.Errorf("prune decision rows on the local database: %w", err)
	}
	return n + m, nil
}

// pruneDecisionsOn deletes target's decision rows of the sites whose slots source holds (see
// PruneDecisions for the rules).
func pruneDecisionsOn(ctx context.Context, target, source *sql.DB, retention time.Duration) (int64, error) {
	type slot struct{ site, restart string }
	var slots []slot
	rows, err := source.QueryContext(ctx, `SELECT slot_name, restart_lsn::text FROM pg_replication_slots
WHERE slot_name LIKE 'tandem\_%' AND database = current_database() AND restart_lsn IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("read the source's slots: %w", err)
	}
	for rows.Next() {
		var name, restart string
		if err := rows.Scan(&name, &restart); err != nil {
			rows.Close()
			return 0, err
		}
		slots = append(slots, slot{strings.TrimPrefix(name, "tandem_"), restart})
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	if len(slots) == 0 {
		return 0, nil
	}
	prepared, err := queryStrings(ctx, source, `SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'tandem\_%'`)
	if err != nil {
		return 0, fmt.Errorf("read the source's prepared transactions: %w", err)
	}
	if prepared == nil {
		prepared = []string{} // pq.Array(nil) is NULL, and "= ANY(NULL)" excludes every row
	}
	// The index on at finds the rows past the retention (most rows are younger, and most are
	// past the slot). The site inside a gid (gidFor, plainGID): site names may hold
	// underscores, so the pattern anchors the two fields after it.
	del := `DELETE FROM tandem.decisions WHERE gid IN (
  SELECT d.gid FROM tandem.decisions d
  WHERE d.at < now() - make_interval(secs => $2)
    AND (d.lsn < $1::pg_lsn OR (d.lsn IS NULL AND d.at < (SELECT max(e.at) FROM tandem.decisions e
      WHERE e.lsn < $1::pg_lsn AND substring(e.gid from '^tandem_(.+)_(?:[0-9]+|plain)_[0-9]+$') = $3) - make_interval(secs => $2)))
    AND substring(d.gid from '^tandem_(.+)_(?:[0-9]+|plain)_[0-9]+$') = $3
    AND (d.lsn IS NULL OR d.lsn < (SELECT max(e.lsn) FROM tandem.decisions e
      WHERE substring(e.gid from '^tandem_(.+)_(?:[0-9]+|plain)_[0-9]+$') = $3))
    AND NOT d.gid = ANY($4)
    AND NOT EXISTS (SELECT 1 FROM pg_prepared_xacts p WHERE p.gid = d.gid)
  LIMIT ` + strconv.Itoa(pruneBatch) + `)`
	var total int64
	for _, sl := range slots {
		for {
			res, err := target.ExecContext(ctx, del, sl.restart, retention.Seconds(), sl.site, pq.Array(prepared))
			if err != nil {
				return total, err
			}
			n, _ := res.RowsAffected()
			total += n
			if n < pruneBatch {
				break
			}
		}
	}
	return total, nil
}

// pruneLoop prunes decision rows every PruneInterval while this site is master and the peer
// in step (it needs both databases).
func (s *Shipper) pruneLoop(ctx context.Context) {
	if s.cfg.DecisionRetention < 0 {
		return
	}
	t := time.NewTicker(cmp.Or(s.cfg.PruneInterval, pruneEvery))
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		online := s.link == linkOnline
		s.mu.Unlock()
		if !online || s.backup.Load() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, pruneTimeout)
		n, err := s.PruneDecisions(pctx)
		cancel()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.logger.Warn("cannot prune decision rows", "err", err)
		case n > 0:
			s.logger.Debug("pruned decision rows", "rows", n)
		}
		s.mu.Lock()
		s.stats.Pruned += n
		s.mu.Unlock()
		failing = err != nil
	}
}
