package manifests

import (
	"fmt"
	"slices"
	"strings"
)

// Operator is a label selector operator in the kubectl -l syntax.
type Operator string

// Selector operators.
const (
	OpEquals       Operator = "="
	OpDoubleEquals Operator = "=="
	OpNotEquals    Operator = "!="
	OpIn           Operator = "in"
	OpNotIn        Operator = "notin"
	OpExists       Operator = "exists"
	OpDoesNotExist Operator = "!"
)

// Requirement is one condition of a selector.
type Requirement struct {
	Key      string
	Operator Operator
	// Values are sorted and unique; one value for =, == and !=, none for
	// exists and !.
	Values []string
}

// Matches reports whether labels satisfy the requirement.
func (r Requirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case OpEquals, OpDoubleEquals, OpIn:
		return ok && slices.Contains(r.Values, v)
	case OpNotEquals, OpNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case OpExists:
		return ok
	case OpDoesNotExist:
		return !ok
	}
	return false
}

// String returns the requirement in kubectl syntax.
func (r Requirement) String() string {
	switch r.Operator {
	case OpExists:
		return r.Key
	case OpDoesNotExist:
		return "!" + r.Key
	case OpIn, OpNotIn:
		return r.Key + " " + string(r.Operator) + " (" + strings.Join(r.Values, ",") + ")"
	}
	v := ""
	if len(r.Values) > 0 {
		v = r.Values[0]
	}
	return r.Key + string(r.Operator) + v
}

// Selector is a set of requirements that must all hold. The zero Selector
// matches nothing; Everything matches every label set.
type Selector struct {
	reqs  []Requirement
	valid bool
}

// Everything returns a selector that matches every label set.
func Everything() Selector { return Selector{valid: true} }

// Nothing returns a selector that matches no label set.
func Nothing() Selector { return Selector{} }

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	if !s.valid {
		return false
	}
	for _, r := range s.reqs {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// Empty reports whether the selector matches everything.
func (s Selector) Empty() bool { return s.valid && len(s.reqs) == 0 }

// Requirements returns a copy of the selector's requirements, sorted by key.
func (s Selector) Requirements() []Requirement { return slices.Clone(s.reqs) }

// String returns the selector in kubectl syntax, requirements sorted by key.
// Nothing() renders as "<none>".
func (s Selector) String() string {
	if !s.valid {
		return "<none>"
	}
	parts := make([]string, len(s.reqs))
	for i, r := range s.reqs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

func newSelector(reqs []Requirement) Selector {
	for i := range reqs {
		slices.Sort(reqs[i].Values)
		reqs[i].Values = slices.Compact(reqs[i].Values)
	}
	slices.SortStableFunc(reqs, func(a, b Requirement) int { return strings.Compare(a.Key, b.Key) })
	return Selector{reqs: reqs, valid: true}
}

// ParseSelector parses the kubectl -l syntax: comma-separated requirements
// that must all hold, each one of "key=value", "key==value", "key!=value",
// "key in (v1,v2)", "key notin (v1)", "key" (exists) and "!key" (does not
// exist). The empty string selects everything.
func ParseSelector(s string) (Selector, error) {
	p := selectorParser{s: s}
	reqs, err := p.parse()
	if err != nil {
		return Selector{}, fmt.Errorf("invalid selector %q: %w", s, err)
	}
	return newSelector(reqs), nil
}

type selectorParser struct {
	s   string
	pos int
}

func (p *selectorParser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func isSelectorDelim(c byte) bool {
	switch c {
	case ' ', '\t', ',', '(', ')', '=', '!':
		return true
	}
	return false
}

// word reads a key or value: everything up to a delimiter.
func (p *selectorParser) word() string {
	start := p.pos
	for p.pos < len(p.s) && !isSelectorDelim(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *selectorParser) parse() ([]Requirement, error) {
	var reqs []Requirement
	p.skipSpace()
	if p.pos == len(p.s) {
		return nil, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
		p.skipSpace()
		if p.pos == len(p.s) {
			return reqs, nil
		}
		if p.s[p.pos] != ',' {
			return nil, fmt.Errorf("expected ',' at offset %d, found %q", p.pos, p.s[p.pos:])
		}
		p.pos++
		p.skipSpace()
	}
}

func (p *selectorParser) requirement() (Requirement, error) {
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == '!' {
		p.pos++
		p.skipSpace()
		key := p.word()
		if err := checkSelectorKey(key); err != nil {
			return Requirement{}, err
		}
		return Requirement{Key: key, Operator: OpDoesNotExist}, nil
	}
	key := p.word()
	if err := checkSelectorKey(key); err != nil {
		return Requirement{}, err
	}
	p.skipSpace()
	if p.pos == len(p.s) || p.s[p.pos] == ',' {
		return Requirement{Key: key, Operator: OpExists}, nil
	}
	var op Operator
	switch {
	case strings.HasPrefix(p.s[p.pos:], "=="):
		op, p.pos = OpDoubleEquals, p.pos+2
	case strings.HasPrefix(p.s[p.pos:], "!="):
		op, p.pos = OpNotEquals, p.pos+2
	case p.s[p.pos] == '=':
		op, p.pos = OpEquals, p.pos+1
	default:
		w := p.word()
		switch w {
		case "in":
			op = OpIn
		case "notin":
			op = OpNotIn
		default:
			return Requirement{}, fmt.Errorf("after key %q expected =, ==, !=, in or notin, found %q", key, p.s[p.pos-len(w):])
		}
	}
	p.skipSpace()
	if op == OpIn || op == OpNotIn {
		if p.pos == len(p.s) || p.s[p.pos] != '(' {
			return Requirement{}, fmt.Errorf("expected '(' after %q", key+" "+string(op))
		}
		p.pos++
		var values []string
		for {
			p.skipSpace()
			v := p.word()
			if err := checkLabelValue(v); err != nil {
				return Requirement{}, err
			}
			values = append(values, v)
			p.skipSpace()
			if p.pos == len(p.s) {
				return Requirement{}, fmt.Errorf("missing ')' after the values of %q", key)
			}
			if p.s[p.pos] == ')' {
				p.pos++
				break
			}
			if p.s[p.pos] != ',' {
				return Requirement{}, fmt.Errorf("expected ',' or ')' in the values of %q, found %q", key, p.s[p.pos:])
			}
			p.pos++
		}
		return Requirement{Key: key, Operator: op, Values: values}, nil
	}
	v := p.word()
	if err := checkLabelValue(v); err != nil {
		return Requirement{}, err
	}
	return Requirement{Key: key, Operator: op, Values: []string{v}}, nil
}

func checkSelectorKey(key string) error {
	if key == "" {
		return fmt.Errorf("missing label key")
	}
	if msg := validateQualifiedName(key); msg != "" {
		return fmt.Errorf("label key %q: %s", key, msg)
	}
	return nil
}

func checkLabelValue(v string) error {
	if msg := validateLabelValue(v); msg != "" {
		return fmt.Errorf("label value %q: %s", v, msg)
	}
	return nil
}

// SelectorFromLabelSelector converts a structured selector. A nil selector
// selects nothing and an empty one everything, as in Kubernetes.
func SelectorFromLabelSelector(ls *LabelSelector) (Selector, error) {
	if ls == nil {
		return Nothing(), nil
	}
	var reqs []Requirement
	for k, v := range ls.MatchLabels {
		if err := checkSelectorKey(k); err != nil {
			return Selector{}, fmt.Errorf("matchLabels: %w", err)
		}
		if err := checkLabelValue(v); err != nil {
			return Selector{}, fmt.Errorf("matchLabels[%s]: %w", k, err)
		}
		reqs = append(reqs, Requirement{Key: k, Operator: OpEquals, Values: []string{v}})
	}
	for i, e := range ls.MatchExpressions {
		r, err := requirementFromExpression(e)
		if err != nil {
			return Selector{}, fmt.Errorf("matchExpressions[%d]: %w", i, err)
		}
		reqs = append(reqs, r)
	}
	return newSelector(reqs), nil
}

func requirementFromExpression(e LabelSelectorRequirement) (Requirement, error) {
	if err := checkSelectorKey(e.Key); err != nil {
		return Requirement{}, err
	}
	var op Operator
	switch e.Operator {
	case LabelSelectorOpIn:
		op = OpIn
	case LabelSelectorOpNotIn:
		op = OpNotIn
	case LabelSelectorOpExists:
		op = OpExists
	case LabelSelectorOpDoesNotExist:
		op = OpDoesNotExist
	default:
		return Requirement{}, fmt.Errorf("operator %q is not one of In, NotIn, Exists, DoesNotExist", e.Operator)
	}
	switch op {
	case OpIn, OpNotIn:
		if len(e.Values) == 0 {
			return Requirement{}, fmt.Errorf("operator %s needs at least one value", e.Operator)
		}
	default:
		if len(e.Values) > 0 {
			return Requirement{}, fmt.Errorf("operator %s takes no values; remove values", e.Operator)
		}
	}
	for _, v := range e.Values {
		if err := checkLabelValue(v); err != nil {
			return Requirement{}, err
		}
	}
	return Requirement{Key: e.Key, Operator: op, Values: slices.Clone(e.Values)}, nil
}
