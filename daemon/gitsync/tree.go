package gitsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Errors of the fs.FS returned by Tree, wrapped in *fs.PathError.
var (
	// ErrSymlink: the path is or passes through a symbolic link, which is
	// never followed.
	ErrSymlink = errors.New("is a symbolic link; links in the repository are not followed")
	// ErrSubmodule: the path is a submodule, whose contents are not part
	// of the repository.
	ErrSubmodule = errors.New("is a git submodule; Shoal reads only files committed in this repository")
	// ErrObjectTooLarge: the file is larger than Config.MaxObjectSize.
	ErrObjectTooLarge = errors.New("file larger than the maximum object size")
)

// Tree returns the tree of commit sha at Config.Path as a read-only file
// system, read from git objects. It implements fs.ReadDirFS (entries
// sorted by name), fs.StatFS and fs.ReadFileFS. Symbolic links appear with
// fs.ModeSymlink and cannot be opened or passed through; submodules appear
// as directories with fs.ModeIrregular that cannot be read; opening a file
// larger than Config.MaxObjectSize fails with ErrObjectTooLarge. The file
// system may be used from any goroutine; ctx bounds only the lookup of the
// commit.
func (s *Syncer) Tree(ctx context.Context, sha string) (fs.FS, error) {
	t, dir, err := s.repoTree(ctx, sha)
	if err != nil {
		return nil, err
	}
	if dir != "." {
		s.readMu.Lock()
		e, err := t.lookup(dir)
		s.readMu.Unlock()
		if err != nil {
			return nil, err
		}
		t.root = e.hash
	}
	return t, nil
}

// RepoTree returns the whole tree of commit sha, as Tree returns its
// Config.Path directory, and the path of that directory in it ("." for the
// root), which it checks is a directory of the commit. Loaders that let
// files of the manifest directory refer to the rest of the repository (such
// as kustomizations using ../base) read from it.
func (s *Syncer) RepoTree(ctx context.Context, sha string) (fs.FS, string, error) {
	t, dir, err := s.repoTree(ctx, sha)
	if err != nil {
		return nil, "", err
	}
	return t, dir, nil
}

func (s *Syncer) repoTree(ctx context.Context, sha string) (*treeFS, string, error) {
	hash, err := parseSHA(sha)
	if err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	c, err := s.commit(hash)
	if err != nil {
		return nil, "", err
	}
	src := &objects{mu: &s.readMu, repo: func() *git.Repository { return s.readRepo }, maxObjectSize: s.cfg.MaxObjectSize}
	t, err := commitTree(src, c)
	if err != nil {
		return nil, "", err
	}
	if s.src.path != "." {
		if err := t.checkDir(s.src.path); err != nil {
			return nil, "", err
		}
	}
	return t, s.src.path, nil
}

// CommitTree returns the whole tree of a commit of repo as Tree returns the
// followed repository's: read from git objects, links and submodules never
// followed, no file larger than maxObjectSize opened. repo must not be used
// by others while the file system is in use.
func CommitTree(repo *git.Repository, commit plumbing.Hash, maxObjectSize int64) (fs.FS, error) {
	c, err := repo.CommitObject(commit)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", commit, err)
	}
	if maxObjectSize <= 0 {
		maxObjectSize = DefaultMaxObjectSize
	}
	src := &objects{mu: &sync.Mutex{}, repo: func() *git.Repository { return repo }, maxObjectSize: maxObjectSize}
	return commitTree(src, c)
}

func commitTree(src *objects, c *object.Commit) (*treeFS, error) {
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of commit %s: %w", c.Hash, err)
	}
	return &treeFS{src: src, root: root.Hash, modTime: c.Committer.When, commit: c.Hash}, nil
}

// checkDir checks that dir is a directory of the tree. The read lock must
// be held.
func (t *treeFS) checkDir(dir string) error {
	e, err := t.lookup(dir)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("commit %.12s has no directory %q: check the manifest path setting", t.commit, dir)
		}
		return fmt.Errorf("commit %.12s: manifest directory: %w", t.commit, err)
	}
	if e.mode != filemode.Dir {
		return fmt.Errorf("commit %.12s: %q is not a directory: check the manifest path setting", t.commit, dir)
	}
	return nil
}

// objects is where a treeFS reads git objects: a repository, behind a lock
// (go-git storage is not safe for concurrent use), and the largest blob it
// opens.
type objects struct {
	mu            *sync.Mutex
	repo          func() *git.Repository // called with mu held
	maxObjectSize int64
}

// treeFS is the fs.FS of one git tree. Every operation takes the objects'
// lock and reads the objects it needs.
type treeFS struct {
	src     *objects
	root    plumbing.Hash
	commit  plumbing.Hash
	modTime time.Time
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
)

// entry is a resolved path in the tree.
type entry struct {
	name string
	mode filemode.FileMode
	hash plumbing.Hash
}

// lookup resolves name (a valid fs path) without following links. The
// read lock must be held.
func (t *treeFS) lookup(name string) (entry, error) {
	e := entry{name: ".", mode: filemode.Dir, hash: t.root}
	if name == "." {
		return e, nil
	}
	for part := range strings.SplitSeq(name, "/") {
		switch e.mode {
		case filemode.Dir:
		case filemode.Symlink:
			return entry{}, &fs.PathError{Op: "open", Path: name, Err: ErrSymlink}
		case filemode.Submodule:
			return entry{}, &fs.PathError{Op: "open", Path: name, Err: ErrSubmodule}
		default:
			return entry{}, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		tree, err := t.tree(e.hash)
		if err != nil {
			return entry{}, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		found := false
		for _, te := range tree.Entries {
			if te.Name == part {
				e = entry{name: part, mode: te.Mode, hash: te.Hash}
				found = true
				break
			}
		}
		if !found {
			return entry{}, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
	}
	return e, nil
}

func (t *treeFS) tree(h plumbing.Hash) (*object.Tree, error) {
	tree, err := t.src.repo().TreeObject(h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s of commit %s: %w", h, t.commit, err)
	}
	return tree, nil
}

// Open implements fs.FS.
func (t *treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	t.src.mu.Lock()
	defer t.src.mu.Unlock()
	e, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	switch e.mode {
	case filemode.Symlink:
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrSymlink}
	case filemode.Submodule:
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrSubmodule}
	case filemode.Dir:
		entries, err := t.readDir(e.hash)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{info: t.info(e, 0), entries: entries}, nil
	}
	blob, err := t.src.repo().BlobObject(e.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("read blob %s of commit %s: %w", e.hash, t.commit, err)}
	}
	if max := t.src.maxObjectSize; blob.Size > max {
		return nil, &fs.PathError{Op: "open", Path: name,
			Err: fmt.Errorf("%w: %d bytes, more than %d; keep large files out of the manifest directory or raise the maximum object size", ErrObjectTooLarge, blob.Size, max)}
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, blob.Size+1))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if int64(len(data)) != blob.Size {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("blob %s has %d bytes, its header says %d", e.hash, len(data), blob.Size)}
	}
	return &blobFile{info: t.info(e, blob.Size), r: bytes.NewReader(data)}, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	f, err := t.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bf, ok := f.(*blobFile)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	return io.ReadAll(bf.r)
}

// Stat implements fs.StatFS. It does not follow links.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	t.src.mu.Lock()
	defer t.src.mu.Unlock()
	e, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	return t.info(e, t.size(e)), nil
}

// ReadDir implements fs.ReadDirFS.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	t.src.mu.Lock()
	defer t.src.mu.Unlock()
	e, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	switch e.mode {
	case filemode.Dir:
	case filemode.Symlink:
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: ErrSymlink}
	case filemode.Submodule:
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: ErrSubmodule}
	default:
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := t.readDir(e.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
}

// readDir lists a tree, sorted by name. Sizes of files are read lazily by
// DirEntry.Info. The read lock must be held.
func (t *treeFS) readDir(h plumbing.Hash) ([]fs.DirEntry, error) {
	tree, err := t.tree(h)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(tree.Entries))
	for _, te := range tree.Entries {
		out = append(out, &dirEntry{t: t, e: entry{name: te.Name, mode: te.Mode, hash: te.Hash}})
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// size returns the size of a file entry, or 0. The read lock must be held.
func (t *treeFS) size(e entry) int64 {
	if !e.mode.IsFile() || e.mode == filemode.Symlink {
		return 0
	}
	blob, err := t.src.repo().BlobObject(e.hash)
	if err != nil {
		return 0
	}
	return blob.Size
}

func (t *treeFS) info(e entry, size int64) *fileInfo {
	return &fileInfo{name: e.name, size: size, mode: fsMode(e.mode), modTime: t.modTime}
}

// fsMode maps a git file mode to an fs.FileMode.
func fsMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir:
		return fs.ModeDir | 0o555
	case filemode.Executable:
		return 0o555
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Submodule:
		return fs.ModeDir | fs.ModeIrregular | 0o555
	case filemode.Regular, filemode.Deprecated:
		return 0o444
	default:
		return fs.ModeIrregular | 0o444
	}
}

type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.modTime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return nil }

type dirEntry struct {
	t *treeFS
	e entry
}

func (d *dirEntry) Name() string      { return d.e.name }
func (d *dirEntry) IsDir() bool       { return fsMode(d.e.mode).IsDir() }
func (d *dirEntry) Type() fs.FileMode { return fsMode(d.e.mode).Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	d.t.src.mu.Lock()
	defer d.t.src.mu.Unlock()
	return d.t.info(d.e, d.t.size(d.e)), nil
}

type blobFile struct {
	info *fileInfo
	r    *bytes.Reader
}

func (f *blobFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *blobFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *blobFile) Close() error               { return nil }

// ReadAt and Seek let callers use the file as an io.ReaderAt/io.Seeker.
func (f *blobFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }
func (f *blobFile) Seek(off int64, whence int) (int64, error) {
	return f.r.Seek(off, whence)
}

type dirFile struct {
	info    *fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return slices.Clone(rest[:n]), nil
}

var _ fs.ReadDirFile = (*dirFile)(nil)
