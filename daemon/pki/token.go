package pki

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// tokenPrefix starts every join token: the format's version.
const tokenPrefix = "shoal1"

// Token lets a node join a cluster: CAHash pins the cluster CA the new node must see, and Secret
// proves to the cluster that the node was given the token. Its text form is
// shoal1.<CA hash, 64 hex>.<secret, 32 hex>.
type Token struct {
	CAHash string
	Secret string
}

// NewToken makes a token for the cluster whose CA is ca, with a new 128-bit secret.
func NewToken(ca *CA) (Token, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return Token{}, fmt.Errorf("make the join token: %w", err)
	}
	return Token{CAHash: ca.Hash(), Secret: hex.EncodeToString(b)}, nil
}

func (t Token) String() string { return tokenPrefix + "." + t.CAHash + "." + t.Secret }

// ParseToken reads a token's text form.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != tokenPrefix || !isHex(parts[1], 64) || !isHex(parts[2], 32) {
		return Token{}, errors.New("the join token is malformed: copy it whole from the first node " +
			"(its log at first start, or <data dir>/token), shoal1.<64 hex>.<32 hex>")
	}
	return Token{CAHash: parts[1], Secret: parts[2]}, nil
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

// Save writes the token to path with mode 0600.
func (t Token) Save(path string) error {
	if err := writeFile(path, []byte(t.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("save the join token: %w", err)
	}
	return nil
}

// CheckSecret reports, in constant time, whether s is the token's secret.
func (t Token) CheckSecret(s string) bool { return t.Secret != "" && secretsEqual(t.Secret, s) }

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
