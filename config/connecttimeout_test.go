package config

import (
	"strings"
	"testing"
	"time"
)

// TestConnectTimeoutCoversFailover: a new operator connection waits connect_timeout for a master
// (DESIGN §4: operators reconnecting during a failover should simply succeed). With a witness
// a new master waits fence_delay after it found the lost one dead, so a lan failover takes
// some 3.5 s + 10 s: the fixed 10 s default timed out every connection made in it. Left out,
// connect_timeout now covers fence_delay and twice the profile's time to find a member gone.
func TestConnectTimeoutCoversFailover(t *testing.T) {
	cases := []struct {
		profile string
		witness bool
		set     string
		want    time.Duration
	}{
		{ProfileLAN, true, "", 10*time.Second + 2*3750*time.Millisecond},
		{ProfileWAN, true, "", 40*time.Second + 2*19*time.Second},
		{ProfileWAN, false, "", 2 * 19 * time.Second},
		{ProfileFast, true, "", DefaultConnectTimeout},
		{ProfileLAN, false, "", DefaultConnectTimeout},
		{ProfileLAN, true, "4s", 4 * time.Second}, // as set, though shorter
	}
	for _, tc := range cases {
		src := strings.NewReplacer(
			`profile = "fast"`, `profile = "`+tc.profile+`"`,
			`witness = true`, map[bool]string{true: `witness = true`, false: `witness = false`}[tc.witness],
			`connect_timeout = "3s"`, map[bool]string{true: `connect_timeout = "` + tc.set + `"`, false: ``}[tc.set != ""],
		).Replace(good)
		c, err := Parse("f.toml", []byte(src), KindSite)
		if err != nil {
			t.Fatalf("%s witness=%v: %v", tc.profile, tc.witness, err)
		}
		if c.Proxy.ConnectTimeout != tc.want {
			t.Errorf("profile %s, witness %v, connect_timeout %q: %v, want %v (fence_delay %v)",
				tc.profile, tc.witness, tc.set, c.Proxy.ConnectTimeout, tc.want, c.Gossip.FenceDelay)
		}
		if tc.set == "" && c.Proxy.ConnectTimeout <= c.Gossip.FenceDelay+MinFenceDelay(tc.profile) {
			t.Errorf("profile %s, witness %v: default connect_timeout %v does not cover a failover (fence_delay %v + %v)",
				tc.profile, tc.witness, c.Proxy.ConnectTimeout, c.Gossip.FenceDelay, MinFenceDelay(tc.profile))
		}
	}
}
