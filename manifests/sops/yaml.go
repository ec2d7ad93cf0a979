package sops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The YAML format: each document of the file is a branch. Comments are
// entries of the tree, where yaml.v3 puts them (head, line and foot
// comments of the nodes), so that the comment rules see them as sops does
// and the plain text keeps them. Scalars are decoded as yaml.v3 decodes
// them into an interface{}, which is what sops hashes and writes back.

// yamlIndent is the indentation sops writes YAML with.
const yamlIndent = 4

// loadYAML reads the documents of a YAML file.
func loadYAML(in []byte) ([]branch, error) {
	r := &yamlReader{budget: 2*len(in) + 1<<16}
	dec := yaml.NewDecoder(bytes.NewReader(in))
	var out []branch
	for first := true; ; first = false {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the YAML does not parse: %w", err)
		}
		// sops refuses keys given twice in the first document.
		r.unique = first
		b, err := r.mapping(&doc, branch{}, false, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// yamlReader builds trees from YAML nodes, as sops' YAML store does.
type yamlReader struct {
	// budget is how many more entries the trees may have: an alias is
	// copied where it is used, and a few bytes of aliases of aliases must
	// not make millions of entries.
	budget int
	unique bool // refuse keys given twice
}

func (r *yamlReader) spend() error {
	if r.budget--; r.budget < 0 {
		return errors.New("the YAML expands to too many values (through its aliases)")
	}
	return nil
}

// comments appends the lines of a yaml.v3 comment to a branch or a
// sequence.
func (r *yamlReader) commentLines(text string, inline bool, add func(comment)) error {
	if text == "" {
		return nil
	}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			continue
		}
		if err := r.spend(); err != nil {
			return err
		}
		add(comment{value: line[1:], inline: inline})
	}
	return nil
}

func (r *yamlReader) branchComments(b *branch, text string, inline bool) error {
	return r.commentLines(text, inline, func(c comment) { *b = append(*b, item{key: c}) })
}

func (r *yamlReader) listComments(s *[]any, text string, inline bool) error {
	return r.commentLines(text, inline, func(c comment) { *s = append(*s, c) })
}

// mapping appends the entries of a document or mapping node to b, with
// its comments unless the caller took them (handled).
func (r *yamlReader) mapping(n *yaml.Node, b branch, handled bool, depth int) (branch, error) {
	if depth > maxDepth {
		return nil, errors.New("the YAML is nested too deep")
	}
	if !handled {
		if err := r.branchComments(&b, n.HeadComment, false); err != nil {
			return nil, err
		}
		if err := r.branchComments(&b, n.LineComment, false); err != nil {
			return nil, err
		}
	}
	var err error
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if b, err = r.mapping(c, b, false, depth+1); err != nil {
				return nil, err
			}
		}
	case yaml.SequenceNode:
		return nil, fmt.Errorf("line %d: a YAML document that is a sequence is not a SOPS document", n.Line)
	case yaml.MappingNode:
		if b, err = r.entries(n, b, depth); err != nil {
			return nil, err
		}
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return b, nil // an empty document
		}
		return nil, fmt.Errorf("line %d: a YAML document that is a value is not a SOPS document", n.Line)
	case yaml.AliasNode:
		if b, err = r.mapping(n.Alias, b, false, depth+1); err != nil {
			return nil, err
		}
	}
	if !handled {
		if err := r.branchComments(&b, n.FootComment, false); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// entries appends the key-value pairs of a mapping node to b.
func (r *yamlReader) entries(n *yaml.Node, b branch, depth int) (branch, error) {
	var seen map[string]bool
	if r.unique {
		seen = make(map[string]bool, len(n.Content)/2)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if err := r.branchComments(&b, k.HeadComment, false); err != nil {
			return nil, err
		}
		if err := r.branchComments(&b, k.LineComment, false); err != nil {
			return nil, err
		}
		// The comments of a scalar value are the entry's.
		scalar := v.Kind == yaml.ScalarNode || v.Kind == yaml.AliasNode
		if scalar {
			if err := r.branchComments(&b, v.HeadComment, false); err != nil {
				return nil, err
			}
			if err := r.branchComments(&b, v.LineComment, true); err != nil {
				return nil, err
			}
		}
		var key any
		_ = k.Decode(&key) // as sops: a key that does not decode is refused below
		s, ok := key.(string)
		if !ok {
			return nil, fmt.Errorf("line %d: a mapping key is not a string; sops supports string keys only", k.Line)
		}
		if seen != nil {
			if seen[s] {
				return nil, fmt.Errorf("line %d: mapping key %q is given twice", k.Line, s)
			}
			seen[s] = true
		}
		val, err := r.value(v, scalar, depth+1)
		if err != nil {
			return nil, err
		}
		if err := r.spend(); err != nil {
			return nil, err
		}
		b = append(b, item{key: s, value: val})
		if scalar {
			if err := r.branchComments(&b, v.FootComment, false); err != nil {
				return nil, err
			}
		}
		if err := r.branchComments(&b, k.FootComment, false); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// value is the tree value of a node.
func (r *yamlReader) value(n *yaml.Node, handled bool, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("the YAML is nested too deep")
	}
	switch n.Kind {
	case yaml.SequenceNode:
		var s []any
		if !handled {
			if err := r.listComments(&s, n.HeadComment, false); err != nil {
				return nil, err
			}
			if err := r.listComments(&s, n.LineComment, false); err != nil {
				return nil, err
			}
		}
		for _, e := range n.Content {
			if err := r.listComments(&s, e.HeadComment, false); err != nil {
				return nil, err
			}
			if err := r.listComments(&s, e.LineComment, true); err != nil {
				return nil, err
			}
			v, err := r.value(e, true, depth+1)
			if err != nil {
				return nil, err
			}
			if err := r.spend(); err != nil {
				return nil, err
			}
			s = append(s, v)
			if err := r.listComments(&s, e.FootComment, false); err != nil {
				return nil, err
			}
		}
		if !handled {
			if err := r.listComments(&s, n.FootComment, false); err != nil {
				return nil, err
			}
		}
		return s, nil
	case yaml.MappingNode:
		return r.mapping(n, branch{}, handled, depth)
	case yaml.ScalarNode:
		var v any
		_ = n.Decode(&v) // as sops: a scalar that does not decode is null
		return v, nil
	case yaml.AliasNode:
		return r.value(n.Alias, false, depth+1)
	}
	return nil, nil
}

// emitYAML writes branches as sops writes them: one document each,
// indented by four, with their comments.
func emitYAML(branches []branch) ([]byte, error) {
	var buf bytes.Buffer
	e := yaml.NewEncoder(&buf)
	e.SetIndent(yamlIndent)
	for _, b := range branches {
		m := &yaml.Node{Kind: yaml.MappingNode}
		if err := yamlMapping(b, m); err != nil {
			return nil, err
		}
		if err := e.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{m}}); err != nil {
			return nil, err
		}
	}
	if err := e.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// yamlComment is comment lines as yaml.v3 writes them.
func yamlComment(lines []string) string { return "#" + strings.Join(lines, "\n#") }

func addHead(n *yaml.Node, lines []string) {
	if len(lines) == 0 {
		return
	}
	if n.HeadComment != "" {
		n.HeadComment = yamlComment(lines) + "\n" + n.HeadComment
	} else {
		n.HeadComment = yamlComment(lines)
	}
}

// appendComment adds lines after the comment *c (a node's line or foot comment).
func appendComment(c *string, lines []string) {
	if len(lines) == 0 {
		return
	}
	if *c != "" {
		*c += "\n"
	}
	*c += yamlComment(lines)
}

// takeComment adds v to the comments pending before the next entry of a mapping or sequence,
// inline or above it, and reports whether v was a comment.
func takeComment(v any, head, inline *[]string) bool {
	c, ok := v.(comment)
	if !ok {
		return false
	}
	if c.inline {
		*inline = append(*inline, c.value)
	} else {
		*head = append(*head, c.value)
	}
	return true
}

// yamlMapping fills the mapping node m with b: a comment goes above the
// next entry (an inline one after its value), the comments after the last
// entry below it.
func yamlMapping(b branch, m *yaml.Node) error {
	var head, inline []string
	first := true
	for _, it := range b {
		if takeComment(it.key, &head, &inline) {
			continue
		}
		if first {
			addHead(m, head)
			head, first = nil, false
		}
		k := &yaml.Node{}
		if err := k.Encode(it.key); err != nil {
			return err
		}
		addHead(k, head)
		head = nil
		v, err := yamlValue(it.value)
		if err != nil {
			return err
		}
		appendComment(&v.LineComment, inline)
		inline = nil
		m.Content = append(m.Content, k, v)
	}
	rest := append(head, inline...)
	if first {
		addHead(m, rest)
	} else {
		appendComment(&m.Content[len(m.Content)-2].FootComment, rest)
	}
	return nil
}

// yamlSequence fills the sequence node s with the elements of l, as
// yamlMapping does.
func yamlSequence(l []any, s *yaml.Node) error {
	var head, inline []string
	first := true
	for _, e := range l {
		if takeComment(e, &head, &inline) {
			continue
		}
		if first {
			addHead(s, head)
			head, first = nil, false
		}
		n, err := yamlValue(e)
		if err != nil {
			return err
		}
		addHead(n, head)
		appendComment(&n.LineComment, inline)
		head, inline = nil, nil
		s.Content = append(s.Content, n)
	}
	rest := append(head, inline...)
	if first {
		addHead(s, rest)
	} else {
		appendComment(&s.Content[len(s.Content)-1].FootComment, rest)
	}
	return nil
}

func yamlValue(v any) (*yaml.Node, error) {
	switch v := v.(type) {
	case branch:
		n := &yaml.Node{Kind: yaml.MappingNode}
		return n, yamlMapping(v, n)
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		return n, yamlSequence(v, n)
	}
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	return n, nil
}
