package manifests

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

// Kustomize builds. A directory with a kustomization is built by
// sigs.k8s.io/kustomize/api (krusty), the library `kustomize build` and
// Flux's kustomize-controller use, over kustFS: the repository's tree, read
// only, never the network, never a program.
//
// kustomize keeps global state (its OpenAPI schema) and is not safe for
// concurrent builds, takes no context and may panic on odd input. Builds
// therefore run one at a time, each in a goroutine of its own that recovers
// panics, while the caller waits at most until the build's deadline. A build
// that overruns it cannot be interrupted: its goroutine goes on until
// kustomize returns, but every file operation fails from then on (so it stops
// at its next read), and it holds the build slot until it returns, so that at
// most one kustomize goroutine ever runs; later builds wait for the slot no
// longer than their own deadline.

// buildSlot is held by the one running kustomize build.
var buildSlot = make(chan struct{}, 1)

// Annotations kustomize adds when buildMetadata asks for them.
const (
	originAnnotation      = "config.kubernetes.io/origin"
	transformerAnnotation = "alpha.config.kubernetes.io/transformations"
)

// build is the state of one kustomize build: the budget it may spend and what
// kustFS found while serving files. Only the build's goroutine touches it
// until the build returns.
type build struct {
	fsys  fs.FS
	lim   limits
	dir   string // the built directory, in the repository
	kfile string // its kustomization file, in the repository
	name  func(rel string) string

	reads     int
	bytesRead int64
	steps     int
	files     map[string]bool
	errs      ErrorList
	kusts     map[string]*kustDoc
	// userOrigin is set when the built kustomization itself asks for origin
	// annotations, which then stay on the objects.
	userOrigin bool
	// dec decrypts the SOPS files the build reads; skipped are the
	// warnings for those it could not for want of a key.
	dec     *decrypter
	skipped ErrorList
}

// limitError is returned to kustomize when the build broke a limit or a
// rule; the reason is in build.errs.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// limitf records a problem with file rel and returns the error kustomize
// gets.
func (b *build) limitf(rel, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	b.errs = append(b.errs, &Error{File: b.name(rel), Msg: msg})
	return &limitError{msg: msg}
}

// builtObject is one object of a build's output.
type builtObject struct {
	yaml   []byte
	origin *resource.Origin
}

// kustomizationIn returns the kustomization file of directory dir of fsys
// ("" when there is none), or an error, with the file it is about, for
// several or for one that cannot be read.
func kustomizationIn(fsys fs.FS, dir string) (string, error) {
	var found []string
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		p := path.Join(dir, n)
		fi, err := fs.Stat(fsys, p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil && isSymlinkErr(err), err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return p, errors.New("is a symbolic link; Shoal never follows links in a manifest tree: replace it with the file it points to")
		case err != nil:
			return p, fmt.Errorf("cannot read: %v", unwrapPathError(err))
		case fi.IsDir():
			continue
		}
		found = append(found, p)
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return found[0], fmt.Errorf("the directory has more than one kustomization file (%s); kustomize needs exactly one: remove the others", strings.Join(baseNames(found), ", "))
}

func baseNames(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = path.Base(p)
	}
	return out
}

// errBuildTimeout marks a build that ran out of time.
var errBuildTimeout = errors.New("kustomize build timed out")

// run builds b.dir with kustomize within the deadline and returns its
// objects, or the error kustomize returned.
func (b *build) run(ctx context.Context) ([]builtObject, error) {
	timer := time.NewTimer(b.lim.maxBuildTime)
	defer timer.Stop()
	select {
	case buildSlot <- struct{}{}:
	case <-timer.C:
		return nil, fmt.Errorf("%w: waited %v for an earlier kustomize build to finish (LoadOptions.MaxBuildTime)", errBuildTimeout, b.lim.maxBuildTime)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	kfs := &kustFS{fsys: b.fsys, b: b}
	type result struct {
		objs []builtObject
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-buildSlot }()
		objs, err := b.kustomize(kfs)
		done <- result{objs, err}
	}()
	select {
	case r := <-done:
		return r.objs, r.err
	case <-timer.C:
		kfs.stopped.Store(true)
		return nil, fmt.Errorf("%w: it ran longer than %v (LoadOptions.MaxBuildTime); a kustomization that includes the same bases very many times, or very many patches, makes this: simplify it or raise the limit", errBuildTimeout, b.lim.maxBuildTime)
	case <-ctx.Done():
		kfs.stopped.Store(true)
		return nil, ctx.Err()
	}
}

// kustomize runs krusty in the calling goroutine, turning panics into
// errors.
func (b *build) kustomize(kfs *kustFS) (objs []builtObject, err error) {
	defer func() {
		if r := recover(); r != nil {
			objs, err = nil, fmt.Errorf("kustomize failed unexpectedly (a bug in kustomize, likely triggered by unusual input): %v", r)
		}
	}()
	// Each build starts from kustomize's builtin schema, whatever an earlier
	// build's kustomization set (openapi: path:).
	openapi.ResetOpenAPI()
	defer openapi.ResetOpenAPI()
	opts := krusty.MakeDefaultOptions()
	// Files may come from anywhere in the repository, as Flux allows; kustFS
	// keeps them inside it.
	opts.LoadRestrictions = types.LoadRestrictionsNone
	opts.PluginConfig = types.DisabledPluginConfig()
	m, err := krusty.MakeKustomizer(opts).Run(kfs, kustPath(b.dir))
	if err != nil {
		return nil, err
	}
	if len(b.errs) > 0 {
		return nil, errRefused
	}
	if len(b.skipped) > 0 {
		return nil, errSkipped
	}
	res := m.Resources()
	if len(res) > b.lim.maxObjects {
		return nil, b.limitf(b.kfile, "the kustomization builds %d objects, more than %d (LoadOptions.MaxObjects); split the repository or raise the limit", len(res), b.lim.maxObjects)
	}
	var size int64
	objs = make([]builtObject, 0, len(res))
	for _, r := range res {
		origin, err := r.GetOrigin()
		if err != nil {
			origin = nil
		}
		if !b.userOrigin {
			if err := r.SetOrigin(nil); err != nil {
				return nil, fmt.Errorf("remove origin annotation: %w", err)
			}
		}
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", r.CurId(), err)
		}
		size += int64(len(y))
		if size > b.lim.maxTreeSize {
			return nil, b.limitf(b.kfile, "the kustomization builds more than %d bytes of objects (LoadOptions.MaxTreeSize); split the repository or raise the limit", b.lim.maxTreeSize)
		}
		objs = append(objs, builtObject{yaml: y, origin: origin})
	}
	return objs, nil
}

// buildKustomization builds the kustomization in directory dir of fsys and
// decodes, defaults and validates (each on its own) the objects it makes. Its
// errors name the source files and lines of the objects. budget is what the
// load has left; the build's spending is added to it.
func buildKustomization(ctx context.Context, fsys fs.FS, dir, kfile string, name func(string) string, lim limits, spent *buildSpent, dec *decrypter) unitResult {
	b := &build{
		fsys: fsys, dir: dir, kfile: kfile, name: name,
		lim:   lim,
		files: map[string]bool{},
		kusts: map[string]*kustDoc{},
		dec:   dec,
	}
	b.lim.maxBuildReads -= spent.reads
	b.lim.maxTreeSize -= spent.bytes
	b.lim.maxBuildSteps -= spent.steps
	objs, err := b.run(ctx)
	if errors.Is(err, errBuildTimeout) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		spent.stopped = true
		return unitResult{errs: ErrorList{{File: name(kfile), Msg: err.Error()}}}
	}
	spent.reads += b.reads
	spent.bytes += b.bytesRead
	spent.steps += b.steps
	if err != nil {
		if len(b.errs) > 0 {
			return unitResult{errs: b.errs}
		}
		if len(b.skipped) > 0 {
			w := append(ErrorList{{File: name(kfile), Msg: fmt.Sprintf("not built, so none of its objects was checked: it reads %d SOPS-encrypted %s and no key was given; pass --sops-age-key-file or --sops-gpg-keyring to check it", len(b.skipped), plural(len(b.skipped), "file", "files"))}}, b.skipped...)
			return unitResult{warnings: w}
		}
		return unitResult{errs: ErrorList{b.kustomizeError(err)}}
	}
	var items []located
	var errs ErrorList
	m := newOriginMapper(b)
	for _, o := range objs {
		src := m.source(o)
		objLim := lim
		objLim.maxFileSize = max(lim.maxFileSize, int64(len(o.yaml)))
		got, derrs := decodeFile(src.file, o.yaml, objLim)
		built := builtLines(o.yaml)
		for _, e := range derrs {
			errs = append(errs, m.mapError(e, src, built))
		}
		for i := range got {
			got[i].src = src
			SetDefaults(got[i].obj)
		}
		items = append(items, got...)
		for _, e := range validateEach(got) {
			errs = append(errs, m.annotate(e, src))
		}
	}
	res := unitResult{items: items, files: len(b.files), errs: errs, kfile: kfile}
	for k := range b.kusts {
		res.kusts = append(res.kusts, k)
	}
	return res
}

// unitResult is what building one directory gave.
type unitResult struct {
	items    []located
	files    int // files read
	errs     ErrorList
	warnings ErrorList
	kfile    string   // the unit's kustomization
	kusts    []string // every kustomization it read
}

// buildSpent is what a load's kustomize builds have spent of its budget.
type buildSpent struct {
	reads   int
	bytes   int64
	steps   int
	stopped bool // a build timed out or was cancelled: build no more
}

// displayName returns the name of repository path rel in errors of a load
// rooted at root whose names start with prefix.
func displayName(root, prefix, rel string) string {
	r, err := filepath.Rel(filepath.FromSlash(root), filepath.FromSlash(rel))
	if err != nil {
		r = rel
	}
	r = filepath.ToSlash(r)
	if r == "." {
		r = ""
	}
	if strings.HasPrefix(r, "../") || r == ".." {
		if prefix == "" {
			return r
		}
		return path.Join(prefix, r)
	}
	if r == "" {
		return strings.TrimSuffix(prefix, "/")
	}
	return prefix + r
}

// genericFieldLines records the line of every field of a YAML document by
// field path, for both readings of a mapping key: a struct field (".key")
// and a map entry ("[key]"), since a generic walk cannot know which of them
// Shoal's types make of it. Paths below a key continue from its struct-field
// reading only (map values in Shoal's types are scalars).
func genericFieldLines(root *yaml.Node, limit int) map[string]int {
	fields := map[string]int{}
	var walk func(n *yaml.Node, p string, depth int)
	walk = func(n *yaml.Node, p string, depth int) {
		n = resolveAlias(n)
		if n == nil || depth > 64 || len(fields) > limit {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.ShortTag() == "!!merge" {
					continue
				}
				dot, idx := joinField(p, k.Value), p+"["+k.Value+"]"
				fields[dot], fields[idx] = k.Line, k.Line
				walk(n.Content[i+1], dot, depth+1)
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				ip := fmt.Sprintf("%s[%d]", p, i)
				fields[ip] = e.Line
				walk(e, ip, depth+1)
			}
		}
	}
	walk(root, "", 0)
	return fields
}
