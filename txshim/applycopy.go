package txshim

import (
	"bytes"
	"strings"
)

// Runs of inserts. A bulk load decodes into long runs of inserts into one table; applied one
// INSERT each they cost the peer a statement execution per row, so a run of at least copyMin
// consecutive inserts into the same table goes to the peer as one COPY FROM STDIN in text
// format instead (pgoutput sends the values in text format already) — a departure from
// DESIGN §5.2 "Apply", which names a prepared INSERT per row: the same rows in the same order,
// and a million-row load through the shim took 13.4 s instead of 25.3 s (bench/README.md).
// Under the apply's session_replication_role = replica it fires the same (replica) triggers
// and rules as the INSERT would, checks the same constraints, and takes the values of
// GENERATED ALWAYS identity columns as given, as OVERRIDING SYSTEM VALUE does for the INSERT
// (changeSQL).
const (
	copyMin = 64   // shorter runs are sent as INSERTs in the pipeline
	copyMax = 5000 // a longer run is sent as several COPYs, to bound the memory it takes
)

// copyable tells whether c can go to the peer in a COPY: an insert whose values are all in
// text format or null, not a DDL row (that runs its statement after it).
func copyable(c Change) bool {
	if c.Kind != ChangeInsert || len(c.New) != len(c.Rel.Columns) || (c.Rel.Namespace == "tandem" && c.Rel.Name == "ddl") {
		return false
	}
	for _, v := range c.New {
		if v.Kind != ValueText && v.Kind != ValueNull {
			return false
		}
	}
	return true
}

// copyIn returns the COPY statement and its data for rows, copyable inserts into one table.
func copyIn(rows []Change) (string, []byte) {
	r := rows[0].Rel
	cols := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		cols[i] = sqlIdent(c.Name)
	}
	var b bytes.Buffer
	for _, c := range rows {
		for i, v := range c.New {
			if i > 0 {
				b.WriteByte('\t')
			}
			copyText(&b, v)
		}
		b.WriteByte('\n')
	}
	return "COPY " + r.QualifiedName() + " (" + strings.Join(cols, ", ") + ") FROM STDIN", b.Bytes()
}

// copyText writes v in COPY's text format: \N for null, and backslash, newline, carriage
// return and tab escaped.
func copyText(b *bytes.Buffer, v Value) {
	if v.Kind == ValueNull {
		b.WriteString(`\N`)
		return
	}
	for _, ch := range v.Data {
		switch ch {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(ch)
		}
	}
}
