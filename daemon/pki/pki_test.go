package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func signed(t *testing.T, ca *CA, node string, ips ...net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	keyPEM, csr, err := NewRequest(node)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err = ca.SignNode(csr, node, ips, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func TestCASaveLoad(t *testing.T) {
	ca := mustCA(t)
	dir := filepath.Join(t.TempDir(), "pki")
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash() != ca.Hash() || got.Key == nil {
		t.Fatalf("loaded CA differs: hash %s, key %v", got.Hash(), got.Key != nil)
	}
	other := mustCA(t)
	if _, err := ParseCA(ca.CertPEM, other.KeyPEM); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("a CA with another CA's key: %v", err)
	}
	trust, err := ParseCA(ca.CertPEM, nil)
	if err != nil || trust.Key != nil {
		t.Fatalf("trust-only CA: %v", err)
	}
	_, csr, _ := NewRequest("n1")
	if _, err := trust.SignNode(csr, "n1", nil, nil, time.Now()); err == nil {
		t.Error("a CA without its key signed")
	}
}

func TestSignNode(t *testing.T) {
	ca := mustCA(t)
	certPEM, _ := signed(t, ca, "node-1", net.ParseIP("10.0.0.1"))
	block, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	name, err := ca.NodeName(c)
	if err != nil || name != "node-1" {
		t.Fatalf("node name %q, %v", name, err)
	}
	if err := c.VerifyHostname("10.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := c.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if _, err := mustCA(t).NodeName(c); err == nil {
		t.Error("another CA accepted the node's certificate")
	}
	for _, bad := range []string{"", "Node_1", "a/b", strings.Repeat("a", 254)} {
		if _, _, err := NewRequest(bad); err == nil {
			t.Errorf("node name %q accepted", bad)
		}
	}
	if _, err := ca.SignNode([]byte("not a request"), "n1", nil, nil, time.Now()); err == nil {
		t.Error("garbage signed")
	}
}

func TestToken(t *testing.T) {
	ca := mustCA(t)
	tok, err := NewToken(ca.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.ID) != TokenIDLen || len(tok.Secret) != TokenSecretLen || !IsTokenID(tok.ID) {
		t.Fatalf("new token %+v", tok)
	}
	if other, _ := NewToken(ca.Hash()); other.ID == tok.ID || other.Secret == tok.Secret {
		t.Errorf("two tokens share an ID or a secret: %+v %+v", tok, other)
	}
	got, err := ParseToken(" " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	id, secret, err := ParseCredential(tok.Credential())
	if err != nil || id != tok.ID || secret != tok.Secret {
		t.Fatalf("credential: %q %q %v", id, secret, err)
	}
	path := filepath.Join(t.TempDir(), "token")
	if err := tok.Save(path); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadToken(path); err != nil || got != tok {
		t.Fatalf("read: %+v %v", got, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := NewToken("nothex"); err == nil {
		t.Error("a token for a CA hash that is not one")
	}
	id6, sec16 := "abcdef", "0123456789abcdef"
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "malformed"},
		{"hash only", ca.Hash(), "malformed"},
		{"no secret", "shoal2." + ca.Hash() + "." + id6, "malformed"},
		{"old version", "shoal1." + ca.Hash() + "." + strings.Repeat("0", 32), "shoal token create"},
		{"old version, damaged", "shoal1.x", "earlier Shoal"},
		{"upper-case hash", "shoal2." + strings.ToUpper(ca.Hash()) + "." + id6 + "." + sec16, "malformed"},
		{"upper-case ID", "shoal2." + ca.Hash() + ".ABCDEF." + sec16, "malformed"},
		{"short ID", "shoal2." + ca.Hash() + ".abcde." + sec16, "malformed"},
		{"long secret", "shoal2." + ca.Hash() + "." + id6 + "." + sec16 + "0", "malformed"},
		{"punctuation in the secret", "shoal2." + ca.Hash() + "." + id6 + ".0123456789abcde-", "malformed"},
		{"extra part", "shoal2." + ca.Hash() + "." + id6 + "." + sec16 + ".x", "malformed"},
		{"another version", "shoal3." + ca.Hash() + "." + id6 + "." + sec16, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseToken(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseToken(%q): %v, want an error with %q", tc.in, err, tc.want)
			}
		})
	}
	if _, err := ParseToken("shoal1." + ca.Hash() + "." + strings.Repeat("0", 32)); !errors.Is(err, ErrOldToken) {
		t.Errorf("an old token: %v, want ErrOldToken", err)
	}
	for _, bad := range []string{"", "abcdef", "abcdef.", ".0123456789abcdef", "abcdef.0123456789ABCDEF", "abcdef:0123456789abcdef"} {
		if _, _, err := ParseCredential(bad); err == nil {
			t.Errorf("credential %q accepted", bad)
		}
	}
}

func TestSecretHash(t *testing.T) {
	h := HashSecret("0123456789abcdef")
	if len(h) != 64 || h == HashSecret("0123456789abcdeg") {
		t.Fatalf("hash %q", h)
	}
	for _, tc := range []struct {
		hash, secret string
		want         bool
	}{
		{h, "0123456789abcdef", true},
		{h, "0123456789abcdeg", false},
		{h, "", false},
		{"", "", false},
		{"", "0123456789abcdef", false},
		{strings.ToUpper(h), "0123456789abcdef", false},
	} {
		if got := CheckSecret(tc.hash, tc.secret); got != tc.want {
			t.Errorf("CheckSecret(%q, %q) = %v, want %v", tc.hash, tc.secret, got, tc.want)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("shoal2." + strings.Repeat("ab", 32) + ".abc123.0123456789abcdef")
	f.Add("shoal1." + strings.Repeat("ab", 32) + "." + strings.Repeat("0", 32))
	f.Add("shoal2...")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("%q parsed to %+v, which does not round-trip: %v", s, tok, err)
		}
		id, secret, err := ParseCredential(tok.Credential())
		if err != nil || id != tok.ID || secret != tok.Secret {
			t.Fatalf("%q: the credential of %+v does not round-trip: %q %q %v", s, tok, id, secret, err)
		}
	})
}

func FuzzParseCredential(f *testing.F) {
	f.Add("abc123.0123456789abcdef")
	f.Add(".")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := ParseCredential(s)
		if err != nil {
			return
		}
		if id+"."+secret != s || !IsTokenID(id) {
			t.Fatalf("%q parsed to %q %q", s, id, secret)
		}
	})
}

// TestTLS checks the three configurations against each other over real TLS connections.
func TestTLS(t *testing.T) {
	ca := mustCA(t)
	srvCert, srvKey := signed(t, ca, "server")
	cliCert, cliKey := signed(t, ca, "client")
	stc, err := ServerTLS(ca, srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "-"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			name, _ = ca.NodeName(r.TLS.PeerCertificates[0])
		}
		w.Write([]byte(name))
	}))
	srv.TLS = stc
	srv.StartTLS()
	defer srv.Close()

	get := func(tc *tls.Config) (string, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b := make([]byte, 64)
		n, _ := resp.Body.Read(b)
		return string(b[:n]), nil
	}
	var seen *CA
	if who, err := get(PinnedTLS(ca.Hash(), &seen)); err != nil || who != "-" || seen == nil || seen.Hash() != ca.Hash() {
		t.Errorf("pinned: %q %v (seen %v)", who, err, seen != nil)
	}
	if _, err := get(PinnedTLS(mustCA(t).Hash(), nil)); err == nil || !strings.Contains(err.Error(), "join token names") {
		t.Errorf("pinned to another CA: %v", err)
	}
	ctc, err := ClientTLS(ca, cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	if who, err := get(ctc); err != nil || who != "client" {
		t.Errorf("mutual TLS: %q %v", who, err)
	}
	// A client of another cluster is refused by the server, and refuses it.
	other := mustCA(t)
	oc, ok := signed(t, other, "intruder")
	otc, _ := ClientTLS(other, oc, ok)
	if _, err := get(otc); err == nil {
		t.Error("a node of another cluster connected")
	}
}

// TestCertRole checks that the role in a node certificate is the one the CA signs in, whatever
// the request asks for, and that a certificate signed without one names none.
func TestCertRole(t *testing.T) {
	ca := mustCA(t)
	for _, tc := range []struct{ asked, signed, want string }{
		{"", "server", "server"},
		{"", "agent", "agent"},
		{"server", "agent", "agent"},
		{"server", "", ""},
	} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		subject := pkix.Name{CommonName: "n1"}
		if tc.asked != "" {
			subject.OrganizationalUnit = []string{rolePrefix + tc.asked}
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, err := ca.SignNodeRole(pemBlock("CERTIFICATE REQUEST", der), "n1", tc.signed, nil, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got := CertPEMRole(certPEM); got != tc.want {
			t.Errorf("asked for %q, signed as %q: the certificate names %q, want %q", tc.asked, tc.signed, got, tc.want)
		}
	}
	if got := CertPEMRole([]byte("not a certificate")); got != "" {
		t.Errorf("CertPEMRole of garbage = %q", got)
	}
}
