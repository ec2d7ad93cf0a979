package lb

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/netplane/internal/slots"
)

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
			if slots.Addr4(n.key.Vip) != vip || slots.Ntohs(n.key.Port) != 80 {
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
