package config

import (
	"strconv"
	"strings"
)

// keyLines finds the line each key of a TOML document is set on.
//
// BurntSushi/toml reports positions only for syntax errors, not for the keys
// of a document that parsed, so validation errors would have no line without
// this. It runs only on text the TOML parser has accepted, so it needs to know
// just enough TOML to tell table headers and keys from values: strings,
// multi-line strings and values spanning lines (arrays, inline tables).
type keyLines struct {
	indexed map[string]int   // proxy.listener[1].endpoint -> line
	plain   map[string][]int // proxy.listener.endpoint -> every line, in order
}

func scanKeyLines(src string) keyLines {
	// A byte order mark, which the decoder skips, is no part of the first line's key.
	src = strings.TrimPrefix(src, byteOrderMark)
	kl := keyLines{indexed: map[string]int{}, plain: map[string][]int{}}
	arrays := map[string]int{} // plain array-of-tables path -> current index
	var table []string         // current table path, plain
	var open valueScanner      // carries a value across lines

	for i, line := range strings.Split(src, "\n") {
		n := i + 1
		if open.pending() {
			open.feed(line)
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
			arrays[strings.Join(table, ".")]++
			kl.add(indexedPath(table, nil, arrays), strings.Join(table, "."), n)
		case s[0] == '[':
			end := strings.IndexByte(s, ']')
			if end < 0 {
				continue
			}
			table = splitKey(s[1:end])
			kl.add(indexedPath(table, nil, arrays), strings.Join(table, "."), n)
		default:
			eq := keyEnd(s)
			if eq < 0 {
				continue
			}
			key := splitKey(s[:eq])
			kl.add(indexedPath(table, key, arrays), strings.Join(append(append([]string{}, table...), key...), "."), n)
			open = valueScanner{}
			open.feed(s[eq+1:])
		}
	}
	return kl
}

func (kl keyLines) add(indexed, plain string, line int) {
	if _, ok := kl.indexed[indexed]; !ok {
		kl.indexed[indexed] = line
	}
	kl.plain[plain] = append(kl.plain[plain], line)
}

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
// table that is in the file, or 0.
func (kl keyLines) line(path string) int {
	for path != "" {
		if n, ok := kl.indexed[path]; ok {
			return n
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
