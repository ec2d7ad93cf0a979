package node

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
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

// clusterState is what a node keeps about its place in the cluster.
type clusterState struct {
	// Member is set on nodes that run a store member.
	Member bool `json:"member"`
	// Joined is set on nodes that joined another node's cluster (the founder has it unset).
	Joined bool `json:"joined,omitempty"`
	// InitialCluster is the member list a joined member starts with.
	InitialCluster string `json:"initialCluster,omitempty"`
	// Endpoints are the store's client URLs the node last knew of other members.
	Endpoints []string `json:"endpoints,omitempty"`
	// Promoted is set once a joined member votes.
	Promoted bool `json:"promoted,omitempty"`
}

// storeSetup is the node's way to the store and its credentials in the cluster.
type storeSetup struct {
	cfg     store.Config
	emb     *store.Embedded
	ca      *pki.CA   // nil with an external store
	token   pki.Token // zero on nodes that cannot admit others
	certPEM []byte
	keyPEM  []byte
	addr    string // the address other nodes reach this one on, "" for none
}

func (s *storeSetup) close() {
	if s.emb != nil {
		s.emb.Close()
	}
}

// setupStore founds a cluster, joins one or starts again as what the node was, and starts the
// embedded store member when the node runs one.
func setupStore(ctx context.Context, cfg Config, log *slog.Logger) (*storeSetup, error) {
	if cfg.Store != "" {
		sc, err := store.ParseStoreURL(cfg.Store)
		if err != nil {
			return nil, err
		}
		sc.CAFile, sc.CertFile, sc.KeyFile, sc.Logger = cfg.StoreCA, cfg.StoreCert, cfg.StoreKey, log
		return &storeSetup{cfg: sc}, nil
	}
	s := &storeSetup{}
	if len(cfg.Addresses) > 0 {
		s.addr = cfg.Addresses[0]
	}
	pkiDir := filepath.Join(cfg.DataDir, pkiDirName)
	state, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	switch {
	case state == nil && cfg.Join == "":
		if state, err = s.found(cfg, pkiDir, log); err != nil {
			return nil, err
		}
	case state == nil:
		if state, err = s.join(ctx, cfg, pkiDir, log); err != nil {
			return nil, err
		}
	default:
		if cfg.Join != "" {
			log.Info("this node has joined its cluster before: --join is not used again", "data", cfg.DataDir)
		}
		if s.ca, err = pki.LoadCA(pkiDir); err != nil {
			return nil, fmt.Errorf("%w; the node's credentials are damaged: remove the node (`shoal node remove %s`), then join it again with an empty data dir", err, cfg.Name)
		}
		if s.ca.Key != nil {
			if s.token, err = pki.ReadToken(filepath.Join(cfg.DataDir, tokenFileName)); err != nil {
				return nil, err
			}
		}
	}
	if err := s.nodeCert(cfg, pkiDir); err != nil {
		return nil, err
	}
	if !state.Member {
		tc, err := pki.ClientTLS(s.ca, s.certPEM, s.keyPEM)
		if err != nil {
			return nil, err
		}
		s.cfg = store.Config{Endpoints: state.Endpoints, TLS: tc, AutoSync: 30 * time.Second, Logger: log}
		return s, nil
	}
	if err := s.startMember(ctx, cfg, pkiDir, state, log); err != nil {
		return nil, err
	}
	return s, nil
}

// found makes a new cluster's CA and join token (or reads them, for a node that founded its
// cluster before cluster.json existed).
func (s *storeSetup) found(cfg Config, pkiDir string, log *slog.Logger) (*clusterState, error) {
	var err error
	s.ca, err = pki.LoadCA(pkiDir)
	if errors.Is(err, os.ErrNotExist) {
		if s.ca, err = pki.NewCA(cfg.Name, time.Now()); err == nil {
			err = s.ca.Save(pkiDir)
		}
	}
	if err != nil {
		return nil, err
	}
	tokenPath := filepath.Join(cfg.DataDir, tokenFileName)
	s.token, err = pki.ReadToken(tokenPath)
	if errors.Is(err, os.ErrNotExist) {
		if s.token, err = pki.NewToken(s.ca); err == nil {
			err = s.token.Save(tokenPath)
		}
		if err == nil {
			announce(cfg, s, log)
		}
	}
	if err != nil {
		return nil, err
	}
	state := &clusterState{Member: true}
	return state, saveState(cfg.DataDir, state)
}

// announce prints the join token at a cluster's first start.
func announce(cfg Config, s *storeSetup, log *slog.Logger) {
	if s.addr == "" {
		log.Info("new cluster; it takes no other nodes until this node has an address: restart it with --node-address",
			"token file", filepath.Join(cfg.DataDir, tokenFileName))
		return
	}
	log.Info("new cluster: join other nodes with the token kept in the token file",
		"token", s.token.String(), "token file", filepath.Join(cfg.DataDir, tokenFileName),
		"join", "shoal daemon --join "+s.addr+" --join-token-file FILE --node-address ADDRESS --repo "+cfg.Repo)
}

// join asks a node of the cluster to admit this one.
func (s *storeSetup) join(ctx context.Context, cfg Config, pkiDir string, log *slog.Logger) (*clusterState, error) {
	if s.addr == "" {
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
		req.PeerURL = peerURL(s.addr)
	}
	log.Info("joining the cluster", "at", url)
	resp, ca, err := join.Join(ctx, url, tok, req, log)
	if err != nil {
		return nil, err
	}
	if resp.Member {
		if ca, err = pki.ParseCA([]byte(resp.CA), []byte(resp.CAKey)); err != nil {
			return nil, err
		}
		if s.token, err = pki.ParseToken(resp.Token); err != nil {
			return nil, err
		}
		if err := s.token.Save(filepath.Join(cfg.DataDir, tokenFileName)); err != nil {
			return nil, err
		}
	}
	s.ca = ca
	if err := ca.Save(pkiDir); err != nil {
		return nil, err
	}
	if err := writeNodeCert(pkiDir, []byte(resp.Cert), keyPEM); err != nil {
		return nil, err
	}
	state := &clusterState{Member: resp.Member, Joined: true, InitialCluster: resp.InitialCluster, Endpoints: resp.Endpoints}
	log.Info("joined the cluster", "store member", resp.Member, "store", strings.Join(resp.Endpoints, ","))
	return state, saveState(cfg.DataDir, state)
}

// nodeCert loads the node's certificate, and signs a new one when the node holds the CA key
// and the addresses changed.
func (s *storeSetup) nodeCert(cfg Config, pkiDir string) error {
	certPEM, err1 := os.ReadFile(filepath.Join(pkiDir, pki.NodeCertFile))
	keyPEM, err2 := os.ReadFile(filepath.Join(pkiDir, pki.NodeKeyFile))
	if err1 == nil && err2 == nil && certCovers(certPEM, cfg.Addresses) {
		s.certPEM, s.keyPEM = certPEM, keyPEM
		return nil
	}
	if s.ca.Key == nil {
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
	if certPEM, err = s.ca.SignNode(csrPEM, cfg.Name, ips, nil, time.Now()); err != nil {
		return err
	}
	s.certPEM, s.keyPEM = certPEM, keyPEM
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

func peerURL(addr string) string {
	return "https://" + net.JoinHostPort(addr, strconv.Itoa(join.DefaultPeerPort))
}

func storeURL(addr string) string {
	return "https://" + net.JoinHostPort(addr, strconv.Itoa(join.DefaultStorePort))
}

// startMember starts the node's store member: over TLS on its address when it has one, on a
// socket in the data dir only otherwise.
func (s *storeSetup) startMember(ctx context.Context, cfg Config, pkiDir string, state *clusterState, log *slog.Logger) error {
	storeDir := filepath.Join(cfg.DataDir, "store")
	if err := checkStoreDir(cfg.DataDir, storeDir); err != nil {
		return err
	}
	ec := store.EmbedConfig{Dir: storeDir, Name: cfg.Name, Logger: log, InitialCluster: state.InitialCluster}
	if state.Joined {
		ec.ClusterState = store.ClusterStateExisting
	}
	if s.addr != "" {
		files := store.TLSFiles{CertFile: filepath.Join(pkiDir, pki.NodeCertFile), KeyFile: filepath.Join(pkiDir, pki.NodeKeyFile),
			CAFile: filepath.Join(pkiDir, pki.CACertFile)}
		ec.PeerURL, ec.NetworkClientURL = peerURL(s.addr), storeURL(s.addr)
		ec.PeerTLS, ec.ClientTLS = files, files
	}
	if state.Joined && !state.Promoted {
		// A learner catching up on a large store may take a while before it serves.
		ec.ReadyTimeout = 5 * time.Minute
	}
	emb, err := store.StartEmbedded(ctx, ec)
	if err != nil {
		return err
	}
	s.emb = emb
	if err := markStore(cfg.DataDir); err != nil {
		emb.Close()
		return err
	}
	for _, e := range emb.Endpoints() {
		if strings.HasPrefix(e, "unix://") {
			s.cfg = store.Config{Endpoints: []string{e}, Logger: log}
		}
	}
	if state.Joined && !state.Promoted {
		if err := s.promote(ctx, emb.ID(), state.Endpoints, log); err != nil {
			emb.Close()
			return err
		}
		if err := waitVoter(ctx, s.cfg); err != nil {
			emb.Close()
			return err
		}
		state.Promoted = true
		if err := saveState(cfg.DataDir, state); err != nil {
			emb.Close()
			return err
		}
	}
	if !state.Joined && s.addr != "" {
		if err := s.advertisePeer(ctx, emb.ID()); err != nil {
			emb.Close()
			return err
		}
	}
	return nil
}

// promote makes the node's learner a voting member once it has caught up, through the other
// members (a learner serves no such request).
func (s *storeSetup) promote(ctx context.Context, id uint64, endpoints []string, log *slog.Logger) error {
	tc, err := pki.ClientTLS(s.ca, s.certPEM, s.keyPEM)
	if err != nil {
		return err
	}
	cli, err := store.Connect(ctx, store.Config{Endpoints: endpoints, TLS: tc, Logger: log})
	if err != nil {
		return fmt.Errorf("promote this node's store member: %w", err)
	}
	defer cli.Close()
	for try := 0; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cli.Promote(pctx, id)
		cancel()
		if err == nil || errors.Is(err, store.ErrNotLearner) {
			log.Info("this node's store member votes")
			return nil
		}
		if try%10 == 9 {
			log.Info("waiting for this node's store member to catch up", "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote this node's store member: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitVoter waits until the local member serves clients: it learns of its own promotion only
// when it applies it, a moment after the others, and refuses clients until then.
func waitVoter(ctx context.Context, cfg store.Config) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		cli, err := store.Connect(ctx, cfg)
		if err == nil {
			return cli.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("this node's store member does not serve after its promotion: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// advertisePeer updates the founder's peer URL when it has gained an address since the store
// was made (a member started without one listens on loopback only).
func (s *storeSetup) advertisePeer(ctx context.Context, id uint64) error {
	cli, err := store.Connect(ctx, s.cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	members, err := cli.Members(ctx)
	if err != nil {
		return err
	}
	want := peerURL(s.addr)
	for _, m := range members {
		if m.ID == id && !slices.Equal(m.PeerURLs, []string{want}) {
			if len(members) > 1 {
				return fmt.Errorf("this store member's peer address %v is not %s, and other members know it by the old "+
					"one: start the node with its old --node-address", m.PeerURLs, want)
			}
			return cli.UpdatePeerURLs(ctx, id, []string{want})
		}
	}
	return nil
}

// clusterHandler is the node's cluster endpoint: joins (taken by nodes that hold the CA key),
// and the API of this node's pods for other nodes (local, which never forwards further).
func (s *storeSetup) clusterHandler(st *store.Client, local http.Handler, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	if local != nil {
		mux.Handle("/", nodesOnly(local))
	}
	if s.ca.Key != nil {
		mux.Handle(join.Path, &join.Admitter{CA: s.ca, Token: s.token, Store: st, Logger: log,
			NodeLive: func(ctx context.Context, name string) (bool, error) { return cluster.NodeRegistered(ctx, st, name) }})
	} else {
		mux.Handle(join.Path, join.RefuseHandler(func() []string {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var out []string
			members, _ := st.Members(ctx)
			for _, m := range members {
				for _, u := range m.PeerURLs {
					if i := strings.LastIndex(u, ":"); i > 0 {
						out = append(out, strings.TrimPrefix(u[:i], "https://"))
					}
				}
			}
			return out
		}))
	}
	return mux
}

// followMembers keeps the store endpoints a client node starts with current: the members it
// joined through may all be replaced while it runs.
func followMembers(ctx context.Context, dataDir string, st *store.Client, log *slog.Logger) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		eps, err := st.SyncEndpoints(ctx)
		if err != nil || len(eps) == 0 {
			continue
		}
		state, err := loadState(dataDir)
		if err != nil || state == nil || slices.Equal(state.Endpoints, eps) {
			continue
		}
		state.Endpoints = eps
		if err := saveState(dataDir, state); err != nil {
			log.Warn("save the store's endpoints", "err", err)
		}
	}
}

func loadState(dataDir string) (*clusterState, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, stateFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stateFileName, err)
	}
	var st clusterState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w; restore it or remove the node and join it again with an empty data dir",
			filepath.Join(dataDir, stateFileName), err)
	}
	return &st, nil
}

func saveState(dataDir string, st *clusterState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(dataDir, stateFileName)
	if err := os.WriteFile(p+".tmp", append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save %s: %w", p, err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		return fmt.Errorf("save %s: %w", p, err)
	}
	return nil
}
