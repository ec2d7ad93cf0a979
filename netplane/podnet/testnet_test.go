package podnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testBridge is the bridge name tests use inside their node namespaces.
const testBridge = "shoaltest0"

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// testNetNS creates a network namespace for the test and removes it when the test ends.
func testNetNS(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shoal-"+name)
	if err := createNetNS(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeNetNS(p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return p
}

// testNode is a node made of its own network namespace.
type testNode struct {
	ns  string
	cfg Config
	net *Net
}

// newTestNode makes a node namespace and its pod network; everything is removed at the end.
func newTestNode(t testing.TB, name, podCIDR string) *testNode {
	t.Helper()
	nd := &testNode{ns: testNetNS(t, "node-"+name)}
	nd.cfg = Config{
		Node:      name,
		PodCIDR:   netip.MustParsePrefix(podCIDR),
		Bridge:    testBridge,
		StateDir:  filepath.Join(t.TempDir(), "podnet"),
		NetNS:     nd.ns,
		DNSServer: netip.MustParseAddr("10.96.0.10"),
	}
	nd.start(t)
	t.Cleanup(func() {
		if nd.net == nil {
			return
		}
		if nd.net.closed {
			// Closed by the test: open again to remove what it left.
			n, err := New(context.Background(), nd.cfg)
			if err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
			nd.net = n
		}
		if err := nd.net.Remove(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return nd
}

func (nd *testNode) start(t testing.TB) {
	t.Helper()
	n, err := New(context.Background(), nd.cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.net = n
}

// podNSPath returns where a pod's namespace goes; the directory is removed at the end, after
// any namespace left there is unmounted.
func podNSPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shoal-pod-"+name)
	t.Cleanup(func() {
		if err := removeNetNS(p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return p
}

// setupPod calls Setup and registers a Teardown.
func (nd *testNode) setupPod(t testing.TB, uid string) (netip.Addr, string) {
	t.Helper()
	p := podNSPath(t, uid)
	ip, err := nd.net.Setup(context.Background(), uid, "default", "pod-"+uid, p)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("Setup returned %q: %v", ip, err)
	}
	t.Cleanup(func() {
		if nd.net == nil || nd.net.closed {
			return
		}
		if err := nd.net.Teardown(context.Background(), uid, p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return addr, p
}

// listenIn opens a TCP listener inside the namespace at nsPath. The socket stays in that
// namespace; it is served from any goroutine.
func listenIn(t testing.TB, nsPath string, addr netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	err := inNetNSPath(nsPath, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// dialIn connects from inside the namespace at nsPath.
func dialIn(nsPath string, addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetNSPath(nsPath, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr.String(), timeout)
		return err
	})
	return c, err
}

// acceptOne accepts one connection in the background and reports the peer's address.
func acceptOne(t testing.TB, ln net.Listener) <-chan netip.AddrPort {
	t.Helper()
	ch := make(chan netip.AddrPort, 1)
	go func() {
		defer close(ch)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		ch <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
		_, _ = c.Write([]byte("x"))
	}()
	return ch
}

// connectAndCheckPeer dials from fromNS to the listener ln at to, and returns the source
// address the listener saw.
func connectAndCheckPeer(t *testing.T, fromNS string, ln net.Listener, to netip.AddrPort) netip.Addr {
	t.Helper()
	peer := acceptOne(t, ln)
	c, err := dialIn(fromNS, to, 10*time.Second)
	if err != nil {
		t.Fatalf("connect to %s: %v", to, err)
	}
	defer c.Close()
	buf := make([]byte, 1)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("read from %s: %v", to, err)
	}
	select {
	case p, ok := <-peer:
		if !ok {
			t.Fatal("listener accepted nothing")
		}
		return p.Addr().Unmap()
	case <-time.After(10 * time.Second):
		t.Fatal("listener accepted nothing in 10s")
	}
	return netip.Addr{}
}

// linkNodes joins two node namespaces with a veth pair and gives the ends the addresses a and b
// (same /24), as two machines on one network.
func linkNodes(t testing.TB, nsA, nsB string, a, b netip.Prefix) {
	t.Helper()
	hA, closeA := handleIn(t, nsA)
	defer closeA()
	hB, closeB := handleIn(t, nsB)
	defer closeB()
	fdB, err := netns.GetFromPath(nsB)
	if err != nil {
		t.Fatal(err)
	}
	defer fdB.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "shoalup"}, PeerName: "shoalup", PeerNamespace: netlink.NsFd(fdB)}
	if err := hA.LinkAdd(veth); err != nil {
		t.Fatalf("link nodes: %v", err)
	}
	for _, side := range []struct {
		h    *netlink.Handle
		addr netip.Prefix
	}{{hA, a}, {hB, b}} {
		l, err := side.h.LinkByName("shoalup")
		if err != nil {
			t.Fatal(err)
		}
		if err := side.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(side.addr)}); err != nil {
			t.Fatal(err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	// The pair dies with either namespace; nothing else to clean.
}

// handleIn opens a netlink handle in the namespace at path.
func handleIn(t testing.TB, path string) (*netlink.Handle, func()) {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	return h, h.Close
}

// isUnreachable reports whether err says the destination has no route.
func isUnreachable(err error) bool {
	return errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH)
}
