// Package bpffs prepares the directories in the BPF file system where the network plane pins its
// maps and links, so that they outlive the daemon.
package bpffs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is where bpffs is mounted, and the only place it is ever mounted by Shoal.
const Root = "/sys/fs/bpf"

// EnsurePinDir creates dir in bpffs, mounting bpffs at Root (and only there) when dir is under it
// and nothing is mounted yet.
func EnsurePinDir(dir string) error {
	if strings.HasPrefix(filepath.Clean(dir)+"/", Root+"/") && !IsBPFFS(Root) {
		if err := os.MkdirAll(Root, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", Root, err)
		}
		if err := unix.Mount("bpf", Root, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs at %s: %w (mount it yourself: mount -t bpf bpf %s)", Root, err, Root)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	if !IsBPFFS(dir) {
		return fmt.Errorf("pin dir %s is not in a bpffs: use a directory under %s", dir, Root)
	}
	return nil
}

// IsBPFFS reports whether path is in a BPF file system.
func IsBPFFS(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.BPF_FS_MAGIC
}
