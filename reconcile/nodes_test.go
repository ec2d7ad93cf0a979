package reconcile

import (
	"net/netip"
	"testing"
)

func TestPodCIDRs(t *testing.T) {
	p24 := netip.MustParsePrefix
	tests := []struct {
		name    string
		cluster string
		nodes   []Node
		have    map[string]netip.Prefix
		want    map[string]netip.Prefix
		none    []string
	}{
		{
			name:    "lowest free, in order of name, kept ones kept",
			cluster: "10.244.0.0/16",
			nodes:   []Node{{Name: "c", Ready: true}, {Name: "a", Ready: true}, {Name: "b", Ready: true}, {Name: "down"}},
			have:    map[string]netip.Prefix{"b": p24("10.244.0.0/24")},
			want:    map[string]netip.Prefix{"a": p24("10.244.1.0/24"), "c": p24("10.244.2.0/24")},
		},
		{
			name:    "a /23 has room for two",
			cluster: "10.1.2.0/23",
			nodes:   []Node{{Name: "a", Ready: true}, {Name: "b", Ready: true}, {Name: "c", Ready: true}},
			want:    map[string]netip.Prefix{"a": p24("10.1.2.0/24"), "b": p24("10.1.3.0/24")},
			none:    []string{"c"},
		},
		{
			name:    "smaller than a /24",
			cluster: "10.0.0.0/25",
			nodes:   []Node{{Name: "a", Ready: true}},
			none:    []string{"a"},
		},
		{
			name:  "no cluster CIDR: nothing",
			nodes: []Node{{Name: "a", Ready: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := State{Nodes: tt.nodes, PodCIDRs: tt.have}
			if tt.cluster != "" {
				s.ClusterCIDR = netip.MustParsePrefix(tt.cluster)
			}
			plan := Reconcile(s, &seqIDs{})
			if len(plan.PodCIDRs) != len(tt.want) {
				t.Fatalf("pod CIDRs %v, want %v", plan.PodCIDRs, tt.want)
			}
			for n, c := range tt.want {
				if plan.PodCIDRs[n] != c {
					t.Errorf("node %s: %v, want %v", n, plan.PodCIDRs[n], c)
				}
			}
			if len(plan.NoPodCIDR) != len(tt.none) || (len(tt.none) > 0 && plan.NoPodCIDR[0] != tt.none[0]) {
				t.Errorf("nodes without a pod CIDR %v, want %v", plan.NoPodCIDR, tt.none)
			}
		})
	}
}
