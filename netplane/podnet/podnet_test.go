package podnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// network is the shape the runtime calls (runtime/linux.Network).
type network interface {
	Setup(ctx context.Context, uid, namespace, name, netnsPath string) (ip string, err error)
	Teardown(ctx context.Context, uid, netnsPath string) error
	DNS(namespace string) string
}

var _ network = (*Net)(nil)

func TestSetupGivesPodAddressAndDefaultRoute(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	addr, podNS := nd.setupPod(t, "uid-1")
	if !nd.cfg.PodCIDR.Contains(addr) || addr == gateway(nd.cfg.PodCIDR) {
		t.Fatalf("pod address %s: want a host address of %s other than the gateway", addr, nd.cfg.PodCIDR)
	}

	h, closeH := handleIn(t, podNS)
	defer closeH()
	eth, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatalf("pod has no eth0: %v", err)
	}
	if eth.Attrs().Flags&net.FlagUp == 0 {
		t.Error("eth0 is down")
	}
	if eth.Attrs().MTU != DefaultMTU {
		t.Errorf("eth0 MTU = %d, want %d", eth.Attrs().MTU, DefaultMTU)
	}
	addrs, err := h.AddrList(eth, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != netip.PrefixFrom(addr, 24).String() {
		t.Errorf("eth0 addresses = %v, want %s/24", addrs, addr)
	}
	routes, err := h.RouteList(eth, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var def bool
	for _, r := range routes {
		if isDefault(r.Dst) && r.Gw.Equal(net.ParseIP("10.244.1.1")) {
			def = true
		}
	}
	if !def {
		t.Errorf("pod routes %v: no default route via 10.244.1.1", routes)
	}

	// The host end is on the bridge.
	host, err := nd.net.nl.LinkByName(hostVethName("uid-1"))
	if err != nil {
		t.Fatalf("host end: %v", err)
	}
	br, err := nd.net.nl.LinkByName(testBridge)
	if err != nil {
		t.Fatal(err)
	}
	if host.Attrs().MasterIndex != br.Attrs().Index {
		t.Error("host end is not on the bridge")
	}

	// Setup again: same address, nothing new.
	ip2, err := nd.net.Setup(context.Background(), "uid-1", "default", "pod-uid-1", podNS)
	if err != nil {
		t.Fatal(err)
	}
	if ip2 != addr.String() {
		t.Errorf("second Setup = %s, want %s", ip2, addr)
	}
	if got := nd.net.Allocated(); len(got) != 1 || got["uid-1"] != addr.String() {
		t.Errorf("Allocated() = %v", got)
	}
}

func TestSetupRepairsBrokenPod(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	addr, podNS := nd.setupPod(t, "uid-1")
	// Lose the pair, as after a crash between steps.
	if err := nd.net.deleteLink(nd.net.nl, hostVethName("uid-1")); err != nil {
		t.Fatal(err)
	}
	ip, err := nd.net.Setup(context.Background(), "uid-1", "default", "p", podNS)
	if err != nil {
		t.Fatal(err)
	}
	if ip != addr.String() {
		t.Fatalf("Setup after repair = %s, want %s", ip, addr)
	}
	other, otherNS := nd.setupPod(t, "uid-2")
	ln := listenIn(t, otherNS, netip.AddrPortFrom(other, 8080))
	if src := connectAndCheckPeer(t, podNS, ln, netip.AddrPortFrom(other, 8080)); src != addr {
		t.Errorf("peer address %s, want %s", src, addr)
	}
}

func TestPodsOnOneNodeReachEachOther(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	a, nsA := nd.setupPod(t, "uid-a")
	b, nsB := nd.setupPod(t, "uid-b")
	if a == b {
		t.Fatalf("both pods got %s", a)
	}
	to := netip.AddrPortFrom(b, 8080)
	ln := listenIn(t, nsB, to)
	if src := connectAndCheckPeer(t, nsA, ln, to); src != a {
		t.Errorf("listener saw %s, want the pod address %s", src, a)
	}
	// And the node reaches its pods through the bridge.
	if src := connectAndCheckPeer(t, nd.ns, ln, to); src != gateway(nd.cfg.PodCIDR) {
		t.Errorf("listener saw %s, want the gateway", src)
	}
}

func TestPodsOnTwoNodesReachEachOther(t *testing.T) {
	requireRoot(t)
	nodeA := newTestNode(t, "a", "10.244.1.0/24")
	nodeB := newTestNode(t, "b", "10.244.2.0/24")
	ipA, ipB := netip.MustParseAddr("192.168.250.1"), netip.MustParseAddr("192.168.250.2")
	linkNodes(t, nodeA.ns, nodeB.ns, netip.PrefixFrom(ipA, 24), netip.PrefixFrom(ipB, 24))
	ctx := context.Background()
	if err := nodeA.net.SetRoutes(ctx, []Route{{CIDR: nodeB.cfg.PodCIDR, Via: ipB}}); err != nil {
		t.Fatal(err)
	}
	if err := nodeB.net.SetRoutes(ctx, []Route{{CIDR: nodeA.cfg.PodCIDR, Via: ipA}}); err != nil {
		t.Fatal(err)
	}
	podA, nsPodA := nodeA.setupPod(t, "uid-a")
	podB, nsPodB := nodeB.setupPod(t, "uid-b")

	t.Run("pod to pod keeps the source", func(t *testing.T) {
		to := netip.AddrPortFrom(podB, 8080)
		ln := listenIn(t, nsPodB, to)
		if src := connectAndCheckPeer(t, nsPodA, ln, to); src != podA {
			t.Errorf("listener saw %s, want pod A's %s (no masquerade inside the cluster)", src, podA)
		}
	})
	t.Run("pod to outside is masqueraded", func(t *testing.T) {
		to := netip.AddrPortFrom(ipB, 8081)
		ln := listenIn(t, nodeB.ns, to)
		if src := connectAndCheckPeer(t, nsPodA, ln, to); src != ipA {
			t.Errorf("listener saw %s, want node A's address %s", src, ipA)
		}
	})
	t.Run("SetRoutes is idempotent and replaces the set", func(t *testing.T) {
		want := []Route{{CIDR: nodeB.cfg.PodCIDR, Via: ipB}, {CIDR: netip.MustParsePrefix("10.244.3.0/24"), Via: ipB}}
		for range 2 {
			if err := nodeA.net.SetRoutes(ctx, want); err != nil {
				t.Fatal(err)
			}
		}
		if got := nodeRoutes(t, nodeA); len(got) != 2 || got["10.244.2.0/24"] != "192.168.250.2" || got["10.244.3.0/24"] != "192.168.250.2" {
			t.Errorf("routes = %v", got)
		}
		if got, err := nodeA.net.Routes(); err != nil || !slices.Equal(got, want) {
			t.Errorf("Routes = %v, %v; want %v", got, err, want)
		}
		if err := nodeA.net.SetRoutes(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got := nodeRoutes(t, nodeA); len(got) != 0 {
			t.Errorf("routes after SetRoutes(nil) = %v", got)
		}
		// The unreachable service route stays.
		if !hasServiceRoute(t, nodeA) {
			t.Error("SetRoutes removed the service route")
		}
	})
}

// nodeRoutes returns Shoal's unicast routes in the node: CIDR -> gateway.
func nodeRoutes(t *testing.T, nd *testNode) map[string]string {
	t.Helper()
	rs, err := nd.net.ownRoutes()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, r := range rs {
		if r.Type == unix.RTN_UNICAST {
			m[r.Dst.String()] = r.Gw.String()
		}
	}
	return m
}

func hasServiceRoute(t *testing.T, nd *testNode) bool {
	t.Helper()
	rs, err := nd.net.ownRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Type == unix.RTN_UNREACHABLE && r.Dst.String() == DefaultServiceCIDR.String() {
			return true
		}
	}
	return false
}

func TestSetRoutesRejectsBadRoutes(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	via := netip.MustParseAddr("192.168.250.2")
	tests := []struct {
		name  string
		route Route
	}{
		{"own CIDR", Route{CIDR: netip.MustParsePrefix("10.244.1.0/24"), Via: via}},
		{"service CIDR", Route{CIDR: netip.MustParsePrefix("10.96.0.0/24"), Via: via}},
		{"no gateway", Route{CIDR: netip.MustParsePrefix("10.244.2.0/24")}},
		{"IPv6", Route{CIDR: netip.MustParsePrefix("fd00::/64"), Via: via}},
		{"gateway in own CIDR", Route{CIDR: netip.MustParsePrefix("10.244.2.0/24"), Via: netip.MustParseAddr("10.244.1.7")}},
		{"gateway not on a network of the node", Route{CIDR: netip.MustParsePrefix("10.244.2.0/24"), Via: via}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := nd.net.SetRoutes(context.Background(), []Route{tc.route}); err == nil {
				t.Error("SetRoutes accepted the route")
			}
		})
	}
}

func TestServiceCIDRFailsFast(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	if !hasServiceRoute(t, nd) {
		t.Fatal("no unreachable route for the service CIDR")
	}
	_, podNS := nd.setupPod(t, "uid-1")
	// The timeout is far above what an answer takes: a timeout means the packet went
	// somewhere instead of failing at the node.
	c, err := dialIn(podNS, netip.MustParseAddrPort("10.96.0.10:80"), 20*time.Second)
	if err == nil {
		c.Close()
		t.Fatal("connect to a service address succeeded without translation")
	}
	if !isUnreachable(err) {
		t.Fatalf("connect to 10.96.0.10 = %v, want no route to host", err)
	}
	// From the node itself, too.
	c, err = dialIn(nd.ns, netip.MustParseAddrPort("10.96.0.10:80"), 20*time.Second)
	if err == nil {
		c.Close()
		t.Fatal("connect from the node to a service address succeeded")
	}
	if !isUnreachable(err) {
		t.Fatalf("connect from the node to 10.96.0.10 = %v, want no route to host", err)
	}
}

func TestMasqueradeRuleInNodeTable(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	// A second New (a daemon restart) must not duplicate the rule.
	if err := nd.net.Close(); err != nil {
		t.Fatal(err)
	}
	nd.start(t)

	rules := masqueradeRules(t, nd)
	if len(rules) != 1 {
		t.Fatalf("%d masquerade rules in table ip %s, want 1", len(rules), TableName("a"))
	}
	r := rules[0]
	var masq bool
	var cmps []string
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Masq:
			masq = true
		case *expr.Cmp:
			cmps = append(cmps, fmt.Sprintf("%d:%v", e.Op, netip.AddrFrom4([4]byte(e.Data))))
		}
	}
	if !masq {
		t.Error("rule does not masquerade")
	}
	want := []string{fmt.Sprintf("%d:10.244.1.0", expr.CmpOpEq), fmt.Sprintf("%d:10.244.0.0", expr.CmpOpNeq)}
	if fmt.Sprint(cmps) != fmt.Sprint(want) {
		t.Errorf("rule matches %v, want %v", cmps, want)
	}
	if c, _ := userdata.GetString(r.UserData, userdata.TypeComment); c != masqueradeComment {
		t.Errorf("rule comment %q", c)
	}

	// Remove takes the table away and leaves other tables alone.
	c := nftConnIn(t, nd.ns)
	other := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "shoal-test-other"})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nd.net.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	if len(names) != 1 || names[0] != other.Name {
		t.Errorf("tables after Remove = %v, want only %s", names, other.Name)
	}
	nd.net = nil // removed
}

// masqueradeRules returns the rules of the node's table that masquerade traffic leaving the
// cluster.
func masqueradeRules(t *testing.T, nd *testNode) []*nftables.Rule {
	t.Helper()
	var out []*nftables.Rule
	for _, r := range tableRules(t, nd) {
		if c, _ := userdata.GetString(r.UserData, userdata.TypeComment); c == masqueradeComment {
			out = append(out, r)
		}
	}
	return out
}

// tableRules returns every rule of the node's table.
func tableRules(t *testing.T, nd *testNode) []*nftables.Rule {
	t.Helper()
	c := nftConnIn(t, nd.ns)
	tb := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName(nd.cfg.Node)}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	var rules []*nftables.Rule
	for _, ch := range chains {
		if ch.Table.Name != tb.Name {
			continue
		}
		rs, err := c.GetRules(tb, ch)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, rs...)
	}
	return rules
}

func nftConnIn(t *testing.T, nsPath string) *nftables.Conn {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAllocationsSurviveRestart(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	ctx := context.Background()
	ips := map[string]string{}
	paths := map[string]string{}
	for i := range 3 {
		uid := fmt.Sprintf("uid-%d", i)
		addr, p := nd.setupPod(t, uid)
		ips[uid], paths[uid] = addr.String(), p
	}
	if err := nd.net.Close(); err != nil {
		t.Fatal(err)
	}
	// Pods keep their network while the daemon is down.
	if _, err := nd.net.Setup(ctx, "uid-0", "default", "p", paths["uid-0"]); err == nil {
		t.Error("Setup on a closed Net succeeded")
	}
	nd.start(t)
	if got := nd.net.Allocated(); fmt.Sprint(got) != fmt.Sprint(ips) {
		t.Fatalf("Allocated() after restart = %v, want %v", got, ips)
	}
	for uid, want := range ips {
		got, err := nd.net.Setup(ctx, uid, "default", "p", paths[uid])
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Setup(%s) after restart = %s, want %s", uid, got, want)
		}
	}
	// A new pod gets an address none of them has.
	addr, _ := nd.setupPod(t, "uid-new")
	for _, ip := range ips {
		if addr.String() == ip {
			t.Errorf("new pod got %s, already in use", addr)
		}
	}
}

func TestStateDirIsExclusive(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	if _, err := New(context.Background(), nd.cfg); err == nil {
		t.Fatal("second New on one state dir succeeded")
	}
}

func TestNoLeakAfterManyCycles(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/29") // 5 addresses: cycles must reuse them
	ctx := context.Background()
	dir := t.TempDir()
	seen := map[string]bool{}
	for i := range 100 {
		uid := fmt.Sprintf("uid-%d", i)
		p := filepath.Join(dir, "shoal-pod")
		ip, err := nd.net.Setup(ctx, uid, "default", "p", p)
		if err != nil {
			_ = removeNetNS(p)
			t.Fatalf("cycle %d: %v", i, err)
		}
		seen[ip] = true
		if err := nd.net.Teardown(ctx, uid, p); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	if len(seen) != 5 {
		t.Errorf("cycles used %d addresses, want all 5 of the /29 in turn", len(seen))
	}
	if got := nd.net.Allocated(); len(got) != 0 {
		t.Errorf("Allocated() after the cycles = %v", got)
	}
	entries, err := os.ReadDir(filepath.Join(nd.cfg.StateDir, "addresses"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("%d files left in the address store", len(entries))
	}
	if ports := bridgePorts(t, nd); len(ports) != 0 {
		t.Errorf("interfaces left on the bridge: %v", ports)
	}
	if _, err := os.Lstat(filepath.Join(dir, "shoal-pod")); !os.IsNotExist(err) {
		t.Errorf("pod namespace left behind: %v", err)
	}
}

func bridgePorts(t *testing.T, nd *testNode) []string {
	t.Helper()
	br, err := nd.net.nl.LinkByName(testBridge)
	if err != nil {
		t.Fatal(err)
	}
	links, err := nd.net.nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

func TestTeardownIsIdempotent(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	ctx := context.Background()
	_, p := nd.setupPod(t, "uid-1")
	for i := range 3 {
		if err := nd.net.Teardown(ctx, "uid-1", p); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
	}
	if err := nd.net.Teardown(ctx, "never-set-up", filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("Teardown of an unknown pod: %v", err)
	}
	if len(nd.net.Allocated()) != 0 {
		t.Errorf("Allocated() = %v", nd.net.Allocated())
	}
	if _, err := nd.net.nl.LinkByName(hostVethName("uid-1")); err == nil {
		t.Error("host end still there")
	}
}

func TestReconcileFreesPodsWithoutNamespace(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	ctx := context.Background()
	_, gone := nd.setupPod(t, "uid-gone")
	kept, _ := nd.setupPod(t, "uid-kept")
	// The namespace disappears behind the network's back (a reboot, a removed pod directory).
	if err := removeNetNS(gone); err != nil {
		t.Fatal(err)
	}
	freed, err := nd.net.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(freed) != "[uid-gone]" {
		t.Errorf("Reconcile freed %v, want [uid-gone]", freed)
	}
	if got := nd.net.Allocated(); len(got) != 1 || got["uid-kept"] != kept.String() {
		t.Errorf("Allocated() = %v", got)
	}
	if ports := bridgePorts(t, nd); fmt.Sprint(ports) != fmt.Sprint([]string{hostVethName("uid-kept")}) {
		t.Errorf("bridge ports = %v", ports)
	}

	// A restart does the same for namespaces lost while the daemon was down: a file without
	// a mount (as after a reboot) counts as gone.
	_, lost := nd.setupPod(t, "uid-lost")
	if err := nd.net.Close(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(lost, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	nd.start(t)
	if _, ok := nd.net.Allocated()["uid-lost"]; ok {
		t.Error("New kept the address of a pod whose namespace is gone")
	}
}

func TestConcurrentSetup(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	ctx := context.Background()
	const pods = 8
	paths := make([]string, pods)
	for i := range paths {
		paths[i] = podNSPath(t, fmt.Sprint(i))
	}
	ips := make([]string, pods)
	errs := make([]error, pods)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ips[i], errs[i] = nd.net.Setup(ctx, fmt.Sprintf("uid-%d", i), "default", "p", paths[i])
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range pods {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[ips[i]] {
			t.Errorf("address %s given twice", ips[i])
		}
		seen[ips[i]] = true
	}
	for i := range pods {
		if err := nd.net.Teardown(ctx, fmt.Sprintf("uid-%d", i), paths[i]); err != nil {
			t.Error(err)
		}
	}
}

func TestRemoveTakesEverything(t *testing.T) {
	requireRoot(t)
	nd := newTestNode(t, "a", "10.244.1.0/24")
	ctx := context.Background()
	nd.setupPod(t, "uid-1")
	ns := nd.ns
	h, closeH := handleIn(t, ns)
	defer closeH()
	// A route the node owns without Shoal must stay.
	foreign := &netlink.Route{Dst: ipNet(netip.MustParsePrefix("10.99.0.0/24")), Type: unix.RTN_BLACKHOLE}
	if err := h.RouteAdd(foreign); err != nil {
		t.Fatal(err)
	}
	if err := nd.net.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	nd.net = nil
	if _, err := h.LinkByName(testBridge); err == nil {
		t.Error("bridge still there")
	}
	if _, err := h.LinkByName(hostVethName("uid-1")); err == nil {
		t.Error("pod interface still there")
	}
	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, r := range routes {
		left = append(left, r.Dst.String())
	}
	if fmt.Sprint(left) != "[10.99.0.0/24]" {
		t.Errorf("routes after Remove = %v, want only the foreign one", left)
	}
	if _, err := os.Stat(filepath.Join(nd.cfg.StateDir, "addresses")); !os.IsNotExist(err) {
		t.Errorf("address store still there: %v", err)
	}
}
