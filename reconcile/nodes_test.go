package reconcile

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"
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

func TestLostNodes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	earlier := now.Add(-4 * time.Second)
	known := map[string]bool{"n1": true, "n2": true}
	tests := []struct {
		name    string
		nodes   []string // registered
		known   map[string]bool
		lost    map[string]time.Time
		on      []string // the nodes pods are placed on ("" pending)
		want    map[string]time.Time
		changes []NodeChange
		requeue time.Duration
	}{
		{
			name: "a known node stops registering: lost since now", nodes: []string{"n1"}, known: known,
			on: []string{"n1", "n2"}, want: map[string]time.Time{"n2": now},
			changes: []NodeChange{{Node: "n2", What: NodeNotRegistered, Since: now}}, requeue: 10 * time.Second,
		},
		{
			name: "still lost: since as recorded", nodes: []string{"n1"}, known: known,
			lost: map[string]time.Time{"n2": earlier}, on: []string{"n2"}, want: map[string]time.Time{"n2": earlier},
			requeue: 6 * time.Second,
		},
		{
			name: "lost, then removed: since the zero time", known: known,
			lost: map[string]time.Time{"n3": earlier}, on: []string{"n3"}, want: map[string]time.Time{"n3": {}},
			changes: []NodeChange{{Node: "n3", What: NodeRemoved}},
		},
		{
			name: "removed before any pass found it lost", known: known,
			on: []string{"n3"}, want: map[string]time.Time{"n3": {}},
			changes: []NodeChange{{Node: "n3", What: NodeRemoved}},
		},
		{
			name: "removed and recorded so: no change", known: known,
			lost: map[string]time.Time{"n3": {}}, on: []string{"n3"}, want: map[string]time.Time{"n3": {}},
		},
		{
			name: "no known nodes: every unregistered node is removed", on: []string{"n1", "n1"},
			want: map[string]time.Time{"n1": {}}, changes: []NodeChange{{Node: "n1", What: NodeRemoved}},
		},
		{
			name: "registered again: back", nodes: []string{"n1", "n2"}, known: known,
			lost: map[string]time.Time{"n2": earlier}, on: []string{"n2"},
			changes: []NodeChange{{Node: "n2", What: NodeBack, Since: earlier}},
		},
		{
			name: "no pod placed on it any more: forgotten", nodes: []string{"n1"}, known: known,
			lost: map[string]time.Time{"n2": earlier, "n3": {}}, on: []string{"n1", ""},
			changes: []NodeChange{{Node: "n2", What: NodeForgotten, Since: earlier}, {Node: "n3", What: NodeForgotten}},
		},
		{
			name: "a node without pods is not tracked", nodes: []string{"n1"}, known: known, on: []string{"n1", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := make([]Node, 0, len(tt.nodes)+4) // room to append into: it must not be used
			for _, n := range tt.nodes {
				nodes = append(nodes, Node{Name: n, Ready: true})
			}
			var pods []Pod
			for i, n := range tt.on {
				pods = append(pods, Pod{UID: fmt.Sprint("u", i), Namespace: "default", Name: fmt.Sprint("p", i), Node: n, Terminating: true})
			}
			lostBefore := maps.Clone(tt.lost)
			s := State{Nodes: nodes, Known: tt.known, Lost: tt.lost, Pods: pods, Now: now}
			plan := Reconcile(s, &seqIDs{})
			if !maps.Equal(plan.Lost, tt.want) {
				t.Errorf("lost %v, want %v", plan.Lost, tt.want)
			}
			if !slices.Equal(plan.NodeChanges, tt.changes) {
				t.Errorf("changes %+v, want %+v", plan.NodeChanges, tt.changes)
			}
			if plan.RequeueAfter != tt.requeue {
				t.Errorf("requeue after %s, want %s", plan.RequeueAfter, tt.requeue)
			}
			if !maps.Equal(tt.lost, lostBefore) {
				t.Errorf("State.Lost modified: %v, was %v", tt.lost, lostBefore)
			}
			if extra := nodes[len(nodes):cap(nodes)]; slices.ContainsFunc(extra, func(n Node) bool { return n.Name != "" }) {
				t.Errorf("the plan wrote into State.Nodes' array: %+v", extra)
			}
			for _, c := range tt.changes {
				if c.What == NodeForgotten {
					continue
				}
				if !slices.ContainsFunc(plan.Events, func(e Event) bool { return e.Object == "Node/"+c.Node }) {
					t.Errorf("no event for %s %s in %+v", c.Node, c.What, plan.Events)
				}
			}
		})
	}
}
