package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Overlay filesystem whiteout conventions (see the OCI image spec's
// "Representing Changes" and the kernel's overlayfs documentation).
const (
	whiteoutPrefix  = ".wh."
	whiteoutMeta    = ".wh..wh."
	whiteoutOpaque  = ".wh..wh..opq"
	overlayOpaque   = "trusted.overlay.opaque"
	paxXattrPrefix  = "SCHILY.xattr."
	resolveInRoot   = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
	regularFileFlag = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// errUnsafeEntry marks a tar entry that is refused because it would leave
// the layer directory.
var errUnsafeEntry = errors.New("unsafe layer entry")

// unpacker extracts one layer tar stream into a directory.
//
// Every path is resolved with openat2(RESOLVE_IN_ROOT) against a file
// descriptor of the layer directory, so "..", absolute paths and symbolic
// links (absolute or relative, created by earlier entries) can never lead
// outside it: they resolve as they would inside the container. Entries are
// created with *at system calls relative to the resolved parent and never
// follow a final symbolic link.
type unpacker struct {
	rootFd     int
	privileged bool // running as root: chown, device nodes and trusted xattrs
	log        *slog.Logger
	dirs       []dirMeta
	size       int64
}

type dirMeta struct {
	rel string
	hdr *tar.Header
}

// unpackLayer extracts the tar stream r into dir, which must exist and be
// empty, and returns the number of bytes of regular file content written.
func unpackLayer(ctx context.Context, dir string, r io.Reader, log *slog.Logger) (int64, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open layer dir: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(fd)
	u := &unpacker{rootFd: fd, privileged: os.Geteuid() == 0, log: log}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read layer tar: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return 0, fmt.Errorf("unpack %q: %w", hdr.Name, err)
		}
	}
	if err := u.finishDirs(); err != nil {
		return 0, err
	}
	return u.size, nil
}

// cleanPath turns a tar entry name into a path relative to the layer root.
// Leading slashes are dropped (absolute names are taken relative to the
// root, as the container sees them); ".." components are refused.
func cleanPath(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte in name", errUnsafeEntry)
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: %q has a \"..\" component", errUnsafeEntry, name)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return ".", nil
	}
	return strings.Join(out, "/"), nil
}

func splitRel(rel string) (dir, base string) {
	dir, base = path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	return dir, base
}

// openInRoot opens rel inside the layer root with RESOLVE_IN_ROOT.
func (u *unpacker) openInRoot(rel string, flags uint64) (int, error) {
	for {
		fd, err := unix.Openat2(u.rootFd, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolveInRoot})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.ENOSYS {
			return -1, errors.New("openat2 is not available: unpacking images needs Linux 5.6 or newer")
		}
		return fd, err
	}
}

// parent opens the directory that will hold rel, creating missing
// directories (tar streams may omit parent entries), and returns its fd
// and the final name.
func (u *unpacker) parent(rel string) (int, string, error) {
	dir, base := splitRel(rel)
	fd, err := u.openInRoot(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT {
		if err := u.mkdirAll(dir); err != nil {
			return -1, "", err
		}
		fd, err = u.openInRoot(dir, unix.O_PATH|unix.O_DIRECTORY)
	}
	if err != nil {
		return -1, "", fmt.Errorf("open parent %q: %w", dir, err)
	}
	return fd, base, nil
}

func (u *unpacker) mkdirAll(dir string) error {
	cur := ""
	for _, comp := range strings.Split(dir, "/") {
		parentRel := cur
		if parentRel == "" {
			parentRel = "."
		}
		cur = path.Join(cur, comp)
		fd, err := u.openInRoot(cur, unix.O_PATH|unix.O_DIRECTORY)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if err != unix.ENOENT {
			return fmt.Errorf("open %q: %w", cur, err)
		}
		pfd, err := u.openInRoot(parentRel, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("open %q: %w", parentRel, err)
		}
		err = unix.Mkdirat(pfd, comp, 0o755)
		unix.Close(pfd)
		if err != nil {
			return fmt.Errorf("mkdir %q: %w", cur, err)
		}
	}
	return nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		if hdr.Typeflag == tar.TypeDir {
			u.dirs = append(u.dirs, dirMeta{rel: rel, hdr: hdr})
		}
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil
	}
	pfd, base, err := u.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)

	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(pfd, rel, base)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			if err != unix.EEXIST {
				return fmt.Errorf("mkdir: %w", err)
			}
			var st unix.Stat_t
			if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("stat: %w", err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err := unix.Unlinkat(pfd, base, 0); err != nil {
					return fmt.Errorf("replace with directory: %w", err)
				}
				if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
					return fmt.Errorf("mkdir: %w", err)
				}
			}
		}
		u.dirs = append(u.dirs, dirMeta{rel: rel, hdr: hdr})
		return nil
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives use TypeRegA
		if err := u.replace(pfd, base); err != nil {
			return err
		}
		fd, err := unix.Openat(pfd, base, regularFileFlag, 0o600)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		f := os.NewFile(uintptr(fd), rel)
		bp := copyBufs.Get().(*[]byte)
		n, err := io.CopyBuffer(f, r, *bp)
		copyBufs.Put(bp)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		u.size += n
	case tar.TypeSymlink:
		if err := u.replace(pfd, base); err != nil {
			return err
		}
		// The target is stored as data; it is never followed while unpacking.
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeLink:
		target, err := cleanPath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		if target == "." {
			return fmt.Errorf("%w: hard link to the layer root", errUnsafeEntry)
		}
		tdir, tbase := splitRel(target)
		tfd, err := u.openInRoot(tdir, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		defer unix.Close(tfd)
		if err := u.replace(pfd, base); err != nil {
			return err
		}
		// Flags 0: a final symlink is linked itself, never followed.
		if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		return nil // shares the target's inode and metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		if mode != unix.S_IFIFO && !u.privileged {
			u.log.Debug("skipping device node, not running as root", "path", rel)
			return nil
		}
		if err := u.replace(pfd, base); err != nil {
			return err
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, mode|0o600, int(dev)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		u.log.Debug("skipping unsupported layer entry", "path", rel, "type", string(hdr.Typeflag))
		return nil
	}
	return u.meta(pfd, base, hdr)
}

// replace removes an existing non-directory entry (or empty directory) so
// a later tar entry with the same name wins, as in tar itself.
func (u *unpacker) replace(pfd int, base string) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	flags := 0
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(pfd, base, flags); err != nil {
		return fmt.Errorf("replace existing entry: %w", err)
	}
	return nil
}

// whiteout converts an OCI whiteout entry into its overlayfs form.
func (u *unpacker) whiteout(pfd int, rel, base string) error {
	if base == whiteoutOpaque {
		// The parent directory hides everything below it in lower layers.
		p := fmt.Sprintf("/proc/self/fd/%d", pfd)
		if err := unix.Setxattr(p, overlayOpaque, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark directory opaque (needs root): %w", err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		u.log.Debug("skipping whiteout metadata entry", "path", rel)
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: bad whiteout name", errUnsafeEntry)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if err := removeAllAt(pfd, name); err != nil {
			return fmt.Errorf("remove whited-out entry: %w", err)
		}
	}
	// An overlay whiteout is a character device with number 0/0.
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("create overlay whiteout (needs root): %w", err)
	}
	return nil
}

// removeAllAt removes name below the directory pfd without following links.
func removeAllAt(pfd int, name string) error {
	err := unix.Unlinkat(pfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	dfd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dfd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(dfd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
}

// meta applies owner, mode, extended attributes and times to base below
// pfd, never following a final symbolic link.
func (u *unpacker) meta(pfd int, base string, hdr *tar.Header) error {
	isLink := hdr.Typeflag == tar.TypeSymlink
	if u.privileged {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if !isLink {
		// chown clears set-id bits, so the mode comes after it. base is an
		// entry this unpacker just created and is not a symbolic link.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode)&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok {
			continue
		}
		if !allowedXattr(attr, u.privileged) {
			u.log.Debug("skipping extended attribute", "name", hdr.Name, "xattr", attr)
			continue
		}
		p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)
		if err := unix.Lsetxattr(p, attr, []byte(v), 0); err != nil {
			if err == unix.ENOTSUP || err == unix.EPERM {
				u.log.Debug("cannot set extended attribute", "name", hdr.Name, "xattr", attr, "err", err)
				continue
			}
			return fmt.Errorf("set xattr %s: %w", attr, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if hdr.AccessTime.IsZero() {
		ts[0] = ts[1]
	}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// allowedXattr reports whether a layer may set attr. Overlay's own
// attributes are never taken from a layer: a forged redirect or metacopy
// attribute could point the container's view at another layer.
func allowedXattr(attr string, privileged bool) bool {
	switch {
	case strings.HasPrefix(attr, "trusted.overlay."), strings.HasPrefix(attr, "user.overlay."):
		return false
	case strings.HasPrefix(attr, "user."):
		return true
	case attr == "security.capability", strings.HasPrefix(attr, "trusted."):
		return privileged
	}
	return false
}

// finishDirs applies directory metadata after all entries exist, deepest
// first, so restrictive modes and modification times stick.
func (u *unpacker) finishDirs() error {
	sort.SliceStable(u.dirs, func(i, j int) bool {
		return strings.Count(u.dirs[i].rel, "/") > strings.Count(u.dirs[j].rel, "/")
	})
	for _, d := range u.dirs {
		if err := u.dirMeta(d); err != nil {
			return fmt.Errorf("unpack %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}

func (u *unpacker) dirMeta(d dirMeta) error {
	dir, base := splitRel(d.rel)
	if d.rel == "." {
		dir, base = ".", "."
	}
	pfd, err := u.openInRoot(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open parent: %w", err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil // replaced by a later entry
	}
	return u.meta(pfd, base, d.hdr)
}
