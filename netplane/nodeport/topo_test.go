package nodeport

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs and creates network namespaces")
	}
}

// newNetNS creates a network namespace with lo up, bind-mounted in the
// test's temp dir, and removes it when the test ends.
func newNetNS(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shoal-"+name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread moves into the new namespace and is never unlocked.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(lo); err != nil {
				return err
			}
			return unix.Mount("/proc/thread-self/ns/net", p, "", unix.MS_BIND, "")
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			t.Errorf("remove netns %s: %v", name, err)
		}
		_ = os.Remove(p)
	})
	return p
}

// do runs fn in the namespace at ns and fails the test on error.
func do(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := inNetNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// vethPair creates a veth pair in namespace a with its peer moved to b and
// both ends renamed; the pair dies with either namespace.
func vethPair(t testing.TB, a, aName, b, bName string) {
	t.Helper()
	peerNS, err := netns.GetFromPath(b)
	if err != nil {
		t.Fatal(err)
	}
	defer peerNS.Close()
	do(t, a, func() error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(peerNS)}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("add veth %s/%s: %w", aName, bName, err)
		}
		return nil
	})
}

// setupLink brings name up in ns, gives it addr (if valid) and optionally
// a master bridge.
func setupLink(t testing.TB, ns, name, addr, master string) {
	t.Helper()
	do(t, ns, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s: %w", name, err)
		}
		if master != "" {
			br, err := netlink.LinkByName(master)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMaster(l, br); err != nil {
				return err
			}
		}
		if addr != "" {
			a, err := netlink.ParseAddr(addr)
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(l, a); err != nil {
				return fmt.Errorf("address %s on %s: %w", addr, name, err)
			}
		}
		return netlink.LinkSetUp(l)
	})
}

func addBridge(t testing.TB, ns, name, addr string) {
	t.Helper()
	do(t, ns, func() error {
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}})
	})
	setupLink(t, ns, name, addr, "")
}

func addRoute(t testing.TB, ns, dst, gw string) {
	t.Helper()
	do(t, ns, func() error {
		r := &netlink.Route{Gw: net.ParseIP(gw)}
		if dst != "" {
			_, d, err := net.ParseCIDR(dst)
			if err != nil {
				return err
			}
			r.Dst = d
		}
		if err := netlink.RouteAdd(r); err != nil {
			return fmt.Errorf("route %s via %s: %w", dst, gw, err)
		}
		return nil
	})
}

func sysctl(t testing.TB, ns, key, val string) {
	t.Helper()
	do(t, ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(val), 0o644)
	})
}

// Addresses of the test topology.
const (
	node1IP   = "192.168.251.1"
	node2IP   = "192.168.251.2"
	clientIP  = "192.168.251.100"
	pod1IP    = "10.244.1.2"
	pod2IP    = "10.244.2.2"
	podPort   = 8080
	extIf     = "shoal-ext0"
	podBridge = "shoal-br0"
)

// topo is a small cluster: a LAN (a bridge in its own namespace) joins a
// client and two nodes; each node has a pod bridge with one pod that
// serves TCP and UDP on port 8080 and answers its name and the address it
// sees the client as.
type topo struct {
	client, node1, node2, pod1, pod2 string
}

func newTopo(t testing.TB) *topo {
	t.Helper()
	tp := &topo{
		client: newNetNS(t, "client"),
		node1:  newNetNS(t, "node1"),
		node2:  newNetNS(t, "node2"),
		pod1:   newNetNS(t, "pod1"),
		pod2:   newNetNS(t, "pod2"),
	}
	lan := newNetNS(t, "lan")
	addBridge(t, lan, "shoal-lan0", "")
	for i, m := range []struct{ ns, addr string }{
		{tp.client, clientIP}, {tp.node1, node1IP}, {tp.node2, node2IP},
	} {
		port := fmt.Sprintf("shoal-lan%d", i+1)
		vethPair(t, lan, port, m.ns, extIf)
		setupLink(t, lan, port, "", "shoal-lan0")
		setupLink(t, m.ns, extIf, m.addr+"/24", "")
	}
	for i, n := range []struct{ node, pod, podIP, otherCIDR, otherNode string }{
		{tp.node1, tp.pod1, pod1IP, "10.244.2.0/24", node2IP},
		{tp.node2, tp.pod2, pod2IP, "10.244.1.0/24", node1IP},
	} {
		addBridge(t, n.node, podBridge, fmt.Sprintf("10.244.%d.1/24", i+1))
		vethPair(t, n.node, "shoal-pod0", n.pod, "eth0")
		setupLink(t, n.node, "shoal-pod0", "", podBridge)
		setupLink(t, n.pod, "eth0", n.podIP+"/24", "")
		addRoute(t, n.pod, "", fmt.Sprintf("10.244.%d.1", i+1))
		addRoute(t, n.node, n.otherCIDR, n.otherNode)
		sysctl(t, n.node, "net/ipv4/ip_forward", "1")
		serve(t, n.pod, fmt.Sprintf("pod%d", i+1))
	}
	return tp
}

// serve runs a TCP and a UDP server on :8080 in ns until the test ends.
// Every line (TCP) or datagram (UDP) is answered with "<id> <client>".
func serve(t testing.TB, ns, id string) {
	t.Helper()
	var (
		ln net.Listener
		pc net.PacketConn
	)
	do(t, ns, func() error {
		var err error
		if ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", podPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", podPort))
		return err
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					peer := c.RemoteAddr().(*net.TCPAddr).IP.String()
					if _, err := fmt.Fprintf(c, "%s %s\n", id, peer); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			peer := from.(*net.UDPAddr).IP.String()
			_, _ = pc.WriteTo([]byte(id+" "+peer), from)
		}
	}()
}

// reply is what a backend answered.
type reply struct {
	ID   string // backend name
	Peer string // the client address the backend saw
}

func parseReply(s string) (reply, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return reply{}, fmt.Errorf("malformed reply %q", s)
	}
	return reply{ID: f[0], Peer: f[1]}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
