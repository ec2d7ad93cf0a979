// Package membership is how a node becomes part of its cluster's store. On its first start a
// node founds a cluster (it makes the cluster's CA and, once its store runs, a first join token)
// or joins one with a token, as a server or an agent (a server, which holds the CA key, checks
// the token in the store, signs the node's certificate with its role, makes its store user and,
// while the store has fewer than three members, adds a server as a learner); on later starts it
// becomes again what it was, from what it keeps in its data directory, without a token. A node
// that runs a member of the embedded store starts it, has it promoted to a voter once it has
// caught up, and advertises its peer URL; every node then connects its store client. Client
// nodes follow the store's members as they change (Run), and servers admit others on their
// cluster endpoint (JoinHandler).
//
// The embedded store checks the certificate of every request (see auth.go): the founder turns
// this on, a server turns a store of an earlier version over to it, and a node whose certificate
// the store no longer takes learns that it was removed (ErrRemoved).
//
// A node with an external etcd (Config.Store) takes no part in any of this: Setup only connects
// to that store.
//
// What a node keeps in its data directory:
//
//	cluster.json    what the node is in its cluster: its role, store member or client, the members' URLs
//	token           the first join token, on the node that founded the cluster (mode 0600)
//	pki/            the cluster's CA (with its key on servers), the node's certificate and key
//	store/          the embedded store member's data
//	store.created   the mark that the node has had a store member, so that a lost store/ is an error
package membership

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
)

// Config is what a node needs to take its place in the cluster's store.
type Config struct {
	// Name is the node's name, in its certificate and as its store member's name.
	Name string
	// DataDir is the node's data directory (see the package doc for what it holds).
	DataDir string
	// Addresses are the node's addresses; the first is the one other nodes reach it on (its
	// store member's peer and client URLs, its cluster endpoint). With none, a store member
	// serves on a socket in the data directory only and the node takes no others.
	Addresses []string
	// Store is "" for the embedded store, else an external etcd (etcd://host:port,... or
	// etcds://...) with its TLS files.
	Store                        string
	StoreCA, StoreCert, StoreKey string
	// Join is the address of a node of the cluster to join (HOST or HOST:PORT), "" to found a
	// cluster or to start again as what the node was; JoinToken is a join token of the cluster.
	Join, JoinToken string
	// Role is what a joining node asks to be ("": what its token admits). An agent never runs
	// a store member. The role is kept in cluster.json: a node keeps the one it joined as.
	Role join.Role
	// Repo is the repository the node follows, named in the join command a new cluster prints.
	Repo string
	// Console, when set, is where the founder shows its first join token, once (the daemon's
	// stderr when it is a terminal). The token is never logged.
	Console io.Writer
	// AgentPermissions are the store permissions of an agent's user (cluster.AgentPermissions).
	// When set, the embedded store checks every request's certificate (see auth.go): nodes get
	// their users when they are admitted, servers are admins. Nil: no users (tests).
	AgentPermissions func(node string) []store.Permission
	// Nodes lists the nodes the cluster has records of: those registered now (live) and every
	// one not removed (known). A server turning a store of an earlier version over to
	// authentication waits for the live ones and makes the users of the others.
	Nodes func(ctx context.Context, st *store.Client) (live, known []string, err error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Membership is a node's place in its cluster's store: its store client, the embedded store
// member it runs, if any, and its credentials in the cluster. Close releases them.
type Membership struct {
	cfg      Config
	log      *slog.Logger
	storeCfg store.Config
	st       *store.Client
	emb      *store.Embedded
	ca       *pki.CA // nil with an external store
	role     join.Role
	// foundingToken is set on a founder that has yet to make the cluster's first join token.
	foundingToken bool
	certPEM       []byte
	keyPEM        []byte
	addr          string // the address other nodes reach this one on, "" for none
	// authOn is set once the store checks certificates (as far as a server knows); authWaiting
	// is the nodes a server last said it waits for.
	authOn      atomic.Bool
	authWaiting string
}

// Setup founds a cluster, joins one or starts again as what the node was, starts the embedded
// store member when the node runs one, and connects the node's store client. On an error it
// leaves nothing running.
func Setup(ctx context.Context, cfg Config) (*Membership, error) {
	m := &Membership{cfg: cfg, log: cfg.Logger}
	if m.log == nil {
		m.log = slog.Default()
	}
	if err := m.setup(ctx); err != nil {
		return nil, err
	}
	st, err := store.Connect(ctx, m.storeCfg)
	if err != nil {
		return nil, errors.Join(err, m.closeMember())
	}
	m.st = st
	if err := m.setupAuth(ctx); err != nil {
		return nil, errors.Join(err, m.Close())
	}
	if m.foundingToken {
		if err := m.makeFoundingToken(ctx); err != nil {
			return nil, errors.Join(err, m.Close())
		}
	}
	return m, nil
}

// Role returns what the node is in its cluster: a server or an agent. With an external store it
// is the configured role (server by default).
func (m *Membership) Role() join.Role {
	if m.role == "" {
		if m.cfg.Role != "" {
			return m.cfg.Role
		}
		return join.RoleServer
	}
	return m.role
}

// Store returns the node's store client. It is closed by Close.
func (m *Membership) Store() *store.Client { return m.st }

// Member reports whether the node runs a member of the embedded store.
func (m *Membership) Member() bool { return m.emb != nil }

// Endpoints returns the store endpoints the node's client started with.
func (m *Membership) Endpoints() []string { return append([]string(nil), m.storeCfg.Endpoints...) }

// Address returns the address other nodes reach this node on in its cluster (where it serves
// its cluster endpoint), or "" when it has none: no --node-address, or an external store.
func (m *Membership) Address() string {
	if m.ca == nil {
		return ""
	}
	return m.addr
}

// ClientTLS returns the TLS configuration this node calls other nodes with: its certificate,
// and the cluster CA as the only root. It fails on a node with an external store.
func (m *Membership) ClientTLS() (*tls.Config, error) {
	if m.ca == nil {
		return nil, errors.New("a node on an external store has no cluster certificate")
	}
	return pki.ClientTLS(m.ca, m.certPEM, m.keyPEM)
}

// ServerTLS returns the TLS configuration of the node's cluster endpoint: its certificate,
// asking for client certificates of the cluster CA. It fails on a node with an external store.
func (m *Membership) ServerTLS() (*tls.Config, error) {
	if m.ca == nil {
		return nil, errors.New("a node on an external store has no cluster certificate")
	}
	return pki.ServerTLS(m.ca, m.certPEM, m.keyPEM)
}

// JoinHandler serves the joins of other nodes, at join.Path of the node's cluster endpoint. A
// node that holds the CA key (a server) admits them, refusing a name nodeLive reports
// registered and alive, or nodeKnown still known to the cluster (nil: no such check), and makes
// each node's store user; a node that does not names the nodes that can.
func (m *Membership) JoinHandler(nodeLive, nodeKnown func(ctx context.Context, name string) (bool, error)) http.Handler {
	if m.ca != nil && m.ca.Key != nil {
		return &join.Admitter{CA: m.ca, Store: m.st, Logger: m.log, NodeLive: nodeLive, NodeKnown: nodeKnown,
			AgentPermissions: m.cfg.AgentPermissions}
	}
	return join.RefuseHandler(func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return m.memberHosts(ctx)
	})
}

// memberHosts are the hosts of the store's members: the nodes that admit others.
func (m *Membership) memberHosts(ctx context.Context) []string {
	var out []string
	members, _ := m.st.Members(ctx)
	for _, mb := range members {
		for _, u := range mb.PeerURLs {
			if i := strings.LastIndex(u, ":"); i > 0 {
				out = append(out, strings.TrimPrefix(u[:i], "https://"))
			}
		}
	}
	return out
}

// CreateToken makes a join token and records it in the store (see join.CreateToken). Only a
// server (which holds the CA key) makes tokens: elsewhere it returns join.ErrNotServer, naming
// the nodes that can. The token's secret is never logged.
func (m *Membership) CreateToken(ctx context.Context, spec join.TokenSpec) (pki.Token, join.TokenInfo, error) {
	if err := m.checkTokens(); err != nil {
		return pki.Token{}, join.TokenInfo{}, err
	}
	if m.ca.Key == nil {
		what := "an agent"
		if m.Role() == join.RoleServer {
			what = "a server that joined before every server got the CA key (remove it and join it again to get it)"
		}
		return pki.Token{}, join.TokenInfo{}, fmt.Errorf("%w (one that holds the cluster CA's key); this node is %s: "+
			"run \"shoal token create\" on one of %s", join.ErrNotServer, what, strings.Join(m.memberHosts(ctx), ", "))
	}
	tok, info, err := join.CreateToken(ctx, m.st, m.ca.Hash(), spec, time.Now())
	if err != nil {
		return pki.Token{}, join.TokenInfo{}, err
	}
	if info.Expires.IsZero() {
		m.log.Warn("join token created that never expires: delete it once the nodes joined", "token id", info.ID, "role", info.Role)
	} else {
		m.log.Info("join token created", "token id", info.ID, "role", info.Role, "expires", info.Expires)
	}
	return tok, info, nil
}

// ListTokens lists the cluster's join tokens, without their secrets (see join.ListTokens).
func (m *Membership) ListTokens(ctx context.Context) ([]join.TokenInfo, error) {
	if err := m.checkTokens(); err != nil {
		return nil, err
	}
	return join.ListTokens(ctx, m.st)
}

// DeleteToken deletes a join token (see join.DeleteToken).
func (m *Membership) DeleteToken(ctx context.Context, id string) error {
	if err := m.checkTokens(); err != nil {
		return err
	}
	if err := join.DeleteToken(ctx, m.st, id); err != nil {
		return err
	}
	m.log.Info("join token deleted", "token id", id)
	return nil
}

func (m *Membership) checkTokens() error {
	if m.ca == nil {
		return fmt.Errorf("%w: this node uses an external store, which nodes join with --store, not with join tokens", join.ErrNotServer)
	}
	if m.Role() == join.RoleAgent {
		return fmt.Errorf("%w: this node is an agent, whose certificate does not reach the tokens: run \"shoal token\" on a server node", join.ErrNotServer)
	}
	return nil
}

// Run keeps what the node knows of the store current until ctx ends: a client node records the
// members' client URLs in cluster.json for its next start, since the members it joined through
// may all be replaced while it runs; a server turns the store's authentication on when a store
// of an earlier version can take it, and keeps the agents' permissions current. It returns
// ErrRemoved, having logged it, once the store no longer takes the node's certificate: the node
// was removed from the cluster, and must stop acting in it.
func (m *Membership) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the wait: the goroutines end with ctx
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.runAuth(ctx)
	}()
	if m.emb == nil && m.ca != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = followMembers(ctx, m.cfg.DataDir, m.st, m.log)
		}()
	}
	return m.watchRemoved(ctx)
}

// Close closes the store client, then stops the node's store member.
func (m *Membership) Close() error {
	var err error
	if m.st != nil {
		err = m.st.Close()
	}
	return errors.Join(err, m.closeMember())
}

func (m *Membership) closeMember() error {
	if m.emb == nil {
		return nil
	}
	if err := m.emb.Close(); err != nil {
		return fmt.Errorf("stop the store member: %w", err)
	}
	return nil
}
