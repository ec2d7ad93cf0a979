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
	"time"
)

// Default limits of LoadOptions.
const (
	DefaultMaxFileSize   = 1 << 20  // 1 MiB
	DefaultMaxTreeSize   = 16 << 20 // 16 MiB
	DefaultMaxDocuments  = 1000
	DefaultMaxObjects    = 10000
	DefaultMaxDepth      = 64
	DefaultMaxAliasNodes = 10000
	DefaultMaxBuildTime  = 30 * time.Second
	DefaultMaxBuildReads = 2000
	DefaultMaxBuildSteps = 2000
)

// LoadOptions bounds what a load may consume. The zero value means the
// defaults; a negative value is treated as the default too.
type LoadOptions struct {
	// MaxFileSize is the largest manifest file in bytes.
	MaxFileSize int64
	// MaxTreeSize is the total size in bytes of all manifest files. The
	// bytes kustomize builds read (each time they read a file) count against
	// it too, and so does the YAML each build produces.
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
	// MaxBuildTime is the longest one kustomize build may take.
	MaxBuildTime time.Duration
	// MaxBuildReads is the most file reads the kustomize builds of a load
	// may make in all (kustomize reads a file again each time it is
	// included). The bytes they read count against MaxTreeSize, each file
	// against MaxFileSize.
	MaxBuildReads int
	// MaxBuildSteps is the most generators and their sources, patches,
	// replacements, plugin configurations, images and replicas entries the
	// kustomizations of a load may declare in all, counting a kustomization
	// again each time it is included.
	MaxBuildSteps int
	// Decryptor decrypts, in memory, every SOPS-encrypted file of the tree
	// (see DetectSOPS) before it is decoded, and every one a kustomize build
	// reads (resources, patches, the files and envs of generators). Decrypted
	// data is never written anywhere, and a load keeps the values it
	// decrypted out of its errors and warnings. nil means no keys: an
	// encrypted file is then an error of that file, unless SkipEncrypted.
	Decryptor Decryptor
	// SkipEncrypted, when Decryptor is nil, leaves each SOPS-encrypted file
	// out of the load with a warning (Set.Warnings) instead of failing it; a
	// kustomization that reads one is not built, with a warning too. It is
	// for offline checks without keys (shoal validate and diff); the master
	// never sets it.
	SkipEncrypted bool
}

type limits struct {
	maxFileSize   int64
	maxTreeSize   int64
	maxDocuments  int
	maxObjects    int
	maxDepth      int
	maxAliasNodes int
	maxBuildTime  time.Duration
	maxBuildReads int
	maxBuildSteps int
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
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
		maxBuildTime:  orDefault(o.MaxBuildTime, DefaultMaxBuildTime),
		maxBuildReads: orDefault(o.MaxBuildReads, DefaultMaxBuildReads),
		maxBuildSteps: orDefault(o.MaxBuildSteps, DefaultMaxBuildSteps),
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
	// Skipped are the warnings about the SOPS-encrypted files that were left
	// out for want of a key (LoadOptions.SkipEncrypted), and the
	// kustomizations not built because they read one; they are in Warnings
	// too.
	Skipped ErrorList

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

// LoadDir loads the manifest tree under the directory dir, as LoadPaths
// loads one directory: kustomizations may use files anywhere in the
// enclosing git work tree (or, outside git, under dir). It never follows a
// symbolic link: a link anywhere in what it reads is an error.
func LoadDir(ctx context.Context, dir string, opts LoadOptions) (*Set, error) {
	l := newTreeLoader(opts)
	if err := l.dir(ctx, dir, ""); err != nil {
		return nil, err
	}
	return l.finish(ctx)
}

// noFollowFS reads a directory through an os.Root (no path can leave it)
// and refuses symbolic links: a path that is or passes through one cannot be
// opened.
type noFollowFS struct {
	root *os.Root
}

var (
	_ fs.ReadDirFS = noFollowFS{}
	_ fs.StatFS    = noFollowFS{}
)

// parents refuses a name whose parent directories include a symbolic link.
func (f noFollowFS) parents(op, name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		fi, err := f.root.Lstat(name[:i])
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return &fs.PathError{Op: op, Path: name, Err: errSymlink}
		}
	}
	return nil
}

func (f noFollowFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if err := f.parents("open", name); err != nil {
		return nil, err
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

// Stat does not follow links: a link is described as a link.
func (f noFollowFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	if err := f.parents("stat", name); err != nil {
		return nil, err
	}
	return f.root.Lstat(name)
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

// LoadFS loads the manifest tree at directory root of fsys, the repository.
//
// The directory rule, as Flux's kustomize-controller applies it: when root
// has a kustomization (kustomization.yaml, kustomization.yml or
// Kustomization), it is built as `kustomize build` builds it and nothing
// else is loaded. Otherwise every *.yaml and *.yml file under root is loaded
// as it is, recursively, except that a subdirectory with a kustomization of
// its own is built as one unit and not descended into (its other files are
// not loaded as plain YAML). Hidden files and directories (names starting
// with '.') are skipped.
//
// Kustomize builds read only fsys: a kustomization may use files anywhere in
// it (such as ../base from root), never outside it, never remote bases or
// resources, never plugins other than kustomize's builtin ones, and never
// Helm charts (see LoadOptions for their limits). Errors about built objects
// name the file and line the object was written in.
//
// Symbolic links are errors and are never followed. Errors name files
// relative to root. It returns an ErrorList with every problem of the tree
// when the tree is invalid.
func LoadFS(ctx context.Context, fsys fs.FS, root string, opts LoadOptions) (*Set, error) {
	if !fs.ValidPath(root) {
		return nil, fmt.Errorf("load manifests: invalid root %q: use a slash-separated path inside the tree, without '..' or a leading '/'", root)
	}
	l := newTreeLoader(opts)
	if err := l.walk(ctx, fsys, root, ""); err != nil {
		return nil, err
	}
	return l.finish(ctx)
}

// LoadPaths loads several directories and files as one tree, as `shoal
// validate PATH...` does: objects must be unique across all of them, and
// errors name files by the paths given (a directory's files joined to it).
// Each directory is loaded as LoadFS loads its root, in the repository of
// the git work tree that encloses it (found by looking for .git in it and
// its parents) or, outside git, in the directory itself: kustomize builds
// may use files anywhere in that repository, never outside it. A path that
// is a symbolic link is an error; a kustomization file stands for its
// directory.
func LoadPaths(ctx context.Context, paths []string, opts LoadOptions) (*Set, error) {
	l := newTreeLoader(opts)
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("load manifests: %w", err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("load manifests: %s is a symbolic link; pass the file or directory it points to", p)
		case fi.IsDir():
			prefix := strings.TrimSuffix(filepath.ToSlash(p), "/") + "/"
			if p == "." {
				prefix = ""
			}
			if err := l.dir(ctx, p, prefix); err != nil {
				return nil, err
			}
		case fi.Mode().IsRegular() && isKustomizationName(filepath.Base(p)):
			d := filepath.Dir(p)
			prefix := strings.TrimSuffix(filepath.ToSlash(d), "/") + "/"
			if d == "." {
				prefix = ""
			}
			if err := l.dir(ctx, d, prefix); err != nil {
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
	return l.finish(ctx)
}

// dir loads directory dir of the disk in its repository (see LoadPaths);
// names in errors start with prefix.
func (l *treeLoader) dir(ctx context.Context, dir, prefix string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("load manifests: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("load manifests: %s is a symbolic link; pass the directory it points to", dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("load manifests: %s is not a directory", dir)
	}
	repo, rel, err := RepositoryOf(dir)
	if err != nil {
		return fmt.Errorf("load manifests: %w", err)
	}
	root, err := os.OpenRoot(repo)
	if err != nil {
		return fmt.Errorf("load manifests: %w", err)
	}
	defer root.Close()
	return l.walk(ctx, noFollowFS{root}, rel, prefix)
}

// RepositoryOf returns the repository a directory of the disk belongs to
// for loading: the top of the git work tree that encloses it (the nearest
// of dir and its parents that has .git), or, outside git, dir itself; and
// the slash-separated path of dir in it.
func RepositoryOf(dir string) (repo, rel string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	for d := abs; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			r, err := filepath.Rel(d, abs)
			if err != nil {
				return "", "", err
			}
			return d, filepath.ToSlash(r), nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return abs, ".", nil
		}
		d = parent
	}
}

// treeLoader accumulates the objects and errors of one or more trees within
// one set of limits.
type treeLoader struct {
	lim     limits
	errs    ErrorList
	pending []pendingFile
	built   []located // objects of kustomize builds, decoded
	files   int       // files read by kustomize builds
	units   []unit
	spent   buildSpent
	total   int64
	tooBig  bool
	dec     *decrypter
	// warnings are the load's own: encrypted files left out.
	warnings ErrorList
}

func newTreeLoader(opts LoadOptions) *treeLoader {
	return &treeLoader{lim: opts.limits(), dec: newDecrypter(opts)}
}

// pendingFile is a manifest file read and waiting to be decoded.
type pendingFile struct {
	name string
	data []byte
}

func (l *treeLoader) errorf(name string, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: name, Msg: fmt.Sprintf(format, args...)})
}

// walk loads the tree at directory root of fsys by the directory rule (see
// LoadFS); names in errors are prefix + the path relative to root.
func (l *treeLoader) walk(ctx context.Context, fsys fs.FS, root, prefix string) error {
	name := func(rel string) string { return displayName(root, prefix, rel) }
	if fi, err := fs.Stat(fsys, root); err == nil && fi.IsDir() {
		kf, err := kustomizationIn(fsys, root)
		if err != nil {
			l.errorf(name(kf), "%v", err)
			return nil
		}
		if kf != "" {
			l.kustomize(ctx, fsys, root, kf, name)
			return nil
		}
	}
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		rel := prefix + relName(root, p)
		if err != nil {
			if p == root {
				return err
			}
			l.errorf(rel, "cannot read: %v", unwrapPathError(err))
			return nil
		}
		base := d.Name()
		if p != root && strings.HasPrefix(base, ".") {
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
			if p == root {
				return nil
			}
			kf, err := kustomizationIn(fsys, p)
			if err != nil {
				l.errorf(name(kf), "%v", err)
				return fs.SkipDir
			}
			if kf != "" {
				l.kustomize(ctx, fsys, p, kf, name)
				return fs.SkipDir
			}
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
		return l.file(fsys, p, rel)
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("load manifests: %w", ctxErr)
		}
		return fmt.Errorf("load manifests under %q: %w", path.Join(prefix, root), err)
	}
	return nil
}

// kustomize builds the kustomization kfile of directory dir as one unit.
func (l *treeLoader) kustomize(ctx context.Context, fsys fs.FS, dir, kfile string, name func(string) string) {
	if l.tooBig {
		return
	}
	if l.spent.stopped {
		l.errorf(name(kfile), "not built: an earlier kustomize build of this tree did not finish in time")
		return
	}
	lim := l.lim
	lim.maxTreeSize -= l.total
	res := buildKustomization(ctx, fsys, dir, kfile, name, lim, &l.spent, l.dec)
	l.errs = append(l.errs, res.errs...)
	l.warnings = append(l.warnings, res.warnings...)
	l.built = append(l.built, res.items...)
	l.files += res.files
	l.units = append(l.units, unit{name: name(kfile), kfile: kfile, kusts: res.kusts})
}

// unit is a directory the load built with kustomize.
type unit struct {
	name  string   // of its kustomization, in errors
	kfile string   // its kustomization, in the repository
	kusts []string // every kustomization it read
}

// nestedUnits explains duplicates that come from a unit built on its own
// and included by another unit too: its objects are loaded twice.
func (l *treeLoader) nestedUnits() ErrorList {
	var errs ErrorList
	for _, a := range l.units {
		for _, b := range l.units {
			if a.kfile != b.kfile && slices.Contains(a.kusts, b.kfile) {
				errs = append(errs, &Error{File: b.name, Msg: fmt.Sprintf("this directory is built on its own (every directory of the tree with a kustomization is) and is also included by %s, so its objects are loaded twice: point the manifest path at the overlay you want, or move the base out of the loaded tree", a.name)})
			}
		}
	}
	return errs
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
	if l.total+l.spent.bytes > l.lim.maxTreeSize {
		l.tooBig = true
		l.errorf(rel, "the manifest tree is more than %d bytes (LoadOptions.MaxTreeSize) at this file, %d bytes so far; split the repository or raise the limit", l.lim.maxTreeSize, l.total+l.spent.bytes)
		return nil
	}
	data, outcome, e := l.dec.open(name, rel, data)
	switch outcome {
	case sopsSkipped:
		l.warnings = append(l.warnings, e)
		return nil
	case sopsFailed:
		l.errs = append(l.errs, e)
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
func (l *treeLoader) finish(ctx context.Context) (*Set, error) {
	if err := ctx.Err(); err != nil {
		// A build cut short says nothing about the tree.
		return nil, fmt.Errorf("load manifests: %w", err)
	}
	set, err := l.finishTree()
	// Whatever was decrypted stays out of what is reported.
	if list, ok := err.(ErrorList); ok {
		l.dec.redact(list)
	}
	if set != nil {
		l.dec.redact(set.Warnings)
	}
	return set, err
}

// finishTree is finish once the context is known to be live.
func (l *treeLoader) finishTree() (*Set, error) {
	if l.tooBig {
		return nil, l.errs.Err()
	}
	items, errs := l.decodeAll()
	items = append(items, l.built...)
	l.errs = append(l.errs, errs...)
	if len(items) > l.lim.maxObjects {
		l.errorf(items[l.lim.maxObjects].src.file, "the manifest tree has more than %d objects (LoadOptions.MaxObjects) at this file, %d in all; split the repository or raise the limit", l.lim.maxObjects, len(items))
		return nil, l.errs.Err()
	}
	treeErrs := validateTree(items)
	l.errs = append(l.errs, treeErrs...)
	if slices.ContainsFunc(treeErrs, func(e *Error) bool { return strings.HasPrefix(e.Msg, "duplicate ") }) {
		l.errs = append(l.errs, l.nestedUnits()...)
	}
	if len(l.errs) > 0 {
		return nil, l.errs.Err()
	}
	s := newSet(items, len(l.pending)+l.files)
	if len(l.warnings) > 0 {
		s.Skipped = slices.Clone(l.warnings)
		s.Skipped.Sort()
		s.Warnings = append(s.Warnings, l.warnings...)
		s.Warnings.Sort()
	}
	return s, nil
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
