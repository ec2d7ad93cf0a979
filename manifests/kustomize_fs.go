package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustRoot is where kustFS shows the repository to kustomize: kustomize
// works with absolute paths, and a path that leaves this directory (through
// "..", or an absolute path elsewhere) is outside the repository.
const kustRoot = "/repo"

// errReadOnly is returned by every write operation of kustFS.
var errReadOnly = errors.New("the manifest tree is read-only: a kustomize build may not write files")

// errBuildStopped is returned by every operation of kustFS after its build
// ran out of time, so that a build that keeps running stops at its next
// file operation.
var errBuildStopped = errors.New("kustomize build stopped: it ran longer than its time limit")

// kustFS is kustomize's view of a repository: a read-only
// filesys.FileSystem over an fs.FS whose root is the repository's root,
// shown to kustomize at kustRoot. It reads nothing outside the fs.FS, never
// follows symbolic links (the fs.FS refuses them), never shows .git, counts
// every read against the build's budget, and checks every kustomization file
// it serves (see kustomize_check.go) before kustomize sees it.
//
// A kustFS belongs to one build: kustomize calls it from one goroutine. Only
// stop may be called from another.
type kustFS struct {
	fsys fs.FS
	b    *build
	// stopped is set when the build's deadline passed.
	stopped atomic.Bool
}

var _ filesys.FileSystem = (*kustFS)(nil)

// repoPath turns a path of kustomize's into a path of the fs.FS ("." for
// the root), refusing paths outside the repository and inside .git.
func (k *kustFS) repoPath(p string) (string, error) {
	if k.stopped.Load() {
		return "", errBuildStopped
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(kustRoot, p)
	}
	p = filepath.ToSlash(filepath.Clean(p))
	var rel string
	switch {
	case p == kustRoot:
		rel = "."
	case strings.HasPrefix(p, kustRoot+"/"):
		rel = p[len(kustRoot)+1:]
	default:
		return "", &fs.PathError{Op: "open", Path: p, Err: errOutsideRepo}
	}
	for part := range strings.SplitSeq(rel, "/") {
		if part == ".git" {
			return "", &fs.PathError{Op: "open", Path: p, Err: errGitDir}
		}
	}
	if !fs.ValidPath(rel) {
		return "", &fs.PathError{Op: "open", Path: p, Err: fs.ErrInvalid}
	}
	return rel, nil
}

var (
	errOutsideRepo = errors.New("is outside the repository: kustomize may read only files of the repository; vendor what you need into it")
	errGitDir      = errors.New("is inside .git: kustomize may read only files committed in the repository")
)

// kustPath is the path kustomize sees for a path of the fs.FS.
func kustPath(rel string) string {
	if rel == "." {
		return kustRoot
	}
	return kustRoot + "/" + rel
}

// count charges one file operation to the build's budget.
func (k *kustFS) count(p string) error {
	b := k.b
	b.reads++
	if b.reads > b.lim.maxBuildReads {
		return b.limitf(p, "a kustomize build read more than %d files (LoadOptions.MaxBuildReads); a kustomization that includes the same bases many times, or very many files, makes this: simplify it or raise the limit", b.lim.maxBuildReads)
	}
	return nil
}

func (k *kustFS) stat(p string) (string, fs.FileInfo, error) {
	rel, err := k.repoPath(p)
	if err != nil {
		return "", nil, err
	}
	fi, err := fs.Stat(k.fsys, rel)
	if err != nil {
		return rel, nil, err
	}
	return rel, fi, nil
}

// Create implements filesys.FileSystem; the tree is read-only.
func (k *kustFS) Create(p string) (filesys.File, error) {
	return nil, &fs.PathError{Op: "create", Path: p, Err: errReadOnly}
}

// Mkdir implements filesys.FileSystem; the tree is read-only.
func (k *kustFS) Mkdir(p string) error { return &fs.PathError{Op: "mkdir", Path: p, Err: errReadOnly} }

// MkdirAll implements filesys.FileSystem; the tree is read-only.
func (k *kustFS) MkdirAll(p string) error {
	return &fs.PathError{Op: "mkdir", Path: p, Err: errReadOnly}
}

// RemoveAll implements filesys.FileSystem; the tree is read-only.
func (k *kustFS) RemoveAll(p string) error {
	return &fs.PathError{Op: "remove", Path: p, Err: errReadOnly}
}

// WriteFile implements filesys.FileSystem; the tree is read-only.
func (k *kustFS) WriteFile(p string, _ []byte) error {
	return &fs.PathError{Op: "write", Path: p, Err: errReadOnly}
}

// Open implements filesys.FileSystem: the file is read whole, as ReadFile
// reads it, and served from memory.
func (k *kustFS) Open(p string) (filesys.File, error) {
	data, err := k.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return &kustFile{r: bytes.NewReader(data), info: memInfo{name: path.Base(filepath.ToSlash(p)), size: int64(len(data))}}, nil
}

// IsDir implements filesys.FileSystem.
func (k *kustFS) IsDir(p string) bool {
	_, fi, err := k.stat(p)
	return err == nil && fi.IsDir()
}

// Exists implements filesys.FileSystem. A symbolic link exists (reading it
// fails with a clear error).
func (k *kustFS) Exists(p string) bool {
	_, _, err := k.stat(p)
	return err == nil || isSymlinkErr(err)
}

// ReadDir implements filesys.FileSystem: the names in directory p, sorted.
func (k *kustFS) ReadDir(p string) ([]string, error) {
	rel, err := k.repoPath(p)
	if err != nil {
		return nil, err
	}
	if err := k.count(rel); err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(k.fsys, rel)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Name() != ".git" {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// CleanedAbs implements filesys.FileSystem.
func (k *kustFS) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	rel, fi, err := k.stat(p)
	if err != nil {
		return "", "", err
	}
	if fi.IsDir() {
		return filesys.ConfirmedDir(kustPath(rel)), "", nil
	}
	return filesys.ConfirmedDir(kustPath(path.Dir(rel))), path.Base(rel), nil
}

// Glob implements filesys.FileSystem, skipping hidden files as kustomize's
// own file systems do unless the pattern names them.
func (k *kustFS) Glob(pattern string) ([]string, error) {
	rel, err := k.repoPath(pattern)
	if err != nil {
		return nil, err
	}
	if err := k.count(rel); err != nil {
		return nil, err
	}
	matches, err := fs.Glob(k.fsys, rel)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		out = append(out, kustPath(m))
	}
	if !filesys.IsHiddenFilePath(pattern) {
		out = filesys.RemoveHiddenFiles(out)
	}
	return out, nil
}

// Walk implements filesys.FileSystem. Every entry counts as a read.
func (k *kustFS) Walk(p string, walkFn filepath.WalkFunc) error {
	rel, err := k.repoPath(p)
	if err != nil {
		return walkFn(p, nil, err)
	}
	return fs.WalkDir(k.fsys, rel, func(name string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() && d.Name() == ".git" {
			return fs.SkipDir
		}
		if err == nil {
			err = k.count(name)
		}
		if err == nil && k.stopped.Load() {
			err = errBuildStopped
		}
		var fi fs.FileInfo
		if err == nil {
			fi, err = d.Info()
		}
		return walkFn(kustPath(name), fi, err)
	})
}

// ReadFile implements filesys.FileSystem: it reads within the build's
// limits, and checks kustomization files and builtin plugin configurations
// before kustomize sees them.
func (k *kustFS) ReadFile(p string) ([]byte, error) {
	rel, err := k.repoPath(p)
	if err != nil {
		return nil, err
	}
	if err := k.count(rel); err != nil {
		return nil, err
	}
	b := k.b
	if fi, err := fs.Stat(k.fsys, rel); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, b.limitf(rel, "is a symbolic link; Shoal never follows links in a manifest tree: replace it with the file it points to")
	}
	data, err := readLimited(k.fsys, rel, b.lim.maxFileSize)
	if err != nil {
		if fi, serr := fs.Stat(k.fsys, rel); serr == nil && fi.IsDir() {
			// kustomize reads a resource as a file before trying it as a
			// directory: this is not a problem.
			return nil, &fs.PathError{Op: "read", Path: kustPath(rel), Err: errors.New("is a directory")}
		}
		if _, serr := fs.Stat(k.fsys, rel); errors.Is(serr, fs.ErrNotExist) {
			return nil, &fs.PathError{Op: "open", Path: kustPath(rel), Err: fs.ErrNotExist}
		}
		return nil, b.limitf(rel, "%v", err)
	}
	b.bytesRead += int64(len(data))
	b.files[rel] = true
	if b.bytesRead > b.lim.maxTreeSize {
		return nil, b.limitf(rel, "kustomize builds read more than %d bytes (LoadOptions.MaxTreeSize) at this file; a kustomization that includes the same large files many times makes this: simplify it or raise the limit", b.lim.maxTreeSize)
	}
	data, outcome, e := b.dec.open(rel, b.name(rel), data)
	switch outcome {
	case sopsSkipped:
		b.skipped = append(b.skipped, e)
		return nil, &fs.PathError{Op: "read", Path: kustPath(rel), Err: errSkipped}
	case sopsFailed:
		b.errs = append(b.errs, e)
		return nil, &fs.PathError{Op: "read", Path: kustPath(rel), Err: errRefused}
	}
	if line, ok := aliasesWithin(data, b.lim.maxAliasNodes); !ok {
		b.errs = append(b.errs, &Error{File: b.name(rel), Line: line,
			Msg: fmt.Sprintf("YAML aliases expand to more than %d nodes (LoadOptions.MaxAliasNodes); write the values out instead of nesting aliases", b.lim.maxAliasNodes)})
		return nil, &fs.PathError{Op: "read", Path: kustPath(rel), Err: errRefused}
	}
	if isKustomizationName(path.Base(rel)) {
		return b.serveKustomization(rel, data)
	}
	if err := b.checkPluginFile(rel, data); err != nil {
		return nil, err
	}
	return data, nil
}

// isKustomizationName reports whether a file name is one kustomize reads as
// a kustomization.
func isKustomizationName(name string) bool {
	switch name {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

func isSymlinkErr(err error) bool {
	if errors.Is(err, errSymlink) {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "symbolic link")
}

// kustFile is a file served to kustomize from memory.
type kustFile struct {
	r    *bytes.Reader
	info memInfo
}

func (f *kustFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *kustFile) Write([]byte) (int, error)  { return 0, errReadOnly }
func (f *kustFile) Close() error               { return nil }
func (f *kustFile) Stat() (os.FileInfo, error) { return f.info, nil }
func (f *kustFile) Seek(o int64, w int) (int64, error) {
	return f.r.Seek(o, w)
}

var _ io.ReadWriteCloser = (*kustFile)(nil)

type memInfo struct {
	name string
	size int64
}

func (m memInfo) Name() string       { return m.name }
func (m memInfo) Size() int64        { return m.size }
func (m memInfo) Mode() fs.FileMode  { return 0o444 }
func (m memInfo) ModTime() time.Time { return time.Time{} }
func (m memInfo) IsDir() bool        { return false }
func (m memInfo) Sys() any           { return nil }

// aliasesWithin reports whether the YAML aliases of every document of data
// expand to at most limit nodes beyond the document's own, as Shoal's decoder
// allows: kustomize expands aliases without a bound. Data that is not YAML
// passes (kustomize reports it). When it fails, line is where the document
// starts.
func aliasesWithin(data []byte, limit int) (line int, ok bool) {
	if !bytes.Contains(data, []byte("*")) || !bytes.Contains(data, []byte("&")) {
		return 0, true
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for range 100000 {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			return 0, true
		}
		c := &aliasCounter{cap: limit + len(data), memo: map[*yaml.Node]int{}}
		if total := c.size(&doc, 0); c.failed || total-c.distinct > limit {
			return doc.Line, false
		}
	}
	return 0, true
}

// aliasCounter measures the size of a YAML document with its aliases
// expanded, in time linear in its nodes. It gives up past cap, which is
// more than the limit plus as many distinct nodes as the file can hold.
type aliasCounter struct {
	cap      int
	memo     map[*yaml.Node]int // expanded size; -1 while being measured
	distinct int
	failed   bool
}

func (c *aliasCounter) size(n *yaml.Node, depth int) int {
	if n == nil || c.failed {
		return 0
	}
	if depth > 10000 {
		c.failed = true
		return 0
	}
	if n.Kind == yaml.AliasNode {
		return c.size(n.Alias, depth+1)
	}
	if v, ok := c.memo[n]; ok {
		if v < 0 {
			c.failed = true // an alias inside the node it names
			return 0
		}
		return v
	}
	c.memo[n] = -1
	c.distinct++
	total := 1
	for _, e := range n.Content {
		total += c.size(e, depth+1)
		if total > c.cap {
			c.failed = true
			break
		}
	}
	c.memo[n] = total
	return total
}
