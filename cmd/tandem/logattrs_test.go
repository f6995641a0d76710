package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLogOneSiteOneComponent: a line of the sidecar's log names its site once and one
// component, the most precise, however many times the loggers handed down added them (gossip
// and the shim's shipper printed "site=site1 site=site1" and "component=txshim
// component=shipper"); a record's own attributes and a group's are printed as given.
func TestLogOneSiteOneComponent(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	root := slog.New(newOneKeyHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})))
	log := root.With("site", "site1")
	log.With("site", "site1").With("component", "gossip").Info("role change", "to", "master")
	log.With("component", "txshim").With("component", "shipper", "site", "site1").Info("catch-up done", "site", "x")
	log.WithGroup("g").With("site", "y").Info("grouped")
	log.Info("plain")
	want := []string{
		`level=INFO msg="role change" site=site1 component=gossip to=master`,
		`level=INFO msg="catch-up done" site=site1 component=shipper site=x`,
		`level=INFO msg=grouped site=site1 g.site=y`,
		`level=INFO msg=plain site=site1`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !root.Enabled(t.Context(), slog.LevelInfo) || root.Enabled(t.Context(), slog.LevelDebug) {
		t.Error("the handler's level is not the text handler's")
	}
}
