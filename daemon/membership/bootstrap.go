package membership

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
)

// Files in the data directory that say what the node is in its cluster.
const (
	pkiDirName    = "pki"
	tokenFileName = "token"
	stateFileName = "cluster.json"
)

// setup founds a cluster, joins one or starts again as what the node was, and starts the
// embedded store member when the node runs one. It leaves the store client's configuration in
// m.storeCfg.
func (m *Membership) setup(ctx context.Context) error {
	cfg := m.cfg
	if cfg.Store != "" {
		sc, err := store.ParseStoreURL(cfg.Store)
		if err != nil {
			return err
		}
		sc.CAFile, sc.CertFile, sc.KeyFile, sc.Logger = cfg.StoreCA, cfg.StoreCert, cfg.StoreKey, m.log
		m.storeCfg = sc
		return nil
	}
	if len(cfg.Addresses) > 0 {
		m.addr = cfg.Addresses[0]
	}
	pkiDir := filepath.Join(cfg.DataDir, pkiDirName)
	state, err := loadState(cfg.DataDir)
	if err != nil {
		return err
	}
	switch {
	case state == nil && cfg.Join == "":
		if state, err = m.found(pkiDir); err != nil {
			return err
		}
	case state == nil:
		if state, err = m.join(ctx, pkiDir); err != nil {
			return err
		}
	default:
		if cfg.Join != "" {
			m.log.Info("this node has joined its cluster before: --join is not used again", "data", cfg.DataDir)
		}
		if m.ca, err = pki.LoadCA(pkiDir); err != nil {
			return fmt.Errorf("%w; the node's credentials are damaged: remove the node (`shoal node remove %s`), then join it again with an empty data dir", err, cfg.Name)
		}
		if m.ca.Key != nil {
			if m.token, err = pki.ReadToken(filepath.Join(cfg.DataDir, tokenFileName)); err != nil {
				return err
			}
		}
	}
	if err := m.nodeCert(pkiDir); err != nil {
		return err
	}
	if !state.Member {
		tc, err := pki.ClientTLS(m.ca, m.certPEM, m.keyPEM)
		if err != nil {
			return err
		}
		m.storeCfg = store.Config{Endpoints: state.Endpoints, TLS: tc, AutoSync: 30 * time.Second, Logger: m.log}
		return nil
	}
	return m.startMember(ctx, pkiDir, state)
}

// found makes a new cluster's CA and join token (or reads them, for a node that founded its
// cluster before cluster.json existed).
func (m *Membership) found(pkiDir string) (*clusterState, error) {
	cfg := m.cfg
	var err error
	m.ca, err = pki.LoadCA(pkiDir)
	if errors.Is(err, os.ErrNotExist) {
		if m.ca, err = pki.NewCA(cfg.Name, time.Now()); err == nil {
			err = m.ca.Save(pkiDir)
		}
	}
	if err != nil {
		return nil, err
	}
	tokenPath := filepath.Join(cfg.DataDir, tokenFileName)
	m.token, err = pki.ReadToken(tokenPath)
	if errors.Is(err, os.ErrNotExist) {
		if m.token, err = pki.NewToken(m.ca); err == nil {
			err = m.token.Save(tokenPath)
		}
		if err == nil {
			m.announce()
		}
	}
	if err != nil {
		return nil, err
	}
	state := &clusterState{Member: true}
	return state, saveState(cfg.DataDir, state)
}

// announce prints the join token at a cluster's first start.
func (m *Membership) announce() {
	tokenFile := filepath.Join(m.cfg.DataDir, tokenFileName)
	if m.addr == "" {
		m.log.Info("new cluster; it takes no other nodes until this node has an address: restart it with --node-address",
			"token file", tokenFile)
		return
	}
	m.log.Info("new cluster: join other nodes with the token kept in the token file",
		"token", m.token.String(), "token file", tokenFile,
		"join", "shoal daemon --join "+m.addr+" --join-token-file FILE --node-address ADDRESS --repo "+m.cfg.Repo)
}

// join asks a node of the cluster to admit this one.
func (m *Membership) join(ctx context.Context, pkiDir string) (*clusterState, error) {
	cfg := m.cfg
	if m.addr == "" {
		return nil, errors.New("--join needs --node-address: the address the other nodes reach this one on")
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, storeMarker)); err == nil {
		return nil, fmt.Errorf("this node has a store of its own in %s: it cannot join another cluster with it; "+
			"run `shoal node reset` to start it empty (its pods stop), then join", cfg.DataDir)
	}
	tok, err := pki.ParseToken(cfg.JoinToken)
	if err != nil {
		return nil, err
	}
	url, err := join.Address(cfg.Join)
	if err != nil {
		return nil, err
	}
	keyPEM, csrPEM, err := pki.NewRequest(cfg.Name)
	if err != nil {
		return nil, err
	}
	req := join.Request{Node: cfg.Name, Addresses: cfg.Addresses, CSR: string(csrPEM)}
	if !cfg.NoStoreMember {
		req.PeerURL = peerURL(m.addr)
	}
	m.log.Info("joining the cluster", "at", url)
	resp, ca, err := join.Join(ctx, url, tok, req, m.log)
	if err != nil {
		return nil, err
	}
	if resp.Member {
		if ca, err = pki.ParseCA([]byte(resp.CA), []byte(resp.CAKey)); err != nil {
			return nil, err
		}
		if m.token, err = pki.ParseToken(resp.Token); err != nil {
			return nil, err
		}
		if err := m.token.Save(filepath.Join(cfg.DataDir, tokenFileName)); err != nil {
			return nil, err
		}
	}
	m.ca = ca
	if err := ca.Save(pkiDir); err != nil {
		return nil, err
	}
	if err := writeNodeCert(pkiDir, []byte(resp.Cert), keyPEM); err != nil {
		return nil, err
	}
	state := &clusterState{Member: resp.Member, Joined: true, InitialCluster: resp.InitialCluster, Endpoints: resp.Endpoints}
	m.log.Info("joined the cluster", "store member", resp.Member, "store", strings.Join(resp.Endpoints, ","))
	return state, saveState(cfg.DataDir, state)
}

// nodeCert loads the node's certificate, and signs a new one when the node holds the CA key
// and the addresses changed.
func (m *Membership) nodeCert(pkiDir string) error {
	cfg := m.cfg
	certPEM, err1 := os.ReadFile(filepath.Join(pkiDir, pki.NodeCertFile))
	keyPEM, err2 := os.ReadFile(filepath.Join(pkiDir, pki.NodeKeyFile))
	if err1 == nil && err2 == nil && certCovers(certPEM, cfg.Addresses) {
		m.certPEM, m.keyPEM = certPEM, keyPEM
		return nil
	}
	if m.ca.Key == nil {
		if err1 != nil || err2 != nil {
			return fmt.Errorf("the node's certificate: %w", errors.Join(err1, err2))
		}
		return fmt.Errorf("the node's addresses changed and its certificate does not name them; this node cannot sign " +
			"a new one: remove it (`shoal node remove NAME` on another node) and join it again with an empty data dir")
	}
	var ips []net.IP
	for _, a := range cfg.Addresses {
		if ip := net.ParseIP(a); ip != nil {
			ips = append(ips, ip)
		}
	}
	keyPEM, csrPEM, err := pki.NewRequest(cfg.Name)
	if err != nil {
		return err
	}
	if certPEM, err = m.ca.SignNode(csrPEM, cfg.Name, ips, nil, time.Now()); err != nil {
		return err
	}
	m.certPEM, m.keyPEM = certPEM, keyPEM
	return writeNodeCert(pkiDir, certPEM, keyPEM)
}

func certCovers(certPEM []byte, addrs []string) bool {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil || !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func writeNodeCert(dir string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save the node certificate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, pki.NodeKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("save the node key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, pki.NodeCertFile), certPEM, 0o644); err != nil {
		return fmt.Errorf("save the node certificate: %w", err)
	}
	return nil
}
