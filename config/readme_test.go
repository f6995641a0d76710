package config

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
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
