package manifests

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Default limits of LoadOptions.
const (
	DefaultMaxFileSize   = 1 << 20  // 1 MiB
	DefaultMaxTreeSize   = 16 << 20 // 16 MiB
	DefaultMaxDocuments  = 1000
	DefaultMaxObjects    = 10000
	DefaultMaxDepth      = 64
	DefaultMaxAliasNodes = 10000
)

// LoadOptions bounds what a load may consume. The zero value means the
// defaults; a negative value is treated as the default too.
type LoadOptions struct {
	// MaxFileSize is the largest manifest file in bytes.
	MaxFileSize int64
	// MaxTreeSize is the total size in bytes of all manifest files.
	MaxTreeSize int64
	// MaxDocuments is the most YAML documents in one file.
	MaxDocuments int
	// MaxObjects is the most objects in a tree.
	MaxObjects int
	// MaxDepth is the deepest nesting of mappings and lists.
	MaxDepth int
	// MaxAliasNodes is the most nodes YAML aliases may expand to per
	// document.
	MaxAliasNodes int
}

type limits struct {
	maxFileSize   int64
	maxTreeSize   int64
	maxDocuments  int
	maxObjects    int
	maxDepth      int
	maxAliasNodes int
}

func orDefault[T int | int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (o LoadOptions) limits() limits {
	return limits{
		maxFileSize:   orDefault(o.MaxFileSize, DefaultMaxFileSize),
		maxTreeSize:   orDefault(o.MaxTreeSize, DefaultMaxTreeSize),
		maxDocuments:  orDefault(o.MaxDocuments, DefaultMaxDocuments),
		maxObjects:    orDefault(o.MaxObjects, DefaultMaxObjects),
		maxDepth:      orDefault(o.MaxDepth, DefaultMaxDepth),
		maxAliasNodes: orDefault(o.MaxAliasNodes, DefaultMaxAliasNodes),
	}
}

// Set is a loaded, defaulted and validated tree of objects.
type Set struct {
	// Objects are sorted by kind (Namespace, ConfigMap, Secret, Service,
	// Deployment, Pod), then namespace, then name.
	Objects []Object
	// Files is the number of manifest files read.
	Files int
	// Warnings are what loads but does nothing in Shoal (such as RBAC
	// objects), with file and line, sorted; print them with Error.Warning.
	Warnings ErrorList

	sources map[Object]*source
}

// Source returns the file and line of the document obj was read from, or
// ("", 0) when obj is not part of the set.
func (s *Set) Source(o Object) (file string, line int) {
	src := s.sources[o]
	if src == nil {
		return "", 0
	}
	return src.file, src.line
}

// FieldSource returns the file and line of a field of obj, such as
// "spec.template.spec.containers[0].image"; for a field that was not written
// (a default), the line of its nearest written parent.
func (s *Set) FieldSource(o Object, field string) (file string, line int) {
	src := s.sources[o]
	if src == nil {
		return "", 0
	}
	return src.file, src.lineOf(field)
}

// Get returns the object with the given key, or nil.
func (s *Set) Get(key ObjectKey) Object {
	for _, o := range s.Objects {
		if KeyOf(o) == key {
			return o
		}
	}
	return nil
}

// DecodeFile decodes, defaults and validates the objects of one file. name
// is used in errors. Cross-file checks (duplicates, Service target ports)
// cover only this file.
func DecodeFile(name string, data []byte, opts LoadOptions) ([]Object, ErrorList) {
	items, errs := decodeFile(name, data, opts.limits())
	for _, it := range items {
		SetDefaults(it.obj)
	}
	errs = append(errs, validateLocated(items)...)
	errs.Sort()
	objs := make([]Object, len(items))
	for i, it := range items {
		objs[i] = it.obj
	}
	if len(errs) == 0 {
		errs = nil
	}
	return objs, errs
}

// LoadDir loads the manifest tree under the directory dir. It never follows
// a symbolic link: a link anywhere in the tree is an error.
func LoadDir(ctx context.Context, dir string, opts LoadOptions) (*Set, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("load manifests: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("load manifests: %s is a symbolic link; pass the directory it points to", dir)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("load manifests: %s is not a directory", dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("load manifests: %w", err)
	}
	defer root.Close()
	return LoadFS(ctx, noFollowFS{root}, ".", opts)
}

// noFollowFS reads a directory through an os.Root (no path can leave it)
// and refuses to open symbolic links.
type noFollowFS struct {
	root *os.Root
}

func (f noFollowFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	fi, err := f.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errSymlink}
	}
	return f.root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}

func (f noFollowFS) ReadDir(name string) ([]fs.DirEntry, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	d, ok := file.(fs.ReadDirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := d.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

var errSymlink = errors.New("is a symbolic link")

// LoadFS loads the manifest tree under root in fsys: every *.yaml and *.yml
// file, skipping hidden files and directories (names starting with '.').
// Symbolic links are errors and are never followed. It returns an ErrorList
// with every problem of the tree when the tree is invalid.
func LoadFS(ctx context.Context, fsys fs.FS, root string, opts LoadOptions) (*Set, error) {
	if !fs.ValidPath(root) {
		return nil, fmt.Errorf("load manifests: invalid root %q: use a slash-separated path inside the tree, without '..' or a leading '/'", root)
	}
	l := &treeLoader{lim: opts.limits()}
	if err := l.walk(ctx, fsys, root, ""); err != nil {
		return nil, err
	}
	return l.finish()
}

// LoadPaths loads several directories and files as one tree, as `shoal
// validate PATH...` does: objects must be unique across all of them, and
// errors name files by the paths given (a directory's files joined to it).
// Directories are read as LoadDir reads them; a path that is a symbolic link
// is an error.
func LoadPaths(ctx context.Context, paths []string, opts LoadOptions) (*Set, error) {
	l := &treeLoader{lim: opts.limits()}
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("load manifests: %w", err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("load manifests: %s is a symbolic link; pass the file or directory it points to", p)
		case fi.IsDir():
			root, err := os.OpenRoot(p)
			if err != nil {
				return nil, fmt.Errorf("load manifests: %w", err)
			}
			prefix := strings.TrimSuffix(filepath.ToSlash(p), "/") + "/"
			if p == "." {
				prefix = ""
			}
			err = l.walk(ctx, noFollowFS{root}, ".", prefix)
			root.Close()
			if err != nil {
				return nil, err
			}
		case fi.Mode().IsRegular():
			root, err := os.OpenRoot(filepath.Dir(p))
			if err != nil {
				return nil, fmt.Errorf("load manifests: %w", err)
			}
			err = l.file(noFollowFS{root}, filepath.Base(p), filepath.ToSlash(p))
			root.Close()
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("load manifests: %s is not a regular file or a directory", p)
		}
	}
	return l.finish()
}

// treeLoader accumulates the objects and errors of one or more trees within
// one set of limits.
type treeLoader struct {
	lim     limits
	errs    ErrorList
	pending []pendingFile
	total   int64
	tooBig  bool
}

// pendingFile is a manifest file read and waiting to be decoded.
type pendingFile struct {
	name string
	data []byte
}

func (l *treeLoader) errorf(name string, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: name, Msg: fmt.Sprintf(format, args...)})
}

// walk loads the tree under root in fsys; names in errors are prefix + the
// path relative to root.
func (l *treeLoader) walk(ctx context.Context, fsys fs.FS, root, prefix string) error {
	err := fs.WalkDir(fsys, root, func(name string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		rel := prefix + relName(root, name)
		if err != nil {
			if name == root {
				return err
			}
			l.errorf(rel, "cannot read: %v", unwrapPathError(err))
			return nil
		}
		base := d.Name()
		if name != root && strings.HasPrefix(base, ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			l.errorf(rel, "is a symbolic link; Shoal never follows links in a manifest tree: replace it with the file or directory it points to")
			return nil
		}
		if d.IsDir() {
			return nil
		}
		ext := path.Ext(base)
		if ext != ".yaml" && ext != ".yml" {
			return nil
		}
		if !d.Type().IsRegular() {
			l.errorf(rel, "is not a regular file")
			return nil
		}
		return l.file(fsys, name, rel)
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("load manifests: %w", ctxErr)
		}
		return fmt.Errorf("load manifests under %q: %w", path.Join(prefix, root), err)
	}
	return nil
}

// file reads one manifest file; rel is its name in errors. Decoding waits
// for finish, which decodes the files of the tree in parallel.
func (l *treeLoader) file(fsys fs.FS, name, rel string) error {
	if l.tooBig {
		return nil
	}
	data, err := readLimited(fsys, name, l.lim.maxFileSize)
	if err != nil {
		l.errorf(rel, "%v", err)
		return nil
	}
	l.total += int64(len(data))
	if l.total > l.lim.maxTreeSize {
		l.tooBig = true
		l.errorf(rel, "the manifest tree is more than %d bytes (LoadOptions.MaxTreeSize) at this file, %d bytes so far; split the repository or raise the limit", l.lim.maxTreeSize, l.total)
		return nil
	}
	l.pending = append(l.pending, pendingFile{name: rel, data: data})
	return nil
}

// decodeAll decodes, defaults and validates (each object on its own) the
// pending files on every CPU; the result keeps the order of the files.
func (l *treeLoader) decodeAll() ([]located, ErrorList) {
	type result struct {
		items []located
		errs  ErrorList
	}
	results := make([]result, len(l.pending))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(l.pending)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f := l.pending[i]
				items, errs := decodeFile(f.name, f.data, l.lim)
				for _, it := range items {
					SetDefaults(it.obj)
				}
				results[i].items, results[i].errs = items, append(errs, validateEach(items)...)
			}
		}()
	}
	for i := range l.pending {
		next <- i
	}
	close(next)
	wg.Wait()
	var items []located
	var errs ErrorList
	for _, r := range results {
		items = append(items, r.items...)
		errs = append(errs, r.errs...)
	}
	return items, errs
}

// finish decodes, defaults and validates what was read: each object, then
// the tree.
func (l *treeLoader) finish() (*Set, error) {
	if l.tooBig {
		return nil, l.errs.Err()
	}
	items, errs := l.decodeAll()
	l.errs = append(l.errs, errs...)
	if len(items) > l.lim.maxObjects {
		l.errorf(items[l.lim.maxObjects].src.file, "the manifest tree has more than %d objects (LoadOptions.MaxObjects) at this file, %d in all; split the repository or raise the limit", l.lim.maxObjects, len(items))
		return nil, l.errs.Err()
	}
	l.errs = append(l.errs, validateTree(items)...)
	if len(l.errs) > 0 {
		return nil, l.errs.Err()
	}
	return newSet(items, len(l.pending)), nil
}

func newSet(items []located, files int) *Set {
	s := &Set{Files: files, sources: make(map[Object]*source, len(items))}
	slices.SortStableFunc(items, func(a, b located) int {
		_, ka, _ := kindByName(a.obj.GetKind())
		_, kb, _ := kindByName(b.obj.GetKind())
		ma, mb := a.obj.GetObjectMeta(), b.obj.GetObjectMeta()
		return cmp.Or(cmp.Compare(ka, kb), cmp.Compare(ma.Namespace, mb.Namespace), cmp.Compare(ma.Name, mb.Name))
	})
	s.Objects = make([]Object, len(items))
	for i, it := range items {
		s.Objects[i] = it.obj
		s.sources[it.obj] = it.src
	}
	s.Warnings = objectWarnings(items)
	return s
}

func relName(root, name string) string {
	if root == "." {
		return name
	}
	if r, ok := strings.CutPrefix(name, root+"/"); ok {
		return r
	}
	return name
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readLimited reads a file of at most max bytes, without trusting Stat.
func readLimited(fsys fs.FS, name string, max int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		if errors.Is(err, errSymlink) {
			return nil, fmt.Errorf("is a symbolic link; Shoal never follows links in a manifest tree")
		}
		return nil, fmt.Errorf("cannot open: %v", unwrapPathError(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		return nil, fmt.Errorf("file is %d bytes, more than the limit of %d bytes (LoadOptions.MaxFileSize); split it into smaller files", fi.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %v", unwrapPathError(err))
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("file is more than the limit of %d bytes (LoadOptions.MaxFileSize); split it into smaller files", max)
	}
	return data, nil
}
