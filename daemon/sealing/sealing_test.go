package sealing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
)

func newCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// nodeCert makes a key and a certificate ca signs for node.
func nodeCert(t testing.TB, ca *pki.CA, node string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	keyPEM, csrPEM, err := pki.NewRequest(node)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csrPEM, node, nil, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseNodeKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return key, certPEM
}

func TestKeyring(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	aad := []byte("/shoal/secrets/keyring")
	kr, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(kr.Keys) != 1 || kr.Primary != kr.Keys[0].ID || len(kr.Primary) != 8 {
		t.Fatalf("new keyring %+v: want one primary key with an id of 8 hex digits", kr)
	}
	sealed, err := SealKeyring(ca.Key, kr, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, kr.Keys[0].Secret) || !IsEnvelope(sealed) {
		t.Fatalf("sealed keyring %s holds its key in the clear, or is no envelope", sealed)
	}

	t.Run("open with the CA key", func(t *testing.T) {
		got, err := OpenKeyring(ca.Key, sealed, aad)
		if err != nil {
			t.Fatal(err)
		}
		if got.Primary != kr.Primary || !bytes.Equal(got.Keys[0].Secret, kr.Keys[0].Secret) {
			t.Errorf("opened %+v, want %+v", got, kr)
		}
	})
	t.Run("refused with another CA's key", func(t *testing.T) {
		if _, err := OpenKeyring(other.Key, sealed, aad); !errors.Is(err, ErrOpen) {
			t.Errorf("another CA's key: %v, want ErrOpen", err)
		}
	})
	t.Run("refused under another store key", func(t *testing.T) {
		if _, err := OpenKeyring(ca.Key, sealed, []byte("/shoal/secrets/other")); !errors.Is(err, ErrOpen) {
			t.Errorf("another store key: %v, want ErrOpen", err)
		}
	})
	t.Run("tampering detected", func(t *testing.T) {
		e, _, err := ParseEnvelope(sealed)
		if err != nil {
			t.Fatal(err)
		}
		e.Data[len(e.Data)/2] ^= 1
		if _, err := OpenKeyring(ca.Key, e.Marshal(), aad); !errors.Is(err, ErrOpen) {
			t.Errorf("a changed keyring: %v, want ErrOpen", err)
		}
	})
	t.Run("not an envelope", func(t *testing.T) {
		if _, err := OpenKeyring(ca.Key, []byte(`{"primary":"x"}`), aad); err == nil {
			t.Error("a plain value opened as a keyring")
		}
	})
}

func TestKeyringRotation(t *testing.T) {
	kr, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first := kr.Primary
	key := []byte("/shoal/desired/abc/Secret/default/db")
	old, err := kr.Seal([]byte("s3cret"), key)
	if err != nil {
		t.Fatal(err)
	}
	if old.Key != first {
		t.Fatalf("sealed with %q, want the primary %q", old.Key, first)
	}
	added, err := kr.AddPrimary(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if kr.Primary != added.ID || added.ID == first || len(kr.Keys) != 2 {
		t.Fatalf("after AddPrimary %+v: want the new key %q primary beside the old one", kr.IDs(), added.ID)
	}
	renewed, err := kr.Seal([]byte("s3cret"), key)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Key != added.ID {
		t.Errorf("sealed with %q after the rotation, want %q", renewed.Key, added.ID)
	}
	// Mixed states: what the old key sealed still opens while it is kept.
	for _, e := range []Envelope{old, renewed} {
		if got, err := kr.Open(e, key); err != nil || string(got) != "s3cret" {
			t.Errorf("open %s: %q, %v", e.Key, got, err)
		}
	}
	kr.Retain(func(string) bool { return false })
	if ids := kr.IDs(); len(ids) != 1 || ids[0] != added.ID {
		t.Fatalf("after Retain: %v, want only the primary", ids)
	}
	if _, err := kr.Open(old, key); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("open with a removed key: %v, want ErrUnknownKey", err)
	}
}

func TestEnvelopeBinding(t *testing.T) {
	kr, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("/shoal/desired/abc/Secret/default/db")
	e, err := kr.Seal([]byte("s3cret"), key)
	if err != nil {
		t.Fatal(err)
	}
	stored := e.Marshal()
	if bytes.Contains(stored, []byte("s3cret")) {
		t.Fatalf("envelope %s holds the value in the clear", stored)
	}
	parsed, ok, err := ParseEnvelope(stored)
	if err != nil || !ok {
		t.Fatalf("parse %s: %v, %v", stored, ok, err)
	}
	tests := []struct {
		name string
		env  func() Envelope
		aad  []byte
		want error
	}{
		{"as stored", func() Envelope { return parsed }, key, nil},
		{"copied to another key", func() Envelope { return parsed }, []byte("/shoal/desired/abc/Secret/default/other"), ErrOpen},
		{"ciphertext changed", func() Envelope {
			c := parsed
			c.Data = bytes.Clone(c.Data)
			c.Data[0] ^= 0x80
			return c
		}, key, ErrOpen},
		{"nonce changed", func() Envelope {
			c := parsed
			c.Nonce = bytes.Clone(c.Nonce)
			c.Nonce[3] ^= 1
			return c
		}, key, ErrOpen},
		{"another key id", func() Envelope { c := parsed; c.Key = "00000000"; return c }, key, ErrUnknownKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kr.Open(tc.env(), tc.aad)
			if tc.want == nil {
				if err != nil || string(got) != "s3cret" {
					t.Errorf("open: %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("open: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseEnvelope(t *testing.T) {
	good := Envelope{Encrypted: Version, Key: "0a1b2c3d", Nonce: make([]byte, nonceSize), Data: []byte("x")}.Marshal()
	tests := []struct {
		name    string
		value   string
		ok      bool
		wantErr string
	}{
		{"plain object", `{"apiVersion":"v1","kind":"Secret"}`, false, ""},
		{"plain with the field later", `{"kind":"Secret","shoalEncrypted":"v1"}`, false, ""},
		{"envelope", string(good), true, ""},
		{"unknown version", `{"shoalEncrypted":"v9","key":"a","nonce":"AAAAAAAAAAAAAAAA","data":""}`, true, "upgrade"},
		{"no key", `{"shoalEncrypted":"v1","key":"","nonce":"AAAAAAAAAAAAAAAA","data":""}`, true, "names no key"},
		{"short nonce", `{"shoalEncrypted":"v1","key":"a","nonce":"AAAA","data":""}`, true, "nonce"},
		{"unknown field", `{"shoalEncrypted":"v1","key":"a","nonce":"AAAAAAAAAAAAAAAA","data":"","x":1}`, true, "damaged"},
		{"trailing data", string(good) + `{}`, true, "after its end"},
		{"truncated", string(good[:len(good)-3]), true, "damaged"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ok, err := ParseEnvelope([]byte(tc.value))
			if ok != tc.ok {
				t.Errorf("ok %v, want %v", ok, tc.ok)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestSealToNode(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	n1Key, n1Cert := nodeCert(t, ca, "n1")
	n2Key, n2Cert := nodeCert(t, ca, "n2")
	_, strangerCert := nodeCert(t, other, "n1")
	now := time.Now()

	pub, err := CheckNodeCert(ca.Cert, n1Cert, "n1", now)
	if err != nil {
		t.Fatal(err)
	}
	n1, err := NewRecipient(n1Key)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := NewRecipient(n2Key)
	if err != nil {
		t.Fatal(err)
	}
	if pub.Fingerprint != n1.Fingerprint || pub.Fingerprint == n2.Fingerprint || len(pub.Fingerprint) != 16 {
		t.Fatalf("fingerprints: certificate %s, n1 %s, n2 %s", pub.Fingerprint, n1.Fingerprint, n2.Fingerprint)
	}
	info := []byte("/shoal/placements/n1/uid-1")
	ct, err := Seal(pub, info, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("s3cret")) {
		t.Fatal("the sealed value holds the plaintext")
	}
	if got, err := n1.Open(info, ct); err != nil || string(got) != "s3cret" {
		t.Fatalf("n1 opens: %q, %v", got, err)
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"another node's key":   func() ([]byte, error) { return n2.Open(info, ct) },
		"another placement":    func() ([]byte, error) { return n1.Open([]byte("/shoal/placements/n1/uid-2"), ct) },
		"tampered":             func() ([]byte, error) { return n1.Open(info, tampered) },
		"truncated":            func() ([]byte, error) { return n1.Open(info, ct[:40]) },
		"empty":                func() ([]byte, error) { return n1.Open(info, nil) },
		"encapsulation broken": func() ([]byte, error) { c := bytes.Clone(ct); c[5] ^= 1; return n1.Open(info, c) },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", name, err)
		}
	}

	t.Run("certificate checks", func(t *testing.T) {
		for _, tc := range []struct {
			name, node string
			cert       []byte
			now        time.Time
			want       string
		}{
			{"another node's name", "n2", n1Cert, now, `names node "n1"`},
			{"another cluster's CA", "n1", strangerCert, now, "not the cluster CA's"},
			{"expired", "n1", n1Cert, now.Add(pki.NodeValidity + 48*time.Hour), "not the cluster CA's"},
			{"not PEM", "n1", []byte("nope"), now, "not a PEM certificate"},
			{"the right one", "n2", n2Cert, now, ""},
		} {
			_, err := CheckNodeCert(ca.Cert, tc.cert, tc.node, tc.now)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			}
		}
	})
}

func TestParseNodeKey(t *testing.T) {
	if _, err := ParseNodeKey([]byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")); err == nil {
		t.Error("a certificate parsed as a key")
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRecipient(p384); err == nil {
		t.Error("a P-384 key made a recipient")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	kr, err := NewKeyring(time.Now())
	if err != nil {
		f.Fatal(err)
	}
	e, err := kr.Seal([]byte("value"), []byte("k"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(e.Marshal())
	f.Add([]byte(`{"shoalEncrypted":"v1"}`))
	f.Add([]byte(`{"apiVersion":"v1"}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		e, ok, err := ParseEnvelope(value)
		if err != nil || !ok {
			return
		}
		// Whatever parses either opens to the value it was sealed from or fails cleanly.
		if got, err := kr.Open(e, []byte("k")); err == nil && string(got) != "value" {
			t.Fatalf("opened %q", got)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	ca := newCA(b)
	key, cert := nodeCert(b, ca, "n1")
	pub, err := CheckNodeCert(ca.Cert, cert, "n1", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewRecipient(key)
	if err != nil {
		b.Fatal(err)
	}
	secret := bytes.Repeat([]byte("x"), 512)
	info := []byte("/shoal/placements/n1/0123456789")
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, err := Seal(pub, info, secret); err != nil {
				b.Fatal(err)
			}
		}
	})
	ct, _ := Seal(pub, info, secret)
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			if _, err := r.Open(info, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check-cert", func(b *testing.B) {
		for b.Loop() {
			if _, err := CheckNodeCert(ca.Cert, cert, "n1", time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
