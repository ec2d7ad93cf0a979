package sops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gosops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	"github.com/getsops/sops/v3/logging"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"
)

// The differential tests check the decoder of this package against sops'
// own library: files encrypted by sops' Go API, as its command line does,
// must decrypt to the very bytes sops' decrypt package gives; and every
// change to one of them is refused or accepted as sops refuses or accepts
// it, with the same plain text. Changes to an encrypted value, the MAC,
// lastmodified, or a value in the clear that the MAC covers must be
// refused.

// corpusYAML has every kind of value and comment sops handles in YAML.
const corpusYAML = `# a comment at the top
apiVersion: v1
kind: Secret # an inline comment
metadata:
  name: db
  labels:
    app: web
    tier_unencrypted: backend
  annotations:
    clé: "valeur ✓"
stringData:
  password: hunter2-correct-horse
  token_enc: s3cr3t-suffix
  empty: ""
  multi: |
    line one
    line two
  folded: >
    folded
    text
  unicode: "héllo wörld ✓ 日本語"
  quoted: "true"
  number_text: "0123"
  null_text: "null"
  colon: "a: b"
  hash: "#not a comment"
numbers:
  int: 42
  negative: -7
  zero: 0
  float_one: 1.0
  float_big: 1e10
  float_neg: -0.5
  float_pi: 3.14159
  big: 9007199254740993
  huge: 99999999999999999999
  hex: 0x1F
flags:
  yes_flag: true
  no_flag: false
  when: 2024-01-02T03:04:05Z
nothing: null
tilde: ~
list:
  - a
  # a comment in a list
  - 1
  - 2.5
  - true # inline in a list
  - null
  - nested:
      deep: value
  - [x, y]
list_of_maps:
  - name: first
    value: one
  - name: second
    # above a key in a list
    value: two
empty_map: {}
empty_list: []
# sops:enc
marked: encrypted by its comment
after: plain after the marked one
# sops:plain
kept: left by its comment
# a comment at the end
`

const corpusMultiDoc = `# first document
a: 1
b: first-secret-value
---
# second document
c: [1, 2, {d: e}]
f: second-secret-value
---
g: third
`

const corpusAnchors = `base: &base
  x: 1
  y: anchored-secret
copy: *base
merged:
  <<: *base
  z: 3
list: &l [a, b]
again: *l
`

const corpusJSON = `{
	"apiVersion": "v1",
	"kind": "Secret",
	"metadata": {"name": "db", "labels": {"app": "web", "tier_unencrypted": "backend"}},
	"data": {"password": "aHVudGVyMi1jb3JyZWN0", "empty": "", "token_enc": "c2VjcmV0"},
	"numbers": [1, -2, 0, 1.0, 1e10, -0.5, 9007199254740993, 12345678901234567890],
	"flags": [true, false, null],
	"nested": [{"a": [1, {"b": "c"}]}, [[]]],
	"unicode": "héllo ✓ \u00e9 <html> & \"quotes\"",
	"multi": "line one\nline two\ttab",
	"emptyobj": {},
	"emptyarr": []
}
`

const corpusDotenv = `# a comment
USER=admin
PASSWORD=hunter2-env-value
MULTI=line one\nline two
EMPTY=
UNICODE=héllo ✓
SPACED = with spaces 
NOTE_unencrypted=left in the clear
# another comment
`

const corpusINI = `; a comment at the top
[database]
user = admin
password = hunter2-ini-value
# a comment on host
host = db.local
port = 5432

[other]
key_unencrypted = visible
empty =
unicode = héllo ✓
`

const corpusBinary = "-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEA\n-----END PRIVATE KEY-----\n\x00\x01 ✓ and more\n"

// differentialCase is one file to encrypt with sops and decrypt with
// both.
type differentialCase struct {
	name  string
	plain string
	opts  encryptOpts
}

func differentialCorpus(recipient string, groups [][]string) []differentialCase {
	yamlDocs := map[string]string{"all": corpusYAML, "multi-doc": corpusMultiDoc, "anchors": corpusAnchors}
	var cases []differentialCase
	add := func(name, plain string, o encryptOpts) {
		if o.age == nil && o.groups == nil {
			o.age = []string{recipient}
		}
		cases = append(cases, differentialCase{name: name, plain: plain, opts: o})
	}
	yamlRules := []struct {
		name string
		o    encryptOpts
	}{
		{"default", encryptOpts{}},
		{"encrypted_regex", encryptOpts{encryptedRegex: "^(data|stringData|numbers)$"}},
		{"encrypted_suffix", encryptOpts{encryptedSuffix: "_enc"}},
		{"unencrypted_regex", encryptOpts{unencryptedRegex: "^(kind|metadata|list)$"}},
		{"unencrypted_suffix", encryptOpts{unencryptedSfx: "_unencrypted"}},
		{"encrypted_comment_regex", encryptOpts{encryptedCommentRegex: "sops:enc"}},
		{"unencrypted_comment_regex", encryptOpts{unencryptedCommentRegex: "sops:plain"}},
		{"mac_only_encrypted", encryptOpts{macOnlyEncrypted: true, encryptedRegex: "^(stringData|numbers)$"}},
		{"mac_only_encrypted all", encryptOpts{macOnlyEncrypted: true}},
		{"shamir 2 of 3", encryptOpts{groups: groups, threshold: 2}},
	}
	for _, doc := range []string{"all", "multi-doc", "anchors"} {
		for _, r := range yamlRules {
			o := r.o
			o.format = manifests.SOPSYAML
			add("yaml "+doc+" "+r.name, yamlDocs[doc], o)
		}
	}
	for _, o := range []encryptOpts{
		{},
		{encryptedRegex: "^data$"},
		{encryptedSuffix: "_enc"},
		{unencryptedRegex: "^(kind|metadata)$"},
		{macOnlyEncrypted: true, encryptedRegex: "^(data|numbers)$"},
		{groups: groups, threshold: 2},
	} {
		o.format = manifests.SOPSJSON
		add("json "+describeOpts(o), corpusJSON, o)
	}
	for _, o := range []encryptOpts{
		{},
		{encryptedRegex: "^PASS"},
		{unencryptedSfx: "_unencrypted"},
		{macOnlyEncrypted: true, encryptedRegex: "^(PASSWORD|MULTI)$"},
	} {
		o.format = manifests.SOPSDotenv
		add("dotenv "+describeOpts(o), corpusDotenv, o)
	}
	for _, o := range []encryptOpts{
		{},
		{encryptedRegex: "^password$"},
		{macOnlyEncrypted: true, encryptedRegex: "^(password|port)$"},
		{groups: groups, threshold: 2},
	} {
		o.format = manifests.SOPSINI
		add("ini "+describeOpts(o), corpusINI, o)
	}
	for _, plain := range []string{corpusBinary, "", "one line"} {
		add(fmt.Sprintf("binary %d bytes", len(plain)), plain, encryptOpts{format: manifests.SOPSBinary})
	}
	return cases
}

func describeOpts(o encryptOpts) string {
	var parts []string
	for name, v := range map[string]string{"encrypted_regex": o.encryptedRegex, "encrypted_suffix": o.encryptedSuffix, "unencrypted_regex": o.unencryptedRegex, "unencrypted_suffix": o.unencryptedSfx} {
		if v != "" {
			parts = append(parts, name)
		}
	}
	if o.macOnlyEncrypted {
		parts = append(parts, "mac_only_encrypted")
	}
	if o.groups != nil {
		parts = append(parts, "shamir")
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, " ")
}

// sopsDecrypt decrypts as sops' decrypt package does (DataWithFormat, whose
// package links sops' command line too), with the stores its command line
// uses: the data key from the local key service, which finds the age
// identities through SOPS_AGE_KEY_FILE.
func sopsDecrypt(t testing.TB, data []byte, f manifests.SOPSFormat) (plain []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			plain, err = nil, fmt.Errorf("sops panicked: %v", r)
		}
	}()
	store := sopsStore(t, f)
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, err
	}
	key, err := tree.Metadata.GetDataKey()
	if err != nil {
		return nil, err
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, err
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, err
	}
	if stored != mac {
		return nil, gosops.MacMismatch
	}
	return store.EmitPlainFile(tree.Branches)
}

// useSOPSKeys points sops' decrypt package at an identity file.
func useSOPSKeys(t testing.TB, keyFile []byte) {
	t.Helper()
	logging.SetLevel(logrus.FatalLevel)
	path := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(path, keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOPS_AGE_KEY_FILE", path)
	for _, name := range []string{"SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE", "SOPS_AGE_SSH_PRIVATE_KEY_CMD", "SOPS_AGE_RECIPIENTS"} {
		t.Setenv(name, "") // restored after the test
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
}

func TestDifferential(t *testing.T) {
	keyFile, recipient := ageKey(t)
	second, secondRecipient := ageKey(t)
	_, thirdRecipient := ageKey(t) // the third Shamir group stays closed
	keys := append(append([]byte{}, keyFile...), second...)
	useSOPSKeys(t, keys)
	d := newDecryptor(t, Keys{AgeIdentities: keys})
	groups := [][]string{{recipient}, {secondRecipient}, {thirdRecipient}}

	for _, c := range differentialCorpus(recipient, groups) {
		t.Run(c.name, func(t *testing.T) {
			enc := encrypt(t, c.plain, c.opts)
			f := c.opts.format
			want, err := sopsDecrypt(t, enc, f)
			if err != nil {
				t.Fatalf("sops does not decrypt its own file: %v\n%s", err, enc)
			}
			got, secrets, err := d.DecryptSOPS("file", manifests.SOPSFile{Format: f}, enc)
			if err != nil {
				t.Fatalf("%v\n%s", err, enc)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("plain text differs from sops'\n--- got:\n%s\n--- sops:\n%s", got, want)
			}
			checkPlainTree(t, f, c.plain, got)
			macs := macRE.FindAllIndex(enc, -1)
			if len(encRE.FindAllIndex(enc, -1)) > len(macs) && len(secrets) == 0 {
				t.Errorf("no decrypted value reported")
			}

			muts := mutations(t, f, enc, c.opts)
			t.Logf("%d changes", len(muts))
			for _, m := range muts {
				gotM, _, errM := d.DecryptSOPS("file", manifests.SOPSFile{Format: f}, m.data)
				if m.sameAs {
					// sops cannot read the type bytes (its cipher panics).
					if errM != nil || !bytes.Equal(gotM, got) {
						t.Errorf("%s: got %v\n%s\nwant the same plain text", m.name, errM, gotM)
					}
					continue
				}
				wantM, sopsErr := sopsDecrypt(t, m.data, f)
				switch {
				case m.refuse && errM == nil:
					t.Errorf("%s: accepted:\n%s", m.name, m.data)
				case errM == nil && sopsErr != nil:
					t.Errorf("%s: accepted, sops refuses it (%v):\n%s", m.name, sopsErr, m.data)
				case errM == nil && !bytes.Equal(gotM, wantM):
					t.Errorf("%s: plain text differs from sops'\n--- got:\n%s\n--- sops:\n%s", m.name, gotM, wantM)
				case errM != nil && sopsErr == nil && !m.comment:
					t.Errorf("%s: refused (%v), sops accepts it:\n%s", m.name, errM, m.data)
				}
				if errM != nil && gotM != nil {
					t.Errorf("%s: data with the error", m.name)
				}
			}
		})
	}
}

// checkPlainTree checks the plain text against the file before it was
// encrypted, as sops read it: the same tree, once written out by sops.
func checkPlainTree(t *testing.T, f manifests.SOPSFormat, plain string, got []byte) {
	t.Helper()
	if f == manifests.SOPSBinary {
		if string(got) != strings.ToValidUTF8(plain, "\uFFFD") {
			t.Errorf("binary plain text %q, want %q", got, plain)
		}
		return
	}
	st := sopsStore(t, f)
	orig, err := st.LoadPlainFile([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	back, err := st.LoadPlainFile(got)
	if err != nil {
		t.Fatalf("the plain text does not load: %v\n%s", err, got)
	}
	if len(orig) != len(back) {
		t.Fatalf("%d documents, want %d", len(back), len(orig))
	}
	for i := range orig {
		if !withoutComments(orig[i]).Equals(withoutComments(back[i])) {
			t.Errorf("document %d: the plain text is not the tree encrypted\n--- got:\n%s\n--- encrypted:\n%s", i, got, plain)
		}
	}
}

// withoutComments drops comments (sops moves decrypted inline comments
// above their line) and normalizes what writing out changes: floats that
// are whole numbers are read back as ints, times as strings in JSON.
func withoutComments(b gosops.TreeBranch) gosops.TreeBranch {
	var out gosops.TreeBranch
	for _, it := range b {
		if _, ok := it.Key.(gosops.Comment); ok {
			continue
		}
		out = append(out, gosops.TreeItem{Key: it.Key, Value: normalize(it.Value)})
	}
	return out
}

func normalize(v any) any {
	switch v := v.(type) {
	case gosops.TreeBranch:
		return withoutComments(v)
	case []any:
		out := []any{}
		for _, e := range v {
			if _, ok := e.(gosops.Comment); !ok {
				out = append(out, normalize(e))
			}
		}
		return out
	case float64:
		if v == float64(int(v)) && v < 1<<53 && v > -(1<<53) {
			return int(v)
		}
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	}
	return v
}

// mutation is a changed encrypted file.
type mutation struct {
	name    string
	data    []byte
	refuse  bool // the change must be refused
	comment bool // the change is to an encrypted comment, which sops keeps as it is when it does not decrypt
	sameAs  bool // the plain text must not change
}

// macRE finds the MAC in the metadata (of each document of a YAML file).
var macRE = regexp.MustCompile(`(?m)^(    mac: |\t\t"mac": "|sops_mac=|mac\s*=\s*)ENC\[`)

var encRE = regexp.MustCompile(`ENC\[AES256_GCM,data:([^,\]]+),iv:([^,\]]+),tag:([^,\]]+),type:([a-z]+)\]`)

// mutations lists single changes to enc: each part of each ENC[...] value
// (the MAC's too), lastmodified, and each value in the clear.
func mutations(t *testing.T, f manifests.SOPSFormat, enc []byte, o encryptOpts) []mutation {
	var out []mutation
	// sops writes the metadata into each document of a YAML file, and
	// reads it from the first: the other copies are not used.
	unused := map[int]bool{}
	for i, m := range macRE.FindAllIndex(enc, -1) {
		if i > 0 {
			unused[m[1]-len("ENC[")] = true
		}
	}
	for i, m := range encRE.FindAllSubmatchIndex(enc, -1) {
		line := lineAt(enc, m[0])
		before := strings.TrimRight(string(enc[bytes.LastIndexByte(enc[:m[0]], '\n')+1:m[0]]), " ")
		isComment := strings.HasSuffix(before, "#") || strings.HasSuffix(before, ";")
		// One part of each value, in turn: each is authenticated alike.
		part := i % 3
		out = append(out, mutation{
			name:    fmt.Sprintf("%s of the ENC value at %d (%q)", []string{"data", "iv", "tag"}[part], m[0], clip(line)),
			data:    replaceAt(enc, m[2+2*part], bumpBase64(enc[m[2+2*part]])),
			refuse:  !unused[m[0]],
			comment: isComment,
		})
		// The type is not authenticated; bytes is read as str, and hashed
		// alike into the MAC.
		if string(enc[m[8]:m[9]]) == "str" {
			out = append(out, mutation{name: fmt.Sprintf("type of the ENC value at %d", m[0]), data: splice(enc, m[8], m[9], "bytes"), sameAs: true})
		}
	}
	lm := regexp.MustCompile(`(lastmodified"?\s*[:=]\s*"?)(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`).FindSubmatchIndex(enc)
	if lm == nil {
		t.Fatalf("no lastmodified in\n%s", enc)
	}
	ts, err := time.Parse(time.RFC3339, string(enc[lm[4]:lm[5]]))
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, mutation{name: "lastmodified", data: splice(enc, lm[4], lm[5], ts.Add(time.Second).Format(time.RFC3339)), refuse: true})

	covered := !o.macOnlyEncrypted
	for _, p := range clearValues(t, f, enc) {
		out = append(out, mutation{name: fmt.Sprintf("clear value at %d (%q)", p.off, clip(lineAt(enc, p.off))), data: bumpAt(enc, p), refuse: covered && !p.null})
	}
	return out
}

// clearPos is where a value in the clear starts.
type clearPos struct {
	off  int
	null bool // a null, which the MAC does not cover: changing it adds a value
}

func (p clearPos) String() string { return fmt.Sprint(p.off) }

// clearValues finds the values in the clear of an encrypted file, outside
// its metadata, and, in YAML, its keys.
func clearValues(t *testing.T, f manifests.SOPSFormat, enc []byte) []clearPos {
	var out []clearPos
	text := string(enc)
	switch f {
	case manifests.SOPSYAML:
		starts := lineStarts(enc)
		dec := yaml.NewDecoder(bytes.NewReader(enc))
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); err != nil {
				break
			}
			var walk func(n *yaml.Node, key bool)
			walk = func(n *yaml.Node, key bool) {
				switch n.Kind {
				case yaml.DocumentNode, yaml.SequenceNode:
					for _, c := range n.Content {
						walk(c, false)
					}
				case yaml.MappingNode:
					for i := 0; i+1 < len(n.Content); i += 2 {
						if n.Content[i].Value == "sops" && n == doc.Content[0] {
							continue
						}
						walk(n.Content[i], true)
						walk(n.Content[i+1], false)
					}
				case yaml.ScalarNode:
					if strings.HasPrefix(n.Value, "ENC[") {
						return
					}
					off := starts[n.Line-1] + n.Column - 1
					switch n.Style {
					case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
						off++
					case yaml.LiteralStyle, yaml.FoldedStyle:
						off = starts[n.Line] + len(lineAt(enc, starts[n.Line])) - len(strings.TrimLeft(lineAt(enc, starts[n.Line]), " "))
					}
					if key {
						// Keys are not in the MAC: the change must only be
						// treated as sops treats it.
						out = append(out, clearPos{off: off, null: true})
						return
					}
					out = append(out, clearPos{off: off, null: n.ShortTag() == "!!null"})
				}
			}
			walk(&doc, false)
		}
	case manifests.SOPSJSON, manifests.SOPSBinary:
		// Tokens, and whether each is a key: in an object, every other one.
		dec := json.NewDecoder(bytes.NewReader(enc))
		type level struct{ object, key bool }
		var stack []level
		for {
			off := int(dec.InputOffset())
			tok, err := dec.Token()
			if err != nil {
				break
			}
			for strings.ContainsRune(" \t\r\n,:", rune(text[off])) {
				off++
			}
			isKey := false
			if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
				// A closing token is neither key nor value.
			} else if n := len(stack); n > 0 && stack[n-1].object {
				isKey = stack[n-1].key
				stack[n-1].key = !stack[n-1].key
			}
			switch tok := tok.(type) {
			case json.Delim:
				switch tok {
				case '{':
					stack = append(stack, level{object: true, key: true})
				case '[':
					stack = append(stack, level{})
				default:
					stack = stack[:len(stack)-1]
				}
			case string:
				if isKey && tok == "sops" && len(stack) == 1 {
					return out
				}
				if !isKey && !strings.HasPrefix(tok, "ENC[") {
					out = append(out, clearPos{off: off + 1})
				}
			case json.Number:
				out = append(out, clearPos{off: off})
			}
		}
	case manifests.SOPSDotenv:
		for _, start := range lineStarts(enc) {
			line := lineAt(enc, start)
			if line == "" || line[0] == '#' || strings.HasPrefix(line, "sops_") {
				continue
			}
			if i := strings.IndexByte(line, '='); i >= 0 && !strings.HasPrefix(line[i+1:], "ENC[") {
				out = append(out, clearPos{off: start + i + 1})
			}
		}
	case manifests.SOPSINI:
		section := ""
		for _, start := range lineStarts(enc) {
			line := lineAt(enc, start)
			if strings.HasPrefix(line, "[") {
				section = line
				continue
			}
			if section == "[sops]" || line == "" || line[0] == ';' || line[0] == '#' {
				continue
			}
			if i := strings.Index(line, "= "); i >= 0 && !strings.HasPrefix(line[i+2:], "ENC[") {
				out = append(out, clearPos{off: start + i + 2})
			}
		}
	}
	return out
}

func lineStarts(b []byte) []int {
	starts := []int{0}
	for i, c := range b {
		if c == '\n' && i+1 < len(b) {
			starts = append(starts, i+1)
		}
	}
	return starts
}

func lineAt(b []byte, off int) string {
	start := bytes.LastIndexByte(b[:off], '\n') + 1
	end := bytes.IndexByte(b[off:], '\n')
	if end < 0 {
		return string(b[start:])
	}
	return string(b[start : off+end])
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func splice(b []byte, start, end int, with string) []byte {
	out := append([]byte{}, b[:start]...)
	out = append(out, with...)
	return append(out, b[end:]...)
}

func replaceAt(b []byte, off int, c byte) []byte {
	out := append([]byte{}, b...)
	out[off] = c
	return out
}

func bumpBase64(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}

// bumpAt changes the character at p.off: the next letter or digit, or an
// x before it.
func bumpAt(b []byte, p clearPos) []byte {
	if p.off >= len(b) {
		return append(append([]byte{}, b...), 'x')
	}
	c := b[p.off]
	switch {
	case c >= '0' && c <= '8', c >= 'a' && c <= 'y', c >= 'A' && c <= 'Y':
		return replaceAt(b, p.off, c+1)
	case c == '9':
		return replaceAt(b, p.off, '0')
	case c == 'z' || c == 'Z':
		return replaceAt(b, p.off, c-25)
	}
	return splice(b, p.off, p.off, "x")
}
