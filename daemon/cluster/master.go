package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-dev/shoal/daemon/revision"
)

// Git is what the master needs of the repository (package gitsync implements it).
type Git interface {
	// Tree returns the whole tree of commit sha and the directory in it that
	// holds the manifests ("." for the root): kustomizations there may use
	// files elsewhere in the repository, such as ../base.
	RepoTree(ctx context.Context, sha string) (repo fs.FS, dir string, err error)
	Commit(ctx context.Context, sha string) (revision.Commit, error)
	IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error)
	Verify(ctx context.Context, from, to string, keyring string) error
}

// MasterConfig configures the master.
type MasterConfig struct {
	Node  string
	Store *store.Client
	Git   Git
	// Keyring, when set, is an armored OpenPGP keyring: every new commit must be signed by it.
	Keyring       string
	Load          manifests.LoadOptions
	NodeLostGrace time.Duration
	// AutoscalerSync is how often the autoscalers compute their replicas; zero means
	// reconcile.HPASyncPeriod (15 s, as Kubernetes).
	AutoscalerSync time.Duration
	// ServiceCIDR is where Services get their virtual IPs (default 10.96.0.0/16).
	ServiceCIDR netip.Prefix
	// ClusterCIDR is where nodes get their pod CIDRs, one /24 each (default 10.244.0.0/16).
	ClusterCIDR netip.Prefix
	Metrics     *Metrics
	Logger      *slog.Logger
	// AvoidStoreLeader is set on a node that runs a store member: while it is master, it hands
	// the store's leadership to another member, so that losing this node costs one lease TTL
	// and not also a store election (which renews every lease).
	AvoidStoreLeader bool
	// Keys keep the Secrets encrypted in the store: the master encrypts those of the desired
	// state with the cluster's keyring, which it opens with Keys.CAKey, and seals those of each
	// placement to its node's key. Nil on an external store (no CA): Secrets are stored as they
	// are.
	Keys *Keys
}

// Default address ranges of a cluster.
var (
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	DefaultClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
)

// Master accepts commits and runs the controllers while this daemon leads the election.
type Master struct {
	cfg MasterConfig
	log *slog.Logger

	mu      sync.Mutex
	head    revision.Head
	headCh  chan struct{}
	objects map[string][]manifests.Object // desired objects by commit

	// lost is the last plan's Plan.Lost, which the next pass gives the planner back as
	// State.Lost. Only Run's goroutine uses it.
	lost map[string]time.Time

	eventLease      clientv3.LeaseID
	eventLeaseUntil time.Time

	// keyrings opens the stored keyring; nodeKeys are the nodes' checked certificate keys and
	// resealAll has the next pass look at every placement's sealed Secrets (resealOps). Only
	// Run's goroutine uses the last two.
	keyrings  keyringCache
	nodeKeys  map[string]nodeKeyEntry
	resealAll bool

	// view is the store as this term's passes read it, kept in memory by watches; wrote is
	// the revision of the term's last write, which a pass waits for the view to reach.
	view  *masterView
	wrote int64
}

// NewMaster returns a master; Run it with a leadership.
func NewMaster(cfg MasterConfig) *Master {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if !cfg.ServiceCIDR.IsValid() {
		cfg.ServiceCIDR = DefaultServiceCIDR
	}
	if !cfg.ClusterCIDR.IsValid() {
		cfg.ClusterCIDR = DefaultClusterCIDR
	}
	return &Master{cfg: cfg, log: cfg.Logger.With("component", "master"), headCh: make(chan struct{}, 1),
		objects: map[string][]manifests.Object{}, nodeKeys: map[string]nodeKeyEntry{}}
}

// SetHead tells the master the newest commit of the repository. Safe to call at any time.
func (m *Master) SetHead(h revision.Head) {
	m.mu.Lock()
	m.head = h
	m.mu.Unlock()
	select {
	case m.headCh <- struct{}{}:
	default:
	}
}

// Run acts as master until the leadership is lost or ctx ends. It returns store.ErrNotLeader
// when another daemon took over.
func (m *Master) Run(ctx context.Context, lead *store.Leadership) error {
	if !m.cfg.Keys.CanLead() {
		return errors.New("this node does not hold the cluster CA key, which opens the keyring of the cluster's Secrets: it cannot be master")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lead.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	m.log.Info("acting as master", "node", m.cfg.Node, "fence", lead.Rev)
	m.emit(ctx, lead, Event{Type: "Normal", Reason: "MasterElected", Object: "Node " + m.cfg.Node, Message: "became master", Node: m.cfg.Node})

	changes := make(chan struct{}, 1)
	poke := func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	view := newMasterView(m.cfg.Store, poke)
	if err := view.mirror.Start(ctx); err != nil {
		return fmt.Errorf("read the cluster's state: %w", err)
	}
	m.mu.Lock()
	m.view, m.wrote = view, 0
	m.mu.Unlock()
	m.resealAll = true
	if m.cfg.Keys != nil {
		if _, _, err := m.masterKeyring(ctx, lead); errors.Is(err, store.ErrNotLeader) {
			return err
		} else if err != nil && ctx.Err() == nil {
			m.log.Warn("the keyring; trying again with the next commit", "err", err)
		}
	}
	if m.cfg.AvoidStoreLeader {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			m.avoidStoreLeader(ctx)
		}()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	// A head to accept: the newest one known when this term starts (a previous term may have
	// ended before accepting it), and any that arrives; kept after a failure, to try again.
	m.mu.Lock()
	headPending := m.head.SHA != ""
	m.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			if lead.Done() != nil {
				select {
				case <-lead.Done():
					return store.ErrNotLeader
				default:
				}
			}
			return ctx.Err()
		case <-m.headCh:
			headPending = true
		case <-changes:
			// Let a burst of changes settle into one pass.
			time.Sleep(10 * time.Millisecond)
		case <-timer.C:
		}
		if headPending {
			m.mu.Lock()
			h := m.head
			m.mu.Unlock()
			err := m.accept(ctx, lead, h)
			switch {
			case errors.Is(err, store.ErrNotLeader):
				return err
			case err != nil && ctx.Err() == nil:
				m.log.Warn("commit; trying again", "sha", h.SHA, "err", err)
			case err == nil:
				headPending = false
			}
		}
		next, err := m.reconcile(ctx, lead)
		if errors.Is(err, store.ErrNotLeader) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			m.log.Warn("reconcile", "err", err)
			next = time.Second
		}
		if next <= 0 || next > time.Second {
			next = time.Second
		}
		timer.Reset(next)
	}
}

// settleTime is how long a node must have run before the store's leadership is handed to its
// member (which catches up with the others after a start).
const settleTime = 5 * time.Second

// avoidStoreLeader checks every second whether this node's store member leads the store and
// hands the leadership to the member of a node that is alive (registered, with a fresh heartbeat)
// when it does. After a
// failed hand-off it waits half a minute before it tries again.
func (m *Master) avoidStoreLeader(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var quietUntil time.Time
	for {
		if time.Now().After(quietUntil) {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			moved, err := m.cfg.Store.HandOffLeadership(cctx, func(name string) store.MemberHealth {
				// Registered, with a heartbeat of the last seconds: a node killed moments ago
				// is still registered until its lease expires.
				rec, _, ok, err := store.Get[NodeRecord](cctx, m.cfg.Store, nodeKey(name))
				switch {
				case err != nil || !ok || time.Since(rec.Heartbeat) > 3*time.Second:
					return store.MemberDown
				case time.Since(rec.StartedAt) < settleTime:
					return store.MemberStarting
				}
				return store.MemberSettled
			})
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				m.log.Warn("hand off the store's leadership; trying again in 30s", "err", err)
				quietUntil = time.Now().Add(30 * time.Second)
			case moved:
				m.log.Info("handed the store's leadership to another member, away from the master's node")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
