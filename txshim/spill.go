package txshim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// Large transactions. A bulk load through the shim (a COPY of a million rows, say) decodes
// into as many row changes, and held as values they would take the sidecar's memory several
// times over — and one event larger than the journal's bound fills it, which takes the peer
// out of step (catchup.go). So the decoder keeps only a transaction's first changes in memory
// (up to the Shipper's SpillBytes) and writes the rest to a spill file, as the pgoutput messages
// that carried them; the apply reads them back in order, in batches (apply.go). PostgreSQL's
// own reorder buffer does the same with what the slot decodes.
//
// A spill file is unlinked as soon as it is made: nothing is left on disk when the process
// ends, however it ends, and the space is freed when the last *Txn that refers to it is
// garbage (a cleanup closes the file). What the slot still holds is read again after a
// restart, as for any event (DESIGN §5.2: the slot is the journal).

// spillOverhead is what a spilled part is accounted for in the journal.
const spillOverhead = 1 << 10

// errSpillWrite marks a failed write to a spill file (a full disk, a file-size limit). The part
// already written cannot be trusted, so the decoder stops; the Shipper's next decoder holds
// transactions in memory (decodeLoop), as one that cannot create a spill file does — else it
// would fail on the same transaction for as long as the disk stays full, and nothing would ship.
var errSpillWrite = errors.New("spill file write failed")

// spill is the part of a decoded transaction written to a file.
type spill struct {
	f     *os.File
	w     *bufio.Writer        // nil once sealed
	size  int64                // bytes written
	n     int                  // changes in it
	rels  map[uint32]*Relation // those known when it began; Relation messages after that are in the file
	rows  txnRows              // what its changes touch, for the order on the peer (rowsOf)
	first int                  // index of its first change in the transaction
	// failWrite: when set, the spillWrite test hook of the Shipper whose decoder made it
	// (shipperHooks); an error from it fails the write.
	failWrite *hook[func() error]
}

// newSpill starts a spill file in dir ("" is the system's temporary directory) for a
// transaction whose changes so far are in memory; rels are the relations known now.
func newSpill(dir string, rels map[uint32]*Relation, first int) (*spill, error) {
	f, err := os.CreateTemp(dir, "tandem-spill-*")
	if err != nil {
		return nil, fmt.Errorf("spill a large transaction: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spill a large transaction: unlink %s: %w", f.Name(), err)
	}
	sp := &spill{f: f, w: bufio.NewWriterSize(f, 64<<10), rels: make(map[uint32]*Relation, len(rels)), first: first}
	for id, r := range rels {
		sp.rels[id] = r
	}
	runtime.AddCleanup(sp, func(f *os.File) { f.Close() }, f)
	return sp, nil
}

// add writes one pgoutput message: a row change (c is its decoded form) or, with c nil, a
// Relation message, which the reader needs to decode the changes after it.
func (sp *spill) add(msg []byte, c *Change) error {
	if failWrite := sp.failWrite.get(); failWrite != nil {
		if err := failWrite(); err != nil {
			return fmt.Errorf("spill a large transaction: %w: %w", errSpillWrite, err)
		}
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(msg)))
	if _, err := sp.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("spill a large transaction: %w: %w", errSpillWrite, err)
	}
	if _, err := sp.w.Write(msg); err != nil {
		return fmt.Errorf("spill a large transaction: %w: %w", errSpillWrite, err)
	}
	sp.size += int64(len(hdr) + len(msg))
	if c != nil {
		sp.n++
		sp.rows.add(*c)
	}
	return nil
}

// seal flushes what add wrote; the spill is read-only afterwards.
func (sp *spill) seal() error {
	if sp.w == nil {
		return nil
	}
	err := sp.w.Flush()
	sp.w = nil
	if err != nil {
		return fmt.Errorf("spill a large transaction: %w: %w", errSpillWrite, err)
	}
	return nil
}

// each calls fn with the spilled changes in order, numbered from sp.first. Readers may run
// at the same time: each has its own position (ReadAt).
func (sp *spill) each(fn func(i int, c Change) error) error {
	if sp.w != nil {
		return errors.New("spill read before it was sealed")
	}
	d := &Decoder{rels: make(map[uint32]*Relation, len(sp.rels))}
	for id, r := range sp.rels {
		d.rels[id] = r
	}
	r := bufio.NewReaderSize(io.NewSectionReader(sp.f, 0, sp.size), 64<<10)
	var buf []byte
	i := sp.first
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				if i-sp.first != sp.n {
					return fmt.Errorf("spill file: %d changes read back, %d written", i-sp.first, sp.n)
				}
				return nil
			}
			return fmt.Errorf("spill file: %w", err)
		}
		n := int(binary.BigEndian.Uint32(hdr[:]))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("spill file: %w", err)
		}
		// The transaction's own decoding put it here; decoding it again cannot fail but for
		// a damaged file.
		tmp := &Txn{}
		skip := false
		if _, err := d.decode(buf, &tmp, &skip); err != nil {
			return fmt.Errorf("spill file: %w", err)
		}
		for _, c := range tmp.Changes {
			if err := fn(i, c); err != nil {
				return err
			}
			i++
		}
	}
}
