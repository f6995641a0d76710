package main

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeAdminAPI: the README's admin API table names every path admin.go serves, and its
// GET /metrics row every metric; neither names one admin.go does not serve.
func TestReadmeAdminAPI(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("admin.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var table []byte
	var row string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `GET /") || strings.HasPrefix(line, "| `POST /") {
			table = append(append(table, line...), '\n')
		}
		if strings.HasPrefix(line, "| `GET /metrics` |") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("README has no GET /metrics row")
	}
	names := func(re string, text []byte) map[string]bool {
		out := map[string]bool{}
		for _, m := range regexp.MustCompile(re).FindAllSubmatch(text, -1) {
			out[string(m[1])] = true
		}
		return out
	}
	compare := func(what string, served, documented map[string]bool) {
		if len(served) == 0 {
			t.Fatalf("found no %s in admin.go", what)
		}
		for _, m := range slices.Sorted(maps.Keys(served)) {
			if !documented[m] {
				t.Errorf("admin.go serves the %s %s; the README does not name it", what, m)
			}
		}
		for _, m := range slices.Sorted(maps.Keys(documented)) {
			if !served[m] {
				t.Errorf("the README names the %s %s, which admin.go does not serve", what, m)
			}
		}
	}
	compare("path", names(`HandleFunc\("((?:GET|POST) /[a-z/-]*)"`, src), names("`((?:GET|POST) /[a-z/-]*)", table))
	compare("metric", names(`metric\("(tandem_\w+)"`, src), names("`(tandem_\\w+)`", []byte(row)))
}

// TestReadmeCommands: the README's command table gives each command's synopsis as tandem help
// does (FILE and LEVEL written F and L there), one row per synopsis, and no command tandem
// help does not list.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	row := regexp.MustCompile("^\\| `tandem ([^`]+)` \\|")
	for _, line := range strings.Split(string(readme), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			documented[strings.ReplaceAll(m[1], `\|`, "|")] = true
		}
	}
	helped := map[string]bool{}
	for _, l := range strings.Split(usage, "\n") {
		if !strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "   ") {
			continue // not a command's synopsis
		}
		synopsis, _, _ := strings.Cut(strings.TrimSpace(l), "   ")
		if synopsis == "help" {
			continue // the README names it below the table
		}
		helped[strings.NewReplacer("FILE", "F", "LEVEL", "L").Replace(synopsis)] = true
	}
	if len(helped) < 10 {
		t.Fatalf("found %d synopses in usage only", len(helped))
	}
	for _, s := range slices.Sorted(maps.Keys(helped)) {
		if !documented[s] {
			t.Errorf("tandem help gives %q; the README's command table has no row for it", s)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(documented)) {
		if !helped[s] {
			t.Errorf("the README's command table gives %q; tandem help does not", s)
		}
	}
}

// TestReadmeStatusObjects: the README's GET /status row lists every field of its objects
// `txshim` and `proxy` as admin.go gives them, and none they lack: it left out the shim's
// `term` (the term of the mode it serves in).
func TestReadmeStatusObjects(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `GET /status` |") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("README has no GET /status row")
	}
	for name, typ := range map[string]reflect.Type{"txshim": reflect.TypeFor[dbStatus](), "proxy": reflect.TypeFor[proxyStatus]()} {
		given := map[string]bool{}
		for f := range typ.Fields() {
			if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" && tag != "-" {
				given[tag] = true
			}
		}
		documented := readmeObjectFields(row, name)
		if len(documented) == 0 {
			t.Fatalf("the README's GET /status row has no object `%s` with fields", name)
		}
		for _, f := range slices.Sorted(maps.Keys(given)) {
			if !documented[f] {
				t.Errorf("status's %s has the field %s; the README does not name it", name, f)
			}
		}
		for _, f := range slices.Sorted(maps.Keys(documented)) {
			if !given[f] {
				t.Errorf("the README names the field %s of status's %s, which admin.go does not give", f, name)
			}
		}
	}
}

// readmeObjectFields is the set of fields row names for its object `name` ("an object `name`:
// `a`, `b` (what b holds: `x`)"): the names in backquotes after it, not those in parentheses
// (values, an object's own fields), up to the parenthesis that encloses the list, if any.
func readmeObjectFields(row, name string) map[string]bool {
	_, list, ok := strings.Cut(row, "an object `"+name+"`:")
	if !ok {
		return nil
	}
	out := map[string]bool{}
	depth := 0
	for i := 0; i < len(list); i++ {
		switch list[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return out
			}
		case '`':
			j := strings.IndexByte(list[i+1:], '`')
			if j < 0 {
				return out
			}
			if depth == 0 {
				out[list[i+1:i+1+j]] = true
			}
			i += j + 1
		}
	}
	return out
}
