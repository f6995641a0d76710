package gossip

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []Meta{
		{Site: "site1"},
		{Site: "w", Witness: true, Role: RoleWitness, Record: TermRecord{Term: 9, Master: "site2", PeerSynced: true}},
		{
			Site: "site1", Priority: -3, ServerHealthy: true, DBReachable: true, Role: RoleMaster,
			Record:   TermRecord{Term: 1<<64 - 1, Master: "site1", PeerSynced: true},
			Released: 41, ReleasedTo: "site2",
			Endpoints: map[string]string{"operators": "10.0.0.1:7000", "admin": "[2001:db8::1]:7001"},
			Admin:     "127.0.0.1:7180", Cold: true, Draining: true,
		},
	}
	for _, m := range tests {
		b, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("EncodeMeta(%+v): %v", m, err)
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("DecodeMeta(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestMetaTooLarge(t *testing.T) {
	t.Parallel()
	m := Meta{Site: "site1", Endpoints: map[string]string{}}
	for i := range 20 {
		m.Endpoints[strings.Repeat("e", 10)+string(rune('a'+i))] = "some-rather-long-host-name.example.com:7000"
	}
	_, err := EncodeMeta(m)
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("EncodeMeta of a huge endpoint list: err %v, want ErrMetaTooLarge", err)
	}
	if !strings.Contains(err.Error(), "512") {
		t.Fatalf("error %q does not name the limit", err)
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "null", "[]", "{}", `{"v":1}`, `{"v":2,"s":"a"}`, `{"v":1,"s":"a","r":"king"}`,
		`{"v":1,"s":"a","e":{"":"x:1"}}`, `{"v":1,"s":"a","t":-1}`, "\x00\x01", `{"v":1,"s":"a"`,
		`{"v":1,"s":"` + strings.Repeat("x", memberlist.MetaMaxSize) + `"}`,
	} {
		if m, err := DecodeMeta([]byte(in)); err == nil {
			t.Errorf("DecodeMeta(%q) = %+v, want an error", in, m)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		{Site: "site1", Role: RoleMaster, Record: TermRecord{Term: 3, Master: "site1", PeerSynced: true}, Endpoints: map[string]string{"op": "1.2.3.4:5"}},
		{Site: "w", Witness: true, Role: RoleWitness},
	} {
		b, err := EncodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"s":"a","r":"fenced","rl":7}`))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMeta(in)
		if err != nil {
			return
		}
		if m.Site == "" || !m.Role.valid() {
			t.Fatalf("DecodeMeta accepted %q as %+v", in, m)
		}
		b, err := EncodeMeta(m)
		if err != nil {
			if errors.Is(err, ErrMetaTooLarge) {
				return // re-encoding may grow (escapes)
			}
			t.Fatalf("EncodeMeta of decoded %+v: %v", m, err)
		}
		again, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("DecodeMeta(EncodeMeta(m)) for %q: %v", in, err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", in, again, m)
		}
	})
}
