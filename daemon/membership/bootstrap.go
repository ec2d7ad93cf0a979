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
	"github.com/shoal-dev/shoal/internal/atomicfile"
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
		// A node that was part of its cluster before starts again from its data dir: its
		// certificate is its credential, and no join token is read or checked.
		if cfg.Join != "" {
			m.log.Info("this node has joined its cluster before: --join and its token are not used again", "data", cfg.DataDir)
		}
		if m.ca, err = pki.LoadCA(pkiDir); err != nil {
			return fmt.Errorf("%w; the node's credentials are damaged: remove the node (`shoal node remove %s`), then join it again with an empty data dir", err, cfg.Name)
		}
		if state.Role == "" {
			state.Role = join.RoleServer // a node of an earlier version: every node could be master
		}
		if cfg.Role != "" && cfg.Role != state.Role {
			m.log.Warn("this node joined its cluster as a "+string(state.Role)+" and stays one: --role "+string(cfg.Role)+
				" is used only when joining; to change the role, remove the node (`shoal node remove NAME`), reset it and join it again",
				"role", state.Role)
		}
	}
	m.role = state.Role
	// The founder makes the first join token once its store runs (see Setup).
	m.foundingToken = !state.Joined && state.Member && !state.FoundingToken
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

// found makes a new cluster's CA (or reads it, for a node that founded its cluster before
// cluster.json existed). The first join token is made once the store runs (makeFoundingToken).
func (m *Membership) found(pkiDir string) (*clusterState, error) {
	cfg := m.cfg
	if cfg.Role == join.RoleAgent {
		return nil, errors.New("--role agent: the node that founds a cluster is a server; join an agent to a cluster " +
			"with --join ADDRESS and a token from \"shoal token create\"")
	}
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
	state := &clusterState{Member: true, Role: join.RoleServer}
	return state, saveState(cfg.DataDir, state)
}

// makeFoundingToken makes the cluster's first join token, a server token with the default TTL,
// keeps it in <data dir>/token (mode 0600) and shows it once on the console. It is never logged.
func (m *Membership) makeFoundingToken(ctx context.Context) error {
	cfg := m.cfg
	tok, info, err := join.CreateToken(ctx, m.st, m.ca.Hash(), join.TokenSpec{Role: join.RoleServer, TTL: join.DefaultTokenTTL,
		Description: "made by " + cfg.Name + " when it founded the cluster"}, time.Now())
	if err != nil {
		return fmt.Errorf("make the first join token: %w", err)
	}
	tokenFile := filepath.Join(cfg.DataDir, tokenFileName)
	if err := tok.Save(tokenFile); err != nil {
		return err
	}
	state, err := loadState(cfg.DataDir)
	if err != nil || state == nil {
		return fmt.Errorf("record the first join token: %w", err)
	}
	state.FoundingToken = true
	if err := saveState(cfg.DataDir, state); err != nil {
		return err
	}
	m.announce(tok, info, tokenFile)
	return nil
}

// announce shows the first join token on the console, when the node has one, and logs where it
// is kept (never the token itself).
func (m *Membership) announce(tok pki.Token, info join.TokenInfo, tokenFile string) {
	expires := info.Expires.Local().Format(time.RFC1123)
	addr := m.addr
	if addr == "" {
		addr = "THIS-NODE-ADDRESS"
	}
	joinCmd := "shoal daemon --join " + addr + " --join-token-file FILE --node-address ADDRESS --repo " + m.cfg.Repo
	if m.cfg.Console != nil {
		fmt.Fprintf(m.cfg.Console, "\nThis node founded a new cluster. Join other nodes to it with this server token\n"+
			"(valid until %s; kept in %s):\n\n    %s\n\n"+
			"On a new node, with the token in FILE:\n\n    %s [--role agent]\n\n"+
			"Make more tokens, agent tokens or longer-lived ones with \"shoal token create\" on a server node.\n\n",
			expires, tokenFile, tok, joinCmd)
	}
	if m.addr == "" {
		m.log.Info("new cluster; it takes no other nodes until this node has an address: restart it with --node-address",
			"token file", tokenFile, "more tokens", "shoal token create")
		return
	}
	m.log.Info("new cluster: join other nodes with the server token kept in the token file (mode 0600), or make more with shoal token create",
		"token file", tokenFile, "token id", info.ID, "expires", info.Expires, "join", joinCmd)
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
		return nil, fmt.Errorf("--join-token-file: %w", err)
	}
	url, err := join.Address(cfg.Join)
	if err != nil {
		return nil, err
	}
	keyPEM, csrPEM, err := pki.NewRequest(cfg.Name)
	if err != nil {
		return nil, err
	}
	req := join.Request{Node: cfg.Name, Addresses: cfg.Addresses, CSR: string(csrPEM), Role: cfg.Role}
	if cfg.Role != join.RoleAgent {
		req.PeerURL = peerURL(m.addr)
	}
	m.log.Info("joining the cluster", "at", url, "role", cfg.Role, "token id", tok.ID)
	resp, ca, err := join.Join(ctx, url, tok, req, m.log)
	if err != nil {
		return nil, err
	}
	role := resp.Role
	if role == "" {
		role = join.RoleServer
	}
	if cfg.Role != "" && role != cfg.Role {
		return nil, fmt.Errorf("join: the cluster admitted this node as a %s, not the %s it asked to be", role, cfg.Role)
	}
	if resp.Member && role != join.RoleServer {
		return nil, fmt.Errorf("join: the cluster made this %s a store member: only servers run one", role)
	}
	// Every server holds the CA key (the master opens the keyring of the Secrets with it); an
	// agent keeps none, even if it were sent one.
	if role == join.RoleServer && resp.CAKey != "" {
		if ca, err = pki.ParseCA([]byte(resp.CA), []byte(resp.CAKey)); err != nil {
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
	state := &clusterState{Member: resp.Member, Joined: true, Role: role, InitialCluster: resp.InitialCluster, Endpoints: resp.Endpoints}
	m.log.Info("joined the cluster", "role", role, "store member", resp.Member, "store", strings.Join(resp.Endpoints, ","))
	return state, saveState(cfg.DataDir, state)
}

// nodeCert loads the node's certificate, and signs a new one when the node holds the CA key
// and the addresses changed, or the certificate does not name the node's role (one signed by
// an earlier version: other nodes take a caller's role from its certificate).
func (m *Membership) nodeCert(pkiDir string) error {
	cfg := m.cfg
	certPEM, err1 := os.ReadFile(filepath.Join(pkiDir, pki.NodeCertFile))
	keyPEM, err2 := os.ReadFile(filepath.Join(pkiDir, pki.NodeKeyFile))
	if err1 == nil && err2 == nil && certCovers(certPEM, cfg.Addresses) &&
		(m.ca.Key == nil || pki.CertPEMRole(certPEM) == string(m.role)) {
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
	if certPEM, err = m.ca.SignNodeRole(csrPEM, cfg.Name, string(m.role), ips, nil, time.Now()); err != nil {
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

// writeNodeCert saves the node's key and certificate durably (see package atomicfile).
func writeNodeCert(dir string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save the node certificate: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, pki.NodeKeyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("save the node key: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, pki.NodeCertFile), certPEM, 0o644); err != nil {
		return fmt.Errorf("save the node certificate: %w", err)
	}
	return nil
}
