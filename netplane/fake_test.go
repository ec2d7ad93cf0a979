package netplane_test

import (
	"testing"

	"github.com/shoal-dev/shoal/netplane"
	"github.com/shoal-dev/shoal/netplane/netplanetest"
)

func TestFakeConformance(t *testing.T) {
	netplanetest.Run(t, func(t *testing.T, o netplanetest.Options) netplane.Plane {
		f := netplane.NewFake(netplane.FakeOptions{PodCIDR: netplanetest.PodCIDR, ServiceCIDR: netplanetest.ServiceCIDR, NodePorts: o.NodePorts})
		t.Cleanup(func() { _ = f.Close() })
		return f
	})
}
