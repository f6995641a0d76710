package txshim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
)

// The pgoutput two-phase messages (protocol version 3) that pglogrepl does not parse, from
// PostgreSQL's "Logical Replication Message Formats".
const (
	msgBeginPrepare     = 'b'
	msgPrepare          = 'P'
	msgCommitPrepared   = 'K'
	msgRollbackPrepared = 'r'
	msgStreamPrepare    = 'p'
)

// twoPhaseMsg is any of Begin Prepare, Prepare, Commit Prepared, Rollback Prepared and Stream
// Prepare; the LSN fields mean what the message type says.
type twoPhaseMsg struct {
	Type byte
	// LSN is the prepare LSN (b, P, p), the commit LSN (K), or the end LSN of the prepared
	// transaction (r).
	LSN pglogrepl.LSN
	// EndLSN is the end of the prepared transaction (b, P, p), of the COMMIT PREPARED (K) or of
	// the ROLLBACK PREPARED (r).
	EndLSN pglogrepl.LSN
	Time   time.Time // prepare (b, P, p), commit (K) or rollback (r) time
	XID    uint32
	GID    string
}

// pgEpoch is PostgreSQL's timestamp epoch; wire timestamps are microseconds since it.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func pgTime(us uint64) time.Time { return pgEpoch.Add(time.Duration(int64(us)) * time.Microsecond) }

// parseTwoPhase parses one of the two-phase messages; data starts with the type byte.
func parseTwoPhase(data []byte) (twoPhaseMsg, error) {
	if len(data) == 0 {
		return twoPhaseMsg{}, fmt.Errorf("pgoutput: empty message")
	}
	m := twoPhaseMsg{Type: data[0]}
	b := data[1:]
	// Layouts after the type byte:
	//   b: LSN prepare, LSN end, Int64 time, Int32 xid, String gid
	//   P, p, K: Int8 flags, LSN, LSN end, Int64 time, Int32 xid, String gid
	//   r: Int8 flags, LSN prepared end, LSN rollback end, Int64 prepare time, Int64 rollback time, Int32 xid, String gid
	var fixed int
	switch m.Type {
	case msgBeginPrepare:
		fixed = 28
	case msgPrepare, msgStreamPrepare, msgCommitPrepared:
		fixed = 29
	case msgRollbackPrepared:
		fixed = 37
	default:
		return twoPhaseMsg{}, fmt.Errorf("pgoutput: %q is not a two-phase message", m.Type)
	}
	if len(b) < fixed+1 {
		return twoPhaseMsg{}, fmt.Errorf("pgoutput: %q message of %d bytes is shorter than %d", m.Type, len(b), fixed+1)
	}
	if m.Type != msgBeginPrepare {
		if b[0] != 0 {
			return twoPhaseMsg{}, fmt.Errorf("pgoutput: %q message has unknown flags %#x", m.Type, b[0])
		}
		b = b[1:]
	}
	u64 := func() uint64 { v := binary.BigEndian.Uint64(b); b = b[8:]; return v }
	m.LSN = pglogrepl.LSN(u64())
	m.EndLSN = pglogrepl.LSN(u64())
	m.Time = pgTime(u64())
	if m.Type == msgRollbackPrepared {
		m.Time = pgTime(u64()) // the rollback time; the prepare time before it is not needed
	}
	m.XID = binary.BigEndian.Uint32(b)
	b = b[4:]
	end := bytes.IndexByte(b, 0)
	if end < 0 {
		return twoPhaseMsg{}, fmt.Errorf("pgoutput: %q message has an unterminated gid", m.Type)
	}
	m.GID = string(b[:end])
	return m, nil
}
