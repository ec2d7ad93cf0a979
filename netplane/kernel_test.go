package netplane_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
	"github.com/shoal-dev/shoal/netplane"
	"github.com/shoal-dev/shoal/netplane/internal/testnet"
	"github.com/shoal-dev/shoal/netplane/netplanetest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// dialEnv makes the test binary a client: "<netns path> <address>" (see dialMain).
const dialEnv = "SHOAL_NETPLANE_TEST_DIAL"

func TestMain(m *testing.M) {
	if v := os.Getenv(dialEnv); v != "" {
		os.Exit(dialMain(v))
	}
	os.Exit(m.Run())
}

// dialMain enters the namespace, connects over TCP to the address, and prints the first line
// it reads, or "error: ..." when it cannot.
func dialMain(v string) int {
	runtime.LockOSThread()
	nsPath, addr, _ := strings.Cut(v, " ")
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		fmt.Println("error:", err)
		return 0
	}
	if err := netns.Set(ns); err != nil {
		fmt.Println("error:", err)
		return 0
	}
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		fmt.Println("error:", err)
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("error:", err)
		return 0
	}
	fmt.Print(line)
	return 0
}

// kernelNode is a node made of network namespaces of its own: the node's, where the plane
// lives, and a client's on NodeNet, joined by a veth pair whose node end is the node
// interface. The load balancer attaches to a cgroup of its own.
type kernelNode struct {
	ns, client, cgroup string
	k                  *netplane.Kernel
}

// clientIP is the client's address in netplanetest.NodeNet.
const clientIP = "192.168.77.100"

func newKernelNode(t testing.TB, o netplanetest.Options) *kernelNode {
	t.Helper()
	testnet.RequireRoot(t)
	n := &kernelNode{ns: testnet.NetNS(t, "node"), client: testnet.NetNS(t, "client"), cgroup: testnet.Cgroup(t)}
	bits := fmt.Sprintf("/%d", netplanetest.NodeNet.Bits())
	testnet.Veth(t, n.ns, "shoal-ext0", netplanetest.NodeIP.String()+bits, n.client, "eth0", clientIP+bits)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := netplane.Options{Node: "test", PodCIDR: netplanetest.PodCIDR, ServiceCIDR: netplanetest.ServiceCIDR, Bridge: "shoaltest0",
		StateDir: filepath.Join(t.TempDir(), "state"), NetNS: n.ns, LBCgroup: n.cgroup, PinDir: testnet.PinDir(t), ResolvConf: resolv}
	if o.NodePorts {
		opts.NodeInterface, opts.NodeIP = "shoal-ext0", netplanetest.NodeIP
	}
	k, err := netplane.Open(context.Background(), opts)
	if errors.Is(err, netplane.ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k.Remove(context.Background()); err != nil {
			t.Errorf("remove the plane: %v", err)
		}
	})
	n.k = k
	return n
}

func TestKernelConformance(t *testing.T) {
	netplanetest.Run(t, func(t *testing.T, o netplanetest.Options) netplane.Plane {
		return newKernelNode(t, o).k
	})
}

// setupPod gives pod uid its network and serves TCP on :8080 in it: each connection gets the
// line "<uid>".
func (n *kernelNode) setupPod(t *testing.T, uid string) netip.Addr {
	t.Helper()
	nsPath := filepath.Join(t.TempDir(), "pod-"+uid)
	ip, err := n.k.Setup(context.Background(), uid, "default", uid, nsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.k.Teardown(context.Background(), uid, nsPath); err != nil {
			t.Errorf("teardown %s: %v", uid, err)
		}
		if err := testnet.RemoveNetNS(nsPath); err != nil {
			t.Errorf("remove netns of %s: %v", uid, err)
		}
	})
	ln := testnet.Listen(t, nsPath, ":8080")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, uid+"\n")
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return netip.MustParseAddr(ip)
}

// dialFromClient connects from the client's namespace and returns the line it reads.
func (n *kernelNode) dialFromClient(addr string) (string, error) {
	c, err := testnet.Dial(n.client, "tcp4", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// dialFromCgroup connects from a process in the load balancer's cgroup and the node's
// namespace, as a process of the node does, and returns the line it read or its error.
func (n *kernelNode) dialFromCgroup(t *testing.T, addr string) string {
	t.Helper()
	cg, err := os.Open(n.cgroup)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dialEnv+"="+n.ns+" "+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// resolve asks the node's DNS server, from inside the node's namespace, for name's A records.
func (n *kernelNode) resolve(t *testing.T, name string) (rcode int, answers []string) {
	t.Helper()
	server := netip.AddrPortFrom(netplanetest.PodCIDR.Addr().Next(), 53).String()
	c, err := testnet.Dial(n.ns, "udp4", server, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	co := &miekg.Conn{Conn: c}
	q := new(miekg.Msg).SetQuestion(name, miekg.TypeA)
	if err := co.WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	r, err := co.ReadMsg()
	if err != nil {
		t.Fatalf("dns answer: %v", err)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*miekg.A); ok {
			answers = append(answers, a.A.String())
		}
	}
	return r.Rcode, answers
}

// routeVia returns the gateway the node's routing table picks for dst, or "" for none.
func (n *kernelNode) routeVia(t *testing.T, dst string) string {
	t.Helper()
	var via string
	err := testnet.In(n.ns, func() error {
		rs, err := netlink.RouteGet(net.ParseIP(dst))
		if err != nil {
			return nil // no route
		}
		if len(rs) > 0 && rs[0].Gw != nil {
			via = rs[0].Gw.String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return via
}

// What Set programs carries traffic: a connect() to a virtual IP reaches the pod behind it, so
// do the node port, the LoadBalancer port and the host port from another host, routes lead to
// the other node, names resolve; after an empty Set none of it does.
func TestKernelDataPath(t *testing.T) {
	n := newKernelNode(t, netplanetest.Options{NodePorts: true})
	ip := n.setupPod(t, "p1")
	c := netplane.Config{
		Services: []netplane.Service{
			{Namespace: "default", Name: "web", Type: netplane.TypeLoadBalancer, ClusterIP: netip.MustParseAddr("10.96.0.10"),
				Ports:     []netplane.ServicePort{{Name: "http", Proto: netplane.TCP, Port: 80, NodePort: 30080}},
				Endpoints: []netplane.Endpoint{{IP: ip, Ports: map[string]uint16{"http": 8080}}}},
			{Namespace: "default", Name: "db", Type: netplane.TypeClusterIP, Headless: true,
				Ports:     []netplane.ServicePort{{Name: "pg", Proto: netplane.TCP, Port: 5432}},
				Endpoints: []netplane.Endpoint{{IP: ip, Ports: map[string]uint16{"pg": 5432}, Hostname: "db-0"}}},
		},
		Routes:        []netplane.Route{{CIDR: netip.MustParsePrefix("10.244.1.0/24"), Via: netip.MustParseAddr("192.168.77.2")}},
		HostPorts:     []netplane.HostPort{{UID: "p1", Pod: "default/p1", Proto: netplane.TCP, HostPort: 9090, PodPort: 8080}},
		ReservedPorts: []uint16{7443},
	}
	res, err := n.k.Set(context.Background(), c)
	if err != nil || len(res.Skipped)+len(res.Refused)+len(res.Failed) > 0 {
		t.Fatalf("Set = %+v, %v", res, err)
	}
	node := netplanetest.NodeIP.String()
	t.Run("VirtualIP", func(t *testing.T) {
		if got := n.dialFromCgroup(t, "10.96.0.10:80"); got != "p1" {
			t.Errorf("connect to the virtual IP: %q, want p1's answer", got)
		}
	})
	for _, tc := range []struct{ name, addr string }{
		{"NodePort", node + ":30080"}, {"LoadBalancerPort", node + ":80"}, {"HostPort", node + ":9090"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := n.dialFromClient(tc.addr); err != nil || got != "p1" {
				t.Errorf("connect from the client to %s: %q, %v; want p1's answer", tc.addr, got, err)
			}
		})
	}
	t.Run("Route", func(t *testing.T) {
		if via := n.routeVia(t, "10.244.1.7"); via != "192.168.77.2" {
			t.Errorf("route to 10.244.1.7 via %q, want 192.168.77.2", via)
		}
	})
	t.Run("DNS", func(t *testing.T) {
		if rcode, got := n.resolve(t, "web.default.svc.cluster.local."); rcode != miekg.RcodeSuccess || len(got) != 1 || got[0] != "10.96.0.10" {
			t.Errorf("web resolves to %v (rcode %d), want the virtual IP", got, rcode)
		}
		if rcode, got := n.resolve(t, "db-0.db.default.svc.cluster.local."); rcode != miekg.RcodeSuccess || len(got) != 1 || got[0] != ip.String() {
			t.Errorf("db-0.db resolves to %v (rcode %d), want the pod's address %s", got, rcode, ip)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	if _, err := n.k.Set(context.Background(), netplane.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Run("Removed", func(t *testing.T) {
		if got := n.dialFromCgroup(t, "10.96.0.10:80"); !strings.HasPrefix(got, "error:") {
			t.Errorf("the virtual IP after an empty Set: %q, want an error", got)
		}
		for _, addr := range []string{node + ":30080", node + ":80", node + ":9090"} {
			if got, err := n.dialFromClient(addr); err == nil {
				t.Errorf("%s after an empty Set answered %q", addr, got)
			}
		}
		if via := n.routeVia(t, "10.244.1.7"); via != "" {
			t.Errorf("route to 10.244.1.7 via %s after an empty Set", via)
		}
		if rcode, got := n.resolve(t, "web.default.svc.cluster.local."); rcode != miekg.RcodeNameError {
			t.Errorf("web resolves to %v (rcode %d) after an empty Set, want NXDOMAIN", got, rcode)
		}
	})
}

// Close keeps what the plane programmed; a new Open adopts it and reads it back.
func TestKernelReopen(t *testing.T) {
	n := newKernelNode(t, netplanetest.Options{NodePorts: true})
	c := netplane.Config{
		Services: []netplane.Service{{Namespace: "default", Name: "api", Type: netplane.TypeNodePort, ClusterIP: netip.MustParseAddr("10.96.0.11"),
			Ports:     []netplane.ServicePort{{Name: "https", Proto: netplane.TCP, Port: 443, NodePort: 30443}},
			Endpoints: []netplane.Endpoint{{IP: netip.MustParseAddr("10.244.1.5"), Ports: map[string]uint16{"https": 8443}}}}},
		Routes:    []netplane.Route{{CIDR: netip.MustParsePrefix("10.244.1.0/24"), Via: netip.MustParseAddr("192.168.77.2")}},
		HostPorts: []netplane.HostPort{{UID: "a", Proto: netplane.UDP, HostPort: 53, PodPort: 5353}},
	}
	if _, err := n.k.Set(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	before, err := n.k.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	opts := n.k.Options()
	if err := n.k.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.k.Set(context.Background(), c); !errors.Is(err, netplane.ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	k, err := netplane.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k.Remove(context.Background()); err != nil {
			t.Errorf("remove the reopened plane: %v", err)
		}
	})
	after, err := k.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after.DNS, before.DNS = nil, nil // the DNS server starts empty: the daemon Sets at once
	if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
		t.Errorf("after reopening the plane holds\n\t%+v\nwant\n\t%+v", after, before)
	}
}
