package config

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestReadmeDocumentsEveryKey: the README's configuration reference names every key a file
// may set (the fields of raw, which the decoder fills), and no key the decoder does not know.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, ref, ok := strings.Cut(string(b), "\n## Configuration reference\n")
	if !ok {
		t.Fatal("README has no Configuration reference section")
	}
	ref, _, _ = strings.Cut(ref, "\n## ")
	documented := map[string]bool{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(ref, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.Split(line, "|")[1]
		// A row names its keys in full (gossip.bind), after the first in its table
		// (server.health_interval / health_timeout), or in an array of tables
		// ([[server.endpoint]] name, address).
		table := ""
		for i, m := range code.FindAllStringSubmatch(cell, -1) {
			key := m[1]
			switch {
			case i == 0 && strings.HasPrefix(key, "[["):
				table = strings.Trim(key, "[]")
				continue
			case i == 0:
				if dot := strings.LastIndexByte(key, '.'); dot >= 0 {
					table = key[:dot]
				}
			case table != "":
				key = table + "." + key
			}
			documented[key] = true
		}
	}
	accepted := map[string]bool{}
	tomlKeys(reflect.TypeFor[raw](), "", accepted)
	for _, k := range slices.Sorted(maps.Keys(accepted)) {
		if !documented[k] {
			t.Errorf("config accepts %s; the README's configuration reference does not name it", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(documented)) {
		if !accepted[k] {
			t.Errorf("the README's configuration reference names %s, which config does not accept", k)
		}
	}
}

// tomlKeys adds to keys the dotted key of every value field of struct type t, as the TOML
// decoder matches them: the toml tag, else the field's name in lower case.
func tomlKeys(t reflect.Type, prefix string, keys map[string]bool) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			tomlKeys(ft, prefix+name+".", keys)
			continue
		}
		keys[prefix+name] = true
	}
}

// TestReadmeDefaults: each default the README's configuration reference gives as a value (a
// number, or a value in backticks, "`1s` / `1s`" for a row of two keys) is the one Load fills
// in, as tandem check-config prints it. Rows whose default is a word (required, none, derived)
// or names another key (`bind`) are not compared.
func TestReadmeDefaults(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, ref, _ := strings.Cut(string(b), "\n## Configuration reference\n")
	ref, _, _ = strings.Cut(ref, "\n## ")
	// Every key with a default, and an array of tables each so that its keys are printed.
	const src = `
site = "a"
data_dir = "/nonexistent/a"
[gossip]
bind = "127.0.0.1:17946"
[[server.endpoint]]
name = "op"
address = "127.0.0.1:17001"
[[proxy.listener]]
endpoint = "op"
listen = "127.0.0.1:17101"
[txshim]
listen = "127.0.0.1:16432"
local_dsn = "host=127.0.0.1 port=1 dbname=a user=u"
peer_dsn = "host=127.0.0.1 port=2 dbname=a user=u"
`
	c, err := Parse("min.toml", []byte(src), KindSite)
	if err != nil {
		t.Fatal(err)
	}
	var printed map[string]any
	if _, err := toml.Decode(c.Redacted(), &printed); err != nil {
		t.Fatal(err)
	}
	// lookup finds a dotted key in the printed file, in an array of tables' first element.
	lookup := func(key string) (any, bool) {
		var v any = printed
		for _, part := range strings.Split(key, ".") {
			switch m := v.(type) {
			case []map[string]any:
				v = m[0][part]
			case map[string]any:
				v = m[part]
			default:
				return nil, false
			}
			if v == nil {
				return nil, false
			}
		}
		return v, true
	}
	code := regexp.MustCompile("`([^`]+)`")
	value := regexp.MustCompile("^(?:`[^`]+`|[0-9]+)(?: \\(none\\))?$")
	compared := 0
	for _, line := range strings.Split(ref, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		// The keys as TestReadmeDocumentsEveryKey reads them.
		var keys []string
		table := ""
		for i, m := range code.FindAllStringSubmatch(cells[1], -1) {
			key := m[1]
			switch {
			case i == 0 && strings.HasPrefix(key, "[["):
				table = strings.Trim(key, "[]")
				continue
			case i == 0:
				if dot := strings.LastIndexByte(key, '.'); dot >= 0 {
					table = key[:dot]
				}
			case table != "":
				key = table + "." + key
			}
			keys = append(keys, key)
		}
		defs := strings.Split(strings.TrimSpace(cells[2]), " / ")
		if len(defs) != len(keys) {
			defs = []string{strings.TrimSpace(cells[2])}
			keys = keys[:1]
		}
		for i, key := range keys {
			def := defs[i]
			if !value.MatchString(def) || def == "`bind`" {
				continue
			}
			def, _, _ = strings.Cut(strings.Trim(def, "`"), "` ")
			got, ok := lookup(key)
			switch {
			case !ok && def == "[]":
			case !ok:
				t.Errorf("%s: the README's default is %s; check-config prints no value", key, def)
			default:
				if !sameDefault(def, got) {
					t.Errorf("%s: the README's default is %s; Load fills in %v", key, def, got)
				}
			}
			compared++
		}
	}
	if compared < 20 {
		t.Fatalf("compared %d defaults only: has the table's layout changed?", compared)
	}
}

// sameDefault tells whether the README's default doc and the printed value got agree: as
// durations when both read as one, else as TOML values.
func sameDefault(doc string, got any) bool {
	if s, ok := got.(string); ok {
		d1, err1 := time.ParseDuration(s)
		d2, err2 := time.ParseDuration(doc)
		if doc == "0" {
			d2, err2 = 0, nil
		}
		if err1 == nil && err2 == nil {
			return d1 == d2
		}
		return s == doc
	}
	if arr, ok := got.([]any); ok {
		return doc == "[]" && len(arr) == 0
	}
	return fmt.Sprint(got) == doc
}
