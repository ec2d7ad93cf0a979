package netplane_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/shoal-dev/shoal/netplane"
	"github.com/shoal-dev/shoal/netplane/netplanetest"
)

// services returns n ClusterIP Services with two endpoints each; shift moves the endpoints of
// the first one.
func services(n, shift int) []netplane.Service {
	out := make([]netplane.Service, n)
	for i := range out {
		vip := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})
		ep := func(j int) netplane.Endpoint {
			return netplane.Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte(j >> 8), byte(j)}), Ports: map[string]uint16{"http": 8080}}
		}
		s := netplane.Service{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i), Type: netplane.TypeClusterIP, ClusterIP: vip,
			Ports: []netplane.ServicePort{{Name: "http", Proto: netplane.TCP, Port: 80}}, Endpoints: []netplane.Endpoint{ep(2*i + 2), ep(2*i + 3)}}
		if i == 0 {
			s.Endpoints[1] = ep(60000 + shift)
		}
		out[i] = s
	}
	return out
}

// BenchmarkKernelSet measures a Set of the node's whole Config with N Services: from empty,
// again unchanged, and with one endpoint of one Service changed (what the node does on every
// change of the store).
func BenchmarkKernelSet(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			node := newKernelNode(b, netplanetest.Options{NodePorts: true})
			ctx := context.Background()
			set := func(c netplane.Config) {
				if _, err := node.k.Set(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("FromEmpty", func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					set(netplane.Config{})
					b.StartTimer()
					set(netplane.Config{Services: services(n, 0)})
				}
			})
			b.Run("Unchanged", func(b *testing.B) {
				c := netplane.Config{Services: services(n, 0)}
				set(c)
				for b.Loop() {
					set(c)
				}
			})
			b.Run("OneEndpoint", func(b *testing.B) {
				cs := []netplane.Config{{Services: services(n, 0)}, {Services: services(n, 1)}}
				i := 0
				for b.Loop() {
					i++
					set(cs[i%2])
				}
			})
		})
	}
}
