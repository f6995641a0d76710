package main

import (
	"context"
	"log/slog"
	"slices"
)

// oneKeyHandler keeps one attribute per key among those the loggers add (Logger.With): the
// sidecar's logger names its site, and the parts it hands that logger to (gossip, the shim's
// shipper and resolver) name the site again and their own component beside the one they were
// given, which printed every line of theirs as "site=site1 site=site1 component=gossip" or
// "component=txshim component=shipper site=site1". A key added again replaces the earlier one
// in its place: the site stays where it was, the component is the most precise one. A record's
// own attributes are printed as given.
type oneKeyHandler struct {
	base  slog.Handler // without the attributes below
	attrs []slog.Attr
	h     slog.Handler // base with attrs
}

func newOneKeyHandler(h slog.Handler) slog.Handler { return &oneKeyHandler{base: h, h: h} }

func (o *oneKeyHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return o.h.Enabled(ctx, l)
}

func (o *oneKeyHandler) Handle(ctx context.Context, r slog.Record) error { return o.h.Handle(ctx, r) }

func (o *oneKeyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return o
	}
	attrs := slices.Clone(o.attrs)
	for _, a := range as {
		if i := slices.IndexFunc(attrs, func(b slog.Attr) bool { return b.Key == a.Key }); i >= 0 {
			attrs[i] = a
		} else {
			attrs = append(attrs, a)
		}
	}
	return &oneKeyHandler{base: o.base, attrs: attrs, h: o.base.WithAttrs(attrs)}
}

// WithGroup: attributes added after it belong to the group, so those before it are fixed.
func (o *oneKeyHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return o
	}
	return newOneKeyHandler(o.h.WithGroup(name))
}
