// Package atomicfile replaces files durably: the new content is written to a temporary file in
// the same directory, synced to disk, renamed over the target, and the directory is synced, so
// that after a crash the target holds either its old content or the whole new content, never a
// truncated or partial one, and the rename itself survives a power loss.
//
// It is for the small files a node keeps its identity and state in: keys, certificates, tokens
// and state records. A crash may leave a temporary file (".NAME.tmp-*") beside the target; it is
// never the target itself, and the next write does not reuse it.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Hooks for tests, to make a step fail.
var (
	syncFile = (*os.File).Sync
	rename   = os.Rename
)

// WriteFile replaces path with data, with the permissions perm (exactly: the umask does not
// apply). When it returns an error, no temporary file is left and path still has its old content
// (or is still missing), except after an error syncing the directory: the new content is then
// in place, but may not survive a power loss. The directory of path must exist.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := replace(dir, path, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

func replace(dir, path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // a second close only reports that it is closed
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := syncFile(f); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return rename(tmp, path)
}

// SyncDir flushes a directory's entries (files created, renamed or removed in it) to disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
