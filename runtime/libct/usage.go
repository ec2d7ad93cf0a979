package libct

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

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
