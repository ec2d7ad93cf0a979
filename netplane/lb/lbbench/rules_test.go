package lbbench

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/netplane/lb"
)

var testCIDR = netip.MustParsePrefix("10.249.0.0/24")

func testService(i, backends int) lb.Service {
	s := lb.Service{VIP: netip.AddrFrom4([4]byte{10, 96, 0, byte(i)}), Port: 80, Proto: lb.TCP}
	for k := range backends {
		s.Backends = append(s.Backends, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 251, byte(i), byte(k + 1)}), 8080))
	}
	return s
}

func TestKubeProxyRules(t *testing.T) {
	a, b := testService(1, 3), testService(2, 1)
	b.Port, b.Proto = 53, lb.UDP
	var buf bytes.Buffer
	if err := KubeProxyRules(&buf, []lb.Service{a, b}, testCIDR); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "*nat" || lines[len(lines)-1] != "COMMIT" {
		t.Fatalf("rules are not one nat table:\n%s", out)
	}
	tests := []struct {
		name string
		want string
	}{
		{"service jump", fmt.Sprintf(`-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m comment --comment "10.96.0.1:80/TCP cluster IP" -m tcp --dport 80 -j %s`, svcChain(a))},
		{"udp jump", fmt.Sprintf(`-A KUBE-SERVICES -d 10.96.0.2/32 -p udp -m comment --comment "10.96.0.2:53/UDP cluster IP" -m udp --dport 53 -j %s`, svcChain(b))},
		{"masquerade outside the cluster", fmt.Sprintf(`-A %s ! -s 10.249.0.0/24 -d 10.96.0.1/32`, svcChain(a))},
		{"first of three", fmt.Sprintf(`-m statistic --mode random --probability 0.33333333333 -j %s`, sepChain(a, a.Backends[0]))},
		{"second of three", fmt.Sprintf(`-m statistic --mode random --probability 0.50000000000 -j %s`, sepChain(a, a.Backends[1]))},
		{"last without statistic", fmt.Sprintf(`-m comment --comment "10.96.0.1:80/TCP -> 10.251.1.3:8080" -j %s`, sepChain(a, a.Backends[2]))},
		{"dnat", fmt.Sprintf(`-A %s -p tcp -m comment --comment "10.96.0.1:80/TCP -> 10.251.1.2:8080" -m tcp -j DNAT --to-destination 10.251.1.2:8080`, sepChain(a, a.Backends[1]))},
		{"hairpin", fmt.Sprintf(`-A %s -s 10.251.1.1/32`, sepChain(a, a.Backends[0]))},
		{"declared", fmt.Sprintf(":%s - [0:0]", sepChain(b, b.Backends[0]))},
		{"output hook", `-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`},
		{"prerouting hook", `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`},
		{"postrouting hook", `-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`},
		{"masquerade", `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(out, tc.want) {
				t.Errorf("rules lack %q:\n%s", tc.want, out)
			}
		})
	}
	t.Run("order", func(t *testing.T) {
		var jumps []string
		for _, l := range lines {
			if strings.HasPrefix(l, "-A KUBE-SERVICES ") {
				jumps = append(jumps, l)
			}
		}
		if len(jumps) != 3 || !strings.Contains(jumps[0], "10.96.0.1/32") || !strings.Contains(jumps[1], "10.96.0.2/32") || !strings.Contains(jumps[2], "KUBE-NODEPORTS") {
			t.Errorf("KUBE-SERVICES = %q, want the services in order, then the node ports", jumps)
		}
	})
	t.Run("empty", func(t *testing.T) {
		var buf bytes.Buffer
		if err := KubeProxyRules(&buf, nil, testCIDR); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "KUBE-SVC-") || !strings.Contains(buf.String(), "-j KUBE-SERVICES") {
			t.Errorf("empty table:\n%s", buf.String())
		}
	})
	t.Run("no single-backend statistic", func(t *testing.T) {
		if strings.Contains(out, "--probability 1.") {
			t.Errorf("a last backend has a statistic match:\n%s", out)
		}
	})
}

func TestKubeProxyAddRules(t *testing.T) {
	svcs := []lb.Service{testService(1, 2), testService(2, 2), testService(3, 2)}
	var buf bytes.Buffer
	if err := KubeProxyAddRules(&buf, svcs, testCIDR); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, s := range svcs {
		if !strings.Contains(out, "-j "+svcChain(s)+"\n") {
			t.Errorf("KUBE-SERVICES lacks the jump to %s", s)
		}
	}
	for _, s := range svcs[:2] {
		if strings.Contains(out, ":"+svcChain(s)) || strings.Contains(out, "-A "+svcChain(s)) {
			t.Errorf("the chains of existing service %s are rewritten", s)
		}
	}
	if !strings.Contains(out, ":"+svcChain(svcs[2])) || !strings.Contains(out, "DNAT --to-destination 10.251.3.2:8080") {
		t.Errorf("the new service's chains are missing:\n%s", out)
	}
	if err := KubeProxyAddRules(&buf, nil, testCIDR); err == nil {
		t.Error("no error for an empty service list")
	}
}

func TestKubeProxyRulesInvalid(t *testing.T) {
	for _, s := range []lb.Service{
		{VIP: netip.MustParseAddr("fd00::1"), Port: 80, Proto: lb.TCP},
		{VIP: netip.MustParseAddr("10.96.0.1"), Proto: lb.TCP},
		{VIP: netip.MustParseAddr("10.96.0.1"), Port: 80, Proto: 99},
	} {
		t.Run(s.String(), func(t *testing.T) {
			if err := KubeProxyRules(&bytes.Buffer{}, []lb.Service{s}, testCIDR); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestChainNames(t *testing.T) {
	a, b := testService(1, 2), testService(2, 2)
	names := map[string]bool{svcChain(a): true, svcChain(b): true, sepChain(a, a.Backends[0]): true, sepChain(a, a.Backends[1]): true}
	if len(names) != 4 {
		t.Errorf("chain names collide: %v", names)
	}
	for n := range names {
		if len(n) > 28 { // iptables' limit on chain names
			t.Errorf("chain name %q is longer than 28 characters", n)
		}
	}
	if svcChain(a) != svcChain(testService(1, 2)) {
		t.Error("chain names are not stable")
	}
}
