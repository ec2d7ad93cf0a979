package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"golang.org/x/sys/unix"
)

// makeVolume materialises a pod volume in dir: an empty directory (tmpfs for medium Memory, of
// the size the Manager chose), or the files of a configMap, secret or downwardAPI volume (secrets
// on tmpfs, so they never touch the disk). hostPath
// volumes are checked against their type and bound directly, so dir only marks them.
func makeVolume(dir string, v lifecycle.VolumeConfig) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	switch {
	case v.EmptyDir != nil:
		if v.EmptyDir.Medium == manifests.StorageMediumMemory {
			opts := "mode=1777"
			size := v.TmpfsSize
			if size <= 0 && v.EmptyDir.SizeLimit != nil {
				size = v.EmptyDir.SizeLimit.Value()
			}
			if size > 0 {
				opts += ",size=" + strconv.FormatInt(size, 10)
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
				return fmt.Errorf("mount tmpfs: %w", err)
			}
			return nil
		}
		return os.Chmod(dir, 0o1777)
	case v.HostPath != nil:
		return checkHostPath(v.HostPath)
	default:
		if v.Sensitive {
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=16m"); err != nil {
				return fmt.Errorf("mount tmpfs for secret: %w", err)
			}
		}
		for _, f := range v.Files {
			p := filepath.Join(dir, filepath.Clean("/"+f.Path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, f.Data, os.FileMode(f.Mode)&0o777); err != nil {
				return err
			}
			if err := os.Chmod(p, os.FileMode(f.Mode)&0o777); err != nil {
				return err
			}
		}
		return nil
	}
}

// checkHostPath applies a hostPath volume's type, as the kubelet does.
func checkHostPath(hp *manifests.HostPathVolumeSource) error {
	typ := manifests.HostPathUnset
	if hp.Type != nil {
		typ = *hp.Type
	}
	fi, err := os.Stat(hp.Path)
	switch typ {
	case manifests.HostPathUnset:
		return nil
	case manifests.HostPathDirectoryOrCreate:
		if errors.Is(err, os.ErrNotExist) {
			return os.MkdirAll(hp.Path, 0o755)
		}
	case manifests.HostPathFileOrCreate:
		if errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("hostPath %s: %w", hp.Path, err)
	}
	want := map[manifests.HostPathType]func(os.FileMode) bool{
		manifests.HostPathDirectory:         func(m os.FileMode) bool { return m.IsDir() },
		manifests.HostPathDirectoryOrCreate: func(m os.FileMode) bool { return m.IsDir() },
		manifests.HostPathFile:              func(m os.FileMode) bool { return m.IsRegular() },
		manifests.HostPathFileOrCreate:      func(m os.FileMode) bool { return m.IsRegular() },
		manifests.HostPathSocket:            func(m os.FileMode) bool { return m&os.ModeSocket != 0 },
		manifests.HostPathCharDev:           func(m os.FileMode) bool { return m&os.ModeCharDevice != 0 },
		manifests.HostPathBlockDev:          func(m os.FileMode) bool { return m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0 },
	}[typ]
	if want != nil && !want(fi.Mode()) {
		return fmt.Errorf("hostPath %s is not of type %s", hp.Path, typ)
	}
	return nil
}

// unmountVolume unmounts a volume's tmpfs, if it has one.
func unmountVolume(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount volume %s: %w", dir, err)
	}
	return nil
}
