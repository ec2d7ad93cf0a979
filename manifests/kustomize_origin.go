package manifests

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mapping what kustomize built back to what the user wrote. kustomize
// records where each object came from in the config.kubernetes.io/origin
// annotation (buildMetadata: [originAnnotations], which kustFS adds to the
// built kustomization; kustomize copies a kustomization's buildMetadata to
// every kustomization it includes): the file of a resource, relative to the
// built directory, or the kustomization file and generator kind of a
// generated object. The origin mapper finds the object's document in that
// file (by kind, then by the name it had there: kustomize adds prefixes,
// suffixes and hashes around it) and gives the object that document's field
// lines, so that errors about a built object name the line its user wrote.

// originMapper maps the objects of one build to their sources.
type originMapper struct {
	b     *build
	files map[string][]*yaml.Node // parsed source files by repository path
}

func newOriginMapper(b *build) *originMapper {
	return &originMapper{b: b, files: map[string][]*yaml.Node{}}
}

// docs returns the documents of source file rel, or nil.
func (m *originMapper) docs(rel string) []*yaml.Node {
	if d, ok := m.files[rel]; ok {
		return d
	}
	var docs []*yaml.Node
	if data, err := readLimited(m.b.fsys, rel, m.b.lim.maxFileSize); err == nil {
		docs, _ = yamlDocs(data)
	}
	m.files[rel] = docs
	return docs
}

// builtMeta is what identifies a built object.
type builtMeta struct {
	kind, name string
}

func metaOf(n *yaml.Node) builtMeta {
	kind, _ := str(n, "kind")
	name, _ := str(getNode(n, "metadata"), "name")
	return builtMeta{kind: kind, name: name}
}

// source returns the source of a built object.
func (m *originMapper) source(o builtObject) *source {
	b := m.b
	var meta builtMeta
	if docs, _ := yamlDocs(o.yaml); len(docs) == 1 {
		meta = metaOf(docs[0])
	}
	fallback := &source{file: b.name(b.kfile)}
	if o.origin == nil || o.origin.Repo != "" {
		return fallback
	}
	if o.origin.Path != "" {
		rel, ok := m.inRepo(o.origin.Path)
		if !ok {
			return fallback
		}
		doc := matchDoc(m.docs(rel), meta)
		if doc == nil {
			return &source{file: b.name(rel)}
		}
		return &source{file: b.name(rel), line: doc.Line, fields: genericFieldLines(doc, fieldLinesLimit)}
	}
	if o.origin.ConfiguredIn == "" {
		return fallback
	}
	rel, ok := m.inRepo(o.origin.ConfiguredIn)
	if !ok {
		return fallback
	}
	if kd := b.kusts[rel]; kd != nil {
		field := ""
		switch o.origin.ConfiguredBy.Kind {
		case "ConfigMapGenerator":
			field = "configMapGenerator"
		case "SecretGenerator":
			field = "secretGenerator"
		}
		if field != "" {
			if src := generatorSource(b.name(rel), items(kd.root, field), meta); src != nil {
				return src
			}
		}
		return &source{file: b.name(rel), line: kd.root.Line}
	}
	// A builtin generator configured in a file of its own.
	if doc := matchDoc(m.docs(rel), builtMeta{kind: o.origin.ConfiguredBy.Kind, name: o.origin.ConfiguredBy.Name}); doc != nil {
		return &source{file: b.name(rel), line: doc.Line}
	}
	return &source{file: b.name(rel)}
}

// fieldLinesLimit bounds the field lines recorded for one source document.
const fieldLinesLimit = 100000

// inRepo resolves a path of an origin (relative to the built directory) in
// the repository.
func (m *originMapper) inRepo(p string) (string, bool) {
	if path.IsAbs(p) {
		return "", false
	}
	rel := path.Join(m.b.dir, p)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// matchDoc finds the document of an object in its source file: of the same
// kind, with the longest name that the object's name contains (kustomize
// keeps the name a user wrote between prefixes and suffixes).
func matchDoc(docs []*yaml.Node, meta builtMeta) *yaml.Node {
	var cands []*yaml.Node
	for _, d := range docs {
		if d.Kind == yaml.MappingNode && metaOf(d).kind == meta.kind {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		if len(docs) == 1 {
			return docs[0]
		}
		return nil
	}
	var best *yaml.Node
	bestLen := -1
	for _, d := range cands {
		n := metaOf(d).name
		if n == meta.name {
			return d
		}
		if n != "" && strings.Contains(meta.name, n) && len(n) > bestLen {
			best, bestLen = d, len(n)
		}
	}
	if best == nil {
		best = cands[0]
	}
	return best
}

// generatorSource returns the source of an object made by one of the
// generator entries list: the entry's line, and the line of each literal
// or file for its data keys.
func generatorSource(file string, list []*yaml.Node, meta builtMeta) *source {
	var best *yaml.Node
	bestLen := -1
	for _, g := range list {
		n, _ := str(g, "name")
		if n != "" && strings.Contains(meta.name, n) && len(n) > bestLen {
			best, bestLen = g, len(n)
		}
	}
	if best == nil {
		return nil
	}
	fields := map[string]int{}
	if _, nn := str(best, "name"); nn != nil {
		fields["metadata.name"] = nn.Line
	}
	for _, e := range items(best, "literals") {
		if k, _, ok := strings.Cut(e.Value, "="); ok {
			fields["data["+strings.TrimSpace(k)+"]"] = e.Line
			fields["stringData["+strings.TrimSpace(k)+"]"] = e.Line
		}
	}
	for _, e := range items(best, "files") {
		k, _, ok := strings.Cut(e.Value, "=")
		if !ok {
			k = path.Base(e.Value)
		}
		fields["data["+k+"]"] = e.Line
		fields["binaryData["+k+"]"] = e.Line
	}
	return &source{file: file, line: best.Line, fields: fields}
}

// builtLines maps each line of a built object's YAML to the deepest field
// written on it.
func builtLines(y []byte) map[int]string {
	docs, _ := yamlDocs(y)
	lines := map[int]string{}
	if len(docs) != 1 {
		return lines
	}
	var walk func(n *yaml.Node, p string, depth int)
	walk = func(n *yaml.Node, p string, depth int) {
		if n == nil || depth > 64 {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				fp := joinField(p, k.Value)
				lines[k.Line] = fp
				walk(n.Content[i+1], fp, depth+1)
			}
		case yaml.SequenceNode:
			for i, e := range n.Content {
				ip := fmt.Sprintf("%s[%d]", p, i)
				if _, ok := lines[e.Line]; !ok {
					lines[e.Line] = ip
				}
				walk(e, ip, depth+1)
			}
		}
	}
	walk(docs[0], "", 0)
	return lines
}

// builtBy is the note added to errors about built objects.
func (m *originMapper) builtBy(src *source) string {
	k := m.b.name(m.b.kfile)
	if src.file == k {
		return ""
	}
	return " (built by " + k + ")"
}

// mapError moves a decoding error of a built object, at a line of the
// built YAML, to the object's source.
func (m *originMapper) mapError(e *Error, src *source, built map[int]string) *Error {
	p := e.Field
	if q := built[e.Line]; q != "" && (p == "" || strings.HasPrefix(q, p)) {
		p = q
	}
	return &Error{File: src.file, Line: src.lineOf(p), Field: e.Field, Msg: e.Msg + m.builtBy(src)}
}

// annotate notes that a validation error is about a built object.
func (m *originMapper) annotate(e *Error, src *source) *Error {
	c := *e
	c.Msg += m.builtBy(src)
	return &c
}

// Kustomize's own errors. They name files by the absolute paths kustFS
// shows it; those become names relative to the load's root, and the error
// is placed at the kustomization (and line) it most likely comes from.

var (
	kustPathRE = regexp.MustCompile(regexp.QuoteMeta(kustRoot) + `(/[^\s'"\x60,;:\]\)]*)?`)
	// innerRE finds the kustomizations kustomize was in when it failed.
	innerRE = regexp.MustCompile(`(?:recursed accumulation of path|couldn't make target for path) '` + regexp.QuoteMeta(kustRoot) + `(/[^']*)?'`)
	// triedFileRE is kustomize's note that a resource is not a file, before
	// it reads it as a directory.
	triedFileRE = regexp.MustCompile(`accumulation err='accumulating resources from '[^']*': [^']*(?:is a directory|does not exist|not exist)[^']*': `)
	// pluginRE finds kustomize's refusal of a plugin that is not builtin.
	pluginRE = regexp.MustCompile(`unable to load external plugin '([^']*)'`)
	// resIDRE finds a resource id (Kind.version.group/name.namespace).
	resIDRE = regexp.MustCompile(`\b([A-Z][A-Za-z0-9]*)\.[A-Za-z0-9.\[\]-]*/([a-z0-9][a-z0-9.-]*?)\.(?:\[noNs\]|[a-z0-9-]+)`)
)

// kustomizeError turns an error of kustomize into an Error.
func (b *build) kustomizeError(err error) *Error {
	msg := err.Error()
	kfile := b.kfile
	for _, mm := range innerRE.FindAllStringSubmatch(msg, -1) {
		dir := strings.TrimPrefix(mm[1], "/")
		if dir == "" {
			dir = "."
		}
		if kr := b.kustIn(dir); kr != "" {
			kfile = kr
		}
	}
	msg = triedFileRE.ReplaceAllString(msg, "")
	msg = kustPathRE.ReplaceAllStringFunc(msg, func(s string) string {
		rel := strings.TrimPrefix(strings.TrimPrefix(s, kustRoot), "/")
		if rel == "" {
			rel = "."
		}
		return b.name(rel)
	})
	msg = strings.TrimSpace(msg)
	if m := pluginRE.FindStringSubmatch(msg); m != nil {
		msg += fmt.Sprintf(": %s is not one of kustomize's builtin plugins; Shoal runs only builtin generators and transformers (apiVersion: builtin), never exec or KRM function plugins: use a builtin one, or run the plugin yourself and commit its output", m[1])
	}
	line := 0
	if kd := b.kusts[kfile]; kd != nil {
		line = b.lineOfTarget(kd, msg)
		if line == 0 {
			line = lineOfMention(kd.root, msg)
		}
	}
	return &Error{File: b.name(kfile), Line: line, Msg: "kustomize build: " + msg}
}

// kustIn returns the kustomization file served from directory dir, or "".
func (b *build) kustIn(dir string) string {
	for kr := range b.kusts {
		if path.Dir(kr) == dir {
			return kr
		}
	}
	return ""
}

// lineOfTarget returns the line of the patch or replacement of a
// kustomization that is about the resource a message names (such as the
// target a patch did not find), or 0.
func (b *build) lineOfTarget(kd *kustDoc, msg string) int {
	m := resIDRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	want := builtMeta{kind: m[1], name: m[2]}
	about := func(docs []*yaml.Node) bool {
		for _, d := range docs {
			if got := metaOf(d); got == want {
				return true
			}
		}
		return false
	}
	file := func(p string) []*yaml.Node {
		if isRemote(p) || path.IsAbs(p) {
			return nil
		}
		data, err := readLimited(b.fsys, path.Join(kd.dir(), p), b.lim.maxFileSize)
		if err != nil {
			return nil
		}
		docs, _ := yamlDocs(data)
		return docs
	}
	for _, e := range items(kd.root, "patchesStrategicMerge") {
		if e.Kind != yaml.ScalarNode {
			continue
		}
		docs, _ := yamlDocs([]byte(e.Value))
		if inlineYAML(e.Value) && about(docs) || !inlineYAML(e.Value) && about(file(e.Value)) {
			return e.Line
		}
	}
	for _, f := range []string{"patches", "patchesJson6902"} {
		for _, e := range items(kd.root, f) {
			t := getNode(e, "target")
			tk, _ := str(t, "kind")
			tn, _ := str(t, "name")
			if tk == want.kind && tn == want.name {
				return e.Line
			}
			if p, _ := str(e, "patch"); p != "" {
				if docs, _ := yamlDocs([]byte(p)); about(docs) {
					return e.Line
				}
			}
			if p, _ := str(e, "path"); p != "" && about(file(p)) {
				return e.Line
			}
		}
	}
	for _, e := range items(kd.root, "replacements") {
		s := getNode(e, "source")
		sk, _ := str(s, "kind")
		sn, _ := str(s, "name")
		if sk == want.kind && sn == want.name {
			return e.Line
		}
	}
	return 0
}

var quotedRE = regexp.MustCompile(`'([^']+)'|"([^"]+)"|path: (/[^\s:]+)`)

// lineOfMention returns the line of the first scalar of a kustomization
// that the message quotes (a file name, a path in a patch), or 0. In a
// block of several lines, such as an inline patch, it is the line of the
// block that holds the quote.
func lineOfMention(root *yaml.Node, msg string) int {
	var tokens []string
	for _, m := range quotedRE.FindAllStringSubmatch(msg, -1) {
		for _, g := range m[1:] {
			if g != "" && g != "." {
				tokens = append(tokens, g)
			}
		}
	}
	if len(tokens) == 0 {
		return 0
	}
	best := 0
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		n = resolveAlias(n)
		if n == nil || depth > 32 || best != 0 {
			return
		}
		switch n.Kind {
		case yaml.ScalarNode:
			best = scalarMention(n, tokens)
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content) && best == 0; i += 2 {
				walk(n.Content[i+1], depth+1)
			}
		case yaml.SequenceNode:
			for _, e := range n.Content {
				if best != 0 {
					break
				}
				walk(e, depth+1)
			}
		}
	}
	walk(root, 0)
	return best
}

// scalarMention returns the line of scalar n that holds one of tokens, or
// 0.
func scalarMention(n *yaml.Node, tokens []string) int {
	v := strings.TrimPrefix(n.Value, "./")
	if v == "" {
		return 0
	}
	if !strings.Contains(n.Value, "\n") {
		for _, t := range tokens {
			if t == n.Value || t == v || strings.HasSuffix(t, "/"+v) {
				return n.Line
			}
		}
		return 0
	}
	first := n.Line
	if n.Style == yaml.LiteralStyle || n.Style == yaml.FoldedStyle {
		first++ // the block starts below its indicator
	}
	for i, l := range strings.Split(n.Value, "\n") {
		for _, t := range tokens {
			if strings.Contains(l, t) {
				return first + i
			}
		}
	}
	return 0
}
