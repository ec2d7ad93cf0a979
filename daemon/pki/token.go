package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
)

// tokenPrefix starts every join token: the format's version. oldTokenPrefix started the tokens
// of earlier versions, which never expired and are no longer accepted.
const (
	tokenPrefix    = "shoal2"
	oldTokenPrefix = "shoal1"
)

// Lengths of a token's parts, as kubeadm's bootstrap tokens have them: the ID is public, the
// secret (16 of 36 characters, 82 bits) is known only to whoever was given the token.
const (
	TokenIDLen     = 6
	TokenSecretLen = 16
)

const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// ErrOldToken is returned for a token of an earlier Shoal (shoal1...), which never expired.
var ErrOldToken = errors.New("this join token is of an earlier Shoal (shoal1...), whose tokens never expired and are no " +
	"longer accepted: make a new one on a server node with \"shoal token create\"")

// Token lets a node join a cluster: CAHash pins the cluster CA the new node must see; ID names
// the token's record in the cluster's store, and Secret proves to the cluster that the node was
// given the token. Its text form is shoal2.<CA hash, 64 hex>.<ID, 6 of [a-z0-9]>.<secret, 16 of
// [a-z0-9]>; the cluster keeps only a hash of the secret.
type Token struct {
	CAHash string
	ID     string
	Secret string
}

// NewToken makes a token for the cluster whose CA has the hash caHash, with a new random ID and
// secret.
func NewToken(caHash string) (Token, error) {
	if !isHex(caHash, 64) {
		return Token{}, fmt.Errorf("make a join token: the CA hash %q is not 64 hex digits", caHash)
	}
	id, err := randomString(TokenIDLen)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(TokenSecretLen)
	if err != nil {
		return Token{}, err
	}
	return Token{CAHash: caHash, ID: id, Secret: secret}, nil
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	base := big.NewInt(int64(len(tokenAlphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, base)
		if err != nil {
			return "", fmt.Errorf("make a join token: %w", err)
		}
		b[i] = tokenAlphabet[k.Int64()]
	}
	return string(b), nil
}

func (t Token) String() string { return tokenPrefix + "." + t.CAHash + "." + t.ID + "." + t.Secret }

// Credential is what a joining node presents to the cluster: ID.secret (without the CA hash,
// which only the joining node needs).
func (t Token) Credential() string { return t.ID + "." + t.Secret }

const malformedToken = "the join token is malformed: copy it whole, as \"shoal token create\" printed it " +
	"(or from the first node's <data dir>/token): shoal2.<64 hex>.<6 of a-z0-9>.<16 of a-z0-9>"

// ParseToken reads a token's text form. A token of an earlier version is refused with
// ErrOldToken.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, ".")
	if len(parts) > 0 && parts[0] == oldTokenPrefix {
		return Token{}, ErrOldToken
	}
	if len(parts) != 4 || parts[0] != tokenPrefix || !isHex(parts[1], 64) ||
		!isTokenPart(parts[2], TokenIDLen) || !isTokenPart(parts[3], TokenSecretLen) {
		return Token{}, errors.New(malformedToken)
	}
	return Token{CAHash: parts[1], ID: parts[2], Secret: parts[3]}, nil
}

// ParseCredential reads what a joining node presents (see Token.Credential).
func ParseCredential(s string) (id, secret string, err error) {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || !isTokenPart(id, TokenIDLen) || !isTokenPart(secret, TokenSecretLen) {
		return "", "", errors.New("the join credential is malformed: want <token ID>.<secret>, as a join token holds them")
	}
	return id, secret, nil
}

// IsTokenID reports whether s has the form of a token's ID.
func IsTokenID(s string) bool { return isTokenPart(s, TokenIDLen) }

func isTokenPart(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(tokenAlphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// ReadToken reads a token from a file.
func ReadToken(path string) (Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Token{}, fmt.Errorf("read the join token: %w", err)
	}
	t, err := ParseToken(string(b))
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Save writes the token to path with mode 0600, durably.
func (t Token) Save(path string) error {
	if err := writeFile(path, []byte(t.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("save the join token: %w", err)
	}
	return nil
}

// HashSecret is what the cluster keeps of a token's secret: its hex SHA-256. A secret of 82
// random bits needs no slow hash: it cannot be guessed from its hash.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CheckSecret reports, in constant time, whether secret hashes to hash (see HashSecret).
func CheckSecret(hash, secret string) bool {
	return hash != "" && secretsEqual(hash, HashSecret(secret))
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// ServerTLS is the TLS configuration of a node's cluster endpoint: it presents the node's
// certificate with the CA after it (so that a joining node can pin the CA), and checks a client
// certificate when one is given (the token authenticates nodes that have none yet).
func ServerTLS(ca *CA, certPEM, keyPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(append(append([]byte{}, certPEM...), ca.CertPEM...), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the node certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    ca.Pool(),
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// ClientTLS is the TLS configuration of a node calling another node: it trusts only the CA and
// presents the node's certificate.
func ClientTLS(ca *CA, certPEM, keyPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the node certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}, nil
}

// PinnedTLS is the TLS configuration of a node that is joining: it has no CA yet, so it accepts
// a server only if the chain it presents holds a CA whose hash is caHash and the server's
// certificate is signed by that CA. The CA is stored in *seen once the handshake succeeded.
func PinnedTLS(caHash string, seen **CA) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is checked below against the pinned CA instead of the system roots.
		InsecureSkipVerify: true, //nolint:gosec // verified by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the node presented no certificate")
			}
			certs := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return fmt.Errorf("the node's certificate: %w", err)
				}
				certs = append(certs, c)
			}
			for _, c := range certs[1:] {
				if !c.IsCA || CertHash(c) != caHash {
					continue
				}
				pool := x509.NewCertPool()
				pool.AddCert(c)
				if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
					return fmt.Errorf("the node's certificate is not signed by the cluster CA: %w", err)
				}
				if seen != nil {
					*seen = &CA{Cert: c, CertPEM: pemBlock("CERTIFICATE", c.Raw)}
				}
				return nil
			}
			return errors.New("the node does not present the CA the join token names: " +
				"check the token and the address (is it this cluster?)")
		},
	}
}
