// Package pki is the cluster's certificate authority: the CA made when a cluster is founded,
// node certificates it signs from certificate requests, and the form of the join tokens that let
// a new node trust the cluster (by the CA's hash) and the cluster trust the node (by a token ID
// and a secret, of which the cluster keeps only a hash).
//
// Every certificate is ECDSA P-256. Node certificates serve and authenticate both ways (server
// and client auth): the same pair secures the store's peer and client traffic and the daemons'
// own traffic.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/atomicfile"
	"github.com/shoal-dev/shoal/manifests"
)

// Lifetimes of what the CA signs.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	NodeValidity = 5 * 365 * 24 * time.Hour
)

// File names inside a PKI directory.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// CA is the cluster's certificate authority. Key is nil on nodes that only trust it.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
	KeyPEM  []byte
}

// NewCA makes a self-signed CA for the cluster named name.
func NewCA(name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make the cluster CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "shoal cluster CA " + name, Organization: []string{"shoal"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("make the cluster CA: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("make the cluster CA: %w", err)
	}
	return ParseCA(pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER))
}

// ParseCA reads a CA from PEM. keyPEM may be nil for a CA that is only trusted.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("cluster CA: the certificate is not a CA")
	}
	ca := &CA{Cert: cert, CertPEM: certPEM}
	if keyPEM != nil {
		key, err := parseKey(keyPEM)
		if err != nil {
			return nil, fmt.Errorf("cluster CA key: %w", err)
		}
		if !publicKeysEqual(key.Public(), cert.PublicKey) {
			return nil, errors.New("cluster CA key: it does not belong to the CA certificate")
		}
		ca.Key, ca.KeyPEM = key, keyPEM
	}
	return ca, nil
}

// LoadCA reads ca.crt (and ca.key when present) from dir.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		keyPEM = nil
	} else if err != nil {
		return nil, fmt.Errorf("read the cluster CA key: %w", err)
	}
	return ParseCA(certPEM, keyPEM)
}

// Save writes ca.crt and, when the CA has its key, ca.key (mode 0600) into dir.
func (ca *CA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save the cluster CA: %w", err)
	}
	if err := writeFile(filepath.Join(dir, CACertFile), ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("save the cluster CA: %w", err)
	}
	if ca.KeyPEM != nil {
		if err := writeFile(filepath.Join(dir, CAKeyFile), ca.KeyPEM, 0o600); err != nil {
			return fmt.Errorf("save the cluster CA key: %w", err)
		}
	}
	return nil
}

// Hash is the hex SHA-256 of the CA certificate's DER bytes: what a join token pins.
func (ca *CA) Hash() string { return CertHash(ca.Cert) }

// CertHash is the hex SHA-256 of a certificate's DER bytes.
func CertHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// NewRequest makes a key for node and a certificate request for it. The key never leaves the
// node; the request goes to a node holding the CA key.
func NewRequest(node string) (keyPEM, csrPEM []byte, err error) {
	if err := checkNodeName(node); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make the node key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: node, Organization: []string{"shoal:nodes"}},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make the node's certificate request: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("make the node key: %w", err)
	}
	return pemBlock("EC PRIVATE KEY", keyDER), pemBlock("CERTIFICATE REQUEST", der), nil
}

// rolePrefix starts the organizational unit that names a node's role in its certificate
// ("shoal:role:server"): the CA vouches for it, so that any node checks a caller's role offline.
const rolePrefix = "shoal:role:"

// SignNode signs a node's certificate request with no role in it (see SignNodeRole).
func (ca *CA) SignNode(csrPEM []byte, node string, ips []net.IP, dnsNames []string, now time.Time) ([]byte, error) {
	return ca.SignNodeRole(csrPEM, node, "", ips, dnsNames, now)
}

// SignNodeRole signs a node's certificate request. The certificate names the node (its common
// name) and, when role is not empty, its role in the cluster (an organizational unit that
// CertRole reads); it is valid for the given addresses and host names plus localhost and
// 127.0.0.1. The request's own subject and extensions are ignored: only its key and signature
// count.
func (ca *CA) SignNodeRole(csrPEM []byte, node, role string, ips []net.IP, dnsNames []string, now time.Time) ([]byte, error) {
	if ca.Key == nil {
		return nil, errors.New("sign a node certificate: this node has no CA key; join through a node that runs a store member")
	}
	if err := checkNodeName(node); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("sign a node certificate: the request is not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sign a node certificate: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign a node certificate: the request's signature: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	names := append([]string{node, "localhost"}, dnsNames...)
	addrs := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...)
	subject := pkix.Name{CommonName: node, Organization: []string{"shoal:nodes"}}
	if role != "" {
		subject.OrganizationalUnit = []string{rolePrefix + role}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(NodeValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     dedupe(names),
		IPAddresses:  addrs,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign a node certificate: %w", err)
	}
	return pemBlock("CERTIFICATE", der), nil
}

// NodeName returns the node a certificate signed by the CA names, checking the chain.
func (ca *CA) NodeName(c *x509.Certificate) (string, error) {
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fmt.Errorf("the certificate is not one of this cluster's nodes: %w", err)
	}
	return c.Subject.CommonName, nil
}

// CertRole returns the role the CA signed into a node certificate ("server", "agent"), or "" for
// a certificate that names none (signed by an earlier version). It does not check the chain:
// call it on a certificate the TLS handshake or NodeName verified.
func CertRole(c *x509.Certificate) string {
	for _, ou := range c.Subject.OrganizationalUnit {
		if r, ok := strings.CutPrefix(ou, rolePrefix); ok {
			return r
		}
	}
	return ""
}

// CertPEMRole is CertRole of a certificate in PEM, "" when it cannot be read.
func CertPEMRole(certPEM []byte) string {
	c, err := parseCert(certPEM)
	if err != nil {
		return ""
	}
	return CertRole(c)
}

func checkNodeName(n string) error {
	if err := manifests.CheckDNSSubdomain(n); err != nil {
		return fmt.Errorf("node name: %w", err)
	}
	return nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func parseCert(p []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(p)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(p []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, errors.New("not a PEM key")
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("the key cannot sign")
		}
		return s, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// writeFile replaces path durably (see package atomicfile), so a crash never leaves half a key.
func writeFile(path string, data []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, data, mode)
}

// secretsEqual compares two secrets in constant time.
func secretsEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
