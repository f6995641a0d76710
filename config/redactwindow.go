package config

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// A command's redaction reads a script for its secrets with regexps (argPasswordName,
// argHeader...) that Go runs, on a text of some size holding no literal their matches start
// with, with its slowest engine: some microseconds a byte, for each argument of each hook's and
// health command's run, a 64 KiB script taking most of a second (and seconds under the race
// detector). Each is read in windows of the text alone, parts out of which none of its matches
// can be: around the words a match holds (a secret's name, "://", a client's name), as far
// before and after them as a match reaches (BenchmarkRedactCommand). Reading the windows
// finds what reading all of the text does (FuzzRedactCommand checks it): a match lies in one,
// windows that overlap are one, and what a regexp asks of the text around a match (its '^',
// the character before a name) is in the window. The case-insensitive regexps fold U+017F
// and U+212A to ASCII letters of their words: a text holding one is one window for them.

// window is a part of a text: its start and end.
type window = [2]int

// addWindow is ws with w added, w starting at or after the last's start: one with the last
// when they overlap or touch.
func addWindow(ws []window, w window) []window {
	if n := len(ws); n > 0 && ws[n-1][1] >= w[0] {
		ws[n-1][1] = max(ws[n-1][1], w[1])
		return ws
	}
	return append(ws, w)
}

// findAllIn is re.FindAllStringSubmatchIndex(a, -1), read in the windows ws of a alone.
func findAllIn(re *regexp.Regexp, a string, ws []window) [][]int {
	var out [][]int
	for _, w := range ws {
		for _, m := range re.FindAllStringSubmatchIndex(a[w[0]:w[1]], -1) {
			for k := range m {
				if m[k] >= 0 {
					m[k] += w[0]
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// firstIn is re.FindStringIndex(a), read in the windows ws of a alone.
func firstIn(re *regexp.Regexp, a string, ws []window) []int {
	for _, w := range ws {
		if m := re.FindStringIndex(a[w[0]:w[1]]); m != nil {
			return []int{m[0] + w[0], m[1] + w[0]}
		}
	}
	return nil
}

// folds tells whether a holds a character the case-insensitive regexps fold to an ASCII
// letter: the long s (U+017F, s) and the Kelvin sign (U+212A, k).
func folds(a string) bool {
	return strings.Contains(a, "\u017f") || strings.Contains(a, "\u212a")
}

// asciiLower is a with its ASCII capitals made small, every byte where it was.
func asciiLower(a string) []byte {
	b := []byte(a)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// isRESpace is a byte of the regexps' \s: space, \t, \n, \f, \r.
func isRESpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// skip is the first index from i on in a whose byte is not in set.
func skip(a string, i int, set string) int {
	for i < len(a) && strings.IndexByte(set, a[i]) >= 0 {
		i++
	}
	return i
}

// tokenWindows are the windows around each word of a made of the bytes in (a maximal run)
// that trigger tells (given it, and it with its capitals made small) holds a match's words: from back bytes before it to what end, given the
// word's end, makes of what follows it. With fold, a text folds (folds) is one window.
func tokenWindows(a string, in func(byte) bool, trigger func(tok string, low []byte) bool, back int, end func(int) int, fold bool) []window {
	if fold && folds(a) {
		return []window{{0, len(a)}}
	}
	low := asciiLower(a)
	var ws []window
	for i := 0; i < len(a); {
		if !in(a[i]) {
			i++
			continue
		}
		ts := i
		for i < len(a) && in(a[i]) {
			i++
		}
		if trigger(a[ts:i], low[ts:i]) {
			ws = addWindow(ws, window{max(ts-back, 0), min(end(i), len(a))})
		}
	}
	return ws
}

// argPasswordWindows are the windows of a that argPasswordName's matches are in, so that
// argPasswordMatches reads those alone. A match starts with a name, an option or a -p: in a
// word of [\w.-] (a token), or at a '?' or '&' before one, and holds one of the names' or
// options' letters in it (argTrigger); it ends after that word, a quote, spaces or tabs and a
// character. Each such word is a window of its own, which may overlap the next: one read
// whole by the regexp for each match in it would be read again and again (a line of
// secrets), the slowest of its engines taking longer the longer the text.
func argPasswordWindows(a string) []passwordWindow {
	if folds(a) {
		return []passwordWindow{{0, len(a), len(a)}}
	}
	low := asciiLower(a)
	var ws []passwordWindow
	for i := 0; i < len(a); {
		if !argTokenByte(a[i]) {
			i++
			continue
		}
		ts := i
		for i < len(a) && argTokenByte(a[i]) {
			i++
		}
		if !argTrigger(a[ts:i], low[ts:i]) {
			continue
		}
		end := i
		if end < len(a) && (a[end] == '\'' || a[end] == '"') {
			end++
		}
		end = min(skip(a, end, " \t")+utf8.UTFMax, len(a)) // the character after: a rune
		ws = append(ws, passwordWindow{max(ts-1, 0), i, end})
	}
	return ws
}

// passwordWindow is a window of argPasswordWindows: the matches in it start before words.
type passwordWindow struct{ start, words, end int }

// argTokenByte tells whether c is of the [\w.-] words argPasswordName's names are made of.
func argTokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

// argTrigger tells whether the word tok (low: with its capitals made small) holds what any
// argPasswordName match holds: a secretName's word (pass, token, secret, api, pwd,
// rediscli_auth, any case) or an option of a client's (-p, -a, -u, -U).
func argTrigger(tok string, low []byte) bool {
	if strings.Contains(tok, "-p") || strings.Contains(tok, "-a") || strings.Contains(tok, "-u") || strings.Contains(tok, "-U") {
		return true
	}
	for _, k := range argTriggerWords {
		if bytes.Contains(low, k) {
			return true
		}
	}
	return false
}

// argTriggerWords are the secretName words argTrigger looks for.
var argTriggerWords = [][]byte{[]byte("pass"), []byte("token"), []byte("secret"), []byte("api"), []byte("pwd"), []byte("rediscli_auth")}

// urlWindows are argURLPassword's windows in a: each "://" from the start of the scheme
// before it to the next space (none in a match, which holds one "://" only).
func urlWindows(a string) []window {
	var ws []window
	for off := 0; ; {
		k := strings.Index(a[off:], "://")
		if k < 0 {
			return ws
		}
		p := off + k
		start := p
		for start > 0 && (argTokenByte(a[start-1]) && a[start-1] != '_' || a[start-1] == '+') {
			start--
		}
		end := p + 3
		for end < len(a) && !isRESpace(a[end]) {
			end++
		}
		ws = addWindow(ws, window{start, end})
		off = p + 3
	}
}

// headerWindows are argHeader's windows in a: each header name holding auth, token, api or
// secret (a word of [\w-]) from the character before it to its credential's end: ':' and
// a scheme and a credential after it, each maybe after spaces or tabs.
func headerWindows(a string) []window {
	word := func(c byte) bool { return argTokenByte(c) && c != '.' }
	trigger := func(_ string, low []byte) bool {
		return bytes.Contains(low, []byte("auth")) || bytes.Contains(low, []byte("token")) ||
			bytes.Contains(low, []byte("api")) || bytes.Contains(low, []byte("secret"))
	}
	value := func(i int) int {
		for i < len(a) && !isRESpace(a[i]) && a[i] != '\'' && a[i] != '"' && a[i] != '\\' {
			i++
		}
		return i
	}
	return tokenWindows(a, word, trigger, 1, func(end int) int {
		end = skip(a, end, " \t")
		if end < len(a) && a[end] == ':' {
			end++
		}
		end = value(skip(a, end, " \t"))
		return value(skip(a, end, " \t"))
	}, true)
}

// sqlWindows are argSQLPassword's windows in a: each "password", any case, from the
// character before it (all of its bytes: [^\w-] reads one beyond ASCII whole,
// TestRedactWindowsRuneBefore) to the quote after the spaces after it (and an E before it).
func sqlWindows(a string) []window {
	if folds(a) {
		return []window{{0, len(a)}}
	}
	low := asciiLower(a)
	var ws []window
	for off := 0; ; {
		k := bytes.Index(low[off:], []byte("password"))
		if k < 0 {
			return ws
		}
		p := off + k
		_, n := utf8.DecodeLastRuneInString(a[:p])
		end := skip(a, p+8, " \t\n")
		if end < len(a) && a[end] == '$' { // $tag$
			end = skip(a, end+1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") + 1
		} else {
			end += 3 // U& (or E) and '
		}
		ws = addWindow(ws, window{p - n, min(end, len(a))})
		off = p + 8
	}
}

// jsonWindows are argJSONSecret's windows in a: each member name holding a secretName's word
// (argTrigger), from its quote (maybe escaped) to its value's (maybe escaped, twice or more).
func jsonWindows(a string) []window {
	return tokenWindows(a, argTokenByte, argTrigger, 2, func(end int) int {
		end = skip(a, end, "\\\"")
		end = skip(a, end, " \t")
		if end < len(a) && a[end] == ':' {
			end++
		}
		return skip(a, skip(a, end, " \t"), "\\") + 1
	}, true)
}

// pgpassWindows are argPgpassLine's windows in a: each run of what a password file's line
// up to its password is made of (bytes but the regexps' \s and quotes, a backslash taking the
// byte after it but a newline) that holds a port (':', digits, '*' or a printf's conversion,
// ':'), from the byte
// before it. A match is in one: its first byte a space, a quote or a \n's backslash, its
// others a run's.
func pgpassWindows(a string) []window {
	var ws []window
	for i := 0; i < len(a); {
		if isRESpace(a[i]) || a[i] == '\'' || a[i] == '"' {
			i++
			continue
		}
		rs, port := i, false
	run:
		for i < len(a) && !isRESpace(a[i]) && a[i] != '\'' && a[i] != '"' {
			switch {
			case a[i] == '\\' && (i+1 == len(a) || a[i+1] == '\n'):
				i++
				break run // no byte of a match's run: its end
			case a[i] == '\\':
				i += 2
			case a[i] == ':' && !port:
				j := i + 1
				switch {
				case j < len(a) && a[j] == '*':
					j++
				case j < len(a) && a[j] == '%': // a printf's conversion
					j = skip(a, j+1, "-+#0")
					j = skip(a, j, "0123456789")
					j = skip(a, j, "hjlLtz")
					if j < len(a) && strings.IndexByte("sdiu", a[j]) >= 0 {
						j++
					} else {
						j = i + 1
					}
				default:
					j = skip(a, j, "0123456789")
				}
				port = j > i+1 && j < len(a) && a[j] == ':'
				i++
			default:
				i++
			}
		}
		if port {
			ws = addWindow(ws, window{max(rs-1, 0), min(i, len(a))})
		}
	}
	return ws
}

// argNameWords are the words each client's name regexp (names.end) matches hold.
var argNameWords = map[*regexp.Regexp][]string{
	argMySQLWord:   {"mysql", "mariadb"},
	argPGWord:      {"psql", "pg_", "createdb", "dropdb", "createuser", "dropuser", "clusterdb", "reindexdb", "vacuumdb", "pgbench"},
	argRedisWord:   {"redis-cli", "valkey-cli", "keydb-cli"},
	argMongoWord:   {"mongo"},
	argSSHPassWord: {"sshpass"},
	argCurlWord:    {"curl"},
}

// nameWindows are a client's name regexp's windows in a: each of its words (nil: all of a)
// from the character before it to a character after the word of [\w-] it ends.
func nameWindows(a string, words []string) []window {
	if words == nil {
		return []window{{0, len(a)}}
	}
	var starts []int
	for _, w := range words {
		for off := 0; ; {
			k := strings.Index(a[off:], w)
			if k < 0 {
				break
			}
			starts = append(starts, off+k)
			off += k + 1
		}
	}
	slices.Sort(starts)
	var ws []window
	for _, p := range starts {
		end := p
		for end < len(a) && (argTokenByte(a[end]) && a[end] != '.') {
			end++
		}
		ws = addWindow(ws, window{max(p-1, 0), min(end+utf8.UTFMax, len(a))})
	}
	return ws
}

// writesPgpass tells whether the command a names a password file (.pgpass, $PGPASSFILE, a
// connection string's passfile: TestRedactedCommandPasswordFileNamed), whose lines' passwords
// are hidden (redactPgpassLines); PGPASSWORD is none, and so is one named in a comment alone
// (# no passfile), which hid a status line's end (TestRedactedCommandLeftovers).
func writesPgpass(a string) bool {
	low := uncommented(asciiLower(a))
	return bytes.Contains(low, []byte(".pgpass")) || bytes.Contains(low, []byte("passfile"))
}

// uncommented is the script a without its comments: each '#' at a word's start in no quote to
// its line's end. Quotes are followed as a shell does ('...', "..." and $'...' with their
// backslashes, a backslash out of them); a here-document's body is read as script.
//
// That is not all a shell reads: an apostrophe in a here-document's body (it's), or a quote
// in a $(...) in a quote ("$(echo "it's")"), has the quotes after it read the other way
// round, and in a backquoted command or a ${...} a '#' after a space is no comment where
// they are (`date #x`, ${v%% #*}); a password file named after such a '#' on its line (echo
// 'db:5432:*:m:s3 #1' > ~/.pgpass) was taken out with it, its password shown
// (TestRedactedCommandPgpassCommentMisread). So a comment is taken out only if it holds none
// of the characters that may end what it is in instead (a quote, a backquote, a '}'): the
// text from a '#' misread to its line's end is then in what the '#' is in, a quote (the
// password file named in it is a word of the quote's, or a comment of the shell that runs
// it), or a comment; one holding them is kept (its quotes not followed, as a comment's).
func uncommented(a []byte) []byte {
	if bytes.IndexByte(a, '#') < 0 {
		return a
	}
	out := make([]byte, 0, len(a))
	quote := byte(0)
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case quote == 0 && c == '#' && (i == 0 || strings.IndexByte(" \t\n;&|()", a[i-1]) >= 0):
			k := bytes.IndexByte(a[i:], '\n')
			if k < 0 {
				k = len(a) - i
			}
			if bytes.ContainsAny(a[i:i+k], "'\"`}") {
				out = append(out, a[i:i+k]...) // kept, maybe no comment
			}
			i += k - 1 // the newline is kept
			continue
		case quote == 0 && c == '\'' && i > 0 && a[i-1] == '$':
			quote = '$'
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote == '$' && c == '\'':
			quote = 0
		case quote == c:
			quote = 0
		case c == '\\' && quote != '\'' && i+1 < len(a):
			out = append(out, c)
			i++
			c = a[i]
		}
		out = append(out, c)
	}
	return out
}

// isExpansion is argExpansion.MatchString(v), the regexp run only on what starts as one does.
func isExpansion(v string) bool {
	return v != "" && (v[0] == '$' || v[0] == '`') && argExpansion.MatchString(v)
}
