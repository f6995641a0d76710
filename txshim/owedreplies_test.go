package txshim

import (
	"cmp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// owedReplies follows, for a read until silence (readAtLeast with until empty), which of the
// messages sent to the server still owe it a reply, by the protocol's rules: a Parse its
// ParseComplete, a Bind its BindComplete, a Describe its RowDescription or NoData, an Execute
// its CommandComplete, EmptyQueryResponse or PortalSuspended, a Close its CloseComplete, a
// Sync, Query or FunctionCall its ReadyForQuery (which ends whatever came before it), a
// Terminate (or a FATAL error) the connection's end. An error in an extended request makes the
// server skip the request's messages up to its Sync. The server sends an extended request's
// replies at a Flush or Sync (an error at once): those of messages after the last one are held
// (and so is an extended COPY's CommandComplete, after its CopyDone). While the server is in
// COPY FROM STDIN it waits for the client and ignores a Sync or Flush sent meanwhile.
//
// Once nothing is owed but held replies, the server waits for the client, and only a reply it
// should not send can still come: the read waits settleWait for one, not the long silence a
// read that knows nothing must wait (a commit through the shim, two-phase on both databases,
// can take a while).
type owedReplies struct {
	owed     []byte // a byte per message owed a reply: its type as the client encodes it
	held     int    // how many of owed's last ones have their replies held for a Flush or Sync
	copyIn   bool   // a CopyInResponse came and the copy has not ended
	skipping bool   // an extended request failed: the server skips messages up to a Sync
	gone     bool   // a read failed: the connection ended
}

// settleWait is how long a read until silence waits for a message once nothing is owed.
const settleWait = 50 * time.Millisecond

// sent records a message sent to the server.
func (o *owedReplies) sent(m pgproto3.FrontendMessage) {
	switch m.(type) {
	case *pgproto3.CopyData:
		return
	case *pgproto3.Flush:
		if !o.copyIn {
			o.held = 0
		}
		return
	case *pgproto3.CopyDone, *pgproto3.CopyFail:
		if _, done := m.(*pgproto3.CopyDone); done && o.copyIn && len(o.owed) > 0 && o.owed[0] == 'E' {
			o.held = len(o.owed) // the Execute's CommandComplete waits for a Flush or Sync
		}
		o.copyIn = false
		return
	case *pgproto3.Sync:
		if o.copyIn {
			return
		}
		o.owed, o.held, o.skipping = append(o.owed, 'S'), 0, false
		return
	case *pgproto3.Terminate:
		o.owed, o.held = append(o.owed, 'X'), 0
		return
	}
	if o.skipping {
		return
	}
	enc, err := m.Encode(nil)
	if err != nil || len(enc) == 0 {
		return
	}
	o.owed = append(o.owed, enc[0])
	switch enc[0] {
	case 'Q', 'F':
		o.held = 0
	default:
		o.held++
	}
}

// received records a message from the server.
func (o *owedReplies) received(m pgproto3.BackendMessage) {
	defer func() { o.held = min(o.held, len(o.owed)) }()
	head := byte(0)
	if len(o.owed) > 0 {
		head = o.owed[0]
	}
	pop := func(types string) {
		if head != 0 && strings.IndexByte(types, head) >= 0 {
			o.owed = o.owed[1:]
		}
	}
	switch m := m.(type) {
	case *pgproto3.ParseComplete:
		pop("P")
	case *pgproto3.BindComplete:
		pop("B")
	case *pgproto3.CloseComplete:
		pop("C")
	case *pgproto3.RowDescription, *pgproto3.NoData:
		pop("D") // in a Query's or an Execute's replies, a RowDescription is one of several
	case *pgproto3.CommandComplete, *pgproto3.EmptyQueryResponse, *pgproto3.PortalSuspended:
		pop("E") // the Execute's, or one of a Query's statements'
	case *pgproto3.CopyInResponse, *pgproto3.CopyBothResponse:
		o.copyIn = true
		// A Sync sent behind the COPY's Execute (or Query) reaches the server in copy mode,
		// which ignores it.
		if len(o.owed) > 0 {
			rest := o.owed[1:]
			for len(rest) > 0 && rest[0] == 'S' {
				rest = rest[1:]
			}
			o.owed = append(o.owed[:1], rest...)
		}
	case *pgproto3.ErrorResponse:
		o.copyIn = false
		if sev := cmp.Or(m.SeverityUnlocalized, m.Severity); sev == "FATAL" || sev == "PANIC" {
			o.owed, o.skipping = []byte{'X'}, false // the connection's end
			return
		}
		if head == 'Q' || head == 'F' {
			return // its ReadyForQuery follows
		}
		// The server skips the rest of the extended request, to its Sync.
		for len(o.owed) > 0 && o.owed[0] != 'S' && o.owed[0] != 'X' {
			o.owed = o.owed[1:]
		}
		o.skipping = len(o.owed) == 0
	case *pgproto3.ReadyForQuery:
		o.copyIn, o.skipping = false, false
		for len(o.owed) > 0 {
			t := o.owed[0]
			o.owed = o.owed[1:]
			if strings.IndexByte("SQF", t) >= 0 {
				break
			}
		}
	}
}

// ended records the connection's end (or a failed read).
func (o *owedReplies) ended() {
	*o = owedReplies{gone: true}
}

// settled tells whether the server now waits for the client: it owes no reply but held ones,
// or waits for copy data.
func (o *owedReplies) settled() bool {
	return len(o.owed) <= o.held || o.copyIn
}
