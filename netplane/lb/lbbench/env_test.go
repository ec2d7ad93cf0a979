package lbbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/netplane/lb"
)

// The benchmark's addresses: the client namespace has 10.249.0.1, the
// backend namespace 10.249.0.2 and .3 (the two endpoints of the measured
// service), joined by a veth. The service range 10.96.0.0/16 is routed from
// the client to the backend namespace, which does not forward, so an
// untranslated connection fails instead of leaving the namespaces. Filler
// services point to 10.251/16 and 10.252/16, which nothing ever dials.
var (
	clientAddr   = netip.MustParsePrefix("10.249.0.1/24")
	backendAddrs = []netip.Prefix{netip.MustParsePrefix("10.249.0.2/24"), netip.MustParsePrefix("10.249.0.3/24")}
	clusterCIDR  = netip.MustParsePrefix("10.249.0.0/24")
	serviceCIDR  = netip.MustParsePrefix("10.96.0.0/16")
)

const backendPort = 8080

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces and cgroups and loads eBPF programs")
	}
}

func randName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// cgroup2Root finds the cgroup v2 hierarchy as the daemon does (lb.Cgroup2Root).
func cgroup2Root(tb testing.TB) string {
	tb.Helper()
	root, err := lb.Cgroup2Root()
	if errors.Is(err, lb.ErrNoCgroup2) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// newCgroup creates a cgroup v2 directory; at cleanup whatever runs in it
// is killed and the directory removed.
func newCgroup(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(cgroup2Root(tb), randName("shoal-bench-"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatalf("create cgroup: %v", err)
	}
	tb.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644)
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				tb.Errorf("remove cgroup %s: %v", dir, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

// newNetns creates a named network namespace with lo up and returns its
// path; it is deleted at cleanup.
func newNetns(tb testing.TB) string {
	tb.Helper()
	name := randName("shoal-bench-")
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		_ = ns.Close()
		if err := netns.Set(orig); err != nil {
			errc <- err // the thread stays locked and ends with this goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		tb.Fatalf("create network namespace: %v", err)
	}
	tb.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	path := filepath.Join("/run/netns", name)
	h := nsHandle(tb, path)
	lo, err := h.LinkByName("lo")
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		tb.Fatal(err)
	}
	return path
}

func nsHandle(tb testing.TB, path string) *netlink.Handle {
	tb.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		tb.Fatalf("netlink handle in %s: %v", path, err)
	}
	tb.Cleanup(h.Close)
	return h
}

// inNetns runs fn on a thread in the network namespace at path. The thread
// is thrown away afterwards if it cannot return to its namespace.
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := enterNetns(path); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// bed is one measurement's world: a client namespace, a backend namespace
// with the echo server, and a cgroup for the load generator.
type bed struct {
	client, backend string // network namespace paths
	cgroup          string
}

func newBed(tb testing.TB) *bed {
	tb.Helper()
	requireRoot(tb)
	bd := &bed{cgroup: newCgroup(tb), client: newNetns(tb), backend: newNetns(tb)}
	hc, hb := nsHandle(tb, bd.client), nsHandle(tb, bd.backend)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "shoalc0"}, PeerName: "shoalb0"}
	if err := hc.LinkAdd(veth); err != nil {
		tb.Fatalf("add veth: %v", err)
	}
	peer, err := hc.LinkByName("shoalb0")
	if err != nil {
		tb.Fatal(err)
	}
	bns, err := netns.GetFromPath(bd.backend)
	if err != nil {
		tb.Fatal(err)
	}
	defer bns.Close()
	if err := hc.LinkSetNsFd(peer, int(bns)); err != nil {
		tb.Fatalf("move veth peer: %v", err)
	}
	setup := func(h *netlink.Handle, name string, addrs ...netip.Prefix) netlink.Link {
		lk, err := h.LinkByName(name)
		if err != nil {
			tb.Fatal(err)
		}
		for _, a := range addrs {
			if err := h.AddrAdd(lk, &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), 32)}}); err != nil {
				tb.Fatalf("add address %s: %v", a, err)
			}
		}
		if err := h.LinkSetUp(lk); err != nil {
			tb.Fatal(err)
		}
		return lk
	}
	clink := setup(hc, "shoalc0", clientAddr)
	setup(hb, "shoalb0", backendAddrs...)
	dst := &net.IPNet{IP: serviceCIDR.Addr().AsSlice(), Mask: net.CIDRMask(serviceCIDR.Bits(), 32)}
	if err := hc.RouteAdd(&netlink.Route{LinkIndex: clink.Attrs().Index, Dst: dst, Gw: backendAddrs[0].Addr().AsSlice()}); err != nil {
		tb.Fatalf("add service route: %v", err)
	}
	// Many short connections from one address: let TIME_WAIT ports be
	// reused and widen the port range (both per namespace).
	err = inNetns(bd.client, func() error {
		for file, v := range map[string]string{
			"/proc/sys/net/ipv4/ip_local_port_range": "1024 65535",
			"/proc/sys/net/ipv4/tcp_tw_reuse":        "1",
		} {
			if err := os.WriteFile(file, []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("client sysctls: %v", err)
	}
	bd.startEcho(tb)
	return bd
}

// startEcho runs Serve on backendPort of every backend address.
func (bd *bed) startEcho(tb testing.TB) {
	tb.Helper()
	var ln net.Listener
	err := inNetns(bd.backend, func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", backendPort))
		return err
	})
	if err != nil {
		tb.Fatalf("listen in backend namespace: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("echo server: %v", err)
		}
	})
}

// load re-executes the test binary as the load generator, started inside
// the bed's cgroup (so the cgroup's eBPF programs see its connects), and
// returns what it measured.
func (bd *bed) load(tb testing.TB, target netip.AddrPort, d time.Duration) Result {
	tb.Helper()
	cfg, err := json.Marshal(LoadConfig{Target: target, Workers: 16, Duration: d, NetnsPath: bd.client})
	if err != nil {
		tb.Fatal(err)
	}
	cg, err := os.Open(bd.cgroup)
	if err != nil {
		tb.Fatal(err)
	}
	defer cg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), loadEnv+"="+string(cfg))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("load generator: %v: %s", err, stderr.String())
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		tb.Fatalf("load generator printed %q: %v", stdout.String(), err)
	}
	return r
}

// iptablesRestore loads rules into the nat table of the namespace at path
// (never the machine's own): iptables-restore is started from a thread
// inside that namespace and inherits it.
func iptablesRestore(tb testing.TB, path string, rules []byte, noflush bool) {
	tb.Helper()
	args := []string{"-w"}
	if noflush {
		args = append(args, "--noflush")
	}
	var out bytes.Buffer
	err := inNetns(path, func() error {
		cmd := exec.Command(*restoreCmd, args...)
		cmd.Stdin = bytes.NewReader(rules)
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd.Run()
	})
	if err != nil {
		tb.Fatalf("%s: %v: %s", *restoreCmd, err, strings.TrimSpace(out.String()))
	}
}

// requireIptables skips without iptables-restore and checks once per
// namespace that a program started from inNetns really runs in it, so
// that no rule can reach the machine's own tables.
func requireIptables(tb testing.TB, path string) {
	tb.Helper()
	if _, err := exec.LookPath(*restoreCmd); err != nil {
		tb.Skipf("%s is not installed (Debian package iptables)", *restoreCmd)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		tb.Fatal(err)
	}
	var out []byte
	err := inNetns(path, func() error {
		var err error
		out, err = exec.Command("readlink", "/proc/self/ns/net").Output()
		return err
	})
	if err != nil {
		tb.Fatalf("check namespace of child processes: %v", err)
	}
	if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("net:[%d]", st.Ino); got != want {
		tb.Fatalf("a child process started in %s runs in %s, want %s: refusing to run iptables", path, got, want)
	}
}

// newLB opens a load balancer on cgroup with a fresh pin directory.
func newLB(tb testing.TB, cgroup string) *lb.LB {
	tb.Helper()
	pin := filepath.Join("/sys/fs/bpf", randName("shoal-bench-"))
	tb.Cleanup(func() { _ = os.RemoveAll(pin) })
	l, err := lb.Open(lb.Config{CgroupPath: cgroup, PinDir: pin})
	if err != nil {
		tb.Fatalf("open load balancer: %v", err)
	}
	tb.Cleanup(func() {
		if err := l.Remove(); err != nil && !errors.Is(err, lb.ErrClosed) {
			tb.Errorf("remove load balancer: %v", err)
		}
	})
	return l
}

// services returns n services; the last one is the measured service whose
// endpoints are the two backend addresses, the others point nowhere.
func services(n int) []lb.Service {
	out := make([]lb.Service, n)
	for i := range out {
		k := i + 1
		s := lb.Service{VIP: netip.AddrFrom4([4]byte{10, 96, byte(k >> 8), byte(k)}), Port: 80, Proto: lb.TCP}
		if i == n-1 {
			for _, a := range backendAddrs {
				s.Backends = append(s.Backends, netip.AddrPortFrom(a.Addr(), backendPort))
			}
		} else {
			s.Backends = []netip.AddrPort{
				netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 251, byte(k >> 8), byte(k)}), backendPort),
				netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 252, byte(k >> 8), byte(k)}), backendPort),
			}
		}
		out[i] = s
	}
	return out
}

func fullRules(tb testing.TB, svcs []lb.Service) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := KubeProxyRules(&buf, svcs, clusterCIDR); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
