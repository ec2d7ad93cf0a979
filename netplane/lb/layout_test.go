package lb

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func be(n byte) lbLb4Backend { return lbLb4Backend{Ip: uint32(n), Port: 1} }

func TestLayout(t *testing.T) {
	a, b, c, d := be(1), be(2), be(3), be(4)
	tests := []struct {
		name       string
		old, want  []lbLb4Backend
		wantSlots  []lbLb4Backend
		wantWrites []int
	}{
		{"new", nil, []lbLb4Backend{a, b}, []lbLb4Backend{a, b}, []int{0, 1}},
		{"unchanged", []lbLb4Backend{a, b}, []lbLb4Backend{b, a}, []lbLb4Backend{a, b}, nil},
		{"grow", []lbLb4Backend{a, b}, []lbLb4Backend{a, b, c}, []lbLb4Backend{a, b, c}, []int{2}},
		{"remove middle: tail moves into the hole", []lbLb4Backend{a, b, c}, []lbLb4Backend{a, c}, []lbLb4Backend{a, c}, []int{1}},
		{"remove last", []lbLb4Backend{a, b, c}, []lbLb4Backend{a, b}, []lbLb4Backend{a, b}, nil},
		{"replace", []lbLb4Backend{a, b}, []lbLb4Backend{a, d}, []lbLb4Backend{a, d}, []int{1}},
		{"empty", []lbLb4Backend{a, b}, nil, []lbLb4Backend{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slots, writes := layout(tc.old, tc.want)
			if !slices.Equal(slots, tc.wantSlots) || !slices.Equal(writes, tc.wantWrites) {
				t.Fatalf("layout = %v, %v; want %v, %v", slots, writes, tc.wantSlots, tc.wantWrites)
			}
		})
	}
}

// FuzzLayout checks layout's invariants: the slots hold exactly the wanted
// backends, and every slot that changes is written.
func FuzzLayout(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte{1, 3})
	f.Add([]byte{}, []byte{4, 5})
	f.Add([]byte{1, 2, 3, 4}, []byte{4, 3, 2, 1, 5})
	f.Fuzz(func(t *testing.T, oldB, wantB []byte) {
		var old, want []lbLb4Backend
		seen := map[byte]bool{}
		for _, x := range oldB {
			if !seen[x] {
				seen[x] = true
				old = append(old, be(x))
			}
		}
		seen = map[byte]bool{}
		for _, x := range wantB {
			if !seen[x] {
				seen[x] = true
				want = append(want, be(x))
			}
		}
		slots, writes := layout(old, want)
		if len(slots) != len(want) {
			t.Fatalf("%d slots for %d backends", len(slots), len(want))
		}
		a, b := slices.Clone(slots), slices.Clone(want)
		cmp := func(x, y lbLb4Backend) int { return int(x.Ip) - int(y.Ip) }
		slices.SortFunc(a, cmp)
		slices.SortFunc(b, cmp)
		if !slices.Equal(a, b) {
			t.Fatalf("slots %v do not hold %v", slots, want)
		}
		for i := range slots {
			if (i >= len(old) || old[i] != slots[i]) && !slices.Contains(writes, i) {
				t.Fatalf("slot %d changes to %v but is not written", i, slots[i])
			}
		}
	})
}

func TestNormalize(t *testing.T) {
	bk := netip.MustParseAddrPort("10.250.0.1:8080")
	tests := []struct {
		name    string
		svc     Service
		wantErr string
		check   func(t *testing.T, n normalized)
	}{
		{"ok", Service{VIP: vip, Port: 80, Proto: TCP, Backends: []netip.AddrPort{bk, bk}}, "", func(t *testing.T, n normalized) {
			if len(n.backends) != 1 || n.flags != 0 {
				t.Errorf("got %+v, want one backend, no affinity", n)
			}
			if addr4(n.key.Vip) != vip || ntohs(n.key.Port) != 80 {
				t.Errorf("key %+v does not round-trip", n.key)
			}
		}},
		{"default affinity timeout", Service{VIP: vip, Port: 80, Proto: TCP, Affinity: ClientIP}, "", func(t *testing.T, n normalized) {
			if n.flags != flagAffinityClientIP || n.timeout != 10800 {
				t.Errorf("got flags %d timeout %d", n.flags, n.timeout)
			}
		}},
		{"timeout rounds up", Service{VIP: vip, Port: 80, Proto: TCP, Affinity: ClientIP, AffinityTimeout: 1500 * time.Millisecond}, "", func(t *testing.T, n normalized) {
			if n.timeout != 2 {
				t.Errorf("timeout %d", n.timeout)
			}
		}},
		{"mapped VIP", Service{VIP: netip.AddrFrom16(vip.As16()), Port: 80, Proto: UDP}, "", nil},
		{"IPv6 VIP", Service{VIP: netip.MustParseAddr("fd00::1"), Port: 80, Proto: TCP}, "IPv4", nil},
		{"zero port", Service{VIP: vip, Proto: TCP}, "port", nil},
		{"bad proto", Service{VIP: vip, Port: 80, Proto: 1}, "protocol", nil},
		{"bad affinity", Service{VIP: vip, Port: 80, Proto: TCP, Affinity: 7}, "affinity", nil},
		{"long timeout", Service{VIP: vip, Port: 80, Proto: TCP, Affinity: ClientIP, AffinityTimeout: 48 * time.Hour}, "timeout", nil},
		{"backend without port", Service{VIP: vip, Port: 80, Proto: TCP, Backends: []netip.AddrPort{netip.AddrPortFrom(vip, 0)}}, "backend", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := normalize(tc.svc)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, n)
			}
		})
	}
}
