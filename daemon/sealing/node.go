package sealing

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// The HPKE suite of what is sealed to a node: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
var (
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

// infoPrefix starts the HPKE info of everything sealed to a node; the caller's info (the store
// key the value is kept under) follows.
const infoPrefix = "shoal sealed to node v1\x00"

// PublicKey is a node's key to seal to, taken from its certificate.
type PublicKey struct {
	key hpke.PublicKey
	// Fingerprint names the key: the first 16 hex digits of the SHA-256 of its
	// SubjectPublicKeyInfo.
	Fingerprint string
}

// CheckNodeCert verifies that certPEM is a certificate the cluster CA ca signed for node (its
// common name, as the CA signs them; client authentication) and valid at now, and returns its
// P-256 key to seal to.
func CheckNodeCert(ca *x509.Certificate, certPEM []byte, node string, now time.Time) (PublicKey, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return PublicKey{}, errors.New("the node certificate is not a PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return PublicKey{}, fmt.Errorf("the node certificate: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return PublicKey{}, fmt.Errorf("the node certificate is not the cluster CA's: %w", err)
	}
	if cert.Subject.CommonName != node {
		return PublicKey{}, fmt.Errorf("the node certificate names node %q, not %q", cert.Subject.CommonName, node)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return PublicKey{}, errors.New("the node certificate's key is not ECDSA P-256")
	}
	return NewPublicKey(pub)
}

// NewPublicKey returns the key to seal to of an ECDSA P-256 public key.
func NewPublicKey(pub *ecdsa.PublicKey) (PublicKey, error) {
	ek, err := pub.ECDH()
	if err != nil {
		return PublicKey{}, fmt.Errorf("the node's key: %w", err)
	}
	if ek.Curve() != ecdh.P256() {
		return PublicKey{}, errors.New("the node's key is not P-256")
	}
	hk, err := hpke.NewDHKEMPublicKey(ek)
	if err != nil {
		return PublicKey{}, fmt.Errorf("the node's key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return PublicKey{}, fmt.Errorf("the node's key: %w", err)
	}
	sum := sha256.Sum256(spki)
	return PublicKey{key: hk, Fingerprint: hex.EncodeToString(sum[:8])}, nil
}

// Seal encrypts plaintext to the holder of pub's private key alone. info names the place the
// ciphertext is kept (its store key): it opens only with the same info.
func Seal(pub PublicKey, info, plaintext []byte) ([]byte, error) {
	if pub.key == nil {
		return nil, errors.New("seal to a node: no key")
	}
	ct, err := hpke.Seal(pub.key, kdf, aead, append([]byte(infoPrefix), info...), plaintext)
	if err != nil {
		return nil, fmt.Errorf("seal to node key %s: %w", pub.Fingerprint, err)
	}
	return ct, nil
}

// Recipient opens what was sealed to a node's key.
type Recipient struct {
	key hpke.PrivateKey
	// Fingerprint is the fingerprint of the recipient's public key (PublicKey.Fingerprint).
	Fingerprint string
}

// NewRecipient returns the recipient of a node's ECDSA P-256 private key (its certificate's).
func NewRecipient(priv *ecdsa.PrivateKey) (*Recipient, error) {
	ek, err := priv.ECDH()
	if err != nil {
		return nil, fmt.Errorf("the node key: %w", err)
	}
	hk, err := hpke.NewDHKEMPrivateKey(ek)
	if err != nil {
		return nil, fmt.Errorf("the node key: %w", err)
	}
	pub, err := NewPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Recipient{key: hk, Fingerprint: pub.Fingerprint}, nil
}

// Open decrypts what Seal sealed to the recipient's key with the same info. Anything else — sealed
// to another key, for another place, or changed — fails with ErrOpen.
func (r *Recipient) Open(info, ciphertext []byte) ([]byte, error) {
	out, err := hpke.Open(r.key, kdf, aead, append([]byte(infoPrefix), info...), ciphertext)
	if err != nil {
		return nil, fmt.Errorf("open with node key %s: %w", r.Fingerprint, ErrOpen)
	}
	return out, nil
}

// ParseNodeKey reads a node's private key from PEM (SEC 1 "EC PRIVATE KEY" or PKCS #8).
func ParseNodeKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("the node key is not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("the node key is a PEM %q, not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("the node key: %w", err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("the node key is not ECDSA P-256")
	}
	return ek, nil
}
