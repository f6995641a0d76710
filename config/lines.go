package config

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/BurntSushi/toml"
)

// keyLines finds the line each key of a TOML document is set on.
//
// BurntSushi/toml reports positions only for syntax errors, not for the keys
// of a document that parsed, so validation errors would have no line without
// this. It runs only on text the TOML parser has accepted, so it needs to know
// just enough TOML to tell table headers and keys from values: strings,
// multi-line strings and values spanning lines (arrays, inline tables).
type keyLines struct {
	indexed map[string]int      // proxy.listener[1].endpoint -> line
	plain   map[string][]int    // proxy.listener.endpoint -> every line, in order
	paths   map[string][]string // proxy.listener.endpoint -> the indexed path of each of plain's
	elems   map[string]int      // gossip.join[1] -> line: the elements of arrays (inline)
	// spans are the keys of inline tables, from the key to the end of its value: plain path ->
	// each one's line and byte offsets in the document (blankInline).
	spans   map[string][]keySpan
	headers []tableHeader // in the order of the document
}

// tableHeader is a [table] or [[array of tables]] header: its line and plain path.
type tableHeader struct {
	line  int
	array bool
	path  string
}

// keySpan is where one key/value of an inline table is written, and its indexed path.
type keySpan struct {
	line, start, end int
	indexed          string
}

func scanKeyLines(src string) keyLines {
	// A byte order mark, which the decoder skips, is no part of the first line's key.
	src = strings.TrimPrefix(src, byteOrderMark)
	kl := keyLines{indexed: map[string]int{}, plain: map[string][]int{}, paths: map[string][]string{}, elems: map[string]int{}, spans: map[string][]keySpan{}}
	arrays := map[string]int{} // plain array-of-tables path -> current index
	var table []string         // current table path, plain
	var open valueScanner      // carries a value across lines
	var value inlineValue      // the value open carries, for the keys of its inline tables

	off := 0 // of the line in src
	for i, line := range strings.Split(src, "\n") {
		n, lineOff := i+1, off
		off += len(line) + 1
		if open.pending() {
			open.feed(line)
			value.text += "\n" + line
			if !open.pending() {
				kl.inline(value)
			}
			continue
		}
		s := strings.TrimSpace(line)
		switch {
		case s == "" || s[0] == '#':
		case strings.HasPrefix(s, "[["):
			end := strings.Index(s, "]]")
			if end < 0 {
				continue
			}
			table = splitKey(s[2:end])
			path := strings.Join(table, ".")
			arrays[path]++
			// A new table of the array: the arrays of tables in it start again at 0
			// (TestKeyInNestedArrayOfTablesIndexed).
			for p := range arrays {
				if strings.HasPrefix(p, path+".") {
					delete(arrays, p)
				}
			}
			kl.headers = append(kl.headers, tableHeader{n, true, strings.Join(table, ".")})
			kl.add(indexedPath(table, nil, arrays), strings.Join(table, "."), n)
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				continue
			}
			table = splitKey(s[1:end])
			kl.headers = append(kl.headers, tableHeader{n, false, strings.Join(table, ".")})
			kl.add(indexedPath(table, nil, arrays), strings.Join(table, "."), n)
		default:
			eq := keyEnd(s)
			if eq < 0 {
				continue
			}
			key := splitKey(s[:eq])
			indexed, plain := indexedPath(table, key, arrays), strings.Join(append(append([]string{}, table...), key...), ".")
			kl.add(indexed, plain, n)
			open = valueScanner{}
			open.feed(s[eq+1:])
			start := len(line) - len(strings.TrimLeftFunc(line, unicode.IsSpace)) + eq + 1 // of the value in line
			value = inlineValue{indexed: indexed, plain: plain, line: n, text: line[start:], start: lineOff + start}
			if !open.pending() {
				kl.inline(value)
			}
		}
	}
	return kl
}

func (kl keyLines) add(indexed, plain string, line int) {
	if _, ok := kl.indexed[indexed]; !ok {
		kl.indexed[indexed] = line
	}
	kl.plain[plain] = append(kl.plain[plain], line)
	kl.paths[plain] = append(kl.paths[plain], indexed)
}

// nth is the line and the indexed path of the n-th (from 0) place the file sets plain, a path
// without indices, in the order of the file; 0 and "" past the last.
func (kl keyLines) nth(plain string, n int) (int, string) {
	if n < 0 || n >= len(kl.plain[plain]) {
		return 0, ""
	}
	return kl.plain[plain][n], kl.paths[plain][n]
}

// withIndices is k as toml.Key.String writes it, with the index each part has in indexed, k's
// path as scanKeyLines writes it (server.endpoint[1].nmae for server.endpoint.nmae); k as it is
// if indexed is not its path.
func withIndices(k toml.Key, indexed string) string {
	parts := make([]string, len(k))
	rest := indexed
	for i, part := range k {
		var ok bool
		if i > 0 {
			if rest, ok = strings.CutPrefix(rest, "."); !ok {
				return k.String()
			}
		}
		if rest, ok = strings.CutPrefix(rest, part); !ok {
			return k.String()
		}
		parts[i] = toml.Key{part}.String()
		if m := leadingIndex.FindString(rest); m != "" {
			parts[i] += m
			rest = rest[len(m):]
		}
	}
	if rest != "" {
		return k.String()
	}
	return strings.Join(parts, ".")
}

var leadingIndex = regexp.MustCompile(`^\[\d+\]`)

// keyAt returns the indexed path of the key set on line whose path without indices is plain,
// or "".
func (kl keyLines) keyAt(line int, plain string) string {
	for k, n := range kl.indexed {
		if n == line && arrayIndex.ReplaceAllString(k, "") == plain {
			return k
		}
	}
	return ""
}

// line returns the line of an indexed key path, or of its nearest enclosing
// table that is in the file, or 0. A table the file makes only through the keys
// or tables under it ([[proxy.listener]] without [proxy]) is at the first of them.
func (kl keyLines) line(path string) int {
	for path != "" {
		if n, ok := kl.indexed[path]; ok {
			return n
		}
		if n, ok := kl.elems[path]; ok {
			return n
		}
		first := 0
		for k, n := range kl.indexed {
			if (strings.HasPrefix(k, path+".") || strings.HasPrefix(k, path+"[")) && (first == 0 || n < first) {
				first = n
			}
		}
		if first > 0 {
			return first
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			return 0
		}
		path = path[:cut]
	}
	return 0
}

// indexedPath joins table and key, adding the current index after every
// prefix of the table path that names an array of tables.
func indexedPath(table, key []string, arrays map[string]int) string {
	var b strings.Builder
	for i, part := range table {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(part)
		if n := arrays[strings.Join(table[:i+1], ".")]; n > 0 {
			b.WriteString("[" + strconv.Itoa(n-1) + "]")
		}
	}
	for _, part := range key {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(part)
	}
	return b.String()
}

// keyEnd returns the index of the '=' that ends the key of a key/value line.
func keyEnd(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted TOML key, unquoting its parts.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

// valueScanner follows a value over as many lines as it spans.
type valueScanner struct {
	depth     int    // open [ and {
	multiline string // `"""` or `'''` while inside a multi-line string
}

func (v *valueScanner) pending() bool { return v.depth > 0 || v.multiline != "" }

func (v *valueScanner) feed(s string) {
	for i := 0; i < len(s); i++ {
		if v.multiline != "" {
			switch {
			case v.multiline == `"""` && s[i] == '\\':
				// An escape: \" is a quote, not the start of the closing """ (and a \ that
				// ends the line joins the next). A '''…''' string has no escapes.
				i++
			case strings.HasPrefix(s[i:], v.multiline):
				// The closing delimiter is the last three of a run of up to five quotes: the
				// one or two before them are the string's.
				i += 2
				for n := 0; n < 2 && i+1 < len(s) && s[i+1] == v.multiline[0]; n++ {
					i++
				}
				v.multiline = ""
			}
			continue
		}
		switch c := s[i]; c {
		case '#':
			return
		case '[', '{':
			v.depth++
		case ']', '}':
			v.depth--
		case '"', '\'':
			if strings.HasPrefix(s[i:], strings.Repeat(string(c), 3)) {
				v.multiline = strings.Repeat(string(c), 3)
				i += 2
				continue
			}
			// A one-line string: skip to its closing quote.
			for i++; i < len(s) && s[i] != c; i++ {
				if c == '"' && s[i] == '\\' {
					i++
				}
			}
		}
	}
}

// inlineValue is the text of one key's value, from after its '=' to its end (lines joined by
// "\n"), with the key's paths and line.
type inlineValue struct {
	indexed, plain string
	line           int
	text           string
	start          int // offset of text in the document
}

// inline records the keys of the inline tables in v, and the elements of its arrays, each at
// its own line: an inline table or an array may span lines (TOML 1.1), and an error about
// gossip.profile or proxy.trusted_cidrs[1] must name the line that sets it, not the first of
// the value.
func (kl keyLines) inline(v inlineValue) {
	c := &inlineCursor{kl: kl, s: v.text, line: v.line, base: v.start}
	c.value(v.indexed, v.plain)
}

// inlineCursor reads a value of a document the TOML parser accepted.
type inlineCursor struct {
	kl   keyLines
	s    string
	i    int
	line int
	base int // offset of s in the document
}

// space skips blanks, newlines and comments.
func (c *inlineCursor) space() {
	for c.i < len(c.s) {
		switch c.s[c.i] {
		case '\n':
			c.line++
		case ' ', '\t', '\r':
		case '#':
			for c.i < len(c.s) && c.s[c.i] != '\n' {
				c.i++
			}
			continue
		default:
			return
		}
		c.i++
	}
}

// value reads one value at c.i, whose paths are indexed and plain.
func (c *inlineCursor) value(indexed, plain string) {
	c.space()
	if c.i >= len(c.s) {
		return
	}
	switch c.s[c.i] {
	case '{':
		c.i++
		for {
			c.space()
			if c.i >= len(c.s) {
				return
			}
			switch c.s[c.i] {
			case '}':
				c.i++
				return
			case ',':
				c.i++
				continue
			}
			eq := keyEnd(c.s[c.i:])
			if eq < 0 {
				c.i = len(c.s)
				return
			}
			key := strings.Join(splitKey(c.s[c.i:c.i+eq]), ".")
			c.kl.add(indexed+"."+key, plain+"."+key, c.line)
			sp := keySpan{line: c.line, start: c.base + c.i, indexed: indexed + "." + key}
			c.i += eq + 1
			c.value(indexed+"."+key, plain+"."+key)
			sp.end = c.base + min(c.i, len(c.s))
			c.kl.spans[plain+"."+key] = append(c.kl.spans[plain+"."+key], sp)
		}
	case '[':
		c.i++
		for n := 0; ; {
			c.space()
			if c.i >= len(c.s) {
				return
			}
			switch c.s[c.i] {
			case ']':
				c.i++
				return
			case ',':
				c.i++
				continue
			}
			elem := indexed + "[" + strconv.Itoa(n) + "]"
			if _, ok := c.kl.elems[elem]; !ok {
				c.kl.elems[elem] = c.line
			}
			n++
			c.value(elem, plain)
		}
	case '"', '\'':
		q := c.s[c.i]
		if strings.HasPrefix(c.s[c.i:], strings.Repeat(string(q), 3)) {
			start, end := c.i, c.multilineEnd(q)
			c.line += strings.Count(c.s[start:end], "\n")
			c.i = end
			return
		}
		for c.i++; c.i < len(c.s) && c.s[c.i] != q; c.i++ {
			if q == '"' && c.s[c.i] == '\\' {
				c.i++
			}
		}
		c.i++
	default:
		// A number, a boolean or a date: up to the next separator (and past one character at
		// least, so that a loop above always moves on).
		c.i++
		for c.i < len(c.s) && !strings.ContainsRune(",]}#\n", rune(c.s[c.i])) {
			c.i++
		}
	}
}

// multilineEnd is the index just past the multi-line string opening at c.i (quote q).
func (c *inlineCursor) multilineEnd(q byte) int {
	delim := strings.Repeat(string(q), 3)
	for i := c.i + 3; i < len(c.s); i++ {
		switch {
		case q == '"' && c.s[i] == '\\':
			i++
		case strings.HasPrefix(c.s[i:], delim):
			i += 3
			for n := 0; n < 2 && i < len(c.s) && c.s[i] == q; n++ {
				i++
			}
			return i
		}
	}
	return len(c.s)
}

// blankInline blanks the first key/value of an inline table that sets key (a plain path) on line,
// and the comma after it (or else the one before it), so that what is left is still a table;
// lines stay where they are. It returns the indexed path of the key blanked; false when no such
// key is set on that line.
func blankInline(src string, line int, key string) (string, string, bool) {
	bom := 0 // the scanner skips a byte order mark
	if strings.HasPrefix(src, byteOrderMark) {
		bom = len(byteOrderMark)
	}
	blank := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for _, sp := range scanKeyLines(src).spans[key] {
		if sp.line != line {
			continue
		}
		b := []byte(src)
		start, end := sp.start+bom, sp.end+bom
		j := end
		for j < len(b) && blank(b[j]) {
			j++
		}
		if j < len(b) && b[j] == ',' {
			end = j + 1
		} else {
			i := start
			for i > 0 && blank(b[i-1]) {
				i--
			}
			if i > 0 && b[i-1] == ',' {
				start = i - 1
			}
		}
		for k := start; k < end; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		return string(b), sp.indexed, true
	}
	return src, "", false
}
