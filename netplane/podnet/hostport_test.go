package podnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestResolveHostPorts(t *testing.T) {
	hp := func(uid, proto, hostIP string, port uint16) HostPort {
		p := HostPort{UID: uid, Pod: "default/" + uid, Protocol: proto, HostPort: port, PodPort: 80}
		if hostIP != "" {
			p.HostIP = netip.MustParseAddr(hostIP)
		}
		return p
	}
	tests := []struct {
		name         string
		prev, ports  []HostPort
		want         []string // accepted, by UID and port
		wantRefused  []string // refused, by UID
		refusedMatch string
	}{
		{name: "disjoint ports", ports: []HostPort{hp("a", ProtoTCP, "", 80), hp("b", ProtoTCP, "", 81)}, want: []string{"a:80", "b:81"}},
		{name: "same port other protocol", ports: []HostPort{hp("a", ProtoTCP, "", 53), hp("b", ProtoUDP, "", 53)}, want: []string{"a:53", "b:53"}},
		{name: "same port twice, first wins", ports: []HostPort{hp("a", ProtoTCP, "", 80), hp("b", ProtoTCP, "", 80)},
			want: []string{"a:80"}, wantRefused: []string{"b"}, refusedMatch: "already used by pod default/a"},
		{name: "the port held before wins", prev: []HostPort{hp("b", ProtoTCP, "", 80)}, ports: []HostPort{hp("a", ProtoTCP, "", 80), hp("b", ProtoTCP, "", 80)},
			want: []string{"b:80"}, wantRefused: []string{"a"}, refusedMatch: "already used by pod default/b"},
		{name: "wildcard against one address", ports: []HostPort{hp("a", ProtoTCP, "192.168.1.1", 80), hp("b", ProtoTCP, "0.0.0.0", 80)},
			want: []string{"a:80"}, wantRefused: []string{"b"}, refusedMatch: "already used"},
		{name: "two different addresses", ports: []HostPort{hp("a", ProtoTCP, "192.168.1.1", 80), hp("b", ProtoTCP, "192.168.1.2", 80)},
			want: []string{"a:80", "b:80"}},
		{name: "IPv4-mapped IPv6 is IPv4", ports: []HostPort{hp("a", ProtoTCP, "192.168.1.1", 80), hp("b", ProtoTCP, "::ffff:192.168.1.1", 80)},
			want: []string{"a:80"}, wantRefused: []string{"b"}, refusedMatch: "already used"},
		{name: "a duplicate entry is one", ports: []HostPort{hp("a", ProtoTCP, "", 80), hp("a", ProtoTCP, "", 80)}, want: []string{"a:80"}},
		{name: "IPv6 host IP", ports: []HostPort{hp("a", ProtoTCP, "fd00::1", 80)}, wantRefused: []string{"a"}, refusedMatch: "IPv4"},
		{name: "SCTP", ports: []HostPort{hp("a", "SCTP", "", 80)}, wantRefused: []string{"a"}, refusedMatch: "TCP or UDP"},
		{name: "port 0", ports: []HostPort{hp("a", ProtoTCP, "", 0)}, wantRefused: []string{"a"}, refusedMatch: "hostPort 0"},
		{name: "no uid", ports: []HostPort{hp("", ProtoTCP, "", 80)}, wantRefused: []string{""}, refusedMatch: "uid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acc, ref := ResolveHostPorts(tc.prev, tc.ports)
			var got, gotRef []string
			for _, p := range acc {
				got = append(got, fmt.Sprintf("%s:%d", p.UID, p.HostPort))
			}
			for _, r := range ref {
				gotRef = append(gotRef, r.UID)
				if !strings.Contains(r.Reason, tc.refusedMatch) {
					t.Errorf("refused %s: reason %q, want it to say %q", r.UID, r.Reason, tc.refusedMatch)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || fmt.Sprint(gotRef) != fmt.Sprint(tc.wantRefused) {
				t.Errorf("accepted %v refused %v, want %v and %v", got, gotRef, tc.want, tc.wantRefused)
			}
		})
	}
}

func FuzzParseHostPorts(f *testing.F) {
	f.Add([]byte(`[{"uid":"u","pod":"default/a","protocol":"TCP","hostIP":"10.0.0.1","hostPort":80,"podPort":8080}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"uid":"u","protocol":"UDP","hostPort":53,"podPort":53}] x`))
	f.Add([]byte(`[{"uid":"u","hostIP":"nope"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ports, err := parseHostPorts(data)
		if err != nil {
			return
		}
		acc, _ := ResolveHostPorts(nil, ports)
		for i, p := range acc {
			if err := p.check(); err != nil {
				t.Fatalf("accepted an invalid port %+v: %v", p, err)
			}
			for _, q := range acc[:i] {
				if p.overlaps(q) {
					t.Fatalf("accepted overlapping ports %v and %v", p, q)
				}
			}
		}
	})
}

// hostPortLAN is a node with a pod network and a client namespace on the node's LAN.
type hostPortLAN struct {
	node     *testNode
	nodeIP   netip.Addr // the node's address on the LAN
	clientNS string
	clientIP netip.Addr
}

func newHostPortLAN(t *testing.T) *hostPortLAN {
	t.Helper()
	requireRoot(t)
	l := &hostPortLAN{
		node:     newTestNode(t, "a", "10.244.1.0/24"),
		nodeIP:   netip.MustParseAddr("192.168.250.1"),
		clientNS: testNetNS(t, "client"),
		clientIP: netip.MustParseAddr("192.168.250.2"),
	}
	linkNodes(t, l.node.ns, l.clientNS, netip.PrefixFrom(l.nodeIP, 24), netip.PrefixFrom(l.clientIP, 24))
	return l
}

// servePod answers on port 80 (TCP and UDP) of a pod's namespace with "<id> <peer address>".
func servePod(t *testing.T, nsPath, id string) {
	t.Helper()
	var (
		ln net.Listener
		pc net.PacketConn
	)
	if err := inNetNSPath(nsPath, func() error {
		var err error
		if ln, err = net.Listen("tcp4", ":80"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", ":80")
		return err
	}); err != nil {
		t.Fatalf("serve in pod %s: %v", id, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			_, _ = fmt.Fprintf(c, "%s %s", id, peer)
			c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			peer := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
			_, _ = pc.WriteTo(fmt.Appendf(nil, "%s %s", id, peer), from)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		wg.Wait()
	})
}

// ask connects from the namespace at nsPath to addr over proto ("tcp" or "udp") and returns the
// answer.
func ask(nsPath, proto string, addr netip.AddrPort) (string, error) {
	var answer string
	err := inNetNSPath(nsPath, func() error {
		c, err := net.DialTimeout(proto+"4", addr.String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if proto == "udp" {
			if _, err := c.Write([]byte("?")); err != nil {
				return err
			}
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			answer = string(buf[:n])
			return err
		}
		b, err := io.ReadAll(c)
		answer = string(b)
		return err
	})
	return answer, err
}

func isRefused(err error) bool { return errors.Is(err, unix.ECONNREFUSED) }

// wantAnswer asks and checks the answer.
func wantAnswer(t *testing.T, nsPath, proto string, addr netip.AddrPort, want string) {
	t.Helper()
	got, err := ask(nsPath, proto, addr)
	if err != nil {
		t.Fatalf("%s to %s: %v", proto, addr, err)
	}
	if got != want {
		t.Fatalf("%s to %s answered %q, want %q", proto, addr, got, want)
	}
}

// wantRefused asks and expects the node to refuse: nothing listens on the node's port.
func wantRefused(t *testing.T, nsPath, proto string, addr netip.AddrPort) {
	t.Helper()
	got, err := ask(nsPath, proto, addr)
	if !isRefused(err) {
		t.Fatalf("%s to %s: answer %q, error %v; want connection refused", proto, addr, got, err)
	}
}

func podHostPorts(uid string, hostIP netip.Addr, port uint16) []HostPort {
	return []HostPort{
		{UID: uid, Pod: "default/" + uid, Protocol: ProtoTCP, HostIP: hostIP, HostPort: port, PodPort: 80},
		{UID: uid, Pod: "default/" + uid, Protocol: ProtoUDP, HostIP: hostIP, HostPort: port, PodPort: 80},
	}
}

func setHostPorts(t *testing.T, n *Net, ports []HostPort) {
	t.Helper()
	refused, err := n.SetHostPorts(context.Background(), ports)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) > 0 {
		t.Fatalf("refused: %v", refused)
	}
}

// The bridge's traffic goes through netfilter (br_netfilter, as on most Kubernetes nodes) or is
// only routed: host ports work both ways.
func TestHostPortReachesPod(t *testing.T) {
	for _, brnf := range []string{"0", "1"} {
		t.Run("bridge-nf-call-iptables="+brnf, func(t *testing.T) {
			l := newHostPortLAN(t)
			if err := inNetNSPath(l.node.ns, func() error {
				return os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte(brnf), 0o644)
			}); err != nil {
				if brnf == "1" {
					t.Skipf("no br_netfilter: %v", err)
				}
				// Without br_netfilter the bridge's traffic is only routed.
			}
			testHostPortReachesPod(t, l)
		})
	}
}

func testHostPortReachesPod(t *testing.T, l *hostPortLAN) {
	nd := l.node
	gw := gateway(nd.cfg.PodCIDR)
	podA, nsA := nd.setupPod(t, "uid-a")
	_, nsB := nd.setupPod(t, "uid-b")
	servePod(t, nsA, "a")
	port := uint16(8080)
	for _, proto := range []string{"tcp", "udp"} {
		wantRefused(t, l.clientNS, proto, netip.AddrPortFrom(l.nodeIP, port))
	}
	setHostPorts(t, nd.net, podHostPorts("uid-a", netip.Addr{}, port))

	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			node := netip.AddrPortFrom(l.nodeIP, port)
			t.Run("from another host the pod sees the client", func(t *testing.T) {
				wantAnswer(t, l.clientNS, proto, node, "a "+l.clientIP.String())
			})
			t.Run("from the node", func(t *testing.T) {
				wantAnswer(t, nd.ns, proto, node, "a "+l.nodeIP.String())
			})
			t.Run("from the node's loopback", func(t *testing.T) {
				wantAnswer(t, nd.ns, proto, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), "a "+gw.String())
			})
			t.Run("from another pod", func(t *testing.T) {
				wantAnswer(t, nsB, proto, node, "a "+gw.String())
			})
			t.Run("from the pod itself (hairpin)", func(t *testing.T) {
				wantAnswer(t, nsA, proto, node, "a "+gw.String())
			})
			t.Run("on the node's gateway address", func(t *testing.T) {
				wantAnswer(t, nsB, proto, netip.AddrPortFrom(gw, port), "a "+gw.String())
			})
		})
	}
	// The pod's own port is unchanged.
	wantAnswer(t, nsB, "tcp", netip.AddrPortFrom(podA, 80), "a "+mustAddr(t, nd, "uid-b").String())

	// Declared again: nothing changes in the kernel.
	before := hostPortRuleHandles(t, nd)
	setHostPorts(t, nd.net, podHostPorts("uid-a", netip.Addr{}, port))
	if after := hostPortRuleHandles(t, nd); fmt.Sprint(after) != fmt.Sprint(before) || len(after) != 2 {
		t.Errorf("rules %v after the same SetHostPorts, were %v (want the same 2)", after, before)
	}

	setHostPorts(t, nd.net, nil)
	for _, proto := range []string{"tcp", "udp"} {
		wantRefused(t, l.clientNS, proto, netip.AddrPortFrom(l.nodeIP, port))
		wantRefused(t, nd.ns, proto, netip.AddrPortFrom(l.nodeIP, port))
	}
	if h := hostPortRuleHandles(t, nd); len(h) != 0 {
		t.Errorf("%d host port rules left", len(h))
	}
}

func mustAddr(t *testing.T, nd *testNode, uid string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(nd.net.Allocated()[uid])
	if err != nil {
		t.Fatalf("pod %s has no address: %v", uid, err)
	}
	return a
}

// hostPortRuleHandles returns the handles of the rules in the hostports chain.
func hostPortRuleHandles(t *testing.T, nd *testNode) []uint64 {
	t.Helper()
	var out []uint64
	for _, r := range tableRules(t, nd) {
		if c, _ := userdata.GetString(r.UserData, userdata.TypeComment); r.Chain.Name == hostPortsChain && strings.HasPrefix(c, "shoal: hostPort ") {
			out = append(out, r.Handle)
		}
	}
	return out
}

func TestHostPortOnOneHostIP(t *testing.T) {
	l := newHostPortLAN(t)
	nd := l.node
	_, nsA := nd.setupPod(t, "uid-a")
	_, nsB := nd.setupPod(t, "uid-b")
	servePod(t, nsA, "a")
	servePod(t, nsB, "b")
	// Pod a on the LAN address only, pod b on every address: b is refused (it would catch a's
	// packets too). Pod c on another address of the node would be fine.
	ports := append(podHostPorts("uid-a", l.nodeIP, 9090), podHostPorts("uid-b", netip.Addr{}, 9090)...)
	refused, err := nd.net.SetHostPorts(context.Background(), ports)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 || refused[0].UID != "uid-b" || !strings.Contains(refused[0].Reason, "already used by pod default/uid-a") {
		t.Fatalf("refused = %v, want both ports of uid-b, held by default/uid-a", refused)
	}
	for _, proto := range []string{"tcp", "udp"} {
		wantAnswer(t, l.clientNS, proto, netip.AddrPortFrom(l.nodeIP, 9090), "a "+l.clientIP.String())
		// Not on the node's other addresses.
		wantRefused(t, nd.ns, proto, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 9090))
	}
	// b gets the port once a lets it go, and b on the gateway address beside a is fine.
	gw := gateway(nd.cfg.PodCIDR)
	setHostPorts(t, nd.net, append(podHostPorts("uid-a", l.nodeIP, 9090), podHostPorts("uid-b", gw, 9090)...))
	wantAnswer(t, nsA, "tcp", netip.AddrPortFrom(gw, 9090), "b "+gw.String())
	wantAnswer(t, l.clientNS, "tcp", netip.AddrPortFrom(l.nodeIP, 9090), "a "+l.clientIP.String())
}

func TestHostPortFollowsPodLifecycle(t *testing.T) {
	l := newHostPortLAN(t)
	nd := l.node
	ctx := context.Background()
	node := netip.AddrPortFrom(l.nodeIP, 8080)
	// Declared before the pod has its network: it takes effect at Setup.
	setHostPorts(t, nd.net, podHostPorts("uid-a", netip.Addr{}, 8080))
	if h := hostPortRuleHandles(t, nd); len(h) != 0 {
		t.Fatalf("%d host port rules before the pod has an address", len(h))
	}
	_, nsA := nd.setupPod(t, "uid-a")
	servePod(t, nsA, "a")
	wantAnswer(t, l.clientNS, "tcp", node, "a "+l.clientIP.String())

	t.Run("kept over a daemon restart", func(t *testing.T) {
		if err := nd.net.Close(); err != nil {
			t.Fatal(err)
		}
		wantAnswer(t, l.clientNS, "udp", node, "a "+l.clientIP.String())
		nd.start(t)
		// Before anybody declares the ports again.
		wantAnswer(t, l.clientNS, "tcp", node, "a "+l.clientIP.String())
		wantAnswer(t, l.clientNS, "udp", node, "a "+l.clientIP.String())
		if got := nd.net.HostPorts(); len(got) != 2 {
			t.Errorf("HostPorts() after restart = %v", got)
		}
	})
	t.Run("restored when the table was deleted", func(t *testing.T) {
		if err := nd.net.Close(); err != nil {
			t.Fatal(err)
		}
		n, err := New(ctx, nd.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.deleteTable(); err != nil {
			t.Fatal(err)
		}
		n.Close()
		wantRefused(t, l.clientNS, "tcp", node)
		nd.start(t)
		wantAnswer(t, l.clientNS, "tcp", node, "a "+l.clientIP.String())
	})
	t.Run("removed at teardown", func(t *testing.T) {
		if err := nd.net.Teardown(ctx, "uid-a", ""); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, l.clientNS, "tcp", node)
		wantRefused(t, l.clientNS, "udp", node)
		if h := hostPortRuleHandles(t, nd); len(h) != 0 {
			t.Errorf("%d host port rules after teardown", len(h))
		}
	})
	t.Run("a pod gone while the daemon was down loses its ports", func(t *testing.T) {
		_, nsB := nd.setupPod(t, "uid-b")
		setHostPorts(t, nd.net, podHostPorts("uid-b", netip.Addr{}, 8081))
		if h := hostPortRuleHandles(t, nd); len(h) != 2 {
			t.Fatalf("%d host port rules, want 2", len(h))
		}
		if err := nd.net.Close(); err != nil {
			t.Fatal(err)
		}
		if err := removeNetNS(nsB); err != nil {
			t.Fatal(err)
		}
		nd.start(t)
		if h := hostPortRuleHandles(t, nd); len(h) != 0 {
			t.Errorf("%d host port rules for a pod whose namespace is gone", len(h))
		}
	})
	t.Run("Remove takes the saved ports", func(t *testing.T) {
		if err := nd.net.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(nd.net.hostPortsPath()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Remove: %v", hostPortsFile, err)
		}
		nd.start(t) // for the cleanup
	})
}

func TestPodsCannotReachNodeLoopback(t *testing.T) {
	l := newHostPortLAN(t)
	nd := l.node
	_, nsA := nd.setupPod(t, "uid-a")
	// A service of the node on a loopback address only.
	target := netip.MustParseAddrPort("127.0.0.2:7000")
	ln := listenIn(t, nd.ns, target)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// route_localnet is on for the bridge. A pod that sends packets for 127.0.0.2 to its
	// gateway (as one with CAP_NET_RAW could craft them) must still not get in.
	h, closeH := handleIn(t, nsA)
	defer closeH()
	eth, err := h.LinkByName(podIfName)
	if err != nil {
		t.Fatal(err)
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := inNetNSPath(nsA, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/eth0/route_localnet", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	local := &netlink.Route{LinkIndex: lo.Attrs().Index, Dst: ipNet(loopbackNet), Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST}
	if err := h.RouteDel(local); err != nil {
		t.Fatalf("delete the pod's local 127.0.0.0/8 route: %v", err)
	}
	via := &netlink.Route{LinkIndex: eth.Attrs().Index, Dst: ipNet(netip.PrefixFrom(target.Addr(), 32)), Gw: gateway(nd.cfg.PodCIDR).AsSlice()}
	if err := h.RouteAdd(via); err != nil {
		t.Fatal(err)
	}
	if _, err = ask(nsA, "tcp", target); err == nil || isRefused(err) {
		t.Fatalf("pod reached the node's loopback (err %v), want its packets dropped", err)
	}
	// The node itself still reaches it.
	if _, err := ask(nd.ns, "tcp", target); err != nil {
		t.Fatalf("node to its own loopback: %v", err)
	}
}

// The pods' DNS server (the gateway, port 53) is not caught by a pod's hostPort 53.
func TestHostPortLeavesPodDNSAlone(t *testing.T) {
	l := newHostPortLAN(t)
	nd := l.node
	gw := gateway(nd.cfg.PodCIDR)
	nd.cfg.DNSServer = gw // as the daemon configures it
	if err := nd.net.Close(); err != nil {
		t.Fatal(err)
	}
	nd.start(t)
	_, nsA := nd.setupPod(t, "uid-a")
	_, nsB := nd.setupPod(t, "uid-b")
	dns := netip.AddrPortFrom(gw, 53)
	var pc net.PacketConn
	if err := inNetNSPath(nd.ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", dns.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte("node dns"), from)
		}
	}()
	// Pod a serves DNS for the outside on every address of the node.
	var pod net.PacketConn
	if err := inNetNSPath(nsA, func() error {
		var err error
		pod, err = net.ListenPacket("udp4", ":53")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pod.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pod.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pod.WriteTo([]byte("pod dns"), from)
		}
	}()
	setHostPorts(t, nd.net, []HostPort{{UID: "uid-a", Pod: "default/a", Protocol: ProtoUDP, HostPort: 53, PodPort: 53}})
	wantAnswer(t, l.clientNS, "udp", netip.AddrPortFrom(l.nodeIP, 53), "pod dns")
	wantAnswer(t, nsB, "udp", dns, "node dns")
}
