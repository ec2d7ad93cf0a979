package sops

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
)

// FuzzDecrypt feeds the detection and decryption entry point arbitrary
// files: it must never panic, never decrypt a file it was not given the key
// for, and never hand back data with an error.
func FuzzDecrypt(f *testing.F) {
	keyFile, recipient := ageKey(f)
	d := newDecryptor(f, Keys{AgeIdentities: keyFile})
	names := []string{"a.yaml", "a.json", "a.env", "a.ini", "a.bin"}
	f.Add(0, encrypt(f, secretYAML, encryptOpts{age: []string{recipient}, encryptedRegex: "^(data|stringData)$"}))
	f.Add(1, encrypt(f, `{"kind": "Secret", "data": {"a": "YQ=="}}`, encryptOpts{format: manifests.SOPSJSON, age: []string{recipient}}))
	f.Add(2, encrypt(f, "A=b\nC=d\n", encryptOpts{format: manifests.SOPSDotenv, age: []string{recipient}}))
	f.Add(3, encrypt(f, "[s]\na = b\n", encryptOpts{format: manifests.SOPSINI, age: []string{recipient}}))
	f.Add(4, encrypt(f, "", encryptOpts{format: manifests.SOPSBinary, age: []string{recipient}}))
	f.Add(0, []byte("sops:\n  mac: x\n"))
	f.Add(0, []byte("a: 1\nsops:\n  version: 3\n  age: [{recipient: x, enc: y}]\n  key_groups: [{age: [{recipient: z}]}]\n"))
	f.Add(2, []byte("sops_mac=ENC[x]\nsops_age__list_0__map_recipient=age1x\n"))
	f.Add(4, []byte(`{"data": "ENC[AES256_GCM,data:,iv:,tag:,type:str]", "sops": {"mac": "x", "age": [{"recipient": "y", "enc": "z"}]}}`))
	f.Fuzz(func(t *testing.T, n int, data []byte) {
		if n < 0 {
			n = -n
		}
		name := names[n%len(names)]
		plain, encrypted, err := d.Decrypt(name, data)
		if !encrypted && (err != nil || !bytes.Equal(plain, data)) {
			t.Fatalf("a plain file came back changed (err %v)", err)
		}
		if err != nil && plain != nil {
			t.Fatalf("data with the error %v", err)
		}
	})
}

// FuzzDifferential checks the decoder against sops' library on changed
// files: whatever this package decrypts, sops decrypts to the same plain
// text. (This package refuses a few files sops accepts: a changed
// encrypted comment, keys given twice, values that are not sops'.)
func FuzzDifferential(f *testing.F) {
	keyFile, recipient := ageKey(f)
	useSOPSKeys(f, keyFile)
	d := newDecryptor(f, Keys{AgeIdentities: keyFile})
	formats := []manifests.SOPSFormat{manifests.SOPSYAML, manifests.SOPSJSON, manifests.SOPSDotenv, manifests.SOPSINI, manifests.SOPSBinary}
	for _, c := range differentialCorpus(recipient, [][]string{{recipient}, {recipient}}) {
		if strings.Contains(c.name, "shamir") {
			continue
		}
		f.Add(uint8(slices.Index(formats, c.opts.format)), encrypt(f, c.plain, c.opts))
	}
	f.Fuzz(func(t *testing.T, n uint8, data []byte) {
		format := formats[int(n)%len(formats)]
		plain, _, err := d.DecryptSOPS("f", manifests.SOPSFile{Format: format}, data)
		if err != nil {
			return
		}
		want, err := sopsDecrypt(t, data, format)
		if err != nil {
			t.Fatalf("decrypted a file sops refuses (%v):\n%q", err, data)
		}
		if !bytes.Equal(plain, want) {
			t.Fatalf("plain text differs from sops'\n--- got:\n%s\n--- sops:\n%s", plain, want)
		}
	})
}
