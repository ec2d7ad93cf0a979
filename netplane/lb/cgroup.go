package lb

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/moby/sys/mountinfo"
)

// ErrNoCgroup2 is returned by Cgroup2Root when no cgroup v2 hierarchy is mounted.
var ErrNoCgroup2 = errors.New("no cgroup v2 hierarchy is mounted (at /sys/fs/cgroup or /sys/fs/cgroup/unified): the service load balancer needs one; " +
	"boot with the unified or hybrid cgroup layout, or mount it: mount -t cgroup2 none /sys/fs/cgroup/unified")

// Cgroup2Root returns where the cgroup v2 hierarchy is mounted in the caller's mount namespace:
// /sys/fs/cgroup on a pure cgroup v2 machine, /sys/fs/cgroup/unified in the hybrid layout
// (cgroup v1 controllers at /sys/fs/cgroup, as systemd mounts them), else the first cgroup2
// mount. It reads /proc/self/mountinfo.
func Cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 hierarchy: %w", err)
	}
	defer f.Close()
	return cgroup2RootFrom(f)
}

// cgroup2RootFrom is Cgroup2Root over the mountinfo text r.
func cgroup2RootFrom(r io.Reader) (string, error) {
	mounts, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return "", fmt.Errorf("find the cgroup v2 hierarchy: read mountinfo: %w", err)
	}
	// A later mount on the same mount point hides the earlier ones.
	visible := map[string]string{} // mount point -> file system type
	var order []string
	for _, m := range mounts {
		if _, ok := visible[m.Mountpoint]; !ok {
			order = append(order, m.Mountpoint)
		}
		visible[m.Mountpoint] = m.FSType
	}
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if visible[p] == "cgroup2" {
			return p, nil
		}
	}
	for _, p := range order {
		if visible[p] == "cgroup2" {
			return p, nil
		}
	}
	return "", ErrNoCgroup2
}
