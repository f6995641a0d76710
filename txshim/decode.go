package txshim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Relation is a published table as the local slot described it (a pgoutput Relation message).
// A relation whose definition changes gets a new *Relation; changes keep the one they were
// decoded with.
type Relation struct {
	ID              uint32
	Namespace, Name string
	// ReplicaIdentity is 'd' (primary key), 'f' (full row), 'i' (an index) or 'n' (nothing).
	ReplicaIdentity byte
	// Columns are the published columns in the order tuples carry them. Generated columns
	// are not among them (PostgreSQL 15 does not publish them).
	Columns []RelColumn
	// key is relKey's answer, made once the definition is complete (the decoder's relations are
	// shared by the applies that read them); "" for a Relation made elsewhere.
	key string
}

// RelColumn is one published column.
type RelColumn struct {
	Name    string
	Key     bool // part of the replica identity
	TypeOID uint32
	TypeMod int32
}

// QualifiedName is the quoted schema.table name.
func (r *Relation) QualifiedName() string { return sqlIdent(r.Namespace) + "." + sqlIdent(r.Name) }

// Value kinds, as pgoutput sends them.
const (
	ValueNull      = 'n'
	ValueUnchanged = 'u' // an unchanged TOASTed value: not sent, keep what the row has
	ValueText      = 't'
	ValueBinary    = 'b'
)

// Value is one column's value in a tuple, in the type's text format when Kind is ValueText.
type Value struct {
	Kind byte
	Data []byte
}

// Change kinds.
const (
	ChangeInsert   = 'I'
	ChangeUpdate   = 'U'
	ChangeDelete   = 'D'
	ChangeTruncate = 'T'
)

// Change is one row change (or a TRUNCATE) of a decoded transaction.
type Change struct {
	Kind byte
	Rel  *Relation // the changed table; for a TRUNCATE the first of Truncated
	// Old identifies the row an UPDATE or DELETE changed: the key columns (others null) or,
	// with OldFull, the whole old row. Nil for an UPDATE that left the key as it was: the key
	// is then in New.
	Old     []Value
	OldFull bool
	New     []Value // the row an INSERT or UPDATE wrote
	// Truncated lists the tables a TRUNCATE emptied; TruncateOptions has bit 1 for CASCADE and
	// bit 2 for RESTART IDENTITY.
	Truncated       []*Relation
	TruncateOptions uint8
}

// Txn is one decoded transaction of the local slot.
type Txn struct {
	GID      string // for prepared ones; "" for plain commits
	XID      uint32
	Prepared bool // arrived at PREPARE (two-phase) rather than COMMIT
	Changes  []Change
	// PrepareLSN is the prepare (or commit) LSN, EndLSN the end of that record: the stream
	// position just past this transaction.
	PrepareLSN, EndLSN pglogrepl.LSN
	Time               time.Time // prepare or commit time

	// Changes past the decoder's spill threshold are in spill, after those in Changes
	// (spill.go); Len and Each see them all.
	spill *spill
	mem   int64 // Changes accounted as the journal does (changeSize), while decoding
	// ddlAt is when the transaction's first DDL through the shim was recorded (its tandem.ddl
	// row's at: the local transaction's start), or zero: how long its DDL may take on the
	// peer too (sizeAllowance).
	ddlAt time.Time
	// ddlRestated: the last text of each tandem.ddl row (by id) that an UPDATE of the
	// transaction gave it (tandem.ddl_ctas, after the rows of a CREATE TABLE ... AS): the
	// apply runs that text where the row's insert stands.
	ddlRestated map[string]string
	// ddlInserted, ddlTakenBack: the ids of the tandem.ddl rows the transaction inserted, and of
	// those of them it deleted too (tandem.ddl_unrecord: DDL on temporary objects only, which
	// the peer lacks): the apply runs neither their insert nor their delete, whatever the
	// transaction wrote between them (an event trigger's row: TestTempDDLTriggerRowBetween).
	ddlInserted, ddlTakenBack map[string]bool
	// renames: the schemas its DDL renamed, in order (Decoder.schemaRenamed).
	renames []schemaRenaming
}

// Len is the number of changes of t, spilled ones included.
func (t *Txn) Len() int {
	if t.spill != nil {
		return len(t.Changes) + t.spill.n
	}
	return len(t.Changes)
}

// Each calls fn with every change of t in order, numbered from 0, and stops at fn's first
// error (or a spill file's), which it returns.
func (t *Txn) Each(fn func(i int, c Change) error) error {
	for i, c := range t.Changes {
		if err := fn(i, c); err != nil {
			return err
		}
	}
	if t.spill != nil {
		return t.spill.each(fn)
	}
	return nil
}

// Finish is the local COMMIT PREPARED or ROLLBACK PREPARED of a transaction decoded earlier.
type Finish struct {
	GID       string
	XID       uint32
	Committed bool
	EndLSN    pglogrepl.LSN
}

// Event is what the decoder delivers, in stream order: exactly one of Txn and Finish is set,
// or neither, when the event only says that the stream has nothing more before Pos.
type Event struct {
	Txn    *Txn
	Finish *Finish
	Pos    pglogrepl.LSN // the stream position just past this event
}

// Decoder streams the local two-phase slot tandem_<site> and delivers its transactions (DESIGN
// §5.2). Transactions carrying a replication origin (applied from the other site) are skipped:
// nothing comes back. It holds the slot's confirmed position where Confirm puts it, so the slot
// keeps every transaction the peer has not committed yet.
type Decoder struct {
	dsn    string
	slot   string
	logger *slog.Logger

	confirmed atomic.Uint64 // LSN the slot may forget everything before
	// spillAfter, when positive, is how many bytes of a transaction's changes (changeSize)
	// are held in memory; the rest go to a file in spillDir (spill.go).
	spillAfter int64
	spillDir   string
	spillHook  *hook[func() error] // when set, its Shipper's spillWrite test hook (shipperHooks)
	// received, when set, counts the XLogData messages read: progress inside a transaction
	// too large to arrive at once.
	received *atomic.Uint64
	// started, when set, is told the slot's confirmed position each time a stream starts,
	// before it streams (Shipper.slotStarts).
	started func(from pglogrepl.LSN)

	// Owned by Run.
	rels map[uint32]*Relation
	// renamed: the schema renames of prepared transactions, by gid, which the names of other
	// transactions' changes take only from their COMMIT PREPARED on (schemaRenamed); kept
	// until the slot is confirmed past that (pendingRename).
	renamed map[string]*pendingRename
	lastEnd pglogrepl.LSN // events ending at or before it were delivered (by an earlier Run too)
	// streamFrom: the slot's confirmed position when the stream started, where it streams from
	// (reportable).
	streamFrom pglogrepl.LSN
}

// statusInterval is how often the decoder reports its confirmed position to the server;
// a position that moved is reported sooner, but not more often than every statusCoalesce.
const (
	statusInterval = time.Second
	statusCoalesce = 20 * time.Millisecond
)

// shutdownProbeEvery is how often an idle decoder behind the stream asks whether the local
// database is shutting down (shuttingDown).
const shutdownProbeEvery = 2 * time.Second

// shuttingDown tells whether the local database refuses a new connection because it is
// shutting down (SQLSTATE 57P03, cannot_connect_now, after its fast shutdown began).
func (d *Decoder) shuttingDown(ctx context.Context) bool {
	cfg, err := parseDSN(d.dsn)
	if err != nil {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err == nil {
		conn.Close(cctx)
		return false
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "57P03"
}

// NewDecoder returns a decoder for the slot tandem_<site> on the local database.
func NewDecoder(localDSN, site string, logger *slog.Logger) *Decoder {
	if logger == nil {
		logger = slog.Default()
	}
	return &Decoder{dsn: localDSN, slot: SlotName(site), logger: logger.With("slot", SlotName(site)), rels: map[uint32]*Relation{}}
}

// Confirm lets the slot forget everything before lsn (the peer committed it). The position
// only moves forward; the server learns it within statusInterval.
func (d *Decoder) Confirm(lsn pglogrepl.LSN) {
	for {
		cur := d.confirmed.Load()
		if uint64(lsn) <= cur || d.confirmed.CompareAndSwap(cur, uint64(lsn)) {
			return
		}
	}
}

// Confirmed is the last position passed to Confirm.
func (d *Decoder) Confirmed() pglogrepl.LSN { return pglogrepl.LSN(d.confirmed.Load()) }

// Run streams the slot until ctx ends or the connection fails, sending events to out. After
// a failure Run may be called again: it resumes at the slot's confirmed position and does not
// deliver again what it delivered before. Only one Run may be active at a time.
func (d *Decoder) Run(ctx context.Context, out chan<- Event) error {
	return d.run(ctx, func(ev Event) error { return sendEvent(ctx, out, ev) })
}

// run is Run handing each event to deliver, in order, on Run's goroutine; an error of deliver
// ends the run with it.
func (d *Decoder) run(ctx context.Context, deliver func(Event) error) error {
	cfg, err := parseDSN(d.dsn)
	if err != nil {
		return fmt.Errorf("decoder: parse local DSN: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	// pgoutput's text values are written by the walsender's output functions, under this
	// session's settings: the ones that fix how values read (textSettings), and an empty
	// search path (pg_catalog only), so that reg* values (regclass, regtype, …) come
	// schema-qualified and read the same whatever the peer's search_path — as PostgreSQL's own
	// subscriber sets on its publisher connection. Names in them are spelled bare where they
	// may be (quote_all_identifiers off), as the peer spells the values the apply compares by
	// their text (tandem.catalog_text): a local default of on quoted every one
	// (TestApplyQuoteAllIdentifiers). Its query of the slot takes Tandem's own session defaults,
	// not the database's (ownSession, noTimeouts): under SERIALIZABLE, READ ONLY and DEFERRABLE
	// ones it waited for a safe snapshot while a serializable writer was open, and nothing was
	// shipped meanwhile (TestDecoderLocalDeferrableDefaults).
	pinSettings(cfg, textSettings, noTimeouts, ownSession, map[string]string{"search_path": "pg_catalog", "quote_all_identifiers": "off"})
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("decoder: connect to the local database for replication: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	// Where the stream starts: a PREPARE before it is not streamed again (reportable).
	rr, err := conn.Exec(ctx, "SELECT confirmed_flush_lsn::pg_catalog.text FROM pg_catalog.pg_replication_slots WHERE slot_name OPERATOR(pg_catalog.=) "+quoteLiteral(d.slot)).ReadAll()
	if err != nil {
		return fmt.Errorf("decoder: read slot %s: %w", d.slot, err)
	}
	d.streamFrom = 0
	if len(rr) == 1 && len(rr[0].Rows) == 1 && rr[0].Rows[0][0] != nil {
		d.streamFrom, _ = pglogrepl.ParseLSN(string(rr[0].Rows[0][0]))
	}
	if d.started != nil && d.streamFrom != 0 {
		d.started(d.streamFrom)
	}
	err = pglogrepl.StartReplication(ctx, conn, d.slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '3'", "publication_names '" + PublicationName + "'", "two_phase 'on'", "messages 'true'"},
	})
	if err != nil {
		return fmt.Errorf("decoder: start replication on slot %s: %w", d.slot, err)
	}
	d.logger.Info("decoder streaming", "confirmed", d.Confirmed())

	var (
		reported pglogrepl.LSN
		// received: the walsender's position as its keepalives tell it. At a fast shutdown
		// the walsender exits only once its client confirmed everything it sent, which the
		// decoder does not while the peer lacks some of it: the local database's shutdown
		// waited for ever, refusing every new connection (TestLocalFastShutdownWithBacklog).
		// So when the walsender asks for a reply (asked) while the stream is idle and the
		// confirmed position behind, the decoder asks now and then (probedAt) whether the
		// database is shutting down, and then leaves.
		received   pglogrepl.LSN
		asked      bool
		probedAt   time.Time
		dataAt     = time.Now() // when the last data came
		sentAt     time.Time    // when the last status went
		nextStatus time.Time
		cur        *Txn // the transaction being decoded
		skip       bool // cur carries an origin: it came from the other site

		// rctx bounds each receive by the time the next status is due (rdl); it is made anew
		// only when that time changes, not for every message.
		rctx context.Context
		rdl  time.Time
		recv = struct{ cancel context.CancelFunc }{func() {}}
	)
	defer func() { recv.cancel() }()
	for {
		// A new confirmed position goes at most every statusCoalesce (and at the latest
		// within statusInterval): reported at every message, as the positions of busy
		// commits move, it cost a write per transaction or two, and each made the walsender
		// answer with a keepalive (it sends one whenever it waits for WAL while the reported
		// position lags what it sent) — a read and an event more.
		now := time.Now()
		c := d.reportable()
		if !now.Before(nextStatus) || (c != reported && now.Sub(sentAt) >= statusCoalesce) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
				WALWritePosition: c, WALFlushPosition: c, WALApplyPosition: c,
			}); err != nil {
				return fmt.Errorf("decoder: send standby status: %w", err)
			}
			reported, sentAt, nextStatus = c, now, now.Add(statusInterval)
		}
		// Keepalives only (no data for a while), the confirmed position behind: at a fast
		// shutdown the walsender asks for a reply again as soon as it has one.
		if asked && c < received && now.Sub(dataAt) >= shutdownProbeEvery && now.Sub(probedAt) >= shutdownProbeEvery {
			asked, probedAt = false, now
			if d.shuttingDown(ctx) {
				return fmt.Errorf("decoder: the local database is shutting down: leaving slot %s at %s", d.slot, c)
			}
		}
		dl := nextStatus
		if c != reported {
			dl = sentAt.Add(statusCoalesce)
		}
		if rctx == nil || !dl.Equal(rdl) || rctx.Err() != nil {
			recv.cancel()
			rctx, recv.cancel = context.WithDeadline(ctx, dl)
			rdl = dl
		}
		msg, err := conn.ReceiveMessage(rctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("decoder: receive from slot %s: %w", d.slot, err)
		}
		var data []byte
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			data = m.Data
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("decoder: slot %s: %w", d.slot, pgconn.ErrorResponseToPgError(m))
		default:
			continue
		}
		if len(data) == 0 {
			continue
		}
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
			if err != nil {
				return fmt.Errorf("decoder: parse keepalive: %w", err)
			}
			received = max(received, ka.ServerWALEnd)
			if ka.ReplyRequested {
				nextStatus, asked = time.Time{}, true
			}
			if cur == nil && ka.ServerWALEnd > d.lastEnd {
				d.lastEnd = ka.ServerWALEnd
				if err := deliver(Event{Pos: ka.ServerWALEnd}); err != nil {
					return err
				}
			}
			continue
		case pglogrepl.XLogDataByteID:
		default:
			continue
		}
		dataAt = now
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("decoder: parse XLogData: %w", err)
		}
		if d.received != nil {
			d.received.Add(1)
		}
		ev, err := d.decode(xld.WALData, &cur, &skip)
		if err != nil {
			return fmt.Errorf("decoder: slot %s at %s: %w", d.slot, xld.WALStart, err)
		}
		if ev == nil {
			continue
		}
		if ev.Pos <= d.lastEnd {
			continue // delivered before a reconnect
		}
		d.lastEnd = ev.Pos
		if err := deliver(*ev); err != nil {
			return err
		}
	}
}

// textSettings are the session settings that fix how values are written as text and read back:
// the decoder's walsender writes pgoutput's values under them and the peer's apply sessions read
// them under them, so that a value arrives as it is whatever either database's defaults (a
// local DateStyle of 'SQL, DMY' would send 2024-01-02 as 02/01/2024, which a peer at MDY reads
// as February 1st; extra_float_digits = 0 would round float8s). The first four are what
// PostgreSQL's own subscriber asks of its publisher (libpqwalreceiver, with its own database's
// encoding, and IntervalStyle iso_8601 where it asks for postgres: PostgreSQL 15 writes an
// interval whose time part is the least it holds, -2562047788:00:54.775808, in postgres style
// but cannot read that text back, and the peer refused the transaction on every try, while
// iso_8601's PT-2562047788H-54.775808S reads back as every other interval does,
// TestFidelityIntervalMinTime; both databases have one encoding, install checks, and client_encoding SQL_ASCII
// passes the bytes as the database holds them, unconverted, while the database still checks
// what it is sent against its own encoding; UTF8 would make a SQL_ASCII database's walsender
// fail on every byte that is not UTF-8, for ever, and a peer of one refuse it); hex bytea makes bytea values one spelling, and the C locale's monetary format one
// spelling of money (a local lc_monetary of de_DE writes "1.234,56 €", which a peer at C
// refuses), and xmloption content reads every xml value, which a peer at document refuses for
// text or several elements (as pg_dump sets it). array_nulls on reads an array's unquoted NULL
// as the null element array_out wrote it for (it quotes a "NULL" string): a peer at off read it
// as the string "NULL" (or refused it in an int[]). TimeZone UTC: an ISO timestamptz carries
// its offset, and reads as the same instant under any zone, but the peer compares some values
// by their text as it spells them with the text the walsender spelled (kept, a composite or
// range with a domain inside): under the two databases' own zones an unchanged value with a
// timestamptz in it was judged changed, written again, and refused for a constraint of the
// domain added NOT VALID (TestApplyCompositeDomainFieldTimeZone).
var textSettings = map[string]string{
	"client_encoding":    "SQL_ASCII",
	"datestyle":          "ISO",
	"intervalstyle":      "iso_8601",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
	"xmloption":          "content",
	"array_nulls":        "on",
	"timezone":           "UTC",
}

// pinSettings makes cfg's connection start with the given settings, in place of any the DSN
// names (startup parameters win over the DSN's options and over database and role defaults).
func pinSettings(cfg *pgconn.Config, settings ...map[string]string) {
	for _, set := range settings {
		for name, value := range set {
			for k := range cfg.RuntimeParams {
				if strings.EqualFold(k, name) {
					delete(cfg.RuntimeParams, k)
				}
			}
			cfg.RuntimeParams[name] = value
		}
	}
}

func sendEvent(ctx context.Context, out chan<- Event, ev Event) error {
	select {
	case out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// decode handles one pgoutput message and returns the event it completes, if any.
func (d *Decoder) decode(data []byte, cur **Txn, skip *bool) (*Event, error) {
	if len(data) == 0 {
		return nil, errors.New("empty pgoutput message")
	}
	switch data[0] {
	case msgBeginPrepare, msgPrepare, msgCommitPrepared, msgRollbackPrepared:
		m, err := parseTwoPhase(data)
		if err != nil {
			return nil, err
		}
		switch m.Type {
		case msgBeginPrepare:
			*cur, *skip = &Txn{GID: m.GID, XID: m.XID, Prepared: true, PrepareLSN: m.LSN, EndLSN: m.EndLSN, Time: m.Time}, false
		case msgPrepare:
			t := *cur
			if t == nil || t.GID != m.GID {
				return nil, fmt.Errorf("prepare of %s without its begin prepare", m.GID)
			}
			*cur = nil
			t.PrepareLSN, t.EndLSN, t.Time = m.LSN, m.EndLSN, m.Time
			if err := t.seal(); err != nil {
				return nil, err
			}
			if len(t.renames) > 0 {
				// Not committed yet: other transactions still find the schemas by their old names.
				for i := len(t.renames) - 1; i >= 0; i-- {
					d.renameSchema(t.renames[i].to, t.renames[i].from)
				}
				if d.renamed == nil {
					d.renamed = map[string]*pendingRename{}
				}
				d.renamed[t.GID] = &pendingRename{rs: t.renames, at: t.PrepareLSN}
			}
			if *skip {
				return &Event{Pos: m.EndLSN}, nil
			}
			return &Event{Txn: t, Pos: m.EndLSN}, nil
		default:
			if p, ok := d.renamed[m.GID]; ok {
				if m.Type == msgCommitPrepared { // rolled back: the old names stay
					for _, r := range p.rs {
						d.renameSchema(r.from, r.to)
					}
				}
				p.done = m.EndLSN
			}
			return &Event{Finish: &Finish{GID: m.GID, XID: m.XID, Committed: m.Type == msgCommitPrepared, EndLSN: m.EndLSN}, Pos: m.EndLSN}, nil
		}
		return nil, nil
	case msgStreamPrepare, 'S', 'E', 'c', 'A':
		return nil, fmt.Errorf("unexpected streamed-transaction message %q (streaming is not requested)", data[0])
	}
	msg, err := parseMessage(data)
	if err != nil {
		return nil, fmt.Errorf("parse pgoutput %q: %w", data[0], err)
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		*cur, *skip = &Txn{XID: m.Xid, PrepareLSN: m.FinalLSN, Time: m.CommitTime}, false
	case *pglogrepl.CommitMessage:
		t := *cur
		if t == nil || t.Prepared {
			return nil, errors.New("commit without its begin")
		}
		*cur = nil
		t.PrepareLSN, t.EndLSN, t.Time = m.CommitLSN, m.TransactionEndLSN, m.CommitTime
		if err := t.seal(); err != nil {
			return nil, err
		}
		if *skip {
			return &Event{Pos: t.EndLSN}, nil
		}
		return &Event{Txn: t, Pos: t.EndLSN}, nil
	case *pglogrepl.OriginMessage:
		// The transaction was applied here from the other site (DESIGN §5.2: nothing comes back).
		*skip = true
	case *pglogrepl.RelationMessage:
		r := &Relation{ID: m.RelationID, Namespace: m.Namespace, Name: m.RelationName, ReplicaIdentity: m.ReplicaIdentity}
		for _, c := range m.Columns {
			r.Columns = append(r.Columns, RelColumn{Name: c.Name, Key: c.Flags&1 != 0, TypeOID: c.DataType, TypeMod: c.TypeModifier})
		}
		r.key = relKey(r)
		d.rels[r.ID] = r
		if t := *cur; t != nil && t.spill != nil && !*skip {
			// The spilled changes after it are read back with this definition.
			return nil, t.spill.add(data, nil)
		}
	case *pglogrepl.InsertMessage:
		if err := d.addChange(data, *cur, *skip, m.RelationID, func(r *Relation) (Change, error) {
			return Change{Kind: ChangeInsert, Rel: r, New: tupleValues(m.Tuple)}, nil
		}); err != nil {
			return nil, err
		}
		if r := d.rels[m.RelationID]; r != nil && r.Namespace == "tandem" && r.Name == "ddl" {
			// Of a transaction skipped too: its statement ran here as well.
			d.schemaRenamed(*cur, Change{Kind: ChangeInsert, Rel: r, New: tupleValues(m.Tuple)})
		}
	case *pglogrepl.UpdateMessage:
		return nil, d.addChange(data, *cur, *skip, m.RelationID, func(r *Relation) (Change, error) {
			c := Change{Kind: ChangeUpdate, Rel: r, New: tupleValues(m.NewTuple)}
			if m.OldTuple != nil {
				c.Old, c.OldFull = tupleValues(m.OldTuple), m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld
			}
			return c, nil
		})
	case *pglogrepl.DeleteMessage:
		return nil, d.addChange(data, *cur, *skip, m.RelationID, func(r *Relation) (Change, error) {
			if m.OldTuple == nil {
				return Change{}, fmt.Errorf("delete on %s carries no old row (replica identity nothing?)", r.QualifiedName())
			}
			return Change{Kind: ChangeDelete, Rel: r, Old: tupleValues(m.OldTuple), OldFull: m.OldTupleType == pglogrepl.DeleteMessageTupleTypeOld}, nil
		})
	case *pglogrepl.TruncateMessage:
		if *cur == nil {
			return nil, errors.New("truncate outside a transaction")
		}
		if *skip {
			return nil, nil
		}
		c := Change{Kind: ChangeTruncate, TruncateOptions: m.Option}
		for _, id := range m.RelationIDs {
			r, ok := d.rels[id]
			if !ok {
				return nil, fmt.Errorf("truncate of relation %d before its relation message", id)
			}
			c.Truncated = append(c.Truncated, r)
		}
		if len(c.Truncated) > 0 {
			c.Rel = c.Truncated[0]
		}
		return nil, d.push(*cur, data, c)
	}
	// Type ('Y') and logical decoding messages ('M') carry nothing the apply needs.
	return nil, nil
}

func (d *Decoder) addChange(msg []byte, cur *Txn, skip bool, relID uint32, mk func(*Relation) (Change, error)) error {
	if cur == nil {
		return errors.New("row change outside a transaction")
	}
	if skip {
		return nil
	}
	r, ok := d.rels[relID]
	if !ok {
		return fmt.Errorf("row change of relation %d before its relation message", relID)
	}
	c, err := mk(r)
	if err != nil {
		return err
	}
	return d.push(cur, msg, c)
}

// push adds change c, which pgoutput message msg carried, to cur: in memory, or to its spill
// once the changes held passed spillAfter.
func (d *Decoder) push(cur *Txn, msg []byte, c Change) error {
	if c.Kind == ChangeInsert && c.Rel.Namespace == "tandem" && c.Rel.Name == "ddl" && cur.ddlAt.IsZero() {
		if at, ok := ddlColumn(c, "at"); ok {
			cur.ddlAt, _ = parsePGTime(at)
		}
	}
	if c.Kind == ChangeInsert && isDDLRow(c) {
		if cur.ddlInserted == nil {
			cur.ddlInserted = map[string]bool{}
		}
		cur.ddlInserted[ddlRowID(c, c.New)] = true
	}
	if id := ddlRowID(c, c.Old); c.Kind == ChangeDelete && isDDLRow(c) && id != "" && cur.ddlInserted[id] {
		if cur.ddlTakenBack == nil {
			cur.ddlTakenBack = map[string]bool{}
		}
		cur.ddlTakenBack[id] = true
	}
	if c.Kind == ChangeUpdate && isDDLRow(c) {
		if stmt, ok := ddlStmt(c); ok {
			if cur.ddlRestated == nil {
				cur.ddlRestated = map[string]string{}
			}
			cur.ddlRestated[ddlRowID(c, c.New)] = stmt
		}
	}
	if cur.spill != nil {
		return cur.spill.add(msg, &c)
	}
	cur.Changes = append(cur.Changes, c)
	cur.mem += changeSize(c)
	if d.spillAfter > 0 && cur.mem > d.spillAfter {
		sp, err := newSpill(d.spillDir, d.rels, len(cur.Changes))
		if err != nil {
			// Held in memory instead, as a transaction of any size was before spilling.
			d.logger.Warn("cannot spill a large transaction to disk; holding it in memory", "xid", cur.XID, "err", err)
			d.spillAfter = 0
			return nil
		}
		sp.failWrite = d.spillHook
		cur.spill = sp
	}
	return nil
}

// schemaRenaming is a schema's rename.
type schemaRenaming struct{ from, to string }

// pendingRename is what a decoder needs of a prepared transaction's schema renames (rs) for a
// COMMIT PREPARED it may meet without that PREPARE: that of a transaction applied from the
// other site, which the Shipper takes for done at once, so the slot would be confirmed past
// its PREPARE (at) while it stays in doubt there — over a failover and its sidecar's restart
// too. A new stream (a new decoder, a new sidecar) then met a write by the old name before
// the COMMIT PREPARED, and named the table so after it (TestSchemaRenameAcrossDecoders). The
// slot is reported no further than at until it is confirmed past the finish (done), so a
// new sidecar decodes the PREPARE again; a new decoder of the same Shipper takes the entries
// over (inheritRenames), as its first report goes before it meets that PREPARE again.
type pendingRename struct {
	rs       []schemaRenaming
	at, done pglogrepl.LSN
}

// reportable is the confirmed position the slot may be told: Confirmed, held at the PREPARE of
// a transaction whose schema renames a new stream must decode again (pendingRename). Entries
// the slot is confirmed past are forgotten. Not at one before the stream's start (streamFrom):
// the slot was made anew since (a resync of a lost slot), and never streams that PREPARE nor
// its finish — held there, it was never confirmed further, keeping all WAL written since
// (TestSchemaRenameHoldAfterSlotMadeAnew).
func (d *Decoder) reportable() pglogrepl.LSN {
	c := d.Confirmed()
	r := c
	for gid, p := range d.renamed {
		if p.done != 0 && p.done <= c {
			delete(d.renamed, gid)
			continue
		}
		if p.at >= d.streamFrom {
			r = min(r, p.at)
		}
	}
	return r
}

// inheritRenames takes over prev's pendingRename entries the slot is not confirmed past. Called
// before d runs, once prev's Run has returned.
func (d *Decoder) inheritRenames(prev *Decoder) {
	if prev == nil {
		return
	}
	c := d.Confirmed()
	for gid, p := range prev.renamed {
		if p.done == 0 || p.done > c {
			if d.renamed == nil {
				d.renamed = map[string]*pendingRename{}
			}
			cp := *p
			d.renamed[gid] = &cp
		}
	}
}

// schemaRenamed follows ALTER SCHEMA … RENAME TO … sent through the shim (c, its tandem.ddl row,
// of transaction t). The statement changes no table, so PostgreSQL invalidates none and pgoutput
// sends no new Relation message for the schema's tables: their changes after it would name the
// schema as it was — on the peer, where the statement renamed it too, a table that no longer
// exists, and the write was refused as a divergence (TestApplyAfterSchemaRename). The relations
// of the schema take its new name here, where the statement stands in the stream, for the rest
// of t; those of changes before it keep the old one. A prepared t gives them back their old
// names at its PREPARE, and the new ones again at its COMMIT PREPARED: a rename locks no table,
// so other sessions write by the old name until then, and the peer, where t is not committed
// yet either, finds their tables by it only (TestApplySchemaRenameConcurrent). A spill's
// reader meets the row again and does the same for the rest of t.
func (d *Decoder) schemaRenamed(t *Txn, c Change) {
	stmt, ok := ddlStmt(c)
	if !ok {
		return
	}
	from, to, ok := schemaRename(stmt)
	if !ok || from == to {
		return
	}
	d.renameSchema(from, to)
	if t != nil && t.Prepared {
		t.renames = append(t.renames, schemaRenaming{from, to})
	}
}

// renameSchema gives the relations of schema from the name to.
func (d *Decoder) renameSchema(from, to string) {
	for id, r := range d.rels {
		if r.Namespace == from {
			nr := *r
			nr.Namespace, nr.key = to, ""
			nr.key = relKey(&nr)
			d.rels[id] = &nr
		}
	}
}

// schemaRename tells whether stmt is ALTER SCHEMA from RENAME TO to, and the two names as
// PostgreSQL looks them up.
func schemaRename(stmt string) (from, to string, ok bool) {
	var words []string
	n := len(stmt)
	for i := skipBlank(stmt, 0, n); i < n && len(words) <= 7; {
		tok, e := nextToken(stmt, i, false)
		if tok == tokWord && e == i+1 && (stmt[i] == 'U' || stmt[i] == 'u') && e+1 < n && stmt[e] == '&' && stmt[e+1] == '"' {
			_, e = unicodeName(stmt, e+1, skipQuoted(stmt, e+2, '"', false))
		}
		words = append(words, stmt[i:e])
		i = skipBlank(stmt, e, n)
	}
	if len(words) == 7 && words[6] == ";" {
		words = words[:6]
	}
	name := func(w string) bool { return w != "" && (isIdentStart(w[0]) || w[0] == '"') }
	if len(words) != 6 || !strings.EqualFold(words[0], "ALTER") || !strings.EqualFold(words[1], "SCHEMA") ||
		!strings.EqualFold(words[3], "RENAME") || !strings.EqualFold(words[4], "TO") || !name(words[2]) || !name(words[5]) {
		return "", "", false
	}
	return string(foldName(words[2], nil)), string(foldName(words[5], nil)), true
}

// seal ends the spill of t, if it has one.
func (t *Txn) seal() error {
	if t.spill == nil {
		return nil
	}
	return t.spill.seal()
}

// parsePGTime reads a timestamptz in PostgreSQL's ISO output (its offset ±hh, ±hh:mm or
// ±hh:mm:ss).
func parsePGTime(s string) (time.Time, error) {
	var err error
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07", "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00:00"} {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// parseMessage parses a pgoutput message with pglogrepl, but for the Insert of a row of no
// column (a table of no column, or whose only columns are generated and so not published):
// relation id, 'N' and a column count of 0 make 7 bytes after the type, which pglogrepl
// refuses as shorter than 8 — and a message the decoder cannot parse stops the stream for
// every table.
//
// A malformed message is an error, never a crash of the process: pglogrepl's decoders index
// the message without checking its length (they panic, recovered here), and a Truncate's
// relation count is checked against the message's length first — pglogrepl would allocate for
// whatever count it says — and must name a relation.
func parseMessage(data []byte) (msg pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, errors.New("empty pgoutput message")
	}
	if len(data) == 8 && data[0] == 'I' && data[5] == 'N' && data[6] == 0 && data[7] == 0 {
		return &pglogrepl.InsertMessage{RelationID: binary.BigEndian.Uint32(data[1:5]), Tuple: &pglogrepl.TupleData{}}, nil
	}
	if data[0] == 'T' {
		// Type, relation count, options, then a relation id per relation.
		if len(data) < 6 {
			return nil, fmt.Errorf("truncate message of %d bytes", len(data))
		}
		if n := binary.BigEndian.Uint32(data[1:5]); n == 0 || uint64(len(data)) < 6+4*uint64(n) {
			return nil, fmt.Errorf("truncate message of %d bytes names %d relations", len(data), n)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("malformed pgoutput message %q of %d bytes: %v", data[0], len(data), r)
		}
	}()
	return pglogrepl.Parse(data)
}

func tupleValues(t *pglogrepl.TupleData) []Value {
	if t == nil {
		return nil
	}
	vs := make([]Value, len(t.Columns))
	for i, c := range t.Columns {
		vs[i] = Value{Kind: c.DataType, Data: c.Data}
	}
	return vs
}
