package lb

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/shoal-dev/shoal/netplane/internal/bpffs"
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

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// cgroupRoot is the machine's cgroup v2 hierarchy, found as the daemon finds it.
func cgroupRoot(t testing.TB) string {
	t.Helper()
	root, err := Cgroup2Root()
	if errors.Is(err, ErrNoCgroup2) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs, creates cgroups and network namespaces")
	}
}

func randName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// env is one node: a cgroup, a pin dir and a network namespace with
// backends on a dummy interface.
type env struct {
	cfg    Config
	nsName string
	nsPath string
	subnet int // backends are 10.250.<subnet>.<i>
}

func newEnv(t testing.TB, subnet int) *env {
	t.Helper()
	requireRoot(t)
	e := &env{subnet: subnet}
	e.cfg.CgroupPath = newCgroup(t)
	e.cfg.PinDir = filepath.Join(bpffs.Root, randName("shoal-test-"))
	t.Cleanup(func() {
		if err := os.RemoveAll(e.cfg.PinDir); err != nil {
			t.Errorf("remove pin dir: %v", err)
		}
	})
	e.nsName, e.nsPath = newNetns(t, subnet)
	return e
}

// newCgroup creates a cgroup v2 directory and removes it (killing what
// runs in it) when the test ends.
func newCgroup(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(cgroupRoot(t), randName("shoal-test-"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644)
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("remove cgroup %s: %v", dir, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

// newNetns creates a named network namespace with lo up, a veth interface
// carrying 10.250.<subnet>.1-3/24 and an unreachable route for the service
// range 10.96.0.0/16, so that a missed translation fails at once.
func newNetns(t testing.TB, subnet int) (name, path string) {
	t.Helper()
	name = randName("shoal-test-")
	ns := func() netns.NsHandle {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Fatalf("get netns: %v", err)
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			t.Fatalf("create netns: %v", err)
		}
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with the test.
			runtime.LockOSThread()
			t.Fatalf("restore netns: %v", err)
		}
		return ns
	}()
	t.Cleanup(func() {
		_ = ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns: %v", err)
		}
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	// A veth pair with both ends in the namespace (this kernel may have
	// no dummy driver); the backends live on shoal0.
	dummy := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "shoal0"}, PeerName: "shoal1"}
	if err := h.LinkAdd(dummy); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	for _, n := range []string{"shoal0", "shoal1"} {
		lk, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(lk); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 4; i++ {
		a, _ := netlink.ParseAddr(fmt.Sprintf("10.250.%d.%d/24", subnet, i))
		if err := h.AddrAdd(dummy, a); err != nil {
			t.Fatalf("add address: %v", err)
		}
	}
	_, dst, _ := net.ParseCIDR("10.96.0.0/16")
	if err := h.RouteAdd(&netlink.Route{Dst: dst, Type: unix.RTN_UNREACHABLE}); err != nil {
		t.Fatalf("add unreachable route: %v", err)
	}
	return name, filepath.Join("/run/netns", name)
}

// inNetns runs fn on a thread in the network namespace at path.
func inNetns(t testing.TB, path string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err) // the thread stays locked and ends
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in netns %s: %v", path, err)
	}
}

// backend returns the address of backend i (1-based) of the env.
func (e *env) backend(i int) netip.AddrPort {
	return netip.MustParseAddrPort(fmt.Sprintf("10.250.%d.%d:8080", e.subnet, i))
}

// startBackends runs TCP and UDP servers on backends 1..n in the env's
// namespace. Each answers its id "<prefix><i>": TCP sends it with a newline
// on accept and then echoes lines, UDP answers every datagram with it.
func (e *env) startBackends(t testing.TB, prefix string, n int) {
	t.Helper()
	var (
		wg      sync.WaitGroup
		closers []io.Closer
	)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		addr := e.backend(i).String()
		var (
			ln net.Listener
			pc net.PacketConn
		)
		inNetns(t, e.nsPath, func() error {
			var err error
			if ln, err = net.Listen("tcp4", addr); err != nil {
				return err
			}
			pc, err = net.ListenPacket("udp4", addr)
			return err
		})
		closers = append(closers, ln, pc)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(30 * time.Second))
					if _, err := io.WriteString(c, id+"\n"); err != nil {
						return
					}
					_, _ = io.Copy(c, c)
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
				_, _ = pc.WriteTo([]byte(id), from)
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range closers {
			_ = c.Close()
		}
		wg.Wait()
	})
}

// result is one line a client prints.
type result struct {
	ID    string `json:"id,omitempty"`
	Peer  string `json:"peer,omitempty"`
	From  string `json:"from,omitempty"`
	Errno int    `json:"errno,omitempty"`
	Err   string `json:"err,omitempty"`
	Op    string `json:"op,omitempty"`
	MS    int64  `json:"ms,omitempty"`
}

// client is a child process in the env's cgroup and namespace.
type client struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startClient re-executes the test binary as a client (see clientMain)
// placed into the env's cgroup from its first instruction.
func (e *env) startClient(t testing.TB, mode string, target netip.AddrPort, n int) *client {
	t.Helper()
	cg, err := os.Open(e.cfg.CgroupPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		clientEnv+"="+mode,
		"SHOAL_LB_TEST_NETNS="+e.nsPath,
		"SHOAL_LB_TEST_ADDR="+target.String(),
		fmt.Sprintf("SHOAL_LB_TEST_N=%d", n),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd()), Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start client: %v", err)
	}
	c := &client{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-done
	})
	return c
}

// next returns the client's next result.
func (c *client) next() result {
	c.t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("client exited early")
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			c.t.Fatalf("client printed %q: %v", line, err)
		}
		return r
	case <-time.After(30 * time.Second):
		c.t.Fatalf("client printed nothing for 30s")
	}
	return result{}
}

// results collects n results.
func (c *client) results(n int) []result {
	c.t.Helper()
	out := make([]result, n)
	for i := range out {
		out[i] = c.next()
	}
	return out
}

// resume lets a holding client go on.
func (c *client) resume() {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		c.t.Fatalf("resume client: %v", err)
	}
}

// run starts a client, collects n results and checks that none failed.
func (e *env) run(t testing.TB, mode string, target netip.AddrPort, n int) []result {
	t.Helper()
	rs := e.startClient(t, mode, target, n).results(n)
	for i, r := range rs {
		if r.Err != "" {
			t.Fatalf("%s #%d to %s: %s", mode, i, target, r.Err)
		}
	}
	return rs
}

func ids(rs []result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func joinIDs(rs []result) string { return strings.Join(ids(rs), ",") }
