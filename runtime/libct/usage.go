package libct

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// Usage is what a running container uses, read from its cgroup.
type Usage struct {
	// CPUNanos is the CPU time of the container's processes since it started (cpuacct.usage on
	// cgroup v1, cpu.stat's usage_usec on v2).
	CPUNanos uint64
	// MemoryWorkingSet is the memory the kernel cannot drop at once, as the kubelet (cAdvisor)
	// counts it: the memory usage less the inactive file pages, at least 0 (memory.usage_in_bytes
	// less memory.stat's total_inactive_file on v1, memory.current less inactive_file on v2).
	MemoryWorkingSet int64
	// Time is when it was read.
	Time time.Time
}

// Usage reads the container's CPU time and memory working set from its cgroup, through the
// cgroup manager libcontainer made it with. A container that is not running gives
// ErrNotRunning.
func (c *Container) Usage(ctx context.Context) (Usage, error) {
	st, err := c.State(ctx)
	if err != nil {
		return Usage{}, err
	}
	if st.Status != StatusRunning {
		return Usage{}, fmt.Errorf("usage of container %q: %w", c.id, ErrNotRunning)
	}
	lc, err := c.libcontainer()
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			return Usage{}, fmt.Errorf("usage of container %q: %w", c.id, ErrNotRunning) // removed meanwhile
		}
		return Usage{}, fmt.Errorf("usage of container %q: %w", c.id, err)
	}
	stats, err := lc.Stats()
	if err != nil {
		return Usage{}, fmt.Errorf("usage of container %q: %w", c.id, err)
	}
	if stats.CgroupStats == nil {
		return Usage{}, fmt.Errorf("usage of container %q: its cgroup reported nothing", c.id)
	}
	cs := stats.CgroupStats
	return Usage{
		CPUNanos:         cs.CpuStats.CpuUsage.TotalUsage,
		MemoryWorkingSet: workingSet(cs.MemoryStats, cgroups.IsCgroup2UnifiedMode()),
		Time:             time.Now(),
	}, nil
}

// workingSet is the memory usage less the inactive file pages (total_inactive_file on cgroup
// v1, where memory.stat also has the cgroup's own inactive_file without its children;
// inactive_file on v2, which is always hierarchical), at least 0, as cAdvisor computes it.
func workingSet(m cgroups.MemoryStats, v2 bool) int64 {
	key := "total_inactive_file"
	if v2 {
		key = "inactive_file"
	}
	inactive := m.Stats[key]
	if m.Usage.Usage <= inactive {
		return 0
	}
	return int64(m.Usage.Usage - inactive)
}

// DiskUsage is the disk space a container takes on the node, in bytes.
type DiskUsage struct {
	// Rootfs is its writable layer: what it wrote over its image.
	Rootfs int64
	// Logs is its log file and the rotated ones.
	Logs int64
}

// DiskUsage measures the container's writable layer and logs, as du does: the blocks of every
// file and directory, each inode counted once.
func (c *Container) DiskUsage() (DiskUsage, error) {
	var u DiskUsage
	var err error
	if u.Rootfs, err = DirUsage(filepath.Join(c.dir, "upper")); err != nil {
		return u, err
	}
	files, err := logFiles(c.sp.Config.LogPath)
	if err != nil {
		return u, err
	}
	for _, f := range files {
		n, err := DirUsage(f)
		if err != nil {
			return u, err
		}
		u.Logs += n
	}
	return u, nil
}

// DirUsage returns the disk space the tree at path takes, as du does: the allocated blocks of
// each file, directory and link, hard links counted once. It stays on path's file system and
// does not follow links. A path that does not exist takes no space.
func DirUsage(path string) (int64, error) {
	var root unix.Stat_t
	if err := unix.Lstat(path, &root); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, nil
		}
		return 0, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if st.Dev != root.Dev {
			if d.IsDir() {
				return filepath.SkipDir // another file system mounted below
			}
			return nil
		}
		id := inode{uint64(st.Dev), st.Ino}
		if !seen[id] {
			seen[id] = true
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}
