// Package testnet makes what the network plane's kernel tests run in: network namespaces of
// their own, veth pairs between them, a cgroup v2 directory and a bpffs pin directory. Each is
// removed when the test ends, also when it fails. Nothing here touches the caller's own network
// namespace or the machine's root cgroup.
package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/netplane/internal/bpffs"
	"github.com/shoal-dev/shoal/netplane/lb"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs, creates cgroups and network namespaces")
	}
}

// Name returns prefix with 8 random hex digits.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NetNS creates a network namespace with lo up, bind-mounted in the test's temp dir, and
// removes it when the test ends.
func NetNS(t testing.TB, name string) string {
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
		if err := RemoveNetNS(p); err != nil {
			t.Errorf("remove netns %s: %v", name, err)
		}
	})
	return p
}

// RemoveNetNS unmounts the namespace at path and removes the file; a missing path is no error.
func RemoveNetNS(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// In runs fn in the network namespace at ns, on a fresh OS thread that is never handed back
// to the scheduler, and waits for it. Sockets fn opens stay in ns.
func In(ns string, fn func() error) error {
	h, err := netns.GetFromPath(ns)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(h), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Do is In that fails the test on an error.
func Do(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := In(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// Veth creates a veth pair between namespaces a and b, named aName and bName, brings both up
// and gives them the addresses aAddr and bAddr ("" for none, else "ip/bits"). The pair dies
// with either namespace.
func Veth(t testing.TB, a, aName, aAddr, b, bName, bAddr string) {
	t.Helper()
	peer, err := netns.GetFromPath(b)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	Do(t, a, func() error {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName}, PeerName: bName, PeerNamespace: netlink.NsFd(peer)}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("add veth %s/%s: %w", aName, bName, err)
		}
		return nil
	})
	for _, end := range []struct{ ns, name, addr string }{{a, aName, aAddr}, {b, bName, bAddr}} {
		Do(t, end.ns, func() error {
			l, err := netlink.LinkByName(end.name)
			if err != nil {
				return fmt.Errorf("find %s: %w", end.name, err)
			}
			if end.addr != "" {
				ad, err := netlink.ParseAddr(end.addr)
				if err != nil {
					return err
				}
				if err := netlink.AddrAdd(l, ad); err != nil {
					return fmt.Errorf("address %s on %s: %w", end.addr, end.name, err)
				}
			}
			return netlink.LinkSetUp(l)
		})
	}
}

// Cgroup creates a cgroup v2 directory below the hierarchy's root and removes it (killing what
// runs in it) when the test ends. It skips the test when no cgroup v2 hierarchy is mounted.
func Cgroup(t testing.TB) string {
	t.Helper()
	root, err := lb.Cgroup2Root()
	if errors.Is(err, lb.ErrNoCgroup2) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, Name("shoal-test-"))
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

// PinDir returns a fresh directory name in bpffs and removes whatever is left in it when the
// test ends.
func PinDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(bpffs.Root, Name("shoal-test-"))
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove pin dir: %v", err)
		}
	})
	return dir
}

// Dial connects over network ("tcp4", "udp4") from inside the namespace ns.
func Dial(ns, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := In(ns, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// Listen opens a TCP listener inside the namespace ns, closed when the test ends.
func Listen(t testing.TB, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	Do(t, ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}
