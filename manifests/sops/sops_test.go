package sops

import (
	"bytes"
	"crypto/rand"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	gosops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/shamir"
	sopsdotenv "github.com/getsops/sops/v3/stores/dotenv"
	sopsini "github.com/getsops/sops/v3/stores/ini"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"github.com/shoal-dev/shoal/manifests"
	"go.yaml.in/yaml/v3"
)

// ageKey is a new age identity: the file age-keygen writes, and its
// recipient.
func ageKey(t testing.TB) (file []byte, recipient string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	file = []byte("# created: 2025-01-01T00:00:00Z\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n")
	return file, id.Recipient().String()
}

// pgpKey is a new OpenPGP key without a passphrase.
func pgpKey(t testing.TB) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity("Shoal Test", "", "test@shoal.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// secretKeyring is what gpg --export-secret-keys [--armor] writes.
func secretKeyring(t testing.TB, e *openpgp.Entity, armored bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var aw io.WriteCloser
	if armored {
		var err error
		aw, err = armor.Encode(&buf, openpgp.PrivateKeyType, nil)
		if err != nil {
			t.Fatal(err)
		}
		w = aw
	}
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// encryptOpts says how to encrypt a test file, as sops' command line does.
type encryptOpts struct {
	format                  manifests.SOPSFormat
	age                     []string          // recipients, in one key group
	pgp                     []*openpgp.Entity // in the same key group
	groups                  [][]string        // age recipients by key group (Shamir), instead
	threshold               int
	encryptedRegex          string
	encryptedSuffix         string
	unencryptedRegex        string
	unencryptedSfx          string
	encryptedCommentRegex   string
	unencryptedCommentRegex string
	macOnlyEncrypted        bool
}

// testStore is what the tests need of sops' stores.
type testStore interface {
	LoadPlainFile(in []byte) (gosops.TreeBranches, error)
	EmitEncryptedFile(in gosops.Tree) ([]byte, error)
	LoadEncryptedFile(in []byte) (gosops.Tree, error)
	EmitPlainFile(in gosops.TreeBranches) ([]byte, error)
}

// sopsStore is sops' own store of a format, as its command line makes it.
func sopsStore(t testing.TB, f manifests.SOPSFormat) testStore {
	t.Helper()
	c := config.NewStoresConfig()
	switch f {
	case manifests.SOPSYAML:
		return sopsyaml.NewStore(&c.YAML)
	case manifests.SOPSJSON:
		return sopsjson.NewStore(&c.JSON)
	case manifests.SOPSDotenv:
		return sopsdotenv.NewStore(&c.Dotenv)
	case manifests.SOPSINI:
		return sopsini.NewStore(&c.INI)
	case manifests.SOPSBinary:
		return sopsjson.NewBinaryStore(&c.JSONBinary)
	}
	t.Fatalf("no sops store for %q", f)
	return nil
}

// encrypt encrypts plain as `sops --encrypt` does, with sops' own Go API.
func encrypt(t testing.TB, plain string, o encryptOpts) []byte {
	t.Helper()
	if o.format == "" {
		o.format = manifests.SOPSYAML
	}
	ts := sopsStore(t, o.format)
	branches, err := ts.LoadPlainFile([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		t.Fatal(err)
	}
	groups := o.groups
	if groups == nil {
		groups = [][]string{o.age}
	}
	parts := [][]byte{dataKey}
	if len(groups) > 1 {
		if parts, err = shamir.Split(dataKey, len(groups), o.threshold); err != nil {
			t.Fatal(err)
		}
	}
	var keyGroups []gosops.KeyGroup
	for i, g := range groups {
		var kg gosops.KeyGroup
		for _, r := range g {
			mk, err := sopsage.MasterKeyFromRecipient(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := mk.Encrypt(parts[i]); err != nil {
				t.Fatal(err)
			}
			kg = append(kg, mk)
		}
		if i == 0 {
			for _, e := range o.pgp {
				kg = append(kg, pgpMasterKey(t, e, parts[i]))
			}
		}
		keyGroups = append(keyGroups, kg)
	}
	tree := gosops.Tree{Branches: branches, Metadata: gosops.Metadata{
		KeyGroups:               keyGroups,
		ShamirThreshold:         o.threshold,
		EncryptedRegex:          o.encryptedRegex,
		EncryptedSuffix:         o.encryptedSuffix,
		UnencryptedRegex:        o.unencryptedRegex,
		UnencryptedSuffix:       o.unencryptedSfx,
		EncryptedCommentRegex:   o.encryptedCommentRegex,
		UnencryptedCommentRegex: o.unencryptedCommentRegex,
		MACOnlyEncrypted:        o.macOnlyEncrypted,
		LastModified:            time.Now().UTC().Truncate(time.Second),
		Version:                 "3.13.3",
	}}
	if tree.Metadata.UnencryptedSuffix == "" && o.encryptedRegex == "" && o.encryptedSuffix == "" && o.unencryptedRegex == "" &&
		o.encryptedCommentRegex == "" && o.unencryptedCommentRegex == "" {
		// sops' default rule, which it writes in the file.
		tree.Metadata.UnencryptedSuffix = gosops.DefaultUnencryptedSuffix
	}
	cipher := aes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	out, err := ts.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pgpMasterKey encrypts a data key for e as sops' pgp key does (an armored
// OpenPGP message), without gpg.
func pgpMasterKey(t testing.TB, e *openpgp.Entity, dataKey []byte) keys.MasterKey {
	t.Helper()
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, "PGP MESSAGE", nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := openpgp.Encrypt(aw, []*openpgp.Entity{e}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(dataKey); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	mk := pgp.NewMasterKeyFromFingerprint(fingerprint(e))
	mk.EncryptedKey = buf.String()
	return mk
}

func newDecryptor(t testing.TB, k Keys) *Decryptor {
	t.Helper()
	d, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const secretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: default
type: Opaque
stringData:
  password: hunter2-correct-horse
  user: admin
`

func TestDecrypt(t *testing.T) {
	keyFile, recipient := ageKey(t)
	otherFile, otherRecipient := ageKey(t)
	pgpEntity := pgpKey(t)
	// Several identities in one file, as age-keygen appends them.
	bothFiles := append(append([]byte{}, otherFile...), keyFile...)

	tests := []struct {
		name     string
		file     string
		plain    string
		opts     encryptOpts
		keys     Keys
		want     map[string]string // field (dotted) -> value in the plain text
		secrets  []string          // values that must be reported as decrypted
		cleartxt []string          // substrings the encrypted file must keep in the clear
	}{
		{
			name: "yaml whole", file: "secret.yaml", plain: secretYAML,
			opts: encryptOpts{age: []string{recipient}}, keys: Keys{AgeIdentities: keyFile},
			want:    map[string]string{"stringData.password": "hunter2-correct-horse", "metadata.name": "db"},
			secrets: []string{"hunter2-correct-horse", "admin", "db"},
		},
		{
			name: "yaml encrypted_regex", file: "secret.yml", plain: secretYAML,
			opts: encryptOpts{age: []string{recipient}, encryptedRegex: "^(data|stringData)$"}, keys: Keys{AgeIdentities: keyFile},
			want:     map[string]string{"stringData.password": "hunter2-correct-horse", "kind": "Secret"},
			secrets:  []string{"hunter2-correct-horse", "admin"},
			cleartxt: []string{"name: db", "kind: Secret"},
		},
		{
			name: "yaml encrypted_suffix", file: "s.yaml", plain: "kind: Secret\nstringData:\n  token_enc: s3cr3t-token\n  plain: visible\n",
			opts: encryptOpts{age: []string{recipient}, encryptedSuffix: "_enc"}, keys: Keys{AgeIdentities: keyFile},
			want: map[string]string{"stringData.token_enc": "s3cr3t-token", "stringData.plain": "visible"}, secrets: []string{"s3cr3t-token"},
			cleartxt: []string{"plain: visible"},
		},
		{
			name: "yaml unencrypted_suffix", file: "s.yaml", plain: "kind: Secret\nstringData:\n  token: s3cr3t-token\n  note_unencrypted: visible\n",
			opts: encryptOpts{age: []string{recipient}, unencryptedSfx: "_unencrypted"}, keys: Keys{AgeIdentities: keyFile},
			want: map[string]string{"stringData.token": "s3cr3t-token", "stringData.note_unencrypted": "visible"}, secrets: []string{"s3cr3t-token"},
			cleartxt: []string{"note_unencrypted: visible"},
		},
		{
			name: "yaml unencrypted_regex", file: "s.yaml", plain: "kind: Secret\nmetadata:\n  name: x\nstringData:\n  token: s3cr3t-token\n",
			opts: encryptOpts{age: []string{recipient}, unencryptedRegex: "^(kind|metadata)$"}, keys: Keys{AgeIdentities: keyFile},
			want: map[string]string{"stringData.token": "s3cr3t-token", "metadata.name": "x"}, secrets: []string{"s3cr3t-token"},
			cleartxt: []string{"kind: Secret", "name: x"},
		},
		{
			name: "json", file: "secret.json", plain: `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}}`,
			opts: encryptOpts{format: manifests.SOPSJSON, age: []string{recipient}, encryptedRegex: "^data$"}, keys: Keys{AgeIdentities: keyFile},
			want: map[string]string{"data.password": "aHVudGVyMg==", "metadata.name": "db"}, secrets: []string{"aHVudGVyMg=="},
		},
		{
			name: "several identities in the file", file: "secret.yaml", plain: secretYAML,
			opts: encryptOpts{age: []string{recipient}}, keys: Keys{AgeIdentities: bothFiles},
			want: map[string]string{"stringData.password": "hunter2-correct-horse"},
		},
		{
			name: "openpgp binary keyring", file: "secret.yaml", plain: secretYAML,
			opts: encryptOpts{pgp: []*openpgp.Entity{pgpEntity}}, keys: Keys{OpenPGPKeyring: secretKeyring(t, pgpEntity, false)},
			want: map[string]string{"stringData.password": "hunter2-correct-horse"},
		},
		{
			name: "openpgp armored keyring", file: "secret.yaml", plain: secretYAML,
			opts: encryptOpts{pgp: []*openpgp.Entity{pgpEntity}, encryptedRegex: "^stringData$"}, keys: Keys{OpenPGPKeyring: secretKeyring(t, pgpEntity, true)},
			want: map[string]string{"stringData.password": "hunter2-correct-horse"},
		},
		{
			name: "age and pgp, age key only", file: "secret.yaml", plain: secretYAML,
			opts: encryptOpts{age: []string{otherRecipient, recipient}, pgp: []*openpgp.Entity{pgpEntity}}, keys: Keys{AgeIdentities: keyFile},
			want: map[string]string{"stringData.user": "admin"},
		},
		{
			name: "shamir 2 of 2", file: "secret.yaml", plain: secretYAML,
			opts: encryptOpts{groups: [][]string{{recipient}, {otherRecipient}}, threshold: 2}, keys: Keys{AgeIdentities: bothFiles},
			want: map[string]string{"stringData.password": "hunter2-correct-horse"},
		},
		{
			name: "shamir 2 of 3", file: "secret.yaml", plain: secretYAML,
			opts: encryptOpts{groups: [][]string{{recipient}, {otherRecipient}, {recipientOf(t)}}, threshold: 2}, keys: Keys{AgeIdentities: bothFiles},
			want: map[string]string{"stringData.password": "hunter2-correct-horse"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := encrypt(t, tt.plain, tt.opts)
			for _, s := range tt.secrets {
				// Shorter values may turn up in base64 by chance.
				if len(s) >= 8 && bytes.Contains(enc, []byte(s)) {
					t.Fatalf("the encrypted file holds %q in the clear:\n%s", s, enc)
				}
			}
			for _, s := range tt.cleartxt {
				if !bytes.Contains(enc, []byte(s)) {
					t.Fatalf("the encrypted file lost %q:\n%s", s, enc)
				}
			}
			d := newDecryptor(t, tt.keys)
			f, ok := manifests.DetectSOPS(tt.file, enc)
			if !ok {
				t.Fatalf("not detected as SOPS:\n%s", enc)
			}
			plain, secrets, err := d.DecryptSOPS(tt.file, f, enc)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := yaml.Unmarshal(plain, &doc); err != nil {
				t.Fatalf("plain text is not YAML: %v", err)
			}
			if _, ok := doc["sops"]; ok {
				t.Errorf("the sops metadata stayed in the plain text")
			}
			for field, want := range tt.want {
				if got := lookup(doc, field); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			for _, s := range tt.secrets {
				if !contains(secrets, s) {
					t.Errorf("decrypted values %q lack %q", secrets, s)
				}
			}
			if contains(secrets, "Secret") && strings.Contains(tt.opts.encryptedRegex, "data") {
				t.Errorf("a value left in the clear is reported as decrypted: %q", secrets)
			}
		})
	}
}

func recipientOf(t testing.TB) string {
	_, r := ageKey(t)
	return r
}

func lookup(doc map[string]any, field string) string {
	var v any = doc
	for p := range strings.SplitSeq(field, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func TestDecryptDotenvAndBinary(t *testing.T) {
	keyFile, recipient := ageKey(t)
	d := newDecryptor(t, Keys{AgeIdentities: keyFile})
	env := encrypt(t, "USER=admin\nPASSWORD=hunter2-env\n", encryptOpts{format: manifests.SOPSDotenv, age: []string{recipient}})
	plain, enc, err := d.Decrypt("app.env", env)
	if err != nil || !enc {
		t.Fatalf("dotenv: %v (encrypted %v)\n%s", err, enc, env)
	}
	if string(plain) != "USER=admin\nPASSWORD=hunter2-env\n" {
		t.Errorf("dotenv plain text = %q", plain)
	}
	bin := encrypt(t, "", encryptOpts{format: manifests.SOPSBinary, age: []string{recipient}})
	if f, ok := manifests.DetectSOPS("tls.key", bin); !ok || f.Format != manifests.SOPSBinary {
		t.Fatalf("binary file not detected (%v %v):\n%s", f, ok, bin)
	}
	// Not encrypted: given back as it is.
	for _, name := range []string{"plain.yaml", "plain.env", "plain.json", "notes.txt"} {
		in := []byte("sops: is a word here\n")
		got, enc, err := d.Decrypt(name, in)
		if err != nil || enc || !bytes.Equal(got, in) {
			t.Errorf("%s: got %q, %v, %v; want the file back, not encrypted", name, got, enc, err)
		}
	}
}

func TestDecryptRefuses(t *testing.T) {
	keyFile, recipient := ageKey(t)
	_, strangerRecipient := ageKey(t)
	stranger := pgpKey(t)
	d := newDecryptor(t, Keys{AgeIdentities: keyFile})

	tamperValue := func(enc []byte) []byte {
		// Swap the ciphertext of two encrypted values: each still decrypts
		// with the data key on its own path... no: the path is
		// authenticated too, so sops refuses it.
		lines := strings.Split(string(enc), "\n")
		for i, l := range lines {
			if strings.Contains(l, "password: ENC[") {
				j := strings.Index(l, "data:") + len("data:")
				b := []byte(l)
				if b[j] == 'A' {
					b[j] = 'B'
				} else {
					b[j] = 'A'
				}
				lines[i] = string(b)
			}
		}
		return []byte(strings.Join(lines, "\n"))
	}
	tamperClear := func(enc []byte) []byte {
		return bytes.Replace(enc, []byte("name: db"), []byte("name: dc"), 1)
	}
	tamperMAC := func(enc []byte) []byte {
		other := encrypt(t, secretYAML+"  extra: x\n", encryptOpts{age: []string{recipient}, encryptedRegex: "^(data|stringData)$"})
		return replaceLine(t, enc, "mac:", lineOf(t, other, "mac:"))
	}
	tests := []struct {
		name   string
		enc    []byte
		d      *Decryptor
		expect []string
	}{
		{"wrong recipient", encrypt(t, secretYAML, encryptOpts{age: []string{strangerRecipient}, pgp: []*openpgp.Entity{stranger}}), d,
			[]string{"age " + strangerRecipient, "pgp " + fingerprint(stranger), "--sops-age-key-file", "the keys given are for age " + recipient}},
		{"tampered value", tamperValue(encrypt(t, secretYAML, encryptOpts{age: []string{recipient}, encryptedRegex: "^(data|stringData)$"})), d,
			[]string{"changed after sops encrypted it"}},
		{"tampered clear value", tamperClear(encrypt(t, secretYAML, encryptOpts{age: []string{recipient}, encryptedRegex: "^(data|stringData)$"})), d,
			[]string{"does not match its MAC"}},
		{"tampered MAC", tamperMAC(encrypt(t, secretYAML, encryptOpts{age: []string{recipient}, encryptedRegex: "^(data|stringData)$"})), d,
			[]string{"MAC"}},
		{"no key given", encrypt(t, secretYAML, encryptOpts{age: []string{recipient}}), newDecryptor(t, Keys{}),
			[]string{"age " + recipient, "no key was given", "--sops-age-key-file"}},
		{"shamir threshold not met", encrypt(t, secretYAML, encryptOpts{groups: [][]string{{recipient}, {strangerRecipient}}, threshold: 2}), d,
			[]string{"2 key groups (Shamir), 2 of which are needed", "open 1", "age " + strangerRecipient}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := manifests.DetectSOPS("secret.yaml", tt.enc)
			if !ok {
				t.Fatalf("not detected:\n%s", tt.enc)
			}
			plain, secrets, err := tt.d.DecryptSOPS("secret.yaml", f, tt.enc)
			if err == nil {
				t.Fatalf("decrypted:\n%s", plain)
			}
			if plain != nil || secrets != nil {
				t.Errorf("returned data with the error")
			}
			for _, e := range tt.expect {
				if !strings.Contains(err.Error(), e) {
					t.Errorf("error %q does not say %q", err, e)
				}
			}
			for _, s := range []string{"hunter2", "admin"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds a decrypted value", err)
				}
			}
		})
	}
}

func lineOf(t *testing.T, data []byte, prefix string) string {
	t.Helper()
	for l := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return l
		}
	}
	t.Fatalf("no line %q in\n%s", prefix, data)
	return ""
}

func replaceLine(t *testing.T, data []byte, prefix, with string) []byte {
	t.Helper()
	old := lineOf(t, data, prefix)
	return bytes.Replace(data, []byte(old), []byte(with), 1)
}

func TestNewRefuses(t *testing.T) {
	locked := pgpKey(t)
	if err := locked.PrivateKey.Encrypt([]byte("passphrase")); err != nil {
		t.Fatal(err)
	}
	for _, sk := range locked.Subkeys {
		if err := sk.PrivateKey.Encrypt([]byte("passphrase")); err != nil {
			t.Fatal(err)
		}
	}
	var public bytes.Buffer
	if err := pgpKey(t).Serialize(&public); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys Keys
		want string
	}{
		{"bad age file", Keys{AgeIdentities: []byte("AGE-SECRET-KEY-1NOTAKEY\n")}, "age-keygen"},
		{"public keyring", Keys{OpenPGPKeyring: public.Bytes()}, "--export-secret-keys"},
		{"garbage keyring", Keys{OpenPGPKeyring: []byte("not a keyring")}, "export it with gpg"},
		{"passphrase", Keys{OpenPGPKeyring: secretKeyring(t, locked, true)}, "passphrase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.keys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
