package libct

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NewNetNS creates a network namespace with its loopback device up and bind-mounts it at
// path (the file is created; its directory must exist). Containers join it through
// Config.NetNSPath. Remove it with RemoveNetNS.
func NewNetNS(path string) (retErr error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("new netns %s: %w", path, err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			_ = os.Remove(path)
		}
	}()

	// A namespace switch applies to one OS thread: do it on a locked thread and switch
	// back before unlocking. If switching back fails the thread is left locked, so the
	// Go runtime discards it instead of reusing it in the wrong namespace.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("new netns %s: get current: %w", path, err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("new netns %s: %w", path, err)
	}
	defer ns.Close()
	setupErr := func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find loopback: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("loopback up: %w", err)
		}
		return nil
	}()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("new netns %s: switch back: %w", path, err)
	}
	runtime.UnlockOSThread()
	if setupErr != nil {
		return fmt.Errorf("new netns %s: %w", path, setupErr)
	}
	src := fmt.Sprintf("/proc/self/fd/%d", int(ns))
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("new netns %s: bind mount: %w", path, err)
	}
	return nil
}

// RemoveNetNS unmounts and removes a namespace made by NewNetNS. A missing path is not an
// error, so it is safe to call more than once.
func RemoveNetNS(path string) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove netns %s: unmount: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}
