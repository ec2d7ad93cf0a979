package manifests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// SOPS-encrypted files. A file of the tree that sops encrypted (a YAML or
// JSON document with the top-level key "sops", a dotenv or INI file with
// sops' metadata entries, or a file sops encrypted whole in its binary
// format) is decrypted in memory by LoadOptions.Decryptor before it is
// decoded, and so is every such file a kustomize build reads (resources,
// patches, the files and envs of generators). Package manifests/sops
// implements the Decryptor; this package only tells encrypted files from
// plain ones and keeps what was decrypted out of the errors it reports.

// SOPSFormat is the format sops encrypted a file in, as its stores name it.
type SOPSFormat string

// The formats of SOPS files.
const (
	SOPSYAML   SOPSFormat = "yaml"
	SOPSJSON   SOPSFormat = "json"
	SOPSDotenv SOPSFormat = "dotenv"
	SOPSINI    SOPSFormat = "ini"
	// SOPSBinary is a file sops encrypted whole: a JSON document with the
	// keys "data" and "sops".
	SOPSBinary SOPSFormat = "binary"
)

// SOPSFile describes a SOPS-encrypted file, as DetectSOPS found it.
type SOPSFile struct {
	Format SOPSFormat
	// Line is the line of the file's sops metadata (1 when unknown).
	Line int
	// Recipients are the age recipients and the OpenPGP fingerprints the
	// file was encrypted for, as its metadata lists them (the file is not
	// decrypted to find them), each as "age age1..." or "pgp FINGERPRINT".
	Recipients []string
	// OtherKeys is how many of its master keys are of other types (cloud
	// KMS, Vault), which Shoal cannot use.
	OtherKeys int
}

// Decryptor decrypts SOPS-encrypted files in memory; package manifests/sops
// implements it with age identities and OpenPGP keys. It must be safe for
// concurrent use.
type Decryptor interface {
	// DecryptSOPS returns the plain text of the SOPS file name (found by
	// DetectSOPS), without its sops metadata, and the values it decrypted,
	// which a load keeps out of every error and warning it reports. It
	// verifies the file's MAC. Its error must say why the file cannot be
	// decrypted (with the recipients it was encrypted for) and must not
	// contain decrypted data.
	DecryptSOPS(name string, f SOPSFile, data []byte) (plain []byte, secrets []string, err error)
}

// sopsMetadataKeys are keys of sops metadata: a "sops" mapping with one of
// them is sops', not a user's.
var sopsMetadataKeys = []string{"mac", "lastmodified", "version", "age", "pgp", "kms", "key_groups"}

// DetectSOPS reports whether data, the content of file name, is a SOPS
// document, and in which format. The format is told by the extension
// (.yaml and .yml, .json, .env, .ini; any other name may hold a file sops
// encrypted whole) and the content: a top-level "sops" metadata mapping, or
// sops' metadata entries (sops_mac=...) in a dotenv or INI file. It never
// fails: a file it cannot parse is not a SOPS file (its decoder reports
// it).
func DetectSOPS(name string, data []byte) (SOPSFile, bool) {
	if !bytes.Contains(data, []byte("sops")) {
		return SOPSFile{}, false
	}
	switch ext := strings.ToLower(path.Ext(name)); ext {
	case ".yaml", ".yml":
		return detectYAML(data, SOPSYAML)
	case ".json":
		return detectYAML(data, SOPSJSON)
	case ".env":
		return detectFlat(data, SOPSDotenv)
	case ".ini":
		return detectFlat(data, SOPSINI)
	default:
		f, ok := detectYAML(data, SOPSBinary)
		if !ok || !isBinaryDoc(data) {
			return SOPSFile{}, false
		}
		return f, true
	}
}

// isBinaryDoc reports whether data is a JSON object of sops' binary store:
// a "data" string beside the metadata, nothing else.
func isBinaryDoc(data []byte) bool {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &doc); err != nil || len(doc) != 2 {
		return false
	}
	var s string
	return json.Unmarshal(doc["data"], &s) == nil
}

// detectYAML finds a top-level "sops" metadata mapping in any document of
// a YAML (or JSON) file.
func detectYAML(data []byte, format SOPSFormat) (SOPSFile, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for range 10000 {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			return SOPSFile{}, false
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue
		}
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if k.Value != "sops" || v.Kind != yaml.MappingNode || !isSOPSMetadata(v) {
				continue
			}
			f := SOPSFile{Format: format, Line: max(k.Line, 1)}
			f.Recipients, f.OtherKeys = yamlRecipients(v)
			return f, true
		}
	}
	return SOPSFile{}, false
}

func isSOPSMetadata(m *yaml.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if slices.Contains(sopsMetadataKeys, m.Content[i].Value) {
			return true
		}
	}
	return false
}

// otherKeyTypes are sops' master key types Shoal cannot use.
var otherKeyTypes = []string{"kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"}

// yamlRecipients lists the age recipients and PGP fingerprints of a sops
// metadata mapping, in its key groups too, and counts its other keys.
func yamlRecipients(meta *yaml.Node) (recipients []string, other int) {
	var walk func(m *yaml.Node, depth int)
	walk = func(m *yaml.Node, depth int) {
		if m == nil || m.Kind != yaml.MappingNode || depth > 4 {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i].Value, m.Content[i+1]
			if v.Kind != yaml.SequenceNode {
				continue
			}
			for _, e := range v.Content {
				switch {
				case k == "age":
					if r := scalarOf(e, "recipient"); r != "" {
						recipients = append(recipients, "age "+r)
					}
				case k == "pgp":
					if fp := scalarOf(e, "fp"); fp != "" {
						recipients = append(recipients, "pgp "+fp)
					}
				case k == "key_groups":
					walk(e, depth+1)
				case slices.Contains(otherKeyTypes, k):
					other++
				}
			}
		}
	}
	walk(meta, 0)
	return recipients, other
}

func scalarOf(m *yaml.Node, key string) string {
	if m.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// flatRecipientRE matches the flattened metadata entries of a dotenv or
// INI file that name a recipient: sops_age__list_0__map_recipient=age1...
var flatRecipientRE = regexp.MustCompile(`^(?:sops_)?(age|pgp|kms|gcp_kms|azure_kv|hc_vault|hckms)__list_\d+__map_(recipient|fp|arn|resource_id|vault_url|vault_address|key_id)\s*=\s*(.*)$`)

// detectFlat finds sops' metadata entries (sops_mac=..., or a [sops]
// section with mac = ...) in a dotenv or INI file.
func detectFlat(data []byte, format SOPSFormat) (SOPSFile, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	f := SOPSFile{Format: format}
	found, inSection := false, false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if format == SOPSINI && strings.HasPrefix(line, "[") {
			inSection = line == "[sops]"
			if inSection && f.Line == 0 {
				f.Line = n
			}
			continue
		}
		entry := line
		if format == SOPSINI {
			if !inSection {
				continue
			}
		} else {
			var ok bool
			if entry, ok = strings.CutPrefix(line, "sops_"); !ok {
				continue
			}
		}
		key, _, _ := strings.Cut(entry, "=")
		key = strings.TrimSpace(key)
		if key == "mac" || key == "lastmodified" || key == "version" {
			found = true
			if f.Line == 0 {
				f.Line = n
			}
		}
		if m := flatRecipientRE.FindStringSubmatch(entry); m != nil {
			switch {
			case m[1] == "age" && m[2] == "recipient":
				f.Recipients = append(f.Recipients, "age "+strings.TrimSpace(m[3]))
			case m[1] == "pgp" && m[2] == "fp":
				f.Recipients = append(f.Recipients, "pgp "+strings.TrimSpace(m[3]))
			case m[1] != "age" && m[1] != "pgp":
				f.OtherKeys++
			}
		}
	}
	if !found {
		return SOPSFile{}, false
	}
	f.Line = max(f.Line, 1)
	return f, true
}

// DescribeRecipients lists the recipients of f for a message, such as
// "age age1xyz, pgp 0123ABCD (and 1 cloud KMS or Vault key Shoal cannot use)".
func (f SOPSFile) DescribeRecipients() string {
	s := strings.Join(f.Recipients, ", ")
	if s == "" {
		s = "no age or OpenPGP recipient"
	}
	if f.OtherKeys > 0 {
		s += fmt.Sprintf(" (and %d cloud KMS or Vault %s Shoal cannot use)", f.OtherKeys, plural(f.OtherKeys, "key", "keys"))
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// KeyHint says how to give Shoal a key, for errors about encrypted files.
const KeyHint = "give the daemon (and shoal validate or diff) an age identity for one of these recipients with --sops-age-key-file, or the OpenPGP secret key of one of these fingerprints with --sops-gpg-keyring"

// noKeyMsg is the error for an encrypted file that a load has no
// Decryptor for.
func noKeyMsg(f SOPSFile) string {
	return fmt.Sprintf("is encrypted with SOPS (for %s) and no key was given: %s", f.DescribeRecipients(), KeyHint)
}

// skippedMsg is the warning for an encrypted file a load left out.
func skippedMsg(f SOPSFile) string {
	return fmt.Sprintf("not checked: the file is encrypted with SOPS (for %s) and no key was given; pass --sops-age-key-file or --sops-gpg-keyring to check it", f.DescribeRecipients())
}

// errSkipped is returned to kustomize for an encrypted file a load leaves
// out for want of a key.
var errSkipped = errors.New("is encrypted with SOPS and no key was given")

// decrypter decrypts the encrypted files of one load and remembers what it
// decrypted: each file once (kustomize reads a file again each time it is
// included), and every decrypted value, to keep out of errors.
type decrypter struct {
	d    Decryptor
	skip bool

	mu      sync.Mutex
	cache   map[[32]byte]decrypted
	secrets map[string]bool
}

type decrypted struct {
	plain []byte
	err   error
}

func newDecrypter(opts LoadOptions) *decrypter {
	return &decrypter{d: opts.Decryptor, skip: opts.SkipEncrypted, cache: map[[32]byte]decrypted{}, secrets: map[string]bool{}}
}

// sopsOutcome is what the decrypter made of a file.
type sopsOutcome int

const (
	sopsPlain     sopsOutcome = iota // not encrypted: use the data as read
	sopsDecrypted                    // decrypted: use the plain text
	sopsSkipped                      // encrypted, no key, skipping allowed: leave the file out
	sopsFailed                       // encrypted and not decrypted: an error of the file
)

// open returns the data of file name to decode: data itself when it is not
// encrypted, else its plain text, or an error at the line of its metadata.
func (c *decrypter) open(name, display string, data []byte) ([]byte, sopsOutcome, *Error) {
	f, ok := DetectSOPS(name, data)
	if !ok {
		return data, sopsPlain, nil
	}
	if c.d == nil {
		if c.skip {
			return nil, sopsSkipped, &Error{File: display, Line: f.Line, Msg: skippedMsg(f)}
		}
		return nil, sopsFailed, &Error{File: display, Line: f.Line, Msg: noKeyMsg(f)}
	}
	sum := sha256.Sum256(append([]byte(name+"\x00"), data...))
	c.mu.Lock()
	r, ok := c.cache[sum]
	c.mu.Unlock()
	if !ok {
		plain, secrets, err := c.d.DecryptSOPS(name, f, data)
		r = decrypted{plain: plain, err: err}
		c.mu.Lock()
		c.cache[sum] = r
		for _, s := range secrets {
			c.secrets[s] = true
		}
		c.mu.Unlock()
	}
	if r.err != nil {
		return nil, sopsFailed, &Error{File: display, Line: f.Line, Msg: r.err.Error()}
	}
	return r.plain, sopsDecrypted, nil
}

// minRedacted is the shortest decrypted value redacted wherever it occurs
// in a message; a shorter one is redacted only where it stands alone (not
// inside a longer word), so that a secret "1" does not take every digit 1
// out of every message.
const minRedacted = 6

// redact replaces every decrypted value in the messages of errs (in
// place) with "<redacted>".
func (c *decrypter) redact(errs ErrorList) {
	c.mu.Lock()
	secrets := make([]string, 0, len(c.secrets))
	for s := range c.secrets {
		if strings.TrimSpace(s) != "" {
			secrets = append(secrets, s)
		}
	}
	c.mu.Unlock()
	if len(secrets) == 0 {
		return
	}
	// Longest first, so that a secret containing another goes whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, e := range errs {
		e.Msg = redactString(e.Msg, secrets)
	}
}

func redactString(s string, secrets []string) string {
	for _, sec := range secrets {
		if !strings.Contains(s, sec) {
			continue
		}
		if len(sec) >= minRedacted {
			s = strings.ReplaceAll(s, sec, "<redacted>")
			continue
		}
		re := regexp.MustCompile(`(^|[^A-Za-z0-9])` + regexp.QuoteMeta(sec) + `($|[^A-Za-z0-9])`)
		// Twice: matches that share a separator are found one at a time.
		s = re.ReplaceAllString(re.ReplaceAllString(s, "${1}<redacted>${2}"), "${1}<redacted>${2}")
	}
	return s
}
