package sops

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The tree of a SOPS document is what sops builds from every format, and
// what its MAC is computed over: mappings keep their order, comments are
// entries of their own, and scalars have the Go types sops gives them
// (string, int, float64, bool, nil, time.Time; []byte once decrypted from
// type bytes), which decide how the MAC hashes them and how the document is
// written out again.

// comment is a comment line, without its comment character.
type comment struct {
	value  string
	inline bool // it ended a line (YAML)
}

// item is an entry of a mapping: a string key and its value, or a comment
// (the key is a comment, the value nil).
type item struct {
	key   any
	value any
}

// branch is a mapping, in document order. Values are scalars, branches and
// sequences ([]any, whose elements may be comments too).
type branch []item

// document is a SOPS file as read: its branches (one per YAML document,
// one for every other format) without the sops metadata, and the metadata.
type document struct {
	branches []branch
	meta     metadata
}

// macOnlyEncryptedInit starts the MAC of a file with mac_only_encrypted,
// so that it differs from the MAC of the same file without: the SHA-256
// of "sops", as sops does.
var macOnlyEncryptedInit = sha256.Sum256([]byte("sops"))

// maxDepth bounds the nesting of a document.
const maxDepth = 10000

// decryptTree decrypts, in place, the values of doc that its rules say
// sops encrypted, and computes its MAC as sops does: the SHA-512, in
// upper-case hex, of the values in tree order (the decrypted value of those
// that were encrypted; with mac_only_encrypted, those alone), each as sops
// formats its type, comments left out. It returns the MAC and the values it
// decrypted, as strings.
func decryptTree(doc document, key []byte) (mac string, secrets []string, err error) {
	w := &walker{key: key, rules: compileRules(doc.meta), macOnlyEncrypted: doc.meta.macOnlyEncrypted, mac: sha512.New()}
	if w.macOnlyEncrypted {
		w.mac.Write(macOnlyEncryptedInit[:])
	}
	for _, b := range doc.branches {
		if err := w.branch(b, nil, nil, 0); err != nil {
			return "", nil, err
		}
	}
	return fmt.Sprintf("%X", w.mac.Sum(nil)), w.secrets, nil
}

// walker walks a tree in sops' order, with the path of keys down to each
// value and, for each level, the comments seen since its last value (the
// comment rules decide by them).
type walker struct {
	key              []byte
	rules            rules
	macOnlyEncrypted bool
	mac              hash.Hash
	secrets          []string
}

// push returns stack with a new, empty level, sharing nothing with stack
// beyond it.
func push(stack [][]string) [][]string {
	return append(stack[:len(stack):len(stack)], nil)
}

func (w *walker) branch(b branch, path []string, stack [][]string, depth int) error {
	if depth > maxDepth {
		return errors.New("the document is nested too deep")
	}
	stack = push(stack)
	top := len(stack) - 1
	for i, it := range b {
		if c, ok := it.key.(comment); ok {
			stack[top] = append(stack[top], c.value)
			v, err := w.leaf(c, path, stack)
			if err != nil {
				return err
			}
			switch v := v.(type) {
			case comment:
				b[i].key = v
			case string:
				b[i].key = comment{value: v, inline: c.inline}
			default:
				return fmt.Errorf("a comment decrypted to a %T", v)
			}
			continue
		}
		c, valueIsComment := it.value.(comment)
		if valueIsComment {
			stack[top] = append(stack[top], c.value)
		}
		k, ok := it.key.(string)
		if !ok {
			return fmt.Errorf("a key is a %T, not a string", it.key)
		}
		v, err := w.value(it.value, append(path[:len(path):len(path)], k), stack, depth+1)
		if err != nil {
			return err
		}
		b[i].value = v
		if !valueIsComment {
			stack[top] = nil
		}
	}
	return nil
}

func (w *walker) sequence(s []any, path []string, stack [][]string, depth int) error {
	stack = push(stack)
	top := len(stack) - 1
	for i, e := range s {
		c, isComment := e.(comment)
		if isComment {
			stack[top] = append(stack[top], c.value)
		}
		v, err := w.value(e, path, stack, depth+1)
		if err != nil {
			return err
		}
		s[i] = v
		if !isComment {
			stack[top] = nil
		}
	}
	return nil
}

func (w *walker) value(v any, path []string, stack [][]string, depth int) (any, error) {
	switch v := v.(type) {
	case string, int, bool, float64, time.Time, comment:
		return w.leaf(v, path, stack)
	case []byte:
		return w.leaf(string(v), path, stack)
	case branch:
		return v, w.branch(v, path, stack, depth)
	case []any:
		return v, w.sequence(v, path, stack, depth)
	case nil:
		return nil, nil // never encrypted, not in the MAC
	}
	return nil, fmt.Errorf("a value is a %T", v)
}

// leaf decrypts one value, when the rules say sops encrypted it, and adds
// it to the MAC.
func (w *walker) leaf(in any, path []string, stack [][]string) (any, error) {
	c, isComment := in.(comment)
	encrypted := w.rules.encrypted(path, stack, isComment)
	v := in
	if encrypted {
		aad := strings.Join(path, ":") + ":"
		switch {
		case isComment:
			d, err := decryptValue(c.value, w.key, aad)
			switch {
			case err == nil:
				v = d
				if c.value != "" {
					w.secret(d)
				}
			case looksEncrypted(c.value):
				// sops keeps a comment that does not decrypt, as one
				// written before it encrypted comments; one that has the
				// form of an encrypted value was changed.
				return nil, fmt.Errorf("an encrypted comment does not decrypt: %w", err)
			}
		default:
			s, ok := in.(string)
			if !ok {
				return nil, fmt.Errorf("a value that should be encrypted is a %T", in)
			}
			d, err := decryptValue(s, w.key, aad)
			if err != nil {
				return nil, err
			}
			v = d
			if s != "" {
				w.secret(d)
			}
		}
	}
	if !w.macOnlyEncrypted || encrypted {
		if _, ok := v.(comment); !ok {
			b, err := macBytes(v)
			if err != nil {
				return nil, err
			}
			w.mac.Write(b)
		}
	}
	return v, nil
}

// secret remembers a decrypted value, as a string, to keep it out of
// messages.
func (w *walker) secret(v any) {
	switch v := v.(type) {
	case string:
		w.secrets = append(w.secrets, v)
	case []byte:
		w.secrets = append(w.secrets, string(v))
	case int:
		w.secrets = append(w.secrets, strconv.Itoa(v))
	case float64:
		w.secrets = append(w.secrets, strconv.FormatFloat(v, 'f', -1, 64))
	case comment:
		w.secrets = append(w.secrets, v.value)
	}
}

// macBytes is a value as sops hashes it into the MAC.
func macBytes(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case int:
		return []byte(strconv.Itoa(v)), nil
	case float64:
		return []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case bool:
		if v {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case []byte:
		return v, nil
	case time.Time:
		return v.MarshalText()
	case comment:
		return []byte(v.value), nil
	}
	return nil, fmt.Errorf("a value is a %T", v)
}

// rules are a file's encryption rules: which values sops encrypted.
type rules struct {
	unencryptedSuffix, encryptedSuffix string
	// A regular expression that does not compile matches nothing, as in
	// sops.
	unencryptedRegex, encryptedRegex               *regexp.Regexp
	unencryptedCommentRegex, encryptedCommentRegex *regexp.Regexp
	hasEncryptedRegex, hasEncryptedCommentRegex    bool
}

func compileRules(m metadata) rules {
	compile := func(s string) *regexp.Regexp {
		if s == "" {
			return nil
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return nil
		}
		return re
	}
	return rules{
		unencryptedSuffix:        m.unencryptedSuffix,
		encryptedSuffix:          m.encryptedSuffix,
		unencryptedRegex:         compile(m.unencryptedRegex),
		encryptedRegex:           compile(m.encryptedRegex),
		hasEncryptedRegex:        m.encryptedRegex != "",
		unencryptedCommentRegex:  compile(m.unencryptedCommentRegex),
		encryptedCommentRegex:    compile(m.encryptedCommentRegex),
		hasEncryptedCommentRegex: m.encryptedCommentRegex != "",
	}
}

func matches(re *regexp.Regexp, s string) bool { return re != nil && re.MatchString(s) }

// encrypted reports whether sops encrypted a value at path, after the
// comments of stack (a comment itself when isComment), as sops decides it:
// each rule given, in turn, may change the answer.
func (r rules) encrypted(path []string, stack [][]string, isComment bool) bool {
	encrypted := true
	if r.unencryptedSuffix != "" {
		for _, p := range path {
			if strings.HasSuffix(p, r.unencryptedSuffix) {
				encrypted = false
				break
			}
		}
	}
	if r.encryptedSuffix != "" {
		encrypted = false
		for _, p := range path {
			if strings.HasSuffix(p, r.encryptedSuffix) {
				encrypted = true
				break
			}
		}
	}
	if r.unencryptedRegex != nil {
		for _, p := range path {
			if matches(r.unencryptedRegex, p) {
				encrypted = false
				break
			}
		}
	}
	if r.hasEncryptedRegex {
		encrypted = false
		for _, p := range path {
			if matches(r.encryptedRegex, p) {
				encrypted = true
				break
			}
		}
	}
	if r.unencryptedCommentRegex != nil {
	unencrypted:
		for _, level := range stack {
			for _, c := range level {
				if matches(r.unencryptedCommentRegex, c) {
					encrypted = false
					break unencrypted
				}
			}
		}
	}
	if r.hasEncryptedCommentRegex {
		encrypted = false
		last := len(stack) - 1
	encryptedComments:
		for i, level := range stack {
			for j, c := range level {
				// The comment that matches is not encrypted itself: a
				// comment is encrypted when one before it matches.
				if isComment && i == last && j == len(level)-1 {
					continue
				}
				if matches(r.encryptedCommentRegex, c) {
					encrypted = true
					break encryptedComments
				}
			}
		}
	}
	return encrypted
}
