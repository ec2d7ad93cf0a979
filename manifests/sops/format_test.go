package sops

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosops "github.com/getsops/sops/v3"
	"github.com/shoal-dev/shoal/manifests"
)

// TestCommittedFiles decrypts the files the sops command wrote in
// ../testdata/sops as sops' library does, byte for byte.
func TestCommittedFiles(t *testing.T) {
	dir := filepath.Join("..", "testdata", "sops")
	key, err := os.ReadFile(filepath.Join(dir, "key.txt"))
	if err != nil {
		t.Fatal(err)
	}
	useSOPSKeys(t, key)
	d := newDecryptor(t, Keys{AgeIdentities: key})
	for _, name := range []string{"tree/secret.yaml", "invalid/secret.yaml", "e2e/secret-v2.yaml", "kustomize/overlay/secret.yaml", "kustomize/overlay/app.env", "kustomize/overlay/tls.key"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			f, ok := manifests.DetectSOPS(name, data)
			if !ok {
				t.Fatal("not detected as SOPS")
			}
			want, err := sopsDecrypt(t, data, f.Format)
			if err != nil {
				t.Fatalf("sops: %v", err)
			}
			got, secrets, err := d.DecryptSOPS(name, f, data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plain text differs from sops'\n--- got:\n%s\n--- sops:\n%s", got, want)
			}
			if len(secrets) == 0 {
				t.Error("no decrypted value reported")
			}
		})
	}
}

func TestMACOnlyEncryptedInit(t *testing.T) {
	if !bytes.Equal(macOnlyEncryptedInit[:], gosops.MACOnlyEncryptedInitialization) {
		t.Fatalf("sha256(sops) = %x, sops starts the MAC with %x", macOnlyEncryptedInit, gosops.MACOnlyEncryptedInitialization)
	}
	if macOnlyEncryptedInit != sha256.Sum256([]byte("sops")) {
		t.Fatal("not the SHA-256 of sops")
	}
}

// TestRefusesHostileFiles checks the limits the readers put on what a
// file may make them do.
func TestRefusesHostileFiles(t *testing.T) {
	keyFile, recipient := ageKey(t)
	d := newDecryptor(t, Keys{AgeIdentities: keyFile})
	enc := encrypt(t, secretYAML, encryptOpts{age: []string{recipient}, encryptedRegex: "^stringData$"})
	_, metaAt, _ := strings.Cut(string(enc), "\nsops:\n")
	meta := "\nsops:\n" + metaAt

	// Aliases of aliases: a few hundred bytes that would be billions of
	// values once copied where they are used.
	var bomb strings.Builder
	bomb.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		bomb.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				bomb.WriteString(", ")
			}
			bomb.WriteString("*a" + string(rune('0'+i-1)))
		}
		bomb.WriteString("]\n")
	}
	deepJSON := `{"a": ` + strings.Repeat("[", maxDepth+10) + strings.Repeat("]", maxDepth+10) + `, "sops": {"mac": "x", "lastmodified": "2025-01-01T00:00:00Z", "age": [{"recipient": "` + recipient + `", "enc": "x"}]}}`

	tests := []struct {
		name   string
		format manifests.SOPSFormat
		data   string
		want   string
	}{
		{"yaml alias bomb", manifests.SOPSYAML, bomb.String() + meta, "too many values"},
		{"deep json", manifests.SOPSJSON, deepJSON, "nested too deep"},
		{"duplicate key", manifests.SOPSYAML, "kind: Secret\nkind: ConfigMap\n" + meta, `"kind" is given twice`},
		{"non-string key", manifests.SOPSYAML, "1: one\n" + meta, "not a string"},
		{"sequence document", manifests.SOPSYAML, "- a\n---\n" + meta[1:], "sequence"},
		{"no metadata", manifests.SOPSJSON, `{"a": "b"}`, "sops metadata not found"},
		{"two rules", manifests.SOPSYAML, strings.Replace(string(enc), "    encrypted_regex:", "    encrypted_suffix: _x\n    encrypted_regex:", 1), "more than one of"},
		{"bad lastmodified", manifests.SOPSYAML, strings.Replace(string(enc), "lastmodified: \"", "lastmodified: \"x", 1), "lastmodified"},
		{"dotenv line", manifests.SOPSDotenv, "A=b\nnot a line\nsops_mac=x\n", "line 2 is not KEY=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plain, secrets, err := d.DecryptSOPS("f", manifests.SOPSFile{Format: tt.format}, []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error saying %q", err, tt.want)
			}
			if plain != nil || secrets != nil {
				t.Error("data with the error")
			}
		})
	}
}

// TestEncryptedCommentTampered checks the one change sops lets through:
// an encrypted comment that no longer decrypts, which sops keeps as a
// comment written before it encrypted comments.
func TestEncryptedCommentTampered(t *testing.T) {
	keyFile, recipient := ageKey(t)
	d := newDecryptor(t, Keys{AgeIdentities: keyFile})
	enc := encrypt(t, "# a comment\nkey: value\n", encryptOpts{age: []string{recipient}})
	i := bytes.Index(enc, []byte("#ENC[AES256_GCM,data:")) + len("#ENC[AES256_GCM,data:")
	tampered := replaceAt(enc, i, bumpBase64(enc[i]))
	if _, _, err := d.DecryptSOPS("f", manifests.SOPSFile{Format: manifests.SOPSYAML}, tampered); err == nil {
		t.Fatalf("a changed encrypted comment was accepted:\n%s", tampered)
	}
	// A comment sops did not encrypt (older versions did not) is kept.
	old := bytes.Replace(enc, enc[i-len("#ENC[AES256_GCM,data:"):bytes.IndexByte(enc, '\n')], []byte("# written by an old sops"), 1)
	plain, _, err := d.DecryptSOPS("f", manifests.SOPSFile{Format: manifests.SOPSYAML}, old)
	if err != nil || !bytes.Contains(plain, []byte("# written by an old sops")) {
		t.Fatalf("got %v:\n%s", err, plain)
	}
}
