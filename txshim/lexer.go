package txshim

import "strings"

// stmtKind is what the shim needs to know about one SQL statement (DESIGN §5.1): whether it ends
// or starts a transaction, whether it may write, and whether it may run inside a transaction block.
type stmtKind uint8

const (
	kindEmpty     stmtKind = iota // only whitespace and comments
	kindRead                      // SELECT, SHOW, VALUES, TABLE, EXPLAIN, SET, FETCH, …: no xid of its own
	kindWrite                     // INSERT, UPDATE, DELETE, MERGE, COPY FROM, TRUNCATE, unknown statements, …
	kindDDL                       // CREATE, ALTER, DROP, COMMENT, GRANT, REVOKE, … (a write that changes the schema)
	kindBegin                     // BEGIN, START TRANSACTION
	kindCommit                    // COMMIT, END (optionally AND CHAIN)
	kindRollback                  // ROLLBACK, ABORT (not ROLLBACK TO)
	kindSavepoint                 // SAVEPOINT, RELEASE, ROLLBACK TO
	kindClient2PC                 // PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED
	kindNoTxBlock                 // VACUUM, CREATE DATABASE, … CONCURRENTLY, CALL, DO with COMMIT: must not be wrapped in BEGIN
)

var kindNames = [...]string{"empty", "read", "write", "ddl", "begin", "commit", "rollback", "savepoint", "client-2pc", "no-tx-block"}

func (k stmtKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// writes reports whether a statement of this kind may assign a transaction id, so that outside a
// transaction block the shim wraps it in BEGIN … commit procedure.
func (k stmtKind) writes() bool { return k == kindWrite || k == kindDDL }

// txControl reports whether the statement changes the transaction block state.
func (k stmtKind) txControl() bool {
	return k == kindBegin || k == kindCommit || k == kindRollback || k == kindClient2PC
}

// statement is one statement of a query string. Start and End are byte offsets into the text it
// was split from; consecutive statements cover the text without gap, so joining them gives it back.
type statement struct {
	Start, End int
	Kind       stmtKind
	// Chain: COMMIT AND CHAIN (a new transaction with the same characteristics follows).
	Chain bool
	// Temp: creates a temporary object; transactions touching those cannot be prepared.
	Temp bool
	// CopyIn: COPY … FROM, which may read COPY data from the client: nothing may be pipelined
	// behind it.
	CopyIn bool
	// Unpreparable: makes its transaction impossible to PREPARE (LISTEN, NOTIFY, WITH HOLD cursors,
	// pg_notify, pg_export_snapshot); such a transaction commits plainly (DESIGN §5.3).
	Unpreparable bool
	// Calls: for a write, or a read that runs expressions (SELECT, WITH, VALUES, TABLE, DECLARE,
	// COPY … TO, EXPLAIN ANALYZE), the names written as calls — a word or "quoted identifier"
	// followed by "(", as written (foldName gives the name looked up), at most maxCalls (more:
	// ManyCalls). Keywords such as IN or EXISTS are among them; only the names of functions
	// that may write or notify matter (funcs.go).
	Calls     []string
	ManyCalls bool
	// Names: for the same statements, their words as written (keywords and unquoted names; at
	// most maxWords), among which the tables and views they read or write (funcs.go: views that
	// call functions that may write, tables whose triggers notify).
	Names []string
	// Creates is the name of the function a CREATE [OR REPLACE] FUNCTION statement makes;
	// CreatesStable, that it is declared STABLE or IMMUTABLE (PostgreSQL keeps such a function
	// from writing, though not from calling one that writes).
	Creates       string
	CreatesStable bool
	// Proc: CALL, or DO with COMMIT or ROLLBACK in it, which may commit writes of its own.
	Proc bool
}

// maxCalls bounds the call names kept per statement.
const maxCalls = 32

// span is a word (keyword or unquoted identifier) of a statement outside quotes and comments.
type span struct{ start, end int }

// splitStatements splits a simple-query string into statements at top-level semicolons, with
// quotes '…' (and E'…' backslash escapes), "identifiers", dollar quotes, -- and nested /* */
// comments, parentheses and BEGIN ATOMIC bodies respected. It never fails: unterminated quotes or
// comments run to the end of the text, as PostgreSQL would then report the error itself.
// standard_conforming_strings = off (backslashes in plain '…') is not supported.
func splitStatements(sql string) []statement {
	var out []statement
	words := make([]span, 0, 32) // on the stack while short
	var calls []span
	many := false
	start := 0
	i := 0
	n := len(sql)
	depth := 0    // parentheses
	atomic := 0   // BEGIN ATOMIC … END nesting inside CREATE FUNCTION/PROCEDURE
	routine := -1 // -1 unknown, 0 no, 1 statement is CREATE [OR REPLACE] FUNCTION/PROCEDURE
	prevIdent := false
	finish := func(end int) {
		st := statement{Start: start, End: end}
		classify(sql, words, &st)
		noteCalls(sql, words, calls, many, &st)
		out = append(out, st)
		start = end
		words, calls, many = words[:0], calls[:0], false
		depth, atomic, routine = 0, 0, -1
	}
	addCall := func(c span) {
		if len(calls) < maxCalls {
			calls = append(calls, c)
		} else {
			many = true
		}
	}
	for i < n {
		c := sql[i]
		switch {
		case c == ';' && depth == 0 && atomic == 0:
			i++
			finish(i)
			prevIdent = false
			continue
		case c == '(':
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case c == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' {
				i++
			}
			prevIdent = false
			continue
		case c == '/' && i+1 < n && sql[i+1] == '*':
			i = skipBlockComment(sql, i)
			prevIdent = false
			continue
		case c == '\'':
			i = skipQuoted(sql, i+1, '\'', false)
			prevIdent = false
			continue
		case c == '"':
			end := skipQuoted(sql, i+1, '"', false)
			if end > i+1 && sql[end-1] == '"' && opensCall(sql, end) {
				addCall(span{i, end})
			}
			i = end
			prevIdent = false
			continue
		case c == '$' && !prevIdent:
			if end, ok := skipDollarQuote(sql, i); ok {
				i = end
				prevIdent = false
				continue
			}
		case isIdentStart(c):
			j := i + 1
			for j < n && isIdentChar(sql[j]) {
				j++
			}
			// E'…' (and e'…') is an escape string: backslash escapes a quote.
			if j == i+1 && (c == 'E' || c == 'e') && j < n && sql[j] == '\'' {
				i = skipQuoted(sql, j+1, '\'', true)
				prevIdent = false
				continue
			}
			w := span{i, j}
			if len(words) < maxWords {
				words = append(words, w)
			}
			if opensCall(sql, j) {
				addCall(span{i, j})
			}
			if routine < 0 {
				routine = routineStart(sql, words)
			}
			if routine == 1 {
				switch {
				case strings.EqualFold(sql[i:j], "BEGIN"), strings.EqualFold(sql[i:j], "CASE"):
					atomic++
				case strings.EqualFold(sql[i:j], "END") && atomic > 0:
					atomic--
				}
			}
			i = j
			prevIdent = true
			continue
		}
		prevIdent = isIdentChar(c)
		i++
	}
	if start < n || len(out) == 0 {
		finish(n)
	}
	return out
}

// maxWords bounds the words kept per statement for classification; the keywords that matter
// come early, and a megabyte-long INSERT must not cost a megabyte of spans.
const maxWords = 256

// opensCall tells whether a "(" follows offset i, after white space only.
func opensCall(sql string, i int) bool {
	for i < len(sql) {
		switch sql[i] {
		case ' ', '\t', '\n', '\r', '\f':
			i++
		case '(':
			return true
		default:
			return false
		}
	}
	return false
}

// noteCalls fills st.Calls, st.ManyCalls, st.Names and st.Creates from the calls and words of
// a classified statement.
func noteCalls(sql string, w []span, calls []span, many bool, st *statement) {
	switch {
	case st.Kind == kindDDL && routineStart(sql, w) == 1 && len(calls) > 0 &&
		(wordIs(sql, w, 1, "FUNCTION") || wordIs(sql, w, 3, "FUNCTION")):
		st.Creates = string(foldName(sql[calls[0].start:calls[0].end], nil))
		st.CreatesStable = hasWord(sql, w, 2, "STABLE") >= 0 || hasWord(sql, w, 2, "IMMUTABLE") >= 0
		return
	case (st.Kind != kindRead && st.Kind != kindWrite) || len(w) == 0:
		return
	}
	is := func(kw string) bool { return wordIs(sql, w, 0, kw) }
	switch {
	case is("EXPLAIN"):
		if hasWord(sql, w, 1, "ANALYZE") < 0 && hasWord(sql, w, 1, "ANALYSE") < 0 {
			return // not run
		}
	case is("SELECT"), is("WITH"), is("VALUES"), is("TABLE"), is("DECLARE"), is("COPY"):
	case st.Kind == kindRead:
		return // runs no expression
	}
	st.Names = make([]string, len(w))
	for i, x := range w {
		st.Names[i] = sql[x.start:x.end]
	}
	if len(calls) > 0 {
		st.Calls = make([]string, len(calls))
		for i, c := range calls {
			st.Calls[i] = sql[c.start:c.end]
		}
	}
	st.ManyCalls = many
}

// foldName appends to buf the name PostgreSQL looks up for a name as written: unquoted, ASCII
// letters folded to lower case; "quoted", without the quotes and with doubled quotes undone.
func foldName(name string, buf []byte) []byte {
	if len(name) >= 2 && name[0] == '"' {
		body := name[1 : len(name)-1]
		for i := 0; i < len(body); i++ {
			buf = append(buf, body[i])
			if body[i] == '"' && i+1 < len(body) && body[i+1] == '"' {
				i++
			}
		}
		return buf
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9') || c == '$'
}

// skipQuoted returns the offset just past the closing quote of a quoted token whose body starts
// at i. A doubled quote is an escaped quote; with backslash, \x escapes any byte.
func skipQuoted(sql string, i int, q byte, backslash bool) int {
	for i < len(sql) {
		c := sql[i]
		switch {
		case backslash && c == '\\':
			i += 2
			continue
		case c == q:
			if i+1 < len(sql) && sql[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(sql)
}

func skipBlockComment(sql string, i int) int {
	nest := 0
	for i < len(sql) {
		if sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*' {
			nest++
			i += 2
			continue
		}
		if sql[i] == '*' && i+1 < len(sql) && sql[i+1] == '/' {
			nest--
			i += 2
			if nest == 0 {
				return i
			}
			continue
		}
		i++
	}
	return len(sql)
}

// skipDollarQuote reports whether a dollar quote ($$ or $tag$) opens at i and returns the offset
// just past its closing delimiter. $1 (a parameter) is not a dollar quote.
func skipDollarQuote(sql string, i int) (int, bool) {
	j := i + 1
	if j < len(sql) && sql[j] != '$' {
		if !isIdentStart(sql[j]) {
			return 0, false
		}
		for j < len(sql) && sql[j] != '$' {
			if !isIdentChar(sql[j]) || sql[j] == '$' {
				return 0, false
			}
			j++
		}
	}
	if j >= len(sql) {
		return 0, false
	}
	tag := sql[i : j+1]
	end := strings.Index(sql[j+1:], tag)
	if end < 0 {
		return len(sql), true
	}
	return j + 1 + end + len(tag), true
}

// routineStart tells from the first words whether the statement is CREATE [OR REPLACE]
// FUNCTION/PROCEDURE (whose BEGIN ATOMIC body may hold semicolons): 1 yes, 0 no, -1 not known yet.
func routineStart(sql string, w []span) int {
	switch {
	case len(w) == 0:
		return -1
	case !wordIs(sql, w, 0, "CREATE"):
		return 0
	case len(w) < 2:
		return -1
	case wordIs(sql, w, 1, "FUNCTION") || wordIs(sql, w, 1, "PROCEDURE"):
		return 1
	case !wordIs(sql, w, 1, "OR"):
		return 0
	case len(w) < 4:
		return -1
	case wordIs(sql, w, 3, "FUNCTION") || wordIs(sql, w, 3, "PROCEDURE"):
		return 1
	}
	return 0
}

func wordIs(sql string, w []span, i int, kw string) bool {
	return i < len(w) && strings.EqualFold(sql[w[i].start:w[i].end], kw)
}

func hasWord(sql string, w []span, from int, kw string) int {
	for i := from; i < len(w); i++ {
		if strings.EqualFold(sql[w[i].start:w[i].end], kw) {
			return i
		}
	}
	return -1
}

// classify fills st.Kind and the flags from the statement's words.
func classify(sql string, w []span, st *statement) {
	if len(w) == 0 {
		// A statement of symbols only ("(", ";") or an empty one: let PostgreSQL judge it.
		st.Kind = kindEmpty
		if strings.TrimSpace(stripNoise(sql[st.Start:st.End])) != "" {
			st.Kind = kindWrite
		}
		return
	}
	first := strings.ToUpper(sql[w[0].start:w[0].end])
	is := func(i int, kw string) bool { return wordIs(sql, w, i, kw) }
	has := func(from int, kw string) bool { return hasWord(sql, w, from, kw) >= 0 }
	if has(0, "pg_notify") || has(0, "pg_export_snapshot") {
		st.Unpreparable = true
	}
	switch first {
	case "BEGIN":
		st.Kind = kindBegin
	case "START":
		st.Kind = kindBegin
		if !is(1, "TRANSACTION") {
			st.Kind = kindWrite
		}
	case "COMMIT", "END":
		st.Kind = kindCommit
		if first == "COMMIT" && is(1, "PREPARED") {
			st.Kind = kindClient2PC
			return
		}
		if k := hasWord(sql, w, 1, "AND"); k >= 0 && is(k+1, "CHAIN") {
			st.Chain = true
		}
	case "ROLLBACK", "ABORT":
		st.Kind = kindRollback
		switch {
		case first == "ROLLBACK" && is(1, "PREPARED"):
			st.Kind = kindClient2PC
		case first == "ROLLBACK" && (is(1, "TO") || (is(2, "TO") && (is(1, "WORK") || is(1, "TRANSACTION")))):
			st.Kind = kindSavepoint
		}
	case "SAVEPOINT", "RELEASE":
		st.Kind = kindSavepoint
	case "PREPARE":
		// PREPARE TRANSACTION 'gid' versus PREPARE name [(types)] AS statement.
		st.Kind = kindRead
		if is(1, "TRANSACTION") && !has(2, "AS") {
			st.Kind = kindClient2PC
		}
	case "SELECT", "WITH", "VALUES", "TABLE":
		st.Kind = kindRead
		if writesInQuery(sql, w) {
			st.Kind = kindWrite
		}
		if k := hasWord(sql, w, 1, "INTO"); k >= 0 && first == "SELECT" && !has(0, "INSERT") {
			// SELECT … INTO new_table creates a table.
			st.Kind = kindDDL
			if is(k+1, "TEMP") || is(k+1, "TEMPORARY") || is(k+1, "LOCAL") {
				st.Kind, st.Temp = kindWrite, true
			}
		}
	case "EXPLAIN":
		st.Kind = kindRead
		if has(1, "ANALYZE") || has(1, "ANALYSE") {
			if writesInQuery(sql, w) {
				st.Kind = kindWrite
			}
		}
	case "SHOW", "SET", "RESET", "FETCH", "MOVE", "CLOSE", "DEALLOCATE", "LOAD", "CHECKPOINT", "LOCK":
		// No xid of their own. LOCK outside a block is PostgreSQL's error to report.
		st.Kind = kindRead
	case "DECLARE":
		st.Kind = kindRead
		if k := hasWord(sql, w, 1, "WITH"); k >= 0 && is(k+1, "HOLD") {
			st.Unpreparable = true
		}
		if writesInQuery(sql, w) {
			st.Kind = kindWrite
		}
	case "LISTEN", "UNLISTEN", "NOTIFY":
		st.Kind = kindRead
		st.Unpreparable = true
	case "DISCARD":
		st.Kind = kindRead
		if is(1, "ALL") {
			st.Kind = kindNoTxBlock
		}
	case "VACUUM", "CALL":
		// CALL: a procedure may COMMIT inside, which fails inside a transaction block.
		st.Kind, st.Proc = kindNoTxBlock, first == "CALL"
	case "DO":
		// A block that COMMITs or ROLLs BACK fails inside a transaction block, like a procedure.
		st.Kind = kindWrite
		if hasTxControlWord(sql[st.Start:st.End]) {
			st.Kind, st.Proc = kindNoTxBlock, true
		}
	case "CREATE", "ALTER", "DROP":
		classifySchema(sql, w, st)
	case "REINDEX":
		st.Kind = kindWrite
		if has(1, "CONCURRENTLY") || is(1, "DATABASE") || is(1, "SYSTEM") {
			st.Kind = kindNoTxBlock
		}
	case "COMMENT", "GRANT", "REVOKE", "SECURITY", "REFRESH", "REASSIGN", "IMPORT":
		st.Kind = kindDDL
	case "COPY":
		// COPY … TO is a read; COPY … FROM a write.
		// COPY (SELECT … FROM …) TO has both words.
		st.Kind = kindRead
		if has(1, "FROM") && !has(1, "TO") {
			st.Kind, st.CopyIn = kindWrite, true
		}
	default:
		// INSERT, UPDATE, DELETE, MERGE, TRUNCATE, DO, ANALYZE, CLUSTER, EXECUTE, unknown: may write.
		st.Kind = kindWrite
	}
}

// hasTxControlWord tells whether text holds the word COMMIT or ROLLBACK (any case), in code,
// strings or comments alike: a DO block's body is a string to the lexer.
func hasTxControlWord(text string) bool {
	for _, w := range []string{"commit", "rollback"} {
		for i := 0; i+len(w) <= len(text); i++ {
			if strings.EqualFold(text[i:i+len(w)], w) &&
				(i == 0 || !isIdentChar(text[i-1])) && (i+len(w) == len(text) || !isIdentChar(text[i+len(w)])) {
				return true
			}
		}
	}
	return false
}

// classifySchema handles CREATE/ALTER/DROP.
func classifySchema(sql string, w []span, st *statement) {
	is := func(i int, kw string) bool { return wordIs(sql, w, i, kw) }
	has := func(from int, kw string) bool { return hasWord(sql, w, from, kw) >= 0 }
	st.Kind = kindDDL
	k := 1
	if is(1, "OR") && is(2, "REPLACE") {
		k = 3
	}
	switch {
	case is(0, "ALTER") && is(1, "SYSTEM"):
		st.Kind = kindNoTxBlock
	case is(k, "DATABASE") || is(k, "TABLESPACE") || is(k, "SUBSCRIPTION"):
		st.Kind = kindNoTxBlock
		if is(0, "ALTER") && is(k, "DATABASE") && !has(k, "TABLESPACE") {
			st.Kind = kindDDL
		}
	case (is(0, "CREATE") || is(0, "DROP")) && (is(k, "INDEX") || is(k+1, "INDEX")) && has(k, "CONCURRENTLY"):
		st.Kind = kindNoTxBlock
	case is(0, "CREATE") && (is(k, "TEMP") || is(k, "TEMPORARY") ||
		((is(k, "LOCAL") || is(k, "GLOBAL")) && (is(k+1, "TEMP") || is(k+1, "TEMPORARY")))):
		st.Kind, st.Temp = kindWrite, true
	}
}

// writesInQuery reports whether a query (SELECT/WITH/EXPLAIN ANALYZE/DECLARE) contains a
// data-modifying part (a CTE with INSERT/UPDATE/DELETE/MERGE) or locks rows (FOR UPDATE/SHARE),
// which assigns an xid.
func writesInQuery(sql string, w []span) bool {
	for i := range w {
		s := sql[w[i].start:w[i].end]
		switch {
		case strings.EqualFold(s, "INSERT"), strings.EqualFold(s, "DELETE"), strings.EqualFold(s, "MERGE"):
			return true
		case strings.EqualFold(s, "UPDATE"), strings.EqualFold(s, "SHARE"):
			// FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE lock rows: an xid too.
			return true
		}
	}
	return false
}

// stripNoise removes comments from a statement so that an all-comment statement is empty.
func stripNoise(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		switch {
		case s[i] == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			i = skipBlockComment(s, i)
		case s[i] == ';':
			i++
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}
