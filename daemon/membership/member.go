package membership

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/internal/atomicfile"
)

// storeMarker records in the data dir that this node has had an embedded store, so that a store
// directory that went missing is an error instead of a new, empty cluster (which would remove
// every pod).
const storeMarker = "store.created"

func checkStoreDir(dataDir, storeDir string) error {
	if _, err := os.Stat(filepath.Join(dataDir, storeMarker)); err != nil {
		return nil // a new node
	}
	if _, err := os.Stat(storeDir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the store's data dir %s is missing, but this node had a store: restore it from a backup "+
			"or snapshot; to start a new, empty cluster instead, remove %s (the pods of this node keep running until "+
			"the new cluster's master decides)", storeDir, filepath.Join(dataDir, storeMarker))
	}
	return nil
}

func markStore(dataDir string) error {
	p := filepath.Join(dataDir, storeMarker)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := atomicfile.WriteFile(p, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return fmt.Errorf("data dir: %w", err)
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
// socket in the data dir only otherwise. A joined member that does not vote yet is promoted.
func (m *Membership) startMember(ctx context.Context, pkiDir string, state *clusterState) error {
	cfg := m.cfg
	storeDir := filepath.Join(cfg.DataDir, "store")
	if err := checkStoreDir(cfg.DataDir, storeDir); err != nil {
		return err
	}
	absStore, err := filepath.Abs(storeDir)
	if err != nil {
		return fmt.Errorf("the store's directory: %w", err)
	}
	// The node's own daemon reaches its member on a socket in the data dir, over TLS with the
	// node's certificate like every other client: the store takes a request's user from it.
	files := store.TLSFiles{CertFile: filepath.Join(pkiDir, pki.NodeCertFile), KeyFile: filepath.Join(pkiDir, pki.NodeKeyFile),
		CAFile: filepath.Join(pkiDir, pki.CACertFile)}
	ec := store.EmbedConfig{Dir: storeDir, Name: cfg.Name, Logger: m.log, InitialCluster: state.InitialCluster,
		ClientURL: "unixs://" + filepath.Join(absStore, store.SocketName), ClientTLS: files}
	if state.Joined {
		ec.ClusterState = store.ClusterStateExisting
	}
	if m.addr != "" {
		ec.PeerURL, ec.NetworkClientURL = peerURL(m.addr), storeURL(m.addr)
		ec.PeerTLS = files
	}
	if state.Joined && !state.Promoted {
		// A learner catching up on a large store may take a while before it serves.
		ec.ReadyTimeout = 5 * time.Minute
	}
	emb, err := store.StartEmbedded(ctx, ec)
	if err != nil {
		return err
	}
	m.emb = emb
	if err := m.readyMember(ctx, state); err != nil {
		m.emb = nil
		emb.Close()
		return err
	}
	return nil
}

// readyMember points the store client at the started member's local socket, has a joined
// learner promoted and a founder's peer URL advertised.
func (m *Membership) readyMember(ctx context.Context, state *clusterState) error {
	if err := markStore(m.cfg.DataDir); err != nil {
		return err
	}
	for _, e := range m.emb.Endpoints() {
		if strings.HasPrefix(e, "unixs://") {
			tc, err := m.localTLS()
			if err != nil {
				return err
			}
			m.storeCfg = store.Config{Endpoints: []string{e}, TLS: tc, Logger: m.log}
		}
	}
	if state.Joined && !state.Promoted {
		if err := m.promote(ctx, m.emb.ID(), state.Endpoints); err != nil {
			return err
		}
		if err := waitVoter(ctx, m.storeCfg); err != nil {
			return err
		}
		state.Promoted = true
		if err := saveState(m.cfg.DataDir, state); err != nil {
			return err
		}
	}
	if !state.Joined && m.addr != "" {
		return m.advertisePeer(ctx, m.emb.ID())
	}
	return nil
}

// localTLS is how the node's daemon reaches its own store member on the socket: it presents the
// node's certificate (its name is the store's user) and accepts only a server that presents
// that same certificate, which only the node's member holds the key of. (gRPC names the server
// of a socket by the socket's file name, which no certificate holds.)
func (m *Membership) localTLS() (*tls.Config, error) {
	tc, err := pki.ClientTLS(m.ca, m.certPEM, m.keyPEM)
	if err != nil {
		return nil, err
	}
	own := tc.Certificates[0].Certificate[0]
	tc.InsecureSkipVerify = true //nolint:gosec // VerifyPeerCertificate checks that it is the node's own certificate
	tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 || !bytes.Equal(raw[0], own) {
			return errors.New("the store's socket presents another certificate than this node's own")
		}
		return nil
	}
	return tc, nil
}

// promote makes the node's learner a voting member once it has caught up, through the other
// members (a learner serves no such request).
func (m *Membership) promote(ctx context.Context, id uint64, endpoints []string) error {
	tc, err := pki.ClientTLS(m.ca, m.certPEM, m.keyPEM)
	if err != nil {
		return err
	}
	cli, err := store.Connect(ctx, store.Config{Endpoints: endpoints, TLS: tc, Logger: m.log})
	if err != nil {
		return fmt.Errorf("promote this node's store member: %w", err)
	}
	defer cli.Close()
	for try := 0; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cli.Promote(pctx, id)
		cancel()
		if err == nil || errors.Is(err, store.ErrNotLearner) {
			m.log.Info("this node's store member votes")
			return nil
		}
		if try%10 == 9 {
			m.log.Info("waiting for this node's store member to catch up", "err", err)
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
func (m *Membership) advertisePeer(ctx context.Context, id uint64) error {
	cli, err := store.Connect(ctx, m.storeCfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	members, err := cli.Members(ctx)
	if err != nil {
		return err
	}
	want := peerURL(m.addr)
	for _, mb := range members {
		if mb.ID == id && !slices.Equal(mb.PeerURLs, []string{want}) {
			if len(members) > 1 {
				return fmt.Errorf("this store member's peer address %v is not %s, and other members know it by the old "+
					"one: start the node with its old --node-address", mb.PeerURLs, want)
			}
			return cli.UpdatePeerURLs(ctx, id, []string{want})
		}
	}
	return nil
}
