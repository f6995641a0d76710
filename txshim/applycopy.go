package txshim

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Runs of inserts. A bulk load decodes into long runs of inserts into one table; applied one
// INSERT each they cost the peer a statement execution per row, so a run of at least copyMin
// consecutive inserts into the same table goes to the peer as one COPY FROM STDIN in text
// format instead (pgoutput sends the values in text format already) — a departure from
// DESIGN §5.2 "Apply", which names a prepared INSERT per row: the same rows in the same order,
// and a million-row load through the shim took 13.4 s instead of 25.3 s (bench/README.md).
// The rows are streamed into the COPY as the transaction's changes are read (copyStream), so
// the shim formats them while the peer takes those before, in bounded memory however long the
// run. Under the apply's session_replication_role = replica it fires the same (replica)
// triggers as the INSERT would (not rules: COPY runs none, and of an application's only one
// ENABLE ALWAYS or ENABLE REPLICA fires under replica for the INSERT — again, what the stream
// ships anyway), checks the same constraints, and takes the values of
// GENERATED ALWAYS identity columns as given, as OVERRIDING SYSTEM VALUE does for the INSERT
// (changeSQL).
const copyMin = 64 // shorter runs are sent as INSERTs in the pipeline

// copyBuffer is how much of a COPY's data the shim gathers before handing it on.
const copyBuffer = 64 << 10

// copyable tells whether c can go to the peer in a COPY: an insert whose values are all in
// text format or null, not a DDL row (that runs its statement after it), into a table of at
// least one published column (COPY takes no empty column list).
func copyable(c Change) bool {
	if c.Kind != ChangeInsert || len(c.New) != len(c.Rel.Columns) || len(c.New) == 0 || (c.Rel.Namespace == "tandem" && c.Rel.Name == "ddl") {
		return false
	}
	for _, v := range c.New {
		if v.Kind != ValueText && v.Kind != ValueNull {
			return false
		}
	}
	return true
}

// copyStream is a COPY FROM STDIN under way on the apply connection: pgconn's CopyFrom runs in
// its own goroutine, reading the rows the apply writes into a pipe.
type copyStream struct {
	rel   *Relation
	first int // the index of its first row in the transaction
	n     int // rows written
	w     *io.PipeWriter
	buf   *bufio.Writer
	done  chan error // CopyFrom's outcome
}

// startCopy ends the round trip under way (COPY does not go in a pipeline), starts a COPY into
// rows' table and writes rows, copyable inserts into one table, into it.
func (t *applyTx) startCopy(first int, rows []Change) error {
	if err := t.roundTrip(); err != nil {
		return err
	}
	if t.refused != nil {
		return errApplyStop
	}
	if err := t.pl.Close(); err != nil {
		return fmt.Errorf("apply %s: close pipeline: %w", t.gid, err)
	}
	r := rows[0].Rel
	cols := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		cols[i] = sqlIdent(c.Name)
	}
	sql := "COPY " + r.QualifiedName() + " (" + strings.Join(cols, ", ") + ") FROM STDIN"
	pr, pw := io.Pipe()
	cp := &copyStream{rel: r, first: first, w: pw, buf: bufio.NewWriterSize(pw, copyBuffer), done: make(chan error, 1)}
	go func() {
		_, err := t.a.conn.CopyFrom(t.ctx, pr, sql)
		// A COPY that ended early (the peer refused a row) fails the writes still to come.
		pr.CloseWithError(cmp.Or(err, errCopyEnded))
		cp.done <- err
	}()
	t.cp = cp
	for _, c := range rows {
		if err := cp.row(c); err != nil {
			return err
		}
	}
	return nil
}

// errCopyEnded fails a write into a COPY that ended before its rows did.
var errCopyEnded = errors.New("the COPY ended")

// row writes c, a copyable insert into the COPY's table, as a line of COPY's text format. A
// failed write means the COPY ended (a refusal, or a lost connection): endCopy tells which.
func (cp *copyStream) row(c Change) error {
	for i, v := range c.New {
		if i > 0 {
			cp.buf.WriteByte('\t')
		}
		copyText(cp.buf, v)
	}
	cp.n++
	if err := cp.buf.WriteByte('\n'); err != nil {
		return errCopyWrite
	}
	return nil
}

// errCopyWrite stops the walk over the changes after a write into the COPY failed; the apply
// then ends the COPY (endCopy) and learns why.
var errCopyWrite = errors.New("write into the COPY failed")

// endCopy finishes the COPY and starts a new pipeline: a refusal is kept in refused (with
// errApplyStop returned), a lost connection returned.
func (t *applyTx) endCopy() error {
	cp := t.cp
	t.cp = nil
	cp.w.CloseWithError(cp.buf.Flush()) // nil: the end of the data
	err := <-cp.done
	t.pl = t.a.conn.StartPipeline(t.ctx)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		t.refused = fmt.Errorf("apply %s on the peer: changes %d to %d (copy into %s): %w", t.gid, cp.first+1, cp.first+cp.n, cp.rel.QualifiedName(), err)
		return errApplyStop
	case err != nil:
		return fmt.Errorf("apply %s: copy to the peer: %w", t.gid, err)
	}
	if t.a.copied != nil {
		t.a.copied.Add(int64(cp.n))
	}
	return nil
}

// abortCopy ends a COPY under way after the apply failed on its side (cause): the peer is told
// the COPY failed, and the goroutine is waited for.
func (t *applyTx) abortCopy(cause error) {
	if t.cp == nil {
		return
	}
	t.cp.w.CloseWithError(cause)
	<-t.cp.done
	t.cp = nil
}

// copyText writes v in COPY's text format: \N for null, and backslash, newline, carriage
// return and tab escaped; the bytes between those go in one write.
func copyText(b *bufio.Writer, v Value) {
	if v.Kind == ValueNull {
		b.WriteString(`\N`)
		return
	}
	d := v.Data
	for {
		i := bytes.IndexAny(d, "\\\n\r\t")
		if i < 0 {
			b.Write(d)
			return
		}
		b.Write(d[:i])
		switch d[i] {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		}
		d = d[i+1:]
	}
}
