package podnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNetNS runs fn on a fresh OS thread that has joined the network namespace ns, and waits for
// it. The thread is never handed back to the Go scheduler: it stays locked, so it ends together
// with its goroutine and no other goroutine ever runs in ns by accident.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// inNetNSPath is inNetNS for a namespace named by a path (a bind mount or /proc/<pid>/ns/net).
func inNetNSPath(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	return inNetNS(ns, fn)
}

// isNetNS reports whether path is a network namespace (a bind mount of one): a file left
// behind by a namespace that was unmounted, for instance by a reboot, is not.
func isNetNS(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// createNetNS makes a new network namespace with its loopback device up and bind-mounts it at
// path. The directory of path is created when missing. A file already at path that is not a
// namespace (left behind by a reboot) is replaced.
func createNetNS(path string) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("create network namespace %s: remove stale file: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			_ = os.Remove(path)
		}
	}()
	errc := make(chan error, 1)
	go func() {
		// The thread moves into the new namespace and is never unlocked, so it exits with
		// this goroutine instead of serving others from the wrong namespace.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
			if err != nil {
				return fmt.Errorf("netlink: %w", err)
			}
			defer h.Close()
			lo, err := h.LinkByName("lo")
			if err != nil {
				return fmt.Errorf("find loopback: %w", err)
			}
			if err := h.LinkSetUp(lo); err != nil {
				return fmt.Errorf("loopback up: %w", err)
			}
			if err := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind mount: %w", err)
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	return nil
}

// removeNetNS unmounts the namespace at path and removes the file. A missing path is not an
// error. Processes still inside the namespace keep it alive; only the name goes.
func removeNetNS(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove network namespace %s: unmount: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", path, err)
	}
	return nil
}

// writeSysctl writes value to /proc/sys/<key> (key with slashes) inside namespace ns. Network
// sysctls belong to the namespace of the thread that opens them.
func writeSysctl(ns netns.NsHandle, key, value string) error {
	return inNetNS(ns, func() error {
		p := filepath.Join("/proc/sys", key)
		if cur, err := os.ReadFile(p); err == nil && string(cur) == value+"\n" {
			return nil
		}
		if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
		}
		return nil
	})
}
