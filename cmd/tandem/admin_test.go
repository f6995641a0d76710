package main

import (
	"strings"
	"testing"
)

// TestPeerAdmin: where a backup forwards a switchover to the master's admin API. A wildcard
// admin address is reached at the master's gossip IP; a loopback one only when the master is
// on this host's loopback too (one machine), else the backup would ask itself.
func TestPeerAdmin(t *testing.T) {
	for _, tc := range []struct {
		admin, gossip, want, err string
	}{
		{"127.0.0.1:7180", "127.0.0.1:7946", "127.0.0.1:7180", ""},
		{"127.0.0.1:7180", "10.0.0.1:7946", "", "loopback"},
		{"127.0.0.1:7180", "", "", "loopback"},
		{"0.0.0.0:7180", "10.0.0.1:7946", "10.0.0.1:7180", ""},
		{"[::]:7180", "[2001:db8::1]:7946", "[2001:db8::1]:7180", ""},
		{"0.0.0.0:7180", "", "", "unknown"},
		{"10.0.0.1:7180", "10.0.0.9:7946", "10.0.0.1:7180", ""},
		{"admin.site1:7180", "10.0.0.1:7946", "admin.site1:7180", ""},
	} {
		got, err := peerAdmin(tc.admin, tc.gossip)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("peerAdmin(%q, %q) = %q, %v; want %q, error with %q", tc.admin, tc.gossip, got, err, tc.want, tc.err)
		}
	}
}
