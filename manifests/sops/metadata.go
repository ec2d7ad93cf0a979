package sops

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// metadata is a file's sops metadata, its top-level "sops" entry (sops_*
// entries in a dotenv file, a [sops] section in an INI file).
type metadata struct {
	lastModified    time.Time
	mac             string // the MAC, encrypted with lastmodified as additional data
	version         string
	shamirThreshold int
	groups          []keyGroup

	unencryptedSuffix, encryptedSuffix             string
	unencryptedRegex, encryptedRegex               string
	unencryptedCommentRegex, encryptedCommentRegex string
	macOnlyEncrypted                               bool
}

// keyGroup is the master keys that each encrypt the same share of the data
// key (the whole key when there is one group).
type keyGroup []masterKey

// masterKey is one recipient of the data key.
type masterKey struct {
	kind string // age, pgp, or a type Shoal does not use (kms, gcp_kms, ...)
	id   string // the recipient (age) or the fingerprint (pgp)
	enc  string // the data key (share), encrypted for the recipient
}

// keyKinds are sops' master key types, in the order sops lists them in a
// key group, with the field that names the key.
var keyKinds = []struct{ kind, id string }{
	{"kms", "arn"},
	{"gcp_kms", "resource_id"},
	{"hckms", "key_id"},
	{"azure_kv", "vault_url"},
	{"hc_vault", "vault_address"},
	{"pgp", "fp"},
	{"age", "recipient"},
}

// defaultUnencryptedSuffix is the rule of a file that names none.
const defaultUnencryptedSuffix = "_unencrypted"

func (m *metadata) keyCount() int {
	n := 0
	for _, g := range m.groups {
		n += len(g)
	}
	return n
}

// macAAD is the additional data the MAC is encrypted with: the time the
// file was last changed, as sops writes it.
func (m *metadata) macAAD() string { return m.lastModified.Format(time.RFC3339) }

// parseMetadata reads the metadata from its generic form, maps and lists as
// the formats decode them. Values may be of another scalar type than the
// field's, as in the dotenv and INI formats, where all are strings.
func parseMetadata(in map[string]any) (metadata, error) {
	var m metadata
	var errs []error
	str := func(name string, into *string) {
		s, err := weakString(in[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("sops.%s: %w", name, err))
		}
		*into = s
	}
	var lastModified string
	str("lastmodified", &lastModified)
	str("mac", &m.mac)
	str("version", &m.version)
	str("unencrypted_suffix", &m.unencryptedSuffix)
	str("encrypted_suffix", &m.encryptedSuffix)
	str("unencrypted_regex", &m.unencryptedRegex)
	str("encrypted_regex", &m.encryptedRegex)
	str("unencrypted_comment_regex", &m.unencryptedCommentRegex)
	str("encrypted_comment_regex", &m.encryptedCommentRegex)
	var err error
	if m.shamirThreshold, err = weakInt(in["shamir_threshold"]); err != nil {
		errs = append(errs, fmt.Errorf("sops.shamir_threshold: %w", err))
	}
	if m.macOnlyEncrypted, err = weakBool(in["mac_only_encrypted"]); err != nil {
		errs = append(errs, fmt.Errorf("sops.mac_only_encrypted: %w", err))
	}
	if m.groups, err = keyGroups(in); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return m, err
	}
	if m.lastModified, err = time.Parse(time.RFC3339, lastModified); err != nil {
		return m, fmt.Errorf("sops.lastmodified %q is not a time as sops writes it (RFC 3339)", lastModified)
	}
	rules := 0
	for _, r := range []string{m.unencryptedSuffix, m.encryptedSuffix, m.unencryptedRegex, m.encryptedRegex, m.unencryptedCommentRegex, m.encryptedCommentRegex} {
		if r != "" {
			rules++
		}
	}
	switch {
	case rules > 1:
		return m, errors.New("the sops metadata has more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex, encrypted_comment_regex and unencrypted_comment_regex, which sops never writes")
	case rules == 0:
		m.unencryptedSuffix = defaultUnencryptedSuffix
	}
	return m, nil
}

// keyGroups reads the master keys: those listed at the top of the metadata
// form one key group; without them, key_groups lists the groups.
func keyGroups(in map[string]any) ([]keyGroup, error) {
	top, err := keyGroupOf(in, "sops")
	if err != nil || len(top) > 0 {
		return []keyGroup{top}, err
	}
	list, err := mappings(in["key_groups"])
	if err != nil {
		return nil, fmt.Errorf("sops.key_groups: %w", err)
	}
	var groups []keyGroup
	for i, g := range list {
		group, err := keyGroupOf(g, fmt.Sprintf("sops.key_groups[%d]", i))
		if err != nil {
			return nil, err
		}
		groups = append(groups, group)
	}
	return groups, nil
}

func keyGroupOf(in map[string]any, where string) (keyGroup, error) {
	var g keyGroup
	for _, k := range keyKinds {
		keys, err := mappings(in[k.kind])
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", where, k.kind, err)
		}
		for i, key := range keys {
			id, err := weakString(key[k.id])
			if err != nil {
				return nil, fmt.Errorf("%s.%s[%d].%s: %w", where, k.kind, i, k.id, err)
			}
			enc, err := weakString(key["enc"])
			if err != nil {
				return nil, fmt.Errorf("%s.%s[%d].enc: %w", where, k.kind, i, err)
			}
			g = append(g, masterKey{kind: k.kind, id: id, enc: enc})
		}
	}
	return g, nil
}

// mappings reads a list of mappings (a single mapping is a list of one).
func mappings(v any) ([]map[string]any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return []map[string]any{v}, nil
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("a %s in a list of keys, not a mapping", typeName(e))
			}
			out = append(out, m)
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %s, not a list", typeName(v))
}

func weakString(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	case time.Time:
		return v.Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("a %s, not a string", typeName(v))
}

func weakInt(v any) (int, error) {
	switch v := v.(type) {
	case nil:
		return 0, nil
	case int:
		return v, nil
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<31 {
			return 0, fmt.Errorf("%v is not a whole number", v)
		}
		return int(v), nil
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case string:
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 0, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", v)
		}
		return int(n), nil
	}
	return 0, fmt.Errorf("a %s, not a number", typeName(v))
}

func weakBool(v any) (bool, error) {
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case int:
		return v != 0, nil
	case float64:
		return v != 0, nil
	case string:
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%q is not true or false", v)
		}
		return b, nil
	}
	return false, fmt.Errorf("a %s, not true or false", typeName(v))
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "mapping"
	case []any:
		return "list"
	case string:
		return "string"
	}
	return "scalar"
}

// generic converts the metadata entry of a tree to maps and lists,
// without its comments.
func generic(v any) (any, error) {
	switch v := v.(type) {
	case branch:
		m := make(map[string]any, len(v))
		for _, it := range v {
			if _, ok := it.key.(comment); ok {
				continue
			}
			k, ok := it.key.(string)
			if !ok {
				return nil, errors.New("a key of the sops metadata is not a string")
			}
			g, err := generic(it.value)
			if err != nil {
				return nil, err
			}
			m[k] = g
		}
		return m, nil
	case []any:
		out := make([]any, 0, len(v))
		for _, e := range v {
			if _, ok := e.(comment); ok {
				continue
			}
			g, err := generic(e)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	}
	return v, nil
}

// errNoMetadata is the error of a file without sops metadata.
var errNoMetadata = errors.New("sops metadata not found")

// takeMetadata removes the "sops" entries from the top of every branch and
// reads the metadata from the first branch's, as sops does for the YAML,
// JSON and INI formats. flattened is for INI, whose [sops] section holds
// the metadata flattened, with newlines escaped.
func takeMetadata(branches []branch, flattened bool) ([]branch, metadata, error) {
	var meta branch
	found := false
	for bi, b := range branches {
		kept := b[:0:0]
		for _, it := range b {
			if it.key != "sops" {
				kept = append(kept, it)
				continue
			}
			if bi != 0 {
				continue
			}
			if found {
				return nil, metadata{}, errors.New("the document has two sops entries")
			}
			found = true
			m, ok := it.value.(branch)
			if !ok {
				return nil, metadata{}, errors.New("the sops entry is not a mapping")
			}
			meta = m
		}
		branches[bi] = kept
	}
	if !found {
		return nil, metadata{}, errNoMetadata
	}
	var tree map[string]any
	if flattened {
		entries := make(branch, 0, len(meta))
		for _, it := range meta {
			if s, ok := it.value.(string); ok {
				it.value = strings.ReplaceAll(s, `\n`, "\n")
			}
			entries = append(entries, it)
		}
		var err error
		if tree, err = unflatten(entries); err != nil {
			return nil, metadata{}, err
		}
	} else {
		g, err := generic(meta)
		if err != nil {
			return nil, metadata{}, err
		}
		tree = g.(map[string]any)
	}
	m, err := parseMetadata(tree)
	return branches, m, err
}

// The dotenv and INI formats flatten the metadata's mappings and lists into
// keys: age__list_0__map_recipient is the recipient of the first age key.
const (
	flatMap  = "__map_"
	flatList = "__list_"
)

// unflatten rebuilds the metadata from its flattened entries (comments are
// skipped).
func unflatten(entries branch) (map[string]any, error) {
	root := &flatNode{}
	for _, it := range entries {
		if _, ok := it.key.(comment); ok {
			continue
		}
		k, ok := it.key.(string)
		if !ok {
			return nil, errors.New("a key of the sops metadata is not a string")
		}
		if err := root.place(k, it.value); err != nil {
			return nil, fmt.Errorf("sops metadata entry %q: %w", k, err)
		}
	}
	v, err := root.rebuild(0)
	if err != nil {
		return nil, fmt.Errorf("sops metadata: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("sops metadata: not a mapping")
	}
	return m, nil
}

type flatNode struct {
	value    any
	hasValue bool
	keys     map[string]*flatNode
	indices  map[int]*flatNode
}

// flatStep is one step of a flattened key: a mapping key, or a list index
// when list is set.
type flatStep struct {
	key   string
	index int
	list  bool
}

// flatSteps splits a flattened key at its separators; what comes before
// the first is a mapping key.
func flatSteps(k string) ([]flatStep, error) {
	var steps []flatStep
	cur := flatStep{}
	start := 0
	end := func(i int) error {
		s := k[start:i]
		if cur.list {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return fmt.Errorf("list index %q is not a number", s)
			}
			cur.index = n
		} else {
			cur.key = s
		}
		steps = append(steps, cur)
		return nil
	}
	for i := 0; i < len(k); {
		switch {
		case strings.HasPrefix(k[i:], flatMap):
			if err := end(i); err != nil {
				return nil, err
			}
			cur = flatStep{}
			i += len(flatMap)
			start = i
		case strings.HasPrefix(k[i:], flatList):
			if err := end(i); err != nil {
				return nil, err
			}
			cur = flatStep{list: true}
			i += len(flatList)
			start = i
		default:
			i++
		}
	}
	if err := end(len(k)); err != nil {
		return nil, err
	}
	return steps, nil
}

func (n *flatNode) place(k string, v any) error {
	steps, err := flatSteps(k)
	if err != nil {
		return err
	}
	for _, s := range steps {
		var next *flatNode
		if s.list {
			if n.indices == nil {
				n.indices = map[int]*flatNode{}
			}
			if next = n.indices[s.index]; next == nil {
				next = &flatNode{}
				n.indices[s.index] = next
			}
		} else {
			if n.keys == nil {
				n.keys = map[string]*flatNode{}
			}
			if next = n.keys[s.key]; next == nil {
				next = &flatNode{}
				n.keys[s.key] = next
			}
		}
		n = next
	}
	if n.hasValue {
		return errors.New("given twice")
	}
	n.value, n.hasValue = v, true
	return nil
}

func (n *flatNode) rebuild(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deep")
	}
	kinds := 0
	for _, has := range []bool{n.hasValue, len(n.keys) > 0, len(n.indices) > 0} {
		if has {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		return nil, errors.New("an entry is both a value and a mapping or a list")
	case n.hasValue:
		return n.value, nil
	case len(n.indices) > 0:
		out := make([]any, len(n.indices))
		for i, c := range n.indices {
			if i >= len(out) {
				return nil, errors.New("a list misses entries")
			}
			v, err := c.rebuild(depth + 1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	m := make(map[string]any, len(n.keys))
	for k, c := range n.keys {
		v, err := c.rebuild(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}
