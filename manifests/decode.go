package manifests

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// source records where an object was read: its file, the line its document
// starts and the line of every field, keyed by field path
// ("spec.containers[0].image", "metadata.labels[app]").
type source struct {
	file   string
	line   int
	fields map[string]int
}

// lineOf returns the line of path, or of its nearest recorded ancestor.
func (s *source) lineOf(path string) int {
	if s == nil {
		return 0
	}
	for path != "" {
		if l, ok := s.fields[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return s.line
}

// has reports whether the field at path was written in the manifest.
func (s *source) has(path string) bool {
	if s == nil {
		return false
	}
	_, ok := s.fields[path]
	return ok
}

// parentPath strips the last segment: "a.b[0]" -> "a.b", "a.b" -> "a".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// located is a decoded object with its source.
type located struct {
	obj Object
	src *source
}

var (
	typeQuantity    = reflect.TypeFor[Quantity]()
	typeIntOrString = reflect.TypeFor[IntOrString]()
	typeTime        = reflect.TypeFor[Time]()
	typeBytes       = reflect.TypeFor[[]byte]()
)

// fileDecoder decodes the documents of one file.
type fileDecoder struct {
	file string
	lim  limits
	errs ErrorList

	// Per document.
	fields      map[string]int
	aliasNodes  int
	aliasFailed bool
	aliasLine   int // line of the alias being expanded
	depthFailed bool
}

// maxFileErrors caps the errors reported for one file.
const maxFileErrors = 200

func (d *fileDecoder) errorf(line int, field, format string, args ...any) {
	if len(d.errs) > maxFileErrors {
		return
	}
	if len(d.errs) == maxFileErrors {
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: fmt.Sprintf("more than %d errors in this file; fix these first", maxFileErrors)})
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// decodeFile parses every document of data into objects, without defaults
// or validation.
func decodeFile(file string, data []byte, lim limits) ([]located, ErrorList) {
	d := &fileDecoder{file: file, lim: lim}
	if int64(len(data)) > lim.maxFileSize {
		d.errorf(0, "", "file is %d bytes, more than the limit of %d bytes (LoadOptions.MaxFileSize); split it into smaller files", len(data), lim.maxFileSize)
		return nil, d.errs
	}
	var out []located
	dec := yaml.NewDecoder(bytes.NewReader(data))
	docs := 0
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, msg := cleanYAMLError(err, data)
			d.errorf(line, "", "%s", msg)
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue
		}
		docs++
		if docs > lim.maxDocuments {
			d.errorf(root.Line, "", "more than %d documents in one file (LoadOptions.MaxDocuments); split it into smaller files", lim.maxDocuments)
			break
		}
		if obj, src := d.document(root); obj != nil {
			out = append(out, located{obj: obj, src: src})
		}
	}
	if e := helmError(file, data, out, len(d.errs) > 0); e != nil {
		return nil, ErrorList{e}
	}
	return out, d.errs
}

// helmTemplateMsg is the refusal of a Helm chart's template.
const helmTemplateMsg = "looks like a Helm template: render it with `helm template` and commit the output"

var (
	// goTemplateActionRE matches a Go template action such as {{ .Values.x }} or {{- end }}.
	goTemplateActionRE = regexp.MustCompile(`\{\{-?\s*(.*?)\s*-?\}\}`)
	// helmOnlyRE matches what only Helm's templates use inside an action: its
	// built-in objects and functions. Go templates in configuration data (such
	// as Prometheus rules or Alertmanager templates) do not use them.
	helmOnlyRE = regexp.MustCompile(`\.(Values|Release|Chart|Capabilities|Files|Template)\b|\b(include|toYaml|toJson|nindent|tpl|required)\b`)
)

// helmError returns the error of a file that is part of a Helm chart rather
// than a manifest: a Chart.yaml, a chart's values.yaml, or a template.
// A template is a file with a Helm-only action, or an action at the start of
// a line (where YAML can only see it as structure, never as a string),
// unless the file decoded cleanly into ConfigMaps and Secrets only, whose
// data may hold templates for other programs.
func helmError(file string, data []byte, objs []located, failed bool) *Error {
	switch path.Base(file) {
	case "Chart.yaml", "Chart.yml":
		return &Error{File: file, Line: 1, Msg: "is a Helm chart's Chart.yaml, and Shoal does not render charts: render the chart " +
			"with `helm template` and commit the output, keeping the chart itself out of the tree Shoal reads"}
	case "values.yaml", "values.yml":
		if failed {
			return &Error{File: file, Line: 1, Msg: "looks like the values of a Helm chart, and Shoal does not render charts: render " +
				"the chart with `helm template` and commit the output, keeping the chart itself out of the tree Shoal reads"}
		}
	}
	line := helmActionLine(data)
	if line == 0 || (!failed && onlyConfigData(objs)) {
		return nil
	}
	return &Error{File: file, Line: line, Msg: helmTemplateMsg}
}

// helmActionLine returns the line of the first Helm-looking template
// action in data, or 0.
func helmActionLine(data []byte) int {
	if !bytes.Contains(data, []byte("{{")) {
		return 0
	}
	for i, l := range strings.Split(string(data), "\n") {
		for _, m := range goTemplateActionRE.FindAllStringSubmatchIndex(l, -1) {
			if m[0] == 0 || helmOnlyRE.MatchString(l[m[2]:m[3]]) {
				return i + 1
			}
		}
	}
	return 0
}

func onlyConfigData(objs []located) bool {
	for _, it := range objs {
		switch it.obj.(type) {
		case *ConfigMap, *Secret:
		default:
			return false
		}
	}
	return true
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

var yamlParserErrors = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

func cleanYAMLError(err error, data []byte) (int, string) {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	// yaml.v3 reports parser (not scanner) errors with 0-based lines.
	if line > 0 && yamlParserErrors[msg] {
		line++
	}
	if line == 0 {
		line = yamlErrorLine(msg, data)
	}
	if strings.Contains(msg, "found character that cannot start any token") || strings.Contains(msg, "found a tab character") {
		msg += " (indent YAML with spaces, not tabs)"
	}
	return line, "invalid YAML: " + msg
}

// yamlErrorLine finds the line of a YAML error that yaml.v3 reported
// without one. It leaves the line out when it is 0 (0-based, so the first
// line of the stream), and reports errors of its reader (bad UTF-8, control
// characters) with no position at all.
func yamlErrorLine(msg string, data []byte) int {
	switch {
	case strings.Contains(msg, "UTF-8"):
		if i := firstInvalidUTF8(data); i >= 0 {
			return lineAt(data, i)
		}
	case strings.Contains(msg, "control characters"):
		if i := firstControlChar(data); i >= 0 {
			return lineAt(data, i)
		}
	}
	return 1
}

// lineAt returns the 1-based line of byte offset i.
func lineAt(data []byte, i int) int {
	return bytes.Count(data[:i], []byte{'\n'}) + 1
}

func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// firstControlChar returns the offset of the first character YAML does not
// allow in a stream (YAML 1.1 "printable").
func firstControlChar(data []byte) int {
	for i, r := range string(data) {
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == 0x85 || r == 0xFEFF:
		case r >= 0x20 && r <= 0x7E, r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return i
		}
	}
	return -1
}

// refusedKinds are kinds Shoal refuses with a reason of their own, rather
// than as unknown kinds.
var refusedKinds = map[string]string{
	"NetworkPolicy": "a NetworkPolicy changes which traffic reaches your pods, and Shoal does not enforce network " +
		"policies yet, so accepting it would leave the pods open; remove it from the tree Shoal reads",
}

// document decodes one document. It returns nil when the document is not a
// supported object; the reason is in d.errs.
func (d *fileDecoder) document(root *yaml.Node) (Object, *source) {
	d.fields = map[string]int{}
	d.aliasNodes = 0
	d.aliasFailed = false
	d.depthFailed = false
	if root.Kind == yaml.AliasNode {
		root = root.Alias
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root.Line, "", "a document must be a mapping with apiVersion, kind and metadata, found %s", describeNode(root))
		return nil, nil
	}
	var apiVersion, kind *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "apiVersion":
			apiVersion = root.Content[i+1]
		case "kind":
			kind = root.Content[i+1]
		}
	}
	if kind == nil || kind.Kind != yaml.ScalarNode || kind.Value == "" {
		d.errorf(root.Line, "kind", "missing; every document needs apiVersion and kind, such as \"kind: Deployment\"")
		return nil, nil
	}
	if apiVersion == nil || apiVersion.Kind != yaml.ScalarNode || apiVersion.Value == "" {
		hint := ""
		if v, ok := APIVersionOf(kind.Value); ok {
			hint = fmt.Sprintf(", such as \"apiVersion: %s\"", v)
		}
		d.errorf(root.Line, "apiVersion", "missing; every document needs apiVersion and kind%s", hint)
		return nil, nil
	}
	ki, _, ok := kindByName(kind.Value)
	if !ok {
		if why, refused := refusedKinds[kind.Value]; refused {
			d.errorf(kind.Line, "kind", "kind %q (%s) is %s: %s", kind.Value, apiVersion.Value, notYet, why)
			return nil, nil
		}
		d.errorf(kind.Line, "kind", "kind %q (%s) is not supported by Shoal; supported kinds: %s",
			kind.Value, apiVersion.Value, strings.Join(SupportedKinds(), ", "))
		return nil, nil
	}
	if apiVersion.Value != ki.apiVersion {
		d.errorf(apiVersion.Line, "apiVersion", "%s is %q, not %q; write \"apiVersion: %s\"",
			ki.kind, ki.apiVersion, apiVersion.Value, ki.apiVersion)
		return nil, nil
	}
	obj := ki.newObject()
	before := len(d.errs)
	d.value(root, reflect.ValueOf(obj).Elem(), "", 0, false)
	if len(d.errs) > before {
		return nil, nil
	}
	return obj, &source{file: d.file, line: root.Line, fields: d.fields}
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", truncate(n.Value))
		case "!!int", "!!float":
			return fmt.Sprintf("the number %s", truncate(n.Value))
		case "!!bool":
			return fmt.Sprintf("the boolean %s", n.Value)
		case "!!null":
			return "null"
		}
		return fmt.Sprintf("%q (%s)", truncate(n.Value), n.ShortTag())
	}
	return "an alias"
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// pair is a key/value of a mapping after merge keys are expanded.
type pair struct {
	key, val *yaml.Node
	alias    bool // reached through an alias
}

// pairs returns the key/value pairs of mapping n, with "<<" merge keys
// expanded (explicit keys win), reporting duplicate keys.
func (d *fileDecoder) pairs(n *yaml.Node, path string, alias bool) []pair {
	out := make([]pair, 0, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	var merges []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, pair{key: k, val: v, alias: alias})
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k.Line, path, "a key must be a string, found %s", describeNode(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, path, "duplicate key %q (first at line %d)", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{key: k, val: v, alias: alias})
	}
	for _, m := range merges {
		d.aliasLine = m.key.Line
		for _, src := range d.mergeSources(m.val, path) {
			for _, p := range d.pairs(src, path, true) {
				if _, dup := seen[p.key.Value]; dup {
					continue
				}
				if d.countAlias(p.val) {
					return out
				}
				seen[p.key.Value] = p.key.Line
				out = append(out, p)
			}
		}
	}
	return out
}

func (d *fileDecoder) mergeSources(v *yaml.Node, path string) []*yaml.Node {
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, e := range v.Content {
			if e.Kind == yaml.AliasNode {
				e = e.Alias
			}
			if e.Kind != yaml.MappingNode {
				d.errorf(e.Line, path, "a merge key (<<) needs mappings, found %s", describeNode(e))
				continue
			}
			out = append(out, e)
		}
		return out
	}
	d.errorf(v.Line, path, "a merge key (<<) needs a mapping or a list of mappings, found %s", describeNode(v))
	return nil
}

// countAlias counts one node expanded through an alias and reports whether
// the limit is exceeded (reported once per document).
func (d *fileDecoder) countAlias(n *yaml.Node) bool {
	if d.aliasFailed {
		return true
	}
	d.aliasNodes++
	if d.aliasNodes > d.lim.maxAliasNodes {
		d.aliasFailed = true
		line := d.aliasLine
		if line == 0 {
			line = n.Line
		}
		d.errorf(line, "", "YAML aliases expand to more than %d nodes (LoadOptions.MaxAliasNodes); write the values out instead of nesting aliases", d.lim.maxAliasNodes)
		return true
	}
	return false
}

// value decodes node n into v (addressable), recording field lines. path is
// the field path of v.
func (d *fileDecoder) value(n *yaml.Node, v reflect.Value, path string, depth int, alias bool) {
	if d.aliasFailed || d.depthFailed {
		return
	}
	if depth > d.lim.maxDepth {
		d.depthFailed = true
		d.errorf(n.Line, path, "nested more than %d levels deep (LoadOptions.MaxDepth)", d.lim.maxDepth)
		return
	}
	if n.Kind == yaml.AliasNode {
		d.aliasLine = n.Line
		// Problems with the value itself are reported where the alias is used.
		c := *n.Alias
		c.Line, c.Column = n.Line, n.Column
		n = &c
		alias = true
	}
	if alias && d.countAlias(n) {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		v.SetZero()
		return
	}
	t := v.Type()
	switch t {
	case typeQuantity:
		if !d.scalar(n, path, "a quantity such as 500m or 128Mi", "!!str", "!!int", "!!float") {
			return
		}
		q, err := ParseQuantity(n.Value)
		if err != nil {
			d.errorf(n.Line, path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(q))
		return
	case typeIntOrString:
		if !d.scalar(n, path, "an integer or a string", "!!str", "!!int") {
			return
		}
		if n.ShortTag() == "!!str" {
			v.Set(reflect.ValueOf(FromString(n.Value)))
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 32)
		if err != nil {
			d.errorf(n.Line, path, "integer %s out of range", n.Value)
			return
		}
		v.Set(reflect.ValueOf(FromInt(int32(i))))
		return
	case typeTime:
		if !d.scalar(n, path, "a time such as 2006-01-02T15:04:05Z", "!!str", "!!timestamp") {
			return
		}
		tm, err := time.Parse(time.RFC3339, n.Value)
		if err != nil {
			d.errorf(n.Line, path, "invalid time %q: use RFC 3339 such as 2006-01-02T15:04:05Z", truncate(n.Value))
			return
		}
		v.Set(reflect.ValueOf(Time{Time: tm}))
		return
	case typeBytes:
		if !d.scalar(n, path, "a base64 string", "!!str", "!!binary") {
			return
		}
		b, err := base64.StdEncoding.DecodeString(n.Value)
		if err != nil {
			d.errorf(n.Line, path, "value is not valid base64 (%v); encode it with base64, or put the plain text under stringData", err)
			return
		}
		v.SetBytes(b)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.value(n, v.Elem(), path, depth, alias)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n.Line, path, "expected a mapping, found %s", describeNode(n))
			return
		}
		d.structValue(n, v, path, depth, alias)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n.Line, path, "expected a mapping, found %s", describeNode(n))
			return
		}
		ps := d.pairs(n, path, alias)
		m := reflect.MakeMapWithSize(t, len(ps))
		for _, p := range ps {
			kpath := path + "[" + p.key.Value + "]"
			d.fields[kpath] = p.key.Line
			ev := reflect.New(t.Elem()).Elem()
			d.value(p.val, ev, kpath, depth+1, p.alias)
			m.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), ev)
		}
		v.Set(m)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n.Line, path, "expected a list, found %s", describeNode(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, e := range n.Content {
			ipath := path + "[" + strconv.Itoa(i) + "]"
			d.fields[ipath] = e.Line
			d.value(e, s.Index(i), ipath, depth+1, alias)
		}
		v.Set(s)
	case reflect.String:
		// Plain scalars that YAML resolves as timestamps are strings in JSON.
		if !d.scalar(n, path, "a string", "!!str", "!!timestamp") {
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
			// YAML 1.1 booleans, which Kubernetes' YAML parser accepts.
			switch n.Value {
			case "y", "Y", "yes", "Yes", "YES", "on", "On", "ON":
				v.SetBool(true)
				return
			case "n", "N", "no", "No", "NO", "off", "Off", "OFF":
				v.SetBool(false)
				return
			}
		}
		if !d.scalar(n, path, "true or false", "!!bool") {
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.scalar(n, path, "an integer", "!!int") {
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.errorf(n.Line, path, "integer %s out of range", truncate(n.Value))
			return
		}
		v.SetInt(i)
	default:
		d.errorf(n.Line, path, "cannot decode into %s", t)
	}
}

// scalar checks that n is a scalar with one of the given tags.
func (d *fileDecoder) scalar(n *yaml.Node, path, want string, tags ...string) bool {
	if n.Kind == yaml.ScalarNode {
		tag := n.ShortTag()
		for _, t := range tags {
			if tag == t {
				return true
			}
		}
		if tags[0] == "!!str" && (tag == "!!int" || tag == "!!float" || tag == "!!bool") {
			d.errorf(n.Line, path, "expected %s, found %s; quote it: \"%s\"", want, describeNode(n), n.Value)
			return false
		}
	}
	d.errorf(n.Line, path, "expected %s, found %s", want, describeNode(n))
	return false
}

func (d *fileDecoder) structValue(n *yaml.Node, v reflect.Value, path string, depth int, alias bool) {
	t := v.Type()
	info := structInfoOf(t)
	for _, p := range d.pairs(n, path, alias) {
		key := p.key.Value
		fpath := joinField(path, key)
		if f, ok := info.byName[key]; ok {
			d.fields[fpath] = p.key.Line
			d.value(p.val, v.FieldByIndex(f.index), fpath, depth+1, p.alias)
			continue
		}
		if depth == 0 && key == "status" {
			// Status is written by Shoal, never read from manifests; output of
			// kubectl get -o yaml carries it, so it is accepted and dropped.
			continue
		}
		if u, ok := lookupNotYet(t, key); ok {
			if u.tolerates(p.val) {
				continue
			}
			d.errorf(p.key.Line, fpath, "%s", u.message())
			continue
		}
		d.errorf(p.key.Line, path, "unknown field %q%s", key, suggest(key, info.names))
	}
}

func (u unsupported) tolerates(n *yaml.Node) bool {
	if len(u.tolerated) == 0 {
		return false
	}
	c, ok := canonical(n, 0)
	if !ok {
		return false
	}
	for _, t := range u.tolerated {
		if c == t {
			return true
		}
	}
	return false
}

// canonical renders a small node compactly: scalars as their value, lists as
// [a,b], mappings as {k:v,...}. Large or deep nodes are not rendered.
func canonical(n *yaml.Node, depth int) (string, bool) {
	if depth > 4 {
		return "", false
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null", true
		}
		return n.Value, true
	case yaml.SequenceNode, yaml.MappingNode:
		if len(n.Content) > 8 {
			return "", false
		}
		parts := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			s, ok := canonical(e, depth+1)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		if n.Kind == yaml.SequenceNode {
			return "[" + strings.Join(parts, ",") + "]", true
		}
		var b strings.Builder
		b.WriteByte('{')
		for i := 0; i+1 < len(parts); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(parts[i] + ":" + parts[i+1])
		}
		b.WriteByte('}')
		return b.String(), true
	}
	return "", false
}

// suggest returns ` (did you mean "x"?)` for the closest known name.
func suggest(key string, names []string) string {
	best, bestDist := "", 3
	lk := strings.ToLower(key)
	for _, n := range names {
		if strings.ToLower(n) == lk {
			return fmt.Sprintf(" (did you mean %q?)", n)
		}
		limit := len(n) / 3
		if limit > 2 {
			limit = 2
		}
		if limit < 1 {
			limit = 1
		}
		if dist := levenshtein(lk, strings.ToLower(n), bestDist); dist <= limit && dist < bestDist {
			best, bestDist = n, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// levenshtein returns the edit distance of a and b, or max when it is at
// least max.
func levenshtein(a, b string, max int) int {
	if abs(len(a)-len(b)) >= max {
		return max
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= max {
			return max
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], max)
}
