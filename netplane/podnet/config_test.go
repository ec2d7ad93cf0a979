package podnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Node: "n1", PodCIDR: netip.MustParsePrefix("10.244.3.0/24"), StateDir: "/x"}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.ServiceCIDR != DefaultServiceCIDR || c.ClusterCIDR != DefaultClusterCIDR || c.Bridge != DefaultBridge ||
		c.ClusterDomain != DefaultClusterDomain || c.MTU != DefaultMTU {
		t.Errorf("defaults: %+v", c)
	}
	// A pod CIDR outside the default cluster CIDR is its own cluster.
	c = Config{Node: "n1", PodCIDR: netip.MustParsePrefix("172.20.1.0/24"), StateDir: "/x"}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.ClusterCIDR.String() != "172.20.1.0/24" {
		t.Errorf("cluster CIDR %s", c.ClusterCIDR)
	}
}

func TestConfigErrors(t *testing.T) {
	base := func() Config {
		return Config{Node: "n1", PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), StateDir: "/x"}
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no node", func(c *Config) { c.Node = "" }, "node name"},
		{"no pod CIDR", func(c *Config) { c.PodCIDR = netip.Prefix{} }, "pod CIDR"},
		{"IPv6 pod CIDR", func(c *Config) { c.PodCIDR = netip.MustParsePrefix("fd00::/64") }, "pod CIDR"},
		{"tiny pod CIDR", func(c *Config) { c.PodCIDR = netip.MustParsePrefix("10.244.1.0/30") }, "/29"},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "state dir"},
		{"long bridge", func(c *Config) { c.Bridge = "a-very-long-bridge" }, "bridge name"},
		{"overlap", func(c *Config) { c.ServiceCIDR = netip.MustParsePrefix("10.0.0.0/8") }, "overlaps"},
		{"cluster CIDR not holding pod CIDR", func(c *Config) { c.ClusterCIDR = netip.MustParsePrefix("10.245.0.0/16") }, "does not hold"},
		{"MTU", func(c *Config) { c.MTU = 100 }, "MTU"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			err := c.setDefaults()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDNS(t *testing.T) {
	c := Config{Node: "n1", PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), StateDir: "/x", DNSServer: netip.MustParseAddr("10.96.0.10")}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	n := &Net{cfg: c}
	want := "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if got := n.DNS("shop"); got != want {
		t.Errorf("DNS(shop) =\n%s\nwant\n%s", got, want)
	}
}

func TestHostVethName(t *testing.T) {
	seen := map[string]bool{}
	for _, uid := range []string{"a", "b", "0f8e5b1c-6b53-4c8e-9b0e-2f6f6f0e6d11", strings.Repeat("x", 300)} {
		name := hostVethName(uid)
		if len(name) > 15 || !strings.HasPrefix(name, "shoal") || name == DefaultBridge {
			t.Errorf("hostVethName(%q) = %q", uid, name)
		}
		if seen[name] {
			t.Errorf("name %q twice", name)
		}
		seen[name] = true
	}
}
