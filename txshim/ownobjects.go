package txshim

import "strings"

// A client of the shim reaches the local database as local_dsn's user, which often owns
// Tandem's own objects (install's superuser) or is a superuser: it could change them through
// the shim, which would record such DDL in tandem.ddl for the peer like any other. Nothing
// then fails where it happens: ALTER PUBLICATION tandem SET (publish = 'insert') makes every
// later UPDATE and DELETE commit "dual" on the local database only (they are no longer
// decoded); a row a client writes into tandem.ddl makes the peer run a statement the local
// database never ran; DROP SCHEMA tandem CASCADE or ALTER EVENT TRIGGER tandem_ddl_guard
// DISABLE (event triggers do not fire for event trigger commands, so no guard sees it) take
// the machinery away on both databases. So the shim refuses (42501), in the client's
// transaction, a statement that names one of Tandem's objects where it would change it:
//
//   - DDL (CREATE, ALTER, DROP, COMMENT, GRANT, …) naming an object of schema tandem
//     (tandem.x), ALTER SCHEMA tandem, DROP SCHEMA … tandem;
//   - ALTER PUBLICATION tandem, DROP PUBLICATION … tandem;
//   - ALTER or DROP EVENT TRIGGER tandem_…;
//   - INSERT INTO, UPDATE, DELETE FROM, MERGE INTO, TRUNCATE, COPY … FROM, LOCK of a table
//     tandem.x — anywhere in the statement (a data-modifying WITH, PREPARE … AS, EXPLAIN
//     ANALYZE), while reading Tandem's tables stays allowed, and so does a LOCK … IN ACCESS
//     SHARE or ROW SHARE MODE, which a read takes (pg_dump locks each table it dumps so).
//
// What the lexer cannot see is not refused: a name found through search_path, a function or
// a DO block that writes Tandem's tables (a row written into tandem.ddl so also makes the DDL
// guard's mark, ddlGuardSQL).

// ownObjectRefusal is the message refusing statement st of sql, or "" when it leaves Tandem's
// objects alone.
func ownObjectRefusal(sql string, st statement) string {
	if st.Kind == kindEmpty || st.Kind == kindRead && !hasWord(sql, st, "INTO", "LOCK", "UPDATE", "DELETE", "TRUNCATE", "COPY") {
		return ""
	}
	type tok struct {
		kind       tokKind
		start, end int
	}
	var toks []tok
	tokens(sql, st.Start, st.End, func(k tokKind, s, e int) bool {
		if k != tokComment && !(k == tokByte && isSpace(sql[s])) {
			toks = append(toks, tok{k, s, e})
		}
		return true
	})
	word := func(i int, kws ...string) bool {
		if i < 0 || i >= len(toks) || toks[i].kind != tokWord {
			return false
		}
		for _, kw := range kws {
			if strings.EqualFold(sql[toks[i].start:toks[i].end], kw) {
				return true
			}
		}
		return false
	}
	punct := func(i int, c byte) bool {
		return i < len(toks) && toks[i].kind == tokByte && sql[toks[i].start] == c
	}
	// ident is token i as an identifier: folded to lower case unquoted, as written quoted.
	ident := func(i int) (string, bool) {
		if i >= len(toks) {
			return "", false
		}
		switch t := toks[i]; t.kind {
		case tokWord:
			return strings.ToLower(sql[t.start:t.end]), true
		case tokQuoted:
			return strings.ReplaceAll(sql[t.start+1:t.end-1], `""`, `"`), true
		}
		return "", false
	}
	isTandem := func(i int) bool { s, ok := ident(i); return ok && s == "tandem" }
	qualified := func(i int) bool { return isTandem(i) && punct(i+1, '.') }
	// anyName calls fn for each name of a comma-separated list starting at i (IF EXISTS skipped).
	anyName := func(i int, fn func(int) bool) bool {
		if word(i, "IF") && word(i+1, "EXISTS") {
			i += 2
		}
		for i < len(toks) {
			if fn(i) {
				return true
			}
			for i < len(toks) && !punct(i, ',') && !punct(i, ';') && !word(i, "CASCADE", "RESTRICT") {
				i++
			}
			if !punct(i, ',') {
				return false
			}
			i++
		}
		return false
	}
	const refusal = "tandem: %s belongs to Tandem's machinery (it keeps both databases identical): changing it through the shim is refused"
	msg := func(what string) string { return strings.Replace(refusal, "%s", what, 1) }

	switch {
	case word(0, "ALTER") && word(1, "PUBLICATION") && isTandem(2),
		word(0, "DROP") && word(1, "PUBLICATION") && anyName(2, isTandem):
		return msg("publication tandem")
	case word(0, "ALTER") && word(1, "SCHEMA") && isTandem(2),
		word(0, "DROP") && word(1, "SCHEMA") && anyName(2, isTandem):
		return msg("schema tandem")
	case (word(0, "ALTER") || word(0, "DROP")) && word(1, "EVENT") && word(2, "TRIGGER"):
		if anyName(3, func(i int) bool { s, ok := ident(i); return ok && strings.HasPrefix(s, "tandem_") }) {
			return msg("event trigger tandem_…")
		}
	}
	if st.Kind == kindDDL || word(0, "CREATE", "ALTER", "DROP") {
		// A table or alias named tandem in CREATE or ALTER (tandem not followed by "."): then
		// tandem.x in an expression is most likely one of its columns (CREATE VIEW v AS SELECT
		// tandem.id FROM tandem), which the lexer cannot tell from an object of schema tandem.
		// Not where a name stands for an object (after TABLE, ON, FROM, REFERENCES, TO, …), nor
		// a function's (tandem.f(…)) or a column's of schema tandem (tandem.t.c): ALTER TABLE
		// tandem.ddl ADD COLUMN tandem int changes Tandem's table all the same. DROP, GRANT,
		// COMMENT and the like name no columns that way: never excepted.
		bare := false
		if word(0, "CREATE", "ALTER") {
			for i := range toks {
				if isTandem(i) && !punct(i+1, '.') && (i == 0 || !punct(i-1, '.')) {
					bare = true
					break
				}
			}
		}
		column := func(i int) bool {
			if !bare || punct(i+3, '(') || punct(i+3, '.') || i == 0 {
				return false
			}
			if word(i-1, "TABLE", "ON", "INTO", "FROM", "JOIN", "LIKE", "REFERENCES", "INDEX", "VIEW", "ONLY",
				"EXISTS", "CONCURRENTLY", "USING", "UPDATE", "TRIGGER", "SEQUENCE", "FUNCTION", "PROCEDURE",
				"ROUTINE", "AGGREGATE", "TYPE", "DOMAIN", "TO", "OF", "PARTITION", "INHERIT", "STATISTICS",
				"POLICY", "RULE", "COLLATION", "OPERATOR", "CONVERSION", "SERVER", "OWNED", "BY") {
				return false
			}
			return !(punct(i-1, '(') && word(i-2, "INHERITS"))
		}
		for i := range toks {
			if qualified(i) && (i == 0 || !punct(i-1, '.')) && !column(i) {
				return msg("schema tandem (" + sql[toks[i].start:toks[min(i+2, len(toks)-1)].end] + ")")
			}
		}
		return ""
	}
	// readLock tells whether the LOCK whose names start at token i takes a mode a read takes
	// anyway (ACCESS SHARE: a SELECT's, as pg_dump locks every table it dumps; ROW SHARE: a
	// SELECT … FOR UPDATE's), which changes nothing and blocks no more than that read would.
	readLock := func(i int) bool {
		for ; i < len(toks) && !punct(i, ';'); i++ {
			if word(i, "IN") {
				return word(i+1, "ACCESS", "ROW") && word(i+2, "SHARE") && word(i+3, "MODE")
			}
		}
		return false
	}
	// Writes: the table a data-changing clause names.
	for i := range toks {
		j := -1
		switch {
		case word(i, "INSERT", "MERGE") && word(i+1, "INTO"):
			j = i + 2
		case word(i, "UPDATE") && !word(i-1, "FOR", "NO", "KEY", "DO"), word(i, "DELETE") && word(i+1, "FROM"):
			j = i + 1
			if word(i, "DELETE") {
				j++
			}
			if word(j, "ONLY") {
				j++
			}
		case word(i, "COPY") && st.CopyIn:
			j = i + 1
			if word(j, "ONLY") {
				j++
			}
		case word(i, "LOCK"), word(i, "TRUNCATE"):
			// A list of tables: any of them.
			j = i + 1
			if word(j, "TABLE") {
				j++
			}
			if word(i, "LOCK") && readLock(j) {
				continue
			}
			if anyName(j, func(k int) bool { return qualified(k) || word(k, "ONLY") && qualified(k+1) }) {
				return msg("schema tandem")
			}
			continue
		}
		if j >= 0 && qualified(j) {
			return msg("schema tandem (" + sql[toks[j].start:toks[min(j+2, len(toks)-1)].end] + ")")
		}
	}
	return ""
}

// hasWord tells whether statement st of sql has one of the words kws outside quotes and
// comments.
func hasWord(sql string, st statement, kws ...string) bool {
	found := false
	tokens(sql, st.Start, st.End, func(k tokKind, s, e int) bool {
		if k == tokWord {
			for _, kw := range kws {
				if strings.EqualFold(sql[s:e], kw) {
					found = true
					return false
				}
			}
		}
		return true
	})
	return found
}
