package txshim

import (
	"strings"
	"unicode/utf8"
)

// stmtKind is what the shim needs to know about one SQL statement (DESIGN §5.1): whether it ends
// or starts a transaction, whether it may write, and whether it may run inside a transaction block.
type stmtKind uint8

const (
	kindEmpty     stmtKind = iota // only whitespace and comments
	kindRead                      // SELECT, SHOW, VALUES, TABLE, EXPLAIN, SET, FETCH, …: no xid of its own
	kindWrite                     // INSERT, UPDATE, DELETE, MERGE, COPY FROM, COPY (a writing query) TO, TRUNCATE, unknown statements, …
	kindDDL                       // CREATE, ALTER, DROP, COMMENT, GRANT, REVOKE, … (a write that changes the schema)
	kindBegin                     // BEGIN, START TRANSACTION
	kindCommit                    // COMMIT, END (optionally AND CHAIN)
	kindRollback                  // ROLLBACK, ABORT (not ROLLBACK TO; optionally AND CHAIN)
	kindSavepoint                 // SAVEPOINT, RELEASE, ROLLBACK TO
	kindClient2PC                 // PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED
	kindNoTxBlock                 // VACUUM, CLUSTER of every table, CREATE DATABASE, … CONCURRENTLY, CALL, DO with COMMIT or CALL: must not be wrapped in BEGIN
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
	// Chain: COMMIT or ROLLBACK (END, ABORT) … AND CHAIN, not AND NO CHAIN: a new transaction
	// with the same characteristics follows at once, so the session stays in a block.
	Chain bool
	// Temp: creates a temporary object; transactions touching those cannot be prepared.
	Temp bool
	// CopyIn: COPY … FROM, which may read COPY data from the client: nothing may be pipelined
	// behind it.
	CopyIn bool
	// Unpreparable: makes its transaction impossible to PREPARE (LISTEN, NOTIFY, WITH HOLD cursors,
	// pg_notify, pg_export_snapshot); such a transaction commits plainly (DESIGN §5.3).
	Unpreparable bool
	// Hold: DECLARE … WITH HOLD. PostgreSQL runs the part of its query left unread at the
	// COMMIT of its transaction: a write of its query comes after the shim's commit check.
	Hold bool
	// Calls: for a write, or a read that runs expressions (SELECT, WITH, VALUES, TABLE, DECLARE,
	// COPY … TO, EXPLAIN ANALYZE), the names written as calls — a word or "quoted identifier"
	// followed by "(", as written (foldName gives the name looked up), at most maxCalls (more:
	// ManyCalls). Keywords such as IN or EXISTS are among them; only the names of functions
	// that may write or notify matter (funcs.go).
	Calls     []string
	ManyCalls bool
	// Names: for the same statements, their words as written (keywords and unquoted names; at
	// most maxWords, more: ManyNames) and then their "quoted names" (U&"…" ones with their
	// UESCAPE; not those right before a dot — a schema, or a qualifier naming what FROM names
	// too —; at most maxWords distinct ones, more: ManyNames), among which the tables and views they read or write
	// (funcs.go: views that call functions that may write, tables whose triggers notify).
	Names     []string
	ManyNames bool
	// Creates is the name of the function a CREATE [OR REPLACE] FUNCTION statement makes;
	// CreatesStable, that it is declared STABLE or IMMUTABLE (PostgreSQL keeps such a function
	// from writing, though not from calling one that writes).
	Creates       string
	CreatesStable bool
	// Proc: CALL, or DO with COMMIT, ROLLBACK or CALL in it, which may commit writes of its own.
	Proc bool
	// Concurrently: CREATE or DROP INDEX … CONCURRENTLY and ALTER TABLE … DETACH PARTITION …
	// CONCURRENTLY, where the word CONCURRENTLY is (zero otherwise). It cannot run in a transaction block, so it cannot ship in its own: once it
	// has run, the statement without that word is recorded in tandem.ddl (session.shipAfter).
	Concurrently span
	// Detached: for ALTER TABLE … DETACH PARTITION … CONCURRENTLY, the partition's name as
	// written (between PARTITION and CONCURRENTLY). PostgreSQL adds a CHECK constraint
	// duplicating the partition constraint to it, which a plain DETACH does not: the shim
	// records that constraint for the peer too (session.lastPartShipAfter).
	Detached span
	// Finalize: for ALTER TABLE … DETACH PARTITION … FINALIZE, where the word FINALIZE is
	// (Detached is then the partition): it completes a concurrent detach that stopped after
	// its first step, which the peer never got; the peer runs a plain DETACH PARTITION.
	Finalize span
	// AddsDefault: ALTER TABLE … ADD, which may add a column with a default (its own, or its
	// domain's), an identity or a serial column, whose values in the rows already there the
	// shim checks (ddlcheck.go).
	AddsDefault bool
	// MayUnkey: DDL that can leave a table without a primary key — CREATE TABLE (… AS, …
	// PARTITION OF, … INHERITS), CREATE SCHEMA … CREATE TABLE, SELECT … INTO, ALTER TABLE …
	// DROP (a constraint or a key's column), DROP … CASCADE, DROP INDEX: the shim gives such tables
	// REPLICA IDENTITY FULL once it ran (ddlcheck.go). Also ALTER TABLE … ATTACH PARTITION, …
	// DETACH PARTITION and … REPLICA IDENTITY, after which it checks partitions' replica
	// identities (ddlcheck.go).
	MayUnkey bool
	// Retypes: ALTER TABLE … [SET DATA] TYPE …, whose conversions (USING expressions, the
	// assignment casts) the shim checks before it runs, or … SET LOGGED, checked likewise
	// (ddlcheck.go).
	Retypes bool
	// BlockOnly: LOCK or DECLARE without WITH HOLD, which PostgreSQL runs only in a transaction
	// block (an explicit one, or the implicit block of a simple Query of several statements)
	// and otherwise fails with 25P01; it is the command's name in that error.
	BlockOnly string
	// ExplainMakes: EXPLAIN ANALYZE of a statement that makes a permanent table or materialized
	// view (CREATE TABLE … AS, SELECT … INTO, CREATE MATERIALIZED VIEW), which the shim refuses
	// (session.go, explainMakesRefusal). PrepareMakes: PREPARE … AS SELECT … INTO a permanent
	// table, refused too (prepareMakesRefusal). ExplainExec: for EXPLAIN ANALYZE EXECUTE name, the
	// name as written, refused when the shim knows it for a statement that makes a table.
	ExplainMakes, PrepareMakes bool
	ExplainExec                span
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
	quoted := make([]span, 0, 32) // "quoted identifiers", U&"…" ones with their UESCAPE: names too
	manyQuoted := false
	more := 0 // offset just past the last word kept, once a statement has more than maxWords
	start := 0
	i := 0
	n := len(sql)
	depth := 0    // parentheses
	atomic := 0   // BEGIN ATOMIC … END nesting inside CREATE FUNCTION/PROCEDURE
	routine := -1 // -1 unknown, 0 no, 1 statement is CREATE [OR REPLACE] FUNCTION/PROCEDURE
	prevIdent := false
	quotedUnprep := false // "pg_notify" or "pg_export_snapshot", quoted: not among the words
	finish := func(end int) {
		st := statement{Start: start, End: end, Unpreparable: quotedUnprep}
		l := wordList{sql: sql, w: words, more: more, end: end}
		classify(l, &st)
		noteCalls(sql, l, calls, many, quoted, manyQuoted, &st)
		out = append(out, st)
		start = end
		words, calls, many, more, quotedUnprep = words[:0], calls[:0], false, 0, false
		quoted, manyQuoted = quoted[:0], false
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
		if !opensToken(c) {
			// A byte on its own (white space, punctuation, a digit): the fast path.
			switch {
			case c == ';' && depth == 0 && atomic == 0:
				finish(i + 1)
				i, prevIdent = i+1, false
				continue
			case c == '(':
				depth++
			case c == ')' && depth > 0:
				depth--
			}
			i, prevIdent = i+1, isIdentChar(c)
			continue
		}
		tok, end := nextToken(sql, i, prevIdent)
		switch tok {
		case tokQuoted:
			name := span{i, end}
			if u, uend := unicodeName(sql, i, end); u >= 0 {
				// U&"…" [UESCAPE '…']: the span holds it all for foldName to decode.
				name = span{u, uend}
			}
			if end > i+1 && sql[end-1] == '"' {
				if opensCall(sql, name.end) {
					addCall(name)
				}
				if q := sql[name.start:name.end]; q == `"pg_notify"` || q == `"pg_export_snapshot"` {
					quotedUnprep = true
				} else if q[0] != '"' { // U&"…": decoded
					var buf [64]byte
					if n := foldName(q, buf[:0]); string(n) == "pg_notify" || string(n) == "pg_export_snapshot" {
						quotedUnprep = true
					}
				}
				switch {
				case name.end < len(sql) && sql[name.end] == '.':
					// "s"."v", "t"."c": a schema, or a table or alias named in FROM too.
				case len(quoted) < maxWords:
					quoted = append(quoted, name)
				case !manyQuoted && !keptSpan(sql, quoted, name):
					manyQuoted = true
				}
			}
		case tokWord:
			if len(words) < maxWords {
				words = append(words, span{i, end})
			} else if more == 0 {
				more = words[len(words)-1].end
			}
			if opensCall(sql, end) {
				addCall(span{i, end})
			}
			if routine < 0 {
				routine = routineStart(sql, words)
			}
			if routine == 1 {
				// BEGIN ATOMIC opens a body of statements ended by semicolons, and END closes it or
				// a CASE inside it. BEGIN without ATOMIC is a name (a parameter or column "begin");
				// a transaction's BEGIN or END cannot be in a body. A CREATE FUNCTION inside a body
				// nests: PostgreSQL parses it so, then refuses it.
				switch w := sql[i:end]; {
				case depth == 0 && strings.EqualFold(w, "BEGIN") && atomicFollows(sql, end):
					atomic++
				case atomic > 0 && strings.EqualFold(w, "CASE"):
					atomic++
				case atomic > 0 && strings.EqualFold(w, "END"):
					atomic--
				}
			}
		}
		prevIdent = identEnds(sql, tok, i)
		i = end
	}
	if start < n || len(out) == 0 {
		finish(n)
	}
	return out
}

// maxWords bounds the word spans kept per statement, and so Names: a megabyte-long INSERT must
// not cost a megabyte of spans. What decides a statement's kind still sees every word: wordList
// finds those past the kept ones again in the text.
const maxWords = 256

// tokKind is what nextToken found.
type tokKind uint8

const (
	tokByte    tokKind = iota // one byte of anything else: white space, punctuation, digits, …
	tokWord                   // a keyword or unquoted identifier
	tokQuoted                 // a "quoted identifier"
	tokString                 // a '…', E'…' or dollar-quoted string
	tokComment                // a -- or /* */ comment
)

// nextToken returns the kind and the end of the token at sql[i]. prevIdent tells that the byte
// before i continues a word or number, after which $ is no dollar quote (a$b, $1).
func nextToken(sql string, i int, prevIdent bool) (tokKind, int) {
	n := len(sql)
	c := sql[i]
	switch {
	case c == '-' && i+1 < n && sql[i+1] == '-':
		// PostgreSQL's comment runs to a newline, \r as well as \n.
		for i < n && sql[i] != '\n' && sql[i] != '\r' {
			i++
		}
		return tokComment, i
	case c == '/' && i+1 < n && sql[i+1] == '*':
		return tokComment, skipBlockComment(sql, i)
	case c == '\'':
		return tokString, skipQuoted(sql, i+1, '\'', false)
	case c == '"':
		return tokQuoted, skipQuoted(sql, i+1, '"', false)
	case c == '$' && !prevIdent:
		if end, ok := skipDollarQuote(sql, i); ok {
			return tokString, end
		}
	case isIdentStart(c):
		j := i + 1
		for j < n && isIdentChar(sql[j]) {
			j++
		}
		// E'…' (and e'…') is an escape string: backslash escapes a quote — also in the parts
		// that continue it across a newline, which PostgreSQL reads in the same mode.
		if j == i+1 && (c == 'E' || c == 'e') && j < n && sql[j] == '\'' {
			end := skipQuoted(sql, j+1, '\'', true)
			for k := stringContinues(sql, end); k > 0; k = stringContinues(sql, end) {
				end = skipQuoted(sql, k, '\'', true)
			}
			return tokString, end
		}
		return tokWord, j
	}
	return tokByte, i + 1
}

// stringContinues tells where a string that ended at i (just past its closing quote) goes on,
// as PostgreSQL continues one ('…' then white space holding a newline, -- comments allowed, and
// another quote: its quotecontinue): just past that next quote, or -1.
func stringContinues(sql string, i int) int {
	newline := false
	for i < len(sql) {
		switch c := sql[i]; {
		case c == '\n' || c == '\r':
			newline = true
			i++
		case isSpace(c):
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' && sql[i] != '\r' {
				i++
			}
		case c == '\'' && newline:
			return i + 1
		default:
			return -1
		}
	}
	return -1
}

// opensToken tells whether a token other than a single tokByte may start with c.
func opensToken(c byte) bool {
	return c == '-' || c == '/' || c == '\'' || c == '"' || c == '$' || isIdentStart(c)
}

// identEnds tells whether the token of kind tok at sql[i] ends in a word or number: nextToken's
// prevIdent for the token after it.
func identEnds(sql string, tok tokKind, i int) bool {
	return tok == tokWord || (tok == tokByte && isIdentChar(sql[i]))
}

// tokens calls fn with each token of sql[i:end], i at a token's start, until fn returns false.
func tokens(sql string, i, end int, fn func(tok tokKind, start, end int) bool) {
	for prevIdent := i > 0 && isIdentChar(sql[i-1]); i < end; {
		tok, e := nextToken(sql, i, prevIdent)
		if !fn(tok, i, e) {
			return
		}
		prevIdent = identEnds(sql, tok, i)
		i = e
	}
}

// skipBlank returns the offset of the first byte of sql[i:end], i at a token's start, that is
// neither white space nor in a comment.
func skipBlank(sql string, i, end int) int {
	tokens(sql, i, end, func(tok tokKind, s, e int) bool {
		if tok == tokComment || (tok == tokByte && isSpace(sql[s])) {
			i = e
			return true
		}
		i = s
		return false
	})
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// atomicFollows tells whether the word after offset i, past white space and comments, is ATOMIC.
func atomicFollows(sql string, i int) bool {
	i = skipBlank(sql, i, len(sql))
	if i >= len(sql) {
		return false
	}
	tok, end := nextToken(sql, i, false)
	return tok == tokWord && strings.EqualFold(sql[i:end], "ATOMIC")
}

// opensCall tells whether a "(" follows offset i, i at a token's start, after white space and
// comments (f/**/(1) calls f).
func opensCall(sql string, i int) bool {
	for i < len(sql) && isSpace(sql[i]) {
		i++
	}
	if i+1 < len(sql) && (sql[i] == '-' && sql[i+1] == '-' || sql[i] == '/' && sql[i+1] == '*') {
		i = skipBlank(sql, i, len(sql))
	}
	return i < len(sql) && sql[i] == '('
}

// wordList is a statement's words as classify sees them: the first maxWords as spans, and,
// when there are more, the rest found again in the text past them whenever a check looks that
// far, so that no word past the kept ones is missed and none costs memory.
type wordList struct {
	sql  string
	w    []span // the first maxWords words
	more int    // offset just past w's last word when the statement has more words; 0: w is all
	end  int    // the statement's end
}

// each calls fn with the index and span of each word from index from on, in order, until fn
// returns false.
func (l wordList) each(from int, fn func(i int, w span) bool) {
	for i := from; i < len(l.w); i++ {
		if !fn(i, l.w[i]) {
			return
		}
	}
	if l.more == 0 {
		return
	}
	i := len(l.w)
	tokens(l.sql, l.more, l.end, func(tok tokKind, s, e int) bool {
		if tok != tokWord {
			return true
		}
		i++
		return i-1 < from || fn(i-1, span{s, e})
	})
}

// word returns word i, or "" when the statement has no word i.
func (l wordList) word(i int) string {
	if i < 0 {
		return ""
	}
	if i < len(l.w) {
		return l.sql[l.w[i].start:l.w[i].end]
	}
	w := ""
	l.each(i, func(_ int, s span) bool {
		w = l.sql[s.start:s.end]
		return false
	})
	return w
}

func (l wordList) is(i int, kw string) bool { return strings.EqualFold(l.word(i), kw) }

// find returns the index of the first word from index from that is one of kws (in any case),
// or -1.
func (l wordList) find(from int, kws ...string) int {
	k := -1
	l.each(from, func(i int, s span) bool {
		for _, kw := range kws {
			if strings.EqualFold(l.sql[s.start:s.end], kw) {
				k = i
				return false
			}
		}
		return true
	})
	return k
}

// spanOf returns where the first word kw from word from on is (zero if there is none).
func (l wordList) spanOf(from int, kw string) span {
	var w span
	l.each(from, func(_ int, s span) bool {
		if strings.EqualFold(l.sql[s.start:s.end], kw) {
			w = s
			return false
		}
		return true
	})
	return w
}

// afterOptions returns the index of the first word after the first word and a parenthesized
// option list right after it (REINDEX (VERBOSE) …), if there is one; the number of words when
// none follows.
func (l wordList) afterOptions() int {
	i := skipBlank(l.sql, l.w[0].end, l.end)
	if i >= l.end || l.sql[i] != '(' {
		return 1
	}
	// Options hold no parentheses: the first ")" outside quotes ends them.
	tokens(l.sql, i+1, l.end, func(tok tokKind, s, e int) bool {
		i = e
		return tok != tokByte || l.sql[s] != ')'
	})
	return l.wordAt(i)
}

// wordAt returns the index of the first word that starts at or after offset off; the number of
// words when none does.
func (l wordList) wordAt(off int) int {
	k := 0
	l.each(0, func(j int, w span) bool {
		if w.start >= off {
			return false
		}
		k = j + 1
		return true
	})
	return k
}

// from returns the words from index k on, a statement within the statement (what EXPLAIN
// explains) as classify sees a statement. Past the kept words (EXPLAIN with a long option list),
// word k is found in the text, the rest found after it as any past the kept ones; none, when
// there is no word k.
func (l wordList) from(k int) wordList {
	if k >= len(l.w) {
		var w []span
		l.each(k, func(_ int, s span) bool {
			w = []span{s}
			return false
		})
		if w == nil {
			return wordList{sql: l.sql, end: l.end}
		}
		return wordList{sql: l.sql, w: w, more: w[0].end, end: l.end}
	}
	l.w = l.w[k:]
	return l
}

// explained returns the index of the first word of the statement an EXPLAIN explains, and
// whether EXPLAIN runs it: EXPLAIN ANALYZE [VERBOSE] statement, or EXPLAIN (option [value], …)
// statement with an ANALYZE option not set false. A value it cannot read counts as true: a read
// taken for run is only committed on both databases, a write taken for not run on one alone.
func explained(l wordList) (k int, runs bool) {
	sql := l.sql
	i := skipBlank(sql, l.w[0].end, l.end)
	if i >= l.end || sql[i] != '(' {
		k = 1
		for l.is(k, "ANALYZE") || l.is(k, "ANALYSE") || l.is(k, "VERBOSE") {
			runs = runs || !l.is(k, "VERBOSE")
			k++
		}
		return k, runs
	}
	// Options hold no parentheses: the first ")" outside quotes ends them.
	name, analyze := true, false // an option's name is next; the option is ANALYZE
	val := span{-1, -1}          // the option's value, as written
	tokens(sql, i+1, l.end, func(tok tokKind, s, e int) bool {
		i = e
		switch {
		case tok == tokComment || (tok == tokByte && isSpace(sql[s])):
		case tok == tokByte && (sql[s] == ',' || sql[s] == ')'):
			if analyze && (val.start < 0 || !falseOption(sql[val.start:val.end])) {
				runs = true
			}
			name, analyze, val = true, false, span{-1, -1}
			return sql[s] == ','
		case name:
			w := sql[s:e]
			if tok == tokQuoted && len(w) >= 2 {
				w = w[1 : len(w)-1]
			}
			name, analyze = false, strings.EqualFold(w, "ANALYZE") || strings.EqualFold(w, "ANALYSE")
		default:
			if val.start < 0 {
				val.start = s
			}
			val.end = e
		}
		return true
	})
	return l.wordAt(i), runs
}

// falseOption tells whether an option's value as written is false to PostgreSQL: false or off
// (any case, maybe quoted), or 0.
func falseOption(v string) bool {
	if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1]
	} else if v != "" && strings.Trim(v, "0") == "" {
		return true
	}
	return strings.EqualFold(v, "false") || strings.EqualFold(v, "off")
}

// selectInto returns the index of the INTO of [WITH …] SELECT … INTO new_table, or -1. An INTO
// after AS or "." is a column named into. In a WITH, one after INSERT or MERGE that starts a
// statement, after "(" or ")" or a CTE's SEARCH or CYCLE clause (… CYCLE n SET c USING p INSERT
// INTO t), is their target (a write already), not after a column named insert (SELECT a AS
// insert INTO t). Only a WITH holds such statements: a SELECT holding one is refused.
func selectInto(l wordList) int {
	with := l.is(0, "WITH")
	if !with && !l.is(0, "SELECT") {
		return -1
	}
	k := -1
	var prev, before span // the word before, and the one before that
	// clause: in a SEARCH clause after a CTE's ")" (1), or a CYCLE clause (3, past its SET 4),
	// past the SET of the one or the USING of the other (2); its words hold no SELECT. A SEARCH
	// says BREADTH or DEPTH next, a CYCLE has a USING: columns labelled search or cycle, set and
	// insert without AS (SELECT (a) cycle, b set, c insert INTO t) are not taken for one.
	clause := 0
	l.each(0, func(i int, w span) bool {
		p, word := l.sql[prev.start:prev.end], l.sql[w.start:w.end]
		if with && i > 0 {
			switch {
			case strings.ContainsAny(l.sql[prev.end:w.start], "()"):
				clause = 0
				if strings.EqualFold(word, "SEARCH") {
					clause = 1
				} else if strings.EqualFold(word, "CYCLE") {
					clause = 3
				}
			case strings.EqualFold(word, "SELECT"):
				clause = 0
			case clause == 1 && strings.EqualFold(p, "SEARCH") && !strings.EqualFold(word, "BREADTH") && !strings.EqualFold(word, "DEPTH"):
				clause = 0
			case clause == 1 && strings.EqualFold(word, "SET"):
				clause = 2
			case clause == 3 && strings.EqualFold(word, "SET"):
				clause = 4
			case clause == 4 && strings.EqualFold(word, "USING"):
				clause = 2
			}
		}
		if strings.EqualFold(word, "INTO") && l.sql[w.start-1] != '.' && !strings.EqualFold(p, "AS") &&
			!(with && (strings.EqualFold(p, "INSERT") || strings.EqualFold(p, "MERGE")) &&
				(clause == 2 || strings.ContainsAny(l.sql[before.end:prev.start], "()"))) {
			k = i
			return false
		}
		prev, before = w, prev
		return true
	})
	return k
}

// noteCalls fills st.Calls, st.ManyCalls, st.Names, st.ManyNames and st.Creates from the calls
// and words of a classified statement. The strings kept come from sql (l.sql), not l: l's
// spans then stay on splitStatements' stack.
func noteCalls(sql string, l wordList, calls []span, many bool, quoted []span, manyQuoted bool, st *statement) {
	switch {
	case st.Kind == kindDDL && routineStart(sql, l.w) == 1 && len(calls) > 0 &&
		(l.is(1, "FUNCTION") || l.is(3, "FUNCTION")):
		st.Creates = string(foldName(sql[calls[0].start:calls[0].end], nil))
		st.CreatesStable = l.find(2, "STABLE", "IMMUTABLE") >= 0
		return
	case (st.Kind != kindRead && st.Kind != kindWrite) || len(l.w) == 0:
		return
	}
	is := func(kw string) bool { return l.is(0, kw) }
	switch {
	case is("EXPLAIN"):
		if _, runs := explained(l); !runs {
			return // not run
		}
	case is("SELECT"), is("WITH"), is("VALUES"), is("TABLE"), is("DECLARE"), is("COPY"):
	case st.Kind == kindRead:
		return // runs no expression
	}
	st.Names = make([]string, 0, len(l.w)+len(quoted))
	for _, x := range l.w {
		st.Names = append(st.Names, sql[x.start:x.end])
	}
	for _, x := range quoted {
		st.Names = append(st.Names, sql[x.start:x.end])
	}
	st.ManyNames = l.more != 0 || manyQuoted
	if len(calls) > 0 {
		st.Calls = make([]string, len(calls))
		for i, c := range calls {
			st.Calls[i] = sql[c.start:c.end]
		}
	}
	st.ManyCalls = many
	if is("DO") {
		// The block's body is a string to the lexer: read as a function's source is
		// (funcs.go), a NOTIFY, LISTEN or pg_notify in it makes its transaction one that
		// cannot be prepared, and the names in it count as calls (one of a function that may
		// notify does too), all of them: past maxCalls, those after would go unseen. A word
		// comes folded already, or as a quoted name is written: it is kept quoted, so that the
		// lookup (foldName) does not fold "Nf" to nf.
		seen := map[string]bool{}
		sourceWords(sql[st.Start:st.End], func(w string) {
			switch {
			case notifyWord(w):
				st.Unpreparable = true
			case !seen[w]:
				seen[w] = true
				st.Calls = append(st.Calls, `"`+strings.ReplaceAll(w, `"`, `""`)+`"`)
			}
		})
	}
}

// keptSpan tells whether the text of n is that of one of kept: an ORM repeats its names
// (GROUP BY and ORDER BY the columns selected), which are not more names.
func keptSpan(sql string, kept []span, n span) bool {
	for _, k := range kept {
		if k.end-k.start == n.end-n.start && sql[k.start:k.end] == sql[n.start:n.end] {
			return true
		}
	}
	return false
}

// unicodeName tells whether the "quoted identifier" sql[i:end] is written U&"…" (the U& right
// before it, not the end of a longer word): it returns where U& starts and where the name
// ends, past an UESCAPE 'c' clause after it; u = -1 when it is not one.
func unicodeName(sql string, i, end int) (u, uend int) {
	if i < 2 || sql[i-1] != '&' || (sql[i-2] != 'U' && sql[i-2] != 'u') || (i > 2 && isIdentChar(sql[i-2-1])) {
		return -1, 0
	}
	uend = end
	if j := skipBlank(sql, end, len(sql)); j+7 <= len(sql) && strings.EqualFold(sql[j:j+7], "UESCAPE") && (j+7 == len(sql) || !isIdentChar(sql[j+7])) {
		if k := skipBlank(sql, j+7, len(sql)); k < len(sql) && sql[k] == '\'' {
			uend = skipQuoted(sql, k+1, '\'', false)
		}
	}
	return i - 2, uend
}

// maxIdent is the most bytes of an identifier PostgreSQL keeps (NAMEDATALEN-1): a longer one is
// truncated, at a character's start.
const maxIdent = 63

// foldName appends to buf the name PostgreSQL looks up for a name as written: unquoted, ASCII
// letters folded to lower case; "quoted", without the quotes and with doubled quotes undone;
// U&"…" [UESCAPE '…'], with its escapes decoded too. Like PostgreSQL's, the name is truncated to
// maxIdent bytes.
func foldName(name string, buf []byte) []byte {
	base := len(buf)
	buf = foldNameFull(name, buf)
	if len(buf)-base > maxIdent {
		k := base + maxIdent
		for k > base && !utf8.RuneStart(buf[k]) {
			k--
		}
		buf = buf[:k]
	}
	return buf
}

func foldNameFull(name string, buf []byte) []byte {
	if len(name) >= 3 && (name[0] == 'U' || name[0] == 'u') && name[1] == '&' && name[2] == '"' {
		return decodeUnicodeName(name[2:], buf)
	}
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

// classify fills st.Kind and the flags from the statement's words.
func classify(l wordList, st *statement) {
	sql := l.sql
	if len(l.w) == 0 {
		// A statement of symbols only ("(", ";") or an empty one: let PostgreSQL judge it.
		st.Kind = kindEmpty
		if strings.TrimSpace(stripNoise(sql[st.Start:st.End])) != "" {
			st.Kind = kindWrite
		}
		return
	}
	first := strings.ToUpper(l.word(0))
	has := func(from int, kw string) bool { return l.find(from, kw) >= 0 }
	if l.find(0, "pg_notify", "pg_export_snapshot") >= 0 { // quoted: splitStatements
		st.Unpreparable = true
	}
	switch first {
	case "BEGIN":
		st.Kind = kindBegin
	case "START":
		st.Kind = kindBegin
		if !l.is(1, "TRANSACTION") {
			st.Kind = kindWrite
		}
	case "COMMIT", "END":
		st.Kind = kindCommit
		if first == "COMMIT" && l.is(1, "PREPARED") {
			st.Kind = kindClient2PC
			return
		}
		st.Chain = chained(l)
	case "ROLLBACK", "ABORT":
		st.Kind = kindRollback
		switch {
		case first == "ROLLBACK" && l.is(1, "PREPARED"):
			st.Kind = kindClient2PC
		case first == "ROLLBACK" && (l.is(1, "TO") || (l.is(2, "TO") && (l.is(1, "WORK") || l.is(1, "TRANSACTION")))):
			st.Kind = kindSavepoint
		default:
			st.Chain = chained(l)
		}
	case "SAVEPOINT", "RELEASE":
		st.Kind = kindSavepoint
	case "PREPARE":
		// PREPARE TRANSACTION 'gid' versus PREPARE name [(types)] AS statement.
		st.Kind = kindRead
		if l.is(1, "TRANSACTION") && !has(2, "AS") {
			st.Kind = kindClient2PC
		} else if k := l.find(2, "AS"); k >= 0 {
			in := statement{Start: st.Start, End: st.End}
			classify(l.from(k+1), &in)
			st.PrepareMakes = in.Kind == kindDDL
		}
	case "SELECT", "WITH", "VALUES", "TABLE":
		st.Kind = kindRead
		if writesInQuery(l) {
			st.Kind = kindWrite
		}
		if k := selectInto(l); k >= 0 {
			// [WITH …] SELECT … INTO new_table creates a table.
			st.Kind, st.MayUnkey = kindDDL, true
			if l.is(k+1, "TEMP") || l.is(k+1, "TEMPORARY") || l.is(k+1, "LOCAL") || l.is(k+1, "GLOBAL") {
				st.Kind, st.Temp, st.MayUnkey = kindWrite, true, false
			}
		}
	case "EXPLAIN":
		// EXPLAIN ANALYZE runs the statement it explains (CREATE TABLE … AS and SELECT … INTO
		// create the table, EXECUTE runs what was prepared): it is what that statement is.
		// REFRESH MATERIALIZED VIEW it explains as a utility statement, without running it.
		st.Kind = kindRead
		if k, runs := explained(l); runs && !l.is(k, "REFRESH") {
			in := statement{Start: st.Start, End: st.End}
			classify(l.from(k), &in)
			st.Kind, st.Temp, st.Unpreparable, st.MayUnkey = in.Kind, in.Temp, st.Unpreparable || in.Unpreparable, in.MayUnkey
			st.ExplainMakes = in.Kind == kindDDL
			if l.is(k, "EXECUTE") {
				// Word k, maybe past the kept words (EXPLAIN with a long option list).
				if i := skipBlank(sql, l.spanOf(k, "EXECUTE").end, l.end); i < l.end {
					if tok, e := nextToken(sql, i, false); tok == tokWord || tok == tokQuoted {
						st.ExplainExec = span{i, e}
						if e == i+1 && e+1 < l.end && sql[e] == '&' && sql[e+1] == '"' {
							// U&"…" [UESCAPE '…']: the span holds it all for foldName to decode.
							_, qe := nextToken(sql, e+1, false)
							if u, uend := unicodeName(sql, e+1, qe); u >= 0 {
								st.ExplainExec = span{u, uend}
							}
						}
					}
				}
			}
			if in.Kind != kindRead && in.Kind != kindDDL {
				// A write, or what cannot be explained: PostgreSQL's error to report.
				st.Kind = kindWrite
			}
		}
	case "SHOW", "SET", "RESET", "FETCH", "MOVE", "CLOSE", "DEALLOCATE", "LOAD", "CHECKPOINT", "LOCK":
		// No xid of their own. LOCK outside a block is PostgreSQL's error to report.
		st.Kind = kindRead
		if first == "LOCK" {
			st.BlockOnly = "LOCK TABLE"
		}
	case "DECLARE":
		st.Kind = kindRead
		if k := l.find(1, "WITH"); k >= 0 && l.is(k+1, "HOLD") {
			st.Unpreparable, st.Hold = true, true
		} else {
			st.BlockOnly = "DECLARE CURSOR"
		}
		if writesInQuery(l) {
			st.Kind = kindWrite
		}
	case "LISTEN", "UNLISTEN", "NOTIFY":
		st.Kind = kindRead
		st.Unpreparable = true
	case "DISCARD":
		st.Kind = kindRead
		if l.is(1, "ALL") {
			st.Kind = kindNoTxBlock
		}
	case "VACUUM", "CALL":
		// CALL: a procedure may COMMIT inside, which fails inside a transaction block.
		st.Kind, st.Proc = kindNoTxBlock, first == "CALL"
	case "DO":
		// A block that COMMITs or ROLLs BACK fails inside a transaction block, like a procedure;
		// so does one that CALLs a procedure that does.
		st.Kind = kindWrite
		if hasTxControlWord(sql[st.Start:st.End]) {
			st.Kind, st.Proc = kindNoTxBlock, true
		}
	case "CREATE", "ALTER", "DROP":
		classifySchema(l, st)
	case "REINDEX":
		// REINDEX [(options)] {SCHEMA | DATABASE | SYSTEM}, or … CONCURRENTLY, commits as it
		// goes. (So does REINDEX of a partitioned table or index: the words do not tell.)
		st.Kind = kindWrite
		if k := l.afterOptions(); has(1, "CONCURRENTLY") || l.is(k, "SCHEMA") || l.is(k, "DATABASE") || l.is(k, "SYSTEM") {
			st.Kind = kindNoTxBlock
		}
	case "CLUSTER":
		// CLUSTER [VERBOSE | (options)] without a table clusters every table that has been
		// clustered, each in a transaction of its own. (So does CLUSTER of a partitioned table:
		// the words do not tell.)
		st.Kind = kindWrite
		k := l.afterOptions()
		if k == 1 && l.is(1, "VERBOSE") {
			k = 2
		}
		if l.word(k) == "" {
			st.Kind = kindNoTxBlock
		}
	case "COMMENT", "GRANT", "REVOKE", "SECURITY", "REFRESH", "REASSIGN", "IMPORT":
		st.Kind = kindDDL
	case "COPY":
		// COPY (query) TO runs its query: a read unless the query writes (INSERT, UPDATE,
		// DELETE or MERGE … RETURNING, a data-modifying WITH, FOR UPDATE). COPY table FROM is a
		// write, COPY table TO a read: the first of FROM and TO says which (both are reserved, so
		// neither names a column).
		st.Kind = kindRead
		if i := skipBlank(sql, l.w[0].end, l.end); i < l.end && sql[i] == '(' {
			if writesInQuery(l) {
				st.Kind = kindWrite
			}
		} else if k := l.find(1, "FROM", "TO"); k >= 0 && l.is(k, "FROM") {
			st.Kind, st.CopyIn = kindWrite, true
		}
	default:
		// INSERT, UPDATE, DELETE, MERGE, TRUNCATE, ANALYZE, EXECUTE, unknown: may write.
		st.Kind = kindWrite
	}
}

// chained tells whether COMMIT, END, ROLLBACK or ABORT [WORK | TRANSACTION] goes on with AND
// CHAIN (not AND NO CHAIN).
func chained(l wordList) bool {
	k := 1
	if l.is(1, "WORK") || l.is(1, "TRANSACTION") {
		k = 2
	}
	return l.is(k, "AND") && l.is(k+1, "CHAIN")
}

// hasTxControlWord tells whether text, a DO statement, holds the word COMMIT, ROLLBACK or CALL
// (any case) in code or strings, not in comments: a DO block's body, a dollar-quoted string to
// the lexer, is looked into as code, its comments left out (a CALL there runs nothing), the
// strings in it as they are (EXECUTE 'COMMIT'). (A CALL may run a procedure that commits,
// which is allowed where the DO block runs outside a transaction block, and fails in one.)
func hasTxControlWord(text string) bool {
	return txControlIn(text, true)
}

// txControlIn is hasTxControlWord for text; body: a dollar-quoted string in it is a DO body,
// looked into as code (once: one in that is a string).
func txControlIn(text string, body bool) bool {
	found := false
	tokens(text, 0, len(text), func(tok tokKind, s, e int) bool {
		switch {
		case tok == tokComment:
		case tok == tokString && text[s] == '$':
			// What it quotes, without its tags ($q$COMMIT$q$).
			tag := strings.IndexByte(text[s+1:e], '$') + 2
			in := text[s+tag : e]
			if len(in) >= tag && strings.HasSuffix(in, text[s:s+tag]) {
				in = in[:len(in)-tag]
			}
			if body {
				found = txControlIn(in, false)
			} else {
				found = holdsTxControlWord(in)
			}
		case tok == tokWord, tok == tokString, tok == tokQuoted:
			found = holdsTxControlWord(text[s:e])
		}
		return !found
	})
	return found
}

// holdsTxControlWord tells whether text holds the word COMMIT, ROLLBACK or CALL, any case.
func holdsTxControlWord(text string) bool {
	for _, w := range []string{"commit", "rollback", "call"} {
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
func classifySchema(l wordList, st *statement) {
	is := l.is
	has := func(from int, kw string) bool { return l.find(from, kw) >= 0 }
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
		st.Concurrently = l.spanOf(k, "CONCURRENTLY")
	case is(0, "ALTER") && is(1, "TABLE"):
		// ALTER TABLE … DETACH PARTITION … CONCURRENTLY commits between its two steps: like
		// CREATE INDEX CONCURRENTLY, it runs as sent and ships afterwards without that word.
		if d := l.find(2, "DETACH"); d >= 0 && is(d+1, "PARTITION") && has(d+2, "CONCURRENTLY") {
			st.Kind = kindNoTxBlock
			st.Concurrently = l.spanOf(d+2, "CONCURRENTLY")
			if p := l.spanOf(d+1, "PARTITION"); p.end < st.Concurrently.start {
				st.Detached = span{p.end, st.Concurrently.start}
			}
		} else if d >= 0 && is(d+1, "PARTITION") && has(d+2, "FINALIZE") {
			st.Finalize = l.spanOf(d+2, "FINALIZE")
			if p := l.spanOf(d+1, "PARTITION"); p.end < st.Finalize.start {
				st.Detached = span{p.end, st.Finalize.start}
			}
		}
		// Any ADD: a column of a domain type takes the domain's default, with no DEFAULT word.
		st.AddsDefault = has(2, "ADD")
		// ATTACH PARTITION and REPLICA IDENTITY leave no table keyless, but may leave a
		// partition's replica identity short of its root's: checked in the same step. So may
		// DETACH PARTITION of a partitioned table, which becomes its partitions' root.
		st.MayUnkey = has(2, "DROP") || has(2, "ATTACH") || has(2, "DETACH") || has(2, "REPLICA")
		st.Retypes = has(2, "TYPE") || has(2, "LOGGED")
	case is(0, "CREATE") && (is(k, "TEMP") || is(k, "TEMPORARY") ||
		((is(k, "LOCAL") || is(k, "GLOBAL")) && (is(k+1, "TEMP") || is(k+1, "TEMPORARY")))):
		st.Kind, st.Temp = kindWrite, true
	case is(0, "CREATE") && (is(1, "TABLE") || (is(1, "UNLOGGED") && is(2, "TABLE")) || (is(1, "SCHEMA") && has(2, "TABLE"))),
		is(0, "DROP") && has(1, "CASCADE"),
		is(0, "DROP") && is(1, "INDEX"): // a REPLICA IDENTITY USING INDEX index
		st.MayUnkey = true
	}
}

// writesInQuery reports whether a query (SELECT/WITH/DECLARE/COPY, also under EXPLAIN ANALYZE)
// contains a data-modifying part (INSERT/UPDATE/DELETE/MERGE, in a CTE or, for COPY, as the
// query) or locks rows (FOR UPDATE/SHARE), which assigns an xid.
func writesInQuery(l wordList) bool {
	// FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE lock rows: an xid too.
	return l.find(0, "INSERT", "UPDATE", "DELETE", "MERGE", "SHARE") >= 0
}

// stripNoise removes comments from a statement so that an all-comment statement is empty.
func stripNoise(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		switch {
		case s[i] == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' && s[i] != '\r' {
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

// lexerSetting tells whether statement st of text may change a setting the lexer depends on
// (lexerUnsafe: standard_conforming_strings, client_encoding), which PostgreSQL applies to the
// statements it parses after it — in the same extended-protocol request, or in a request
// pipelined behind it — before the shim sees the ParameterStatus that ends such a session.
// unsafe: it sets one to a value lexerUnsafe refuses, as written (SET, SET NAMES, set_config
// with literal arguments). unsure: it may change one, but the text does not tell to what
// (set_config with an argument that is not a literal, a DO block that names one). RESET,
// RESET ALL and DISCARD ALL go back to the values the session started with, which the shim
// checked (startup). A function that sets one in its body is not seen.
func lexerSetting(text string, st statement) (unsafe, unsure bool) {
	// Most statements neither begin with SET or DO nor call set_config: they are not tokenized.
	i := skipBlank(text, st.Start, st.End)
	first := func(kw string) bool {
		return i+len(kw) <= st.End && strings.EqualFold(text[i:i+len(kw)], kw) && (i+len(kw) == st.End || !isIdentChar(text[i+len(kw)]))
	}
	if !first("SET") && !first("DO") && !containsFold(text[st.Start:st.End], "set_config") {
		return false, false
	}
	return settingIn(text, st.Start, st.End, false)
}

// dollarBody returns what the dollar-quoted string w ($tag$…$tag$, one token) holds, read as
// written whatever the settings; ok=false when w is no such string ($1, a lone $).
func dollarBody(w string) (body string, ok bool) {
	tag := strings.IndexByte(w[1:], '$')
	if tag < 0 || len(w) < 2*(tag+2) || w[len(w)-tag-2:] != w[:tag+2] {
		return "", false
	}
	return w[tag+2 : len(w)-tag-2], true
}

// containsFold tells whether s contains the lower-case ASCII word w in any case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i]|0x20 == w[0] && strings.EqualFold(s[i:i+len(w)], w) {
			return true
		}
	}
	return false
}

// settingIn is lexerSetting of text[start:end]; body: it is the body of a DO block, where a SET
// may come anywhere.
func settingIn(text string, start, end int, body bool) (unsafe, unsure bool) {
	var toks []span // words, quoted names, strings and single bytes, without blanks and comments
	tokens(text, start, end, func(tok tokKind, b, e int) bool {
		if tok != tokComment && (tok != tokByte || !isSpace(text[b])) {
			toks = append(toks, span{b, e})
		}
		return true
	})
	word := func(i int) string {
		if i >= len(toks) {
			return ""
		}
		return text[toks[i].start:toks[i].end]
	}
	is := func(i int, kw string) bool { return strings.EqualFold(word(i), kw) }
	// name folds an identifier as PostgreSQL does (unquoted: lower case).
	name := func(i int) string {
		w := word(i)
		if len(w) >= 2 && w[0] == '"' && w[len(w)-1] == '"' {
			return strings.ReplaceAll(w[1:len(w)-1], `""`, `"`)
		}
		return strings.ToLower(w)
	}
	// value reads a setting's value as written: a word, number, "quoted name", '…' string or
	// dollar-quoted string; ok=false when it is written otherwise (E'…', an expression).
	value := func(i int) (string, bool) {
		w := word(i)
		switch {
		case w == "":
			return "", false
		case w[0] == '\'' && len(w) >= 2 && w[len(w)-1] == '\'':
			return strings.ReplaceAll(w[1:len(w)-1], "''", "'"), true
		case w[0] == '"':
			return name(i), true
		case w[0] == '$':
			return dollarBody(w)
		case isIdentStart(w[0]):
			for j := 1; j < len(w); j++ {
				if !isIdentChar(w[j]) {
					return "", false // E'…'
				}
			}
			return w, true
		}
		// A number, as single bytes.
		v, j := "", i
		for ; j < len(toks) && toks[j].end-toks[j].start == 1 && (isIdentChar(text[toks[j].start]) || text[toks[j].start] == '.'); j++ {
			v += word(j)
		}
		return v, v != ""
	}
	// changes tells what setting setting (folded) to the value at token i does.
	changes := func(setting string, i int) (unsafe, unsure bool) {
		v, ok := value(i)
		switch {
		case setting != "standard_conforming_strings" && setting != "client_encoding":
			return false, false
		case !ok:
			return false, true
		case strings.EqualFold(v, "DEFAULT") && toks[i].end-toks[i].start == len("DEFAULT"):
			return false, false // unquoted DEFAULT: the value the session started with
		case setting == "client_encoding":
			return clientOnlyEncoding(v), false
		}
		on, ok := parseBool(v)
		return ok && !on, false // a value that is no boolean fails
	}
	set := func(i int) (unsafe, unsure bool) {
		k := i + 1
		if is(k, "SESSION") || is(k, "LOCAL") {
			k++
		}
		if is(k, "NAMES") {
			return changes("client_encoding", k+1)
		}
		if is(k+1, "=") || is(k+1, "TO") {
			return changes(name(k), k+2)
		}
		return false, false
	}
	if !body && is(0, "SET") {
		return set(0)
	}
	for i := range toks {
		if body && is(i, "SET") {
			u, n := set(i)
			unsafe, unsure = unsafe || u, unsure || n
		}
		if !body && i == 0 && is(0, "DO") {
			// The block's body, a string: what it runs is SQL too (EXECUTE of a string built
			// at run time is not seen).
			for _, t := range toks[1:] {
				w := text[t.start:t.end]
				switch {
				case len(w) >= 2 && w[0] == '\'':
					u, n := settingIn(text, t.start+1, t.end-1, true)
					unsafe, unsure = unsafe || u, unsure || n
				case w[0] == '$':
					if body, ok := dollarBody(w); ok {
						b := t.start + (len(w)-len(body))/2 // behind the opening tag
						u, n := settingIn(text, b, b+len(body), true)
						unsafe, unsure = unsafe || u, unsure || n
					}
				}
			}
			return unsafe, unsure
		}
		if name(i) != "set_config" || !is(i+1, "(") {
			continue
		}
		// set_config(name, value, is_local): both literals ('…' or dollar-quoted) to tell.
		literal := func(j int) (string, bool) {
			v, ok := value(j)
			return v, ok && (word(j)[0] == '\'' || word(j)[0] == '$') && (is(j+1, ",") || is(j+1, ")"))
		}
		setting, ok := literal(i + 2)
		setting = strings.ToLower(setting)
		if !ok {
			unsure = true
			continue
		}
		if setting != "standard_conforming_strings" && setting != "client_encoding" {
			continue
		}
		if _, ok := literal(i + 4); !ok || !is(i+3, ",") {
			unsure = true
			continue
		}
		u, n := changes(setting, i+4)
		unsafe, unsure = unsafe || u, unsure || n
	}
	return unsafe, unsure
}

// clientOnlyEncoding tells whether a client_encoding value names an encoding lexerUnsafe
// refuses, under any of PostgreSQL's spellings (case and punctuation do not count).
func clientOnlyEncoding(v string) bool {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; isIdentChar(c) && c != '_' && c != '$' {
			b.WriteByte(c | 0x20)
		}
	}
	switch b.String() {
	case "sjis", "shiftjis", "mskanji", "win932", "windows932", "shiftjis2004",
		"big5", "win950", "windows950", "gbk", "win936", "windows936",
		"uhc", "win949", "windows949", "gb18030", "johab":
		return true
	}
	return false
}

// decodeUnicodeName appends to buf the name that "…" [UESCAPE 'c'] (after U&) stands for: the
// body with doubled quotes undone and escapes — c (default \\) followed by four hex digits, or
// by + and six, or c doubled — decoded. What PostgreSQL would refuse is kept as written.
func decodeUnicodeName(name string, buf []byte) []byte {
	end := strings.LastIndexByte(name, '"')
	if end < 1 {
		return append(buf, name...)
	}
	esc := byte('\\')
	if q := strings.IndexByte(name[end:], '\''); q >= 0 && q+2 < len(name[end:]) {
		esc = name[end+q+1]
	}
	body := name[1:end]
	hex := func(s string) (rune, bool) {
		var r rune
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c|0x20 && c|0x20 <= 'f':
				r = r<<4 | rune(c|0x20-'a'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	var high rune // a pending high surrogate
	for i := 0; i < len(body); i++ {
		c := body[i]
		var r rune
		ok := false
		switch {
		case c == '"' && i+1 < len(body) && body[i+1] == '"':
			i++
		case c == esc && i+1 < len(body) && body[i+1] == esc:
			i++
		case c == esc && i+5 <= len(body) && body[i+1] != '+':
			r, ok = hex(body[i+1 : i+5])
			if ok {
				i += 4
			}
		case c == esc && i+8 <= len(body) && body[i+1] == '+':
			r, ok = hex(body[i+2 : i+8])
			if ok {
				i += 7
			}
		}
		if !ok {
			buf = append(buf, c)
			continue
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			high = r
			continue
		case r >= 0xDC00 && r < 0xE000 && high != 0:
			r = 0x10000 + (high-0xD800)<<10 + (r - 0xDC00)
		}
		high = 0
		buf = utf8.AppendRune(buf, r)
	}
	return buf
}
