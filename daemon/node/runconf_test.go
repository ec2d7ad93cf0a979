package node

import (
	"net/netip"
	"slices"
	"testing"
)

func TestHostIPs(t *testing.T) {
	if got := hostIPs([]string{"192.0.2.7", "not-an-ip", "2001:db8::7"}); !slices.Equal(got, []string{"192.0.2.7", "2001:db8::7"}) {
		t.Errorf("hostIPs of the node addresses = %v", got)
	}
	// Without addresses: one of the machine's, if it has any that is not loopback.
	for _, a := range hostIPs(nil) {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.IsGlobalUnicast() {
			t.Errorf("detected host IP %q is not a global unicast address", a)
		}
	}
}
