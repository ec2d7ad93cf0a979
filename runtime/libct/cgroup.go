package libct

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"
)

// EnsureCgroup creates the cgroup at path (e.g. a pod's "/shoal/<node>/pods/<uid>") with a
// limit on the number of tasks of everything below it (pidsLimit <= 0: no limit). Containers
// whose CgroupParent is path share that limit. Idempotent.
func EnsureCgroup(path string, pidsLimit int64) error {
	r := &cgroups.Resources{SkipDevices: true}
	if pidsLimit > 0 {
		r.PidsLimit = &pidsLimit
	}
	m, err := manager.New(&cgroups.Cgroup{Path: path, Resources: r})
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	if err := m.Apply(-1); err != nil { // create without moving a process in
		return fmt.Errorf("create cgroup %s: %w", path, err)
	}
	if err := m.Set(r); err != nil {
		return fmt.Errorf("set limits of cgroup %s: %w", path, err)
	}
	return nil
}

// RemoveCgroup removes the cgroup at path in every hierarchy. It must be empty: remove its
// containers first, or kill what is left with KillCgroup. Removing a missing cgroup is not an
// error.
func RemoveCgroup(path string) error {
	m, err := manager.New(&cgroups.Cgroup{Path: path, Resources: &cgroups.Resources{SkipDevices: true}})
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", path, err)
	}
	return nil
}

// killWait is how long KillCgroup waits for the tasks it killed to exit.
const killWait = 10 * time.Second

// KillCgroup kills every task left in the cgroup at path and below (a pod's cgroup, once its
// containers were removed: a task still exiting, or a container whose start was cut short),
// and waits up to killWait for them to be gone. A cgroup that does not exist is not an error.
func KillCgroup(path string) error {
	m, err := manager.New(&cgroups.Cgroup{Path: path, Resources: &cgroups.Resources{SkipDevices: true}})
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	if err := killAndWait(m, m.GetPaths()); err != nil {
		return fmt.Errorf("cgroup %s: %w", path, err)
	}
	return nil
}

// killAndWait kills the tasks in the cgroups at paths and below until none is left, for up
// to killWait. m, when not nil, is thawed first: a freeze left half done keeps killed tasks
// from exiting.
func killAndWait(m cgroups.Manager, paths map[string]string) error {
	deadline := time.Now().Add(killWait)
	for {
		if m != nil {
			_ = m.Freeze(cgroups.Thawed)
		}
		left := killTree(paths)
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d tasks still there %v after they were killed", left, killWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killTree kills every task in the cgroups at paths (by subsystem, as Manager.GetPaths
// returns them) and below, after lifting their CPU quota: a killed task still needs CPU time
// to exit, and a multi-threaded one held to a small quota (a container still starting, at
// 50m) can take many seconds to.
// It returns how many tasks it found.
func killTree(paths map[string]string) int {
	found := 0
	for subsystem, root := range paths {
		if real, err := filepath.EvalSymlinks(root); err == nil {
			root = real
		}
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			switch subsystem {
			case "cpu":
				_ = os.WriteFile(filepath.Join(path, "cpu.cfs_quota_us"), []byte("-1"), 0o644)
			case "":
				_ = os.WriteFile(filepath.Join(path, "cpu.max"), []byte("max"), 0o644)
			}
			procs, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = unix.Kill(pid, unix.SIGKILL)
					found++
				}
			}
			return nil
		})
	}
	return found
}
