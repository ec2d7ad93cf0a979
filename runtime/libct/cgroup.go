package libct

import (
	"fmt"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
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
// containers first. Removing a missing cgroup is not an error.
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
