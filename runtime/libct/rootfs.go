package libct

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mountRootfs mounts an overlayfs of the image layers (top first) with a writable upper
// layer kept in dir, at dir/rootfs. It is idempotent: an existing mount is kept.
func mountRootfs(dir string, lower []string) (string, error) {
	target := filepath.Join(dir, "rootfs")
	upper := filepath.Join(dir, "upper")
	work := filepath.Join(dir, "work")
	for _, d := range []string{target, upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("mount rootfs: %w", err)
		}
	}
	if mounted, err := isMountPoint(target); err != nil {
		return "", fmt.Errorf("mount rootfs: %w", err)
	} else if mounted {
		return target, nil
	}
	for _, l := range lower {
		if strings.ContainsAny(l, ":,") {
			return "", fmt.Errorf("%w: layer dir %q contains ':' or ','", ErrInvalidConfig, l)
		}
		if _, err := os.Stat(l); err != nil {
			return "", fmt.Errorf("%w: layer dir: %v", ErrInvalidConfig, err)
		}
	}
	data := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(data) >= os.Getpagesize() {
		return "", fmt.Errorf("%w: %d layers make the overlay options longer than a page; use shorter layer paths", ErrInvalidConfig, len(lower))
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return "", fmt.Errorf("mount overlay rootfs at %s: %w", target, err)
	}
	return target, nil
}

// unmountRootfs undoes mountRootfs; a missing mount is not an error.
func unmountRootfs(dir string) error {
	target := filepath.Join(dir, "rootfs")
	for i := 0; i < 10; i++ {
		mounted, err := isMountPoint(target)
		if err != nil || !mounted {
			return err
		}
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount rootfs %s: %w", target, err)
		}
	}
	return nil
}

// isMountPoint reports whether path is a mount point, comparing its mount ID with its
// parent's (statx STATX_MNT_ID), which also sees bind mounts of the same file system.
func isMountPoint(path string) (bool, error) {
	var st, pst unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Statx(unix.AT_FDCWD, filepath.Dir(path), 0, unix.STATX_MNT_ID, &pst); err != nil {
		return false, err
	}
	return st.Mnt_id != pst.Mnt_id, nil
}
