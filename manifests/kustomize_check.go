package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/types"
)

// Checks of what kustomize is about to read. kustFS runs them on every
// kustomization file (and builtin plugin configuration) before kustomize sees
// it, so that problems are reported with their file and line, and so that
// nothing that would make kustomize reach the network or run a program (remote
// bases, Helm charts, plugins) is ever handed to it.

// errRefused is what kustFS returns to kustomize for a file that failed its
// checks; the reasons are in the build's errors.
var errRefused = errors.New("refused by Shoal's checks (see the other errors)")

// kustDoc is a kustomization file served to kustomize.
type kustDoc struct {
	rel  string     // path in the repository
	root *yaml.Node // the top-level mapping
}

// dir is the directory of the kustomization, in the repository.
func (d *kustDoc) dir() string { return path.Dir(d.rel) }

// kustChecker checks one kustomization file.
type kustChecker struct {
	b     *build
	rel   string
	dir   string
	file  string // display name
	errs  ErrorList
	nodes int // mapping and sequence nodes visited, against alias bombs
}

func (c *kustChecker) errorf(line int, field, format string, args ...any) {
	if len(c.errs) >= maxFileErrors {
		return
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// serveKustomization checks a kustomization file and returns what kustomize
// reads: the file as it is, or, for the build's own kustomization, with
// buildMetadata asking for origin annotations (which map built objects back
// to their source files and lines).
func (b *build) serveKustomization(rel string, data []byte) ([]byte, error) {
	c := &kustChecker{b: b, rel: rel, dir: path.Dir(rel), file: b.name(rel)}
	root := c.check(data)
	if len(c.errs) > 0 {
		b.errs = append(b.errs, c.errs...)
		return nil, &fs.PathError{Op: "read", Path: kustPath(rel), Err: errRefused}
	}
	if root == nil {
		// Not a mapping at all: kustomize reports it.
		return data, nil
	}
	b.kusts[rel] = &kustDoc{rel: rel, root: root}
	if rel != b.kfile {
		return data, nil
	}
	if kind, kn := str(root, "kind"); kind == types.ComponentKind {
		b.errs = append(b.errs, &Error{File: c.file, Line: kn.Line, Field: "kind",
			Msg: "a kustomize Component is not built by itself, only as part of a kustomization that lists it under components (Shoal builds every directory of the tree that has a kustomization, as Flux does): list it in one, or move it out of the loaded tree"})
		return nil, &fs.PathError{Op: "read", Path: kustPath(rel), Err: errRefused}
	}
	out, user, err := injectOrigin(root)
	if err != nil {
		return nil, b.limitf(rel, "cannot prepare the kustomization: %v", err)
	}
	b.userOrigin = user
	return out, nil
}

// check parses and checks the file; it returns its top-level mapping.
func (c *kustChecker) check(data []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := cleanYAMLError(err, data)
		c.errorf(line, "", "%s", msg)
		return nil
	}
	if len(doc.Content) == 0 {
		c.errorf(0, "", "the kustomization is empty: list its resources, or remove the file to load the directory's YAML files as they are")
		return nil
	}
	root := resolveAlias(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		c.errorf(root.Line, "", "a kustomization must be a mapping with fields such as resources, found %s", describeNode(root))
		return nil
	}
	c.shape(root, reflect.TypeFor[types.Kustomization](), "", 0)
	if len(c.errs) > 0 {
		return nil
	}
	c.kind(root)
	c.refuseHelm(root)
	c.paths(root)
	c.plugins(root)
	c.steps(root)
	return root
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// get returns the key and value nodes of field name of mapping n, matching
// as encoding/json does (exactly, else without regard to case), or nils.
func get(n *yaml.Node, name string) (key, val *yaml.Node) {
	n = resolveAlias(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return n.Content[i], resolveAlias(n.Content[i+1])
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.EqualFold(n.Content[i].Value, name) {
			return n.Content[i], resolveAlias(n.Content[i+1])
		}
	}
	return nil, nil
}

// items returns the elements of the sequence at field name of n.
func items(n *yaml.Node, name string) []*yaml.Node {
	_, v := get(n, name)
	if v == nil || v.Kind != yaml.SequenceNode {
		return nil
	}
	out := make([]*yaml.Node, len(v.Content))
	for i, e := range v.Content {
		out[i] = resolveAlias(e)
	}
	return out
}

// str returns the scalar value at field name of n.
func str(n *yaml.Node, name string) (string, *yaml.Node) {
	_, v := get(n, name)
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
		return "", nil
	}
	return v.Value, v
}

// shape checks node n against type t as kustomize decodes it (YAML to JSON,
// then encoding/json with unknown fields disallowed), reporting each problem
// at its line.
func (c *kustChecker) shape(n *yaml.Node, t reflect.Type, field string, depth int) {
	n = resolveAlias(n)
	if n == nil || len(c.errs) >= maxFileErrors {
		return
	}
	if depth > c.b.lim.maxDepth {
		c.errorf(n.Line, field, "nested more than %d levels deep (LoadOptions.MaxDepth)", c.b.lim.maxDepth)
		return
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		c.nodes++
		if c.nodes > c.b.lim.maxAliasNodes {
			if c.nodes == c.b.lim.maxAliasNodes+1 {
				c.errorf(n.Line, field, "the kustomization has more than %d mappings and lists (LoadOptions.MaxAliasNodes); simplify it", c.b.lim.maxAliasNodes)
			}
			return
		}
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Interface:
		return
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.errorf(n.Line, field, "expected a mapping, found %s", describeNode(n))
			return
		}
		info := structInfoOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.ShortTag() == "!!merge" {
				continue
			}
			f := info.byName[k.Value]
			if f == nil {
				for _, cand := range info.fields {
					if strings.EqualFold(cand.name, k.Value) {
						f = cand
						break
					}
				}
			}
			if f == nil {
				c.errorf(k.Line, field, "unknown field %q%s", k.Value, suggest(k.Value, info.names))
				continue
			}
			c.shape(v, f.typ, joinField(field, f.name), depth+1)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.errorf(n.Line, field, "expected a mapping, found %s", describeNode(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.shape(n.Content[i+1], t.Elem(), field+"["+n.Content[i].Value+"]", depth+1)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.errorf(n.Line, field, "expected a list, found %s", describeNode(n))
			return
		}
		for i, e := range n.Content {
			c.shape(e, t.Elem(), field+"["+strconv.Itoa(i)+"]", depth+1)
		}
	case reflect.String:
		c.scalar(n, field, "a string", "!!str", "!!timestamp", "!!binary")
	case reflect.Bool:
		c.scalar(n, field, "true or false", "!!bool")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		c.scalar(n, field, "an integer", "!!int")
	case reflect.Float32, reflect.Float64:
		c.scalar(n, field, "a number", "!!int", "!!float")
	}
}

func (c *kustChecker) scalar(n *yaml.Node, field, want string, tags ...string) {
	if n.Kind == yaml.ScalarNode {
		tag := n.ShortTag()
		for _, t := range tags {
			if tag == t {
				return
			}
		}
		if tags[0] == "!!str" && (tag == "!!int" || tag == "!!float" || tag == "!!bool") {
			c.errorf(n.Line, field, "expected %s, found %s; quote it: \"%s\"", want, describeNode(n), n.Value)
			return
		}
	}
	c.errorf(n.Line, field, "expected %s, found %s", want, describeNode(n))
}

func (c *kustChecker) kind(root *yaml.Node) {
	kind, kn := str(root, "kind")
	if kn != nil && kind != types.KustomizationKind && kind != types.ComponentKind {
		c.errorf(kn.Line, "kind", "a kustomization file has kind %s or %s, not %q", types.KustomizationKind, types.ComponentKind, kind)
		return
	}
	want := types.KustomizationVersion
	if kind == types.ComponentKind {
		want = types.ComponentVersion
	}
	if v, vn := str(root, "apiVersion"); vn != nil && v != want {
		c.errorf(vn.Line, "apiVersion", "a %s is %q, not %q", cmpOr(kind, types.KustomizationKind), want, v)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

const helmAdvice = "Shoal does not inflate Helm charts in kustomize builds (that runs the helm program and fetches charts): render the chart with \"helm template\" and commit the output, or a kustomization over that output"

func (c *kustChecker) refuseHelm(root *yaml.Node) {
	for _, f := range []string{"helmCharts", "helmChartInflationGenerator", "helmGlobals"} {
		if k, _ := get(root, f); k != nil {
			c.errorf(k.Line, k.Value, "%s", helmAdvice)
		}
	}
}

// paths checks every path the kustomization names: none may be remote,
// absolute or outside the repository, and each must exist.
func (c *kustChecker) paths(root *yaml.Node) {
	for _, f := range []string{"resources", "bases"} {
		for i, e := range items(root, f) {
			c.path(e, fmt.Sprintf("%s[%d]", f, i), "resource", anyKind)
		}
	}
	for i, e := range items(root, "components") {
		c.path(e, fmt.Sprintf("components[%d]", i), "component", dirKind)
	}
	for _, f := range []string{"crds", "configurations"} {
		for i, e := range items(root, f) {
			c.path(e, fmt.Sprintf("%s[%d]", f, i), "file", fileKind)
		}
	}
	for i, e := range items(root, "patchesStrategicMerge") {
		if e.Kind == yaml.ScalarNode && !inlineYAML(e.Value) {
			c.path(e, fmt.Sprintf("patchesStrategicMerge[%d]", i), "patch", fileKind)
		}
	}
	for _, f := range []string{"patches", "patchesJson6902", "replacements"} {
		for i, e := range items(root, f) {
			if _, pn := str(e, "path"); pn != nil {
				c.path(pn, fmt.Sprintf("%s[%d].path", f, i), "file", fileKind)
			}
		}
	}
	for _, f := range []string{"configMapGenerator", "secretGenerator"} {
		for i, g := range items(root, f) {
			c.generatorPaths(g, fmt.Sprintf("%s[%d]", f, i))
		}
	}
	if _, pn := str(getNode(root, "openapi"), "path"); pn != nil {
		c.path(pn, "openapi.path", "file", fileKind)
	}
}

func getNode(n *yaml.Node, name string) *yaml.Node {
	_, v := get(n, name)
	return v
}

// generatorPaths checks the files and envs of a ConfigMap or Secret
// generator entry (in a kustomization or a builtin generator's
// configuration).
func (c *kustChecker) generatorPaths(g *yaml.Node, field string) {
	for j, e := range items(g, "files") {
		if e.Kind != yaml.ScalarNode {
			continue
		}
		// "key=path" or "path".
		p := e.Value
		if _, after, ok := strings.Cut(p, "="); ok {
			p = after
		}
		c.pathValue(e, p, fmt.Sprintf("%s.files[%d]", field, j), "file", fileKind)
	}
	for j, e := range items(g, "envs") {
		c.path(e, fmt.Sprintf("%s.envs[%d]", field, j), "file", fileKind)
	}
	if _, en := str(g, "env"); en != nil {
		c.path(en, field+".env", "file", fileKind)
	}
}

// inlineYAML reports whether a patchesStrategicMerge entry is a patch
// written inline rather than a file name.
func inlineYAML(s string) bool {
	s = strings.TrimSpace(s)
	return strings.Contains(s, "\n") || strings.HasPrefix(s, "{") || strings.Contains(s, ": ")
}

type pathKind int

const (
	anyKind pathKind = iota
	fileKind
	dirKind
)

func (c *kustChecker) path(n *yaml.Node, field, what string, kind pathKind) {
	if n.Kind != yaml.ScalarNode {
		return
	}
	c.pathValue(n, n.Value, field, what, kind)
}

// pathValue checks path p, written at node n.
func (c *kustChecker) pathValue(n *yaml.Node, p, field, what string, kind pathKind) {
	if p == "" {
		c.errorf(n.Line, field, "empty path")
		return
	}
	if isRemote(p) {
		c.errorf(n.Line, field, "%q is remote: Shoal builds only from files committed in this repository (remote bases and resources are always off, as with Flux's --no-remote-bases); vendor it into the repository and refer to it by a relative path", p)
		return
	}
	if path.IsAbs(p) || strings.HasPrefix(p, `\`) {
		c.errorf(n.Line, field, "%q is an absolute path: write it relative to the kustomization's directory", p)
		return
	}
	rel := path.Join(c.dir, p)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		c.errorf(n.Line, field, "%q is outside the repository: kustomize may read only files of the repository; vendor what you need into it", p)
		return
	}
	for part := range strings.SplitSeq(rel, "/") {
		if part == ".git" {
			c.errorf(n.Line, field, "%q is inside .git: kustomize may read only files committed in the repository", p)
			return
		}
	}
	fi, err := fs.Stat(c.b.fsys, rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.errorf(n.Line, field, "%s %q does not exist (looked for %s); paths are relative to the kustomization's directory", what, p, c.b.name(rel))
	case isSymlinkErr(err):
		c.errorf(n.Line, field, "%q is or passes through a symbolic link; Shoal never follows links in a manifest tree: replace it with the file or directory it points to", p)
	case err != nil:
		c.errorf(n.Line, field, "cannot read %q: %v", p, unwrapPathError(err))
	case fi.Mode()&fs.ModeSymlink != 0:
		c.errorf(n.Line, field, "%q is a symbolic link; Shoal never follows links in a manifest tree: replace it with the file or directory it points to", p)
	case kind == fileKind && fi.IsDir():
		c.errorf(n.Line, field, "%q is a directory, not a file", p)
	case kind == dirKind && !fi.IsDir():
		c.errorf(n.Line, field, "%q is a file; a component is a directory with a kustomization of kind Component", p)
	}
}

// gitUserRE matches the user of an scp-style git address (git@host:repo).
var gitUserRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]*@`)

// isRemote reports whether kustomize would fetch p from the network (an
// HTTP(S) URL, or a git repository address as kustomize's loader parses
// them), or p has a URL scheme.
func isRemote(p string) bool {
	s := strings.TrimSpace(p)
	if len(s) >= 5 && strings.EqualFold(s[:5], "git::") {
		return true
	}
	if strings.Contains(s, "://") || gitUserRE.MatchString(s) {
		return true
	}
	ls := strings.ToLower(s)
	return strings.HasPrefix(ls, "github.com/") || strings.HasPrefix(ls, "github.com:")
}

// plugins checks the generators, transformers and validators a
// kustomization names: only kustomize's builtin plugins may run.
func (c *kustChecker) plugins(root *yaml.Node) {
	for _, f := range []string{"generators", "transformers", "validators"} {
		for i, e := range items(root, f) {
			field := fmt.Sprintf("%s[%d]", f, i)
			if e.Kind != yaml.ScalarNode {
				continue
			}
			if docs, ok := inlineDocs(e.Value); ok {
				for _, d := range docs {
					c.pluginConfig(d, field, e.Line, "")
				}
				continue
			}
			before := len(c.errs)
			c.path(e, field, "plugin configuration", anyKind)
			if len(c.errs) > before {
				continue
			}
			rel := path.Join(c.dir, e.Value)
			if fi, err := fs.Stat(c.b.fsys, rel); err != nil || fi.IsDir() {
				// A directory is built by kustomize, which refuses plugins
				// that are not builtin.
				continue
			}
			data, err := readLimited(c.b.fsys, rel, c.b.lim.maxFileSize)
			if err != nil {
				c.errorf(e.Line, field, "%s: %v", e.Value, err)
				continue
			}
			docs, err := yamlDocs(data)
			if err != nil {
				line, msg := cleanYAMLError(err, data)
				c.errs = append(c.errs, &Error{File: c.b.name(rel), Line: line, Msg: msg})
				continue
			}
			for _, d := range docs {
				c.pluginConfig(d, field, e.Line, rel)
			}
		}
	}
}

// inlineDocs parses a generators/transformers entry that is a configuration
// written inline (kustomize's test: it parses as YAML objects).
func inlineDocs(s string) ([]*yaml.Node, bool) {
	if !strings.Contains(s, "\n") && !strings.HasPrefix(strings.TrimSpace(s), "{") {
		return nil, false
	}
	docs, err := yamlDocs([]byte(s))
	if err != nil || len(docs) == 0 {
		return nil, false
	}
	for _, d := range docs {
		if d.Kind != yaml.MappingNode {
			return nil, false
		}
	}
	return docs, true
}

// yamlDocs returns the top-level nodes of the non-empty documents of data.
func yamlDocs(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*yaml.Node
	for range 10000 {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		if len(doc.Content) == 0 {
			continue
		}
		n := resolveAlias(doc.Content[0])
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

// pluginConfig checks the configuration of a plugin named by a
// kustomization at line (in file rel when it is not inline).
func (c *kustChecker) pluginConfig(d *yaml.Node, field string, line int, rel string) {
	apiVersion, _ := str(d, "apiVersion")
	kind, _ := str(d, "kind")
	where := "the inline configuration"
	if rel != "" {
		where = c.b.name(rel)
	}
	if apiVersion != "builtin" {
		c.errorf(line, field, "%s configures the plugin %s %s, which is not one of kustomize's builtin plugins: Shoal runs only builtin generators and transformers (apiVersion: builtin), never exec or KRM function plugins; use a builtin one, or run the plugin yourself and commit its output", where, cmpOr(apiVersion, "(no apiVersion)"), cmpOr(kind, "(no kind)"))
		return
	}
	c.builtinConfig(d, field, line)
}

// builtinConfig checks the configuration of a builtin plugin.
func (c *kustChecker) builtinConfig(d *yaml.Node, field string, line int) {
	kind, _ := str(d, "kind")
	if kind == "HelmChartInflationGenerator" {
		c.errorf(line, field, "%s", helmAdvice)
		return
	}
	for _, f := range []string{"path"} {
		if _, pn := str(d, f); pn != nil {
			c.pathValueAt(line, pn.Value, field+"."+f)
		}
	}
	for _, f := range []string{"paths", "envs", "files"} {
		for _, e := range items(d, f) {
			if e.Kind == yaml.ScalarNode {
				p := e.Value
				if f == "files" {
					if _, after, ok := strings.Cut(p, "="); ok {
						p = after
					}
				}
				c.pathValueAt(line, p, field+"."+f)
			}
		}
	}
	if _, en := str(d, "env"); en != nil {
		c.pathValueAt(line, en.Value, field+".env")
	}
	for i, r := range items(d, "replacements") {
		if _, pn := str(r, "path"); pn != nil {
			c.pathValueAt(line, pn.Value, fmt.Sprintf("%s.replacements[%d].path", field, i))
		}
	}
}

// pathValueAt refuses a remote or absolute path in a builtin plugin's
// configuration; kustomize resolves the others itself.
func (c *kustChecker) pathValueAt(line int, p, field string) {
	switch {
	case isRemote(p):
		c.errorf(line, field, "%q is remote: Shoal builds only from files committed in this repository; vendor it into the repository and refer to it by a relative path", p)
	case path.IsAbs(p):
		c.errorf(line, field, "%q is an absolute path: write it relative to the kustomization's directory", p)
	}
}

// checkPluginFile checks a file that holds builtin plugin configurations
// (apiVersion: builtin) before kustomize reads it, wherever it is named from.
func (b *build) checkPluginFile(rel string, data []byte) error {
	if !bytes.Contains(data, []byte("builtin")) {
		return nil
	}
	docs, err := yamlDocs(data)
	if err != nil {
		return nil // not YAML: kustomize reports it
	}
	c := &kustChecker{b: b, rel: rel, dir: path.Dir(rel), file: b.name(rel)}
	for _, d := range docs {
		if v, _ := str(d, "apiVersion"); v == "builtin" {
			c.builtinConfig(d, "", d.Line)
		}
	}
	if len(c.errs) > 0 {
		b.errs = append(b.errs, c.errs...)
		return &fs.PathError{Op: "read", Path: kustPath(rel), Err: errRefused}
	}
	return nil
}

// steps counts what makes a build's work grow (generated objects, patches,
// replacements, plugin configurations) against LoadOptions.MaxBuildSteps.
func (c *kustChecker) steps(root *yaml.Node) {
	for _, f := range []string{"configMapGenerator", "secretGenerator", "patches", "patchesStrategicMerge", "patchesJson6902", "replacements", "generators", "transformers", "validators", "images", "replicas"} {
		k, v := get(root, f)
		if v == nil || v.Kind != yaml.SequenceNode {
			continue
		}
		n := len(v.Content)
		if f == "configMapGenerator" || f == "secretGenerator" {
			for _, g := range v.Content {
				// Each literal, file and env file is work too.
				n += len(items(g, "literals")) + len(items(g, "files")) + len(items(g, "envs"))
			}
		}
		c.b.steps += n
		if c.b.steps > c.b.lim.maxBuildSteps {
			c.errorf(k.Line, k.Value, "the kustomizations of this build declare more than %d generators, generator sources, patches, replacements, images and replicas in all (LoadOptions.MaxBuildSteps), counting a kustomization again each time it is included; simplify them or raise the limit", c.b.lim.maxBuildSteps)
			return
		}
	}
}

// injectOrigin returns the kustomization with "originAnnotations" in its
// buildMetadata, and whether it was there already.
func injectOrigin(root *yaml.Node) ([]byte, bool, error) {
	k, v := get(root, "buildMetadata")
	user := false
	if v != nil && v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			if resolveAlias(e).Value == types.OriginAnnotations {
				user = true
			}
		}
	}
	if user {
		out, err := yaml.Marshal(root)
		return out, true, err
	}
	c := *root
	c.Content = nil
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i] == k {
			continue
		}
		c.Content = append(c.Content, root.Content[i], root.Content[i+1])
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	if v != nil && v.Kind == yaml.SequenceNode {
		seq.Content = append(seq.Content, v.Content...)
	}
	seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: types.OriginAnnotations})
	c.Content = append(c.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "buildMetadata"}, seq)
	out, err := yaml.Marshal(&c)
	return out, false, err
}
