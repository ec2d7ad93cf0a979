package sops

import (
	"bytes"
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
