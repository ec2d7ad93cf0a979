// Package node assembles a Shoal node daemon from its parts, started in phases: the node's
// place in the shared store (package membership: embedded etcd or an external cluster), the
// runtime, git synchronisation, the election and the master, the network plane, the node agent
// over the runtime, and the API.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/buildinfo"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/gitsync"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/membership"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime/image"
	"github.com/shoal-dev/shoal/runtime/libct"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/linux"
	"github.com/shoal-dev/shoal/runtime/volumes"
	"golang.org/x/sys/unix"
)

// Config is a node's configuration (the flags of `shoal daemon`).
type Config struct {
	Name    string
	DataDir string
	Labels  map[string]string
	// Taints keep pods that do not tolerate them off the node (and, NoExecute, evict them).
	Taints []manifests.Taint
	// Repository.
	Repo          string
	Ref           string
	Path          string
	Poll          time.Duration
	TokenFile     string
	SSHKeyFile    string
	KnownHosts    string
	AllowHTTP     bool
	VerifyKeyring string // file of an armored OpenPGP keyring
	// Decryptor decrypts the SOPS-encrypted manifests when this node is master (nil: no keys,
	// and a commit with an encrypted file is refused).
	Decryptor manifests.Decryptor
	// Store: "" for the embedded etcd, else etcd://host:port,... or etcds://...
	Store                        string
	StoreCA, StoreCert, StoreKey string
	// Join is the address of a node of the cluster to join (HOST or HOST:PORT), "" to found a
	// cluster or to start again as what the node was; JoinToken is a join token of the cluster.
	Join, JoinToken string
	// Role is what a joining node asks to be, server or agent ("": what its token admits); an
	// agent never runs a store member nor campaigns for master. The node keeps the role it
	// joined as.
	Role join.Role
	// Console, when set, is where a founding node shows the cluster's first join token once.
	Console io.Writer
	// ClusterPort is the port of the cluster endpoint (joins), on the first address.
	ClusterPort                   int
	LeaseTTL                      time.Duration
	NodeLostGrace                 time.Duration
	Socket                        string
	APIListen                     string // host:port for the TCP API (TLS + token), "" for none
	APICert, APIKey, APITokenFile string
	WebhookListen, WebhookSecret  string
	InsecureRegistries            []string
	AllowPrivileged               bool
	AllowHostPaths                []string
	AllowUnconfined               bool
	// SeccompProfileRoot holds the node's Localhost seccomp profiles (default <data dir>/seccomp).
	SeccompProfileRoot string
	// EvictionInterval is how often pods' local storage is measured against their
	// ephemeral-storage limits (default 10 s).
	EvictionInterval time.Duration
	CrashLoopBase    time.Duration
	CgroupParent     string
	// Net is the node's network plane.
	Net NetConfig
	// Addresses are the node's addresses other nodes reach it on (host-gw routes to its pods).
	Addresses                   []string
	ReservedCPU, ReservedMemory int64
	Logger                      *slog.Logger
}

// Run runs the node until ctx ends. Pods keep running after it returns.
//
// The node starts in phases, each handing the next what it made: the store (membership), the
// runtime, git and the master, the network plane, the agent, the API. When ctx ends, a
// background part fails or a phase cannot start, Run stops what was started in reverse: the
// servers, then every goroutine, then what the phases opened.
func Run(ctx context.Context, cfg Config) error {
	cfg, log, err := prepare(cfg)
	if err != nil {
		return err
	}
	d := newDaemon(ctx, log)
	defer d.stop()

	m, err := d.membership(cfg)
	if err != nil {
		return err
	}
	nr, err := d.runtime(cfg, m)
	if err != nil {
		return err
	}
	syncer, reg, err := d.gitAndMaster(cfg, m)
	if err != nil {
		return err
	}
	if nr.network != nil {
		d.goFn("network plane", func() error { return nr.network.run(d.ctx) })
	}
	if err := d.agent(cfg, m, nr); err != nil {
		return err
	}
	if err := d.api(cfg, m, nr, syncer, reg); err != nil {
		return err
	}
	log.Info("node started", "repo", cfg.Repo, "socket", cfg.Socket, "store", strings.Join(m.Endpoints(), ","), "data", cfg.DataDir)
	<-d.ctx.Done()
	log.Info("stopping; pods keep running")
	if d.removed.Load() {
		return membership.ErrRemoved
	}
	return nil
}

// checkSeccomp is libct.CheckSeccomp; tests replace it.
var checkSeccomp = libct.CheckSeccomp

// prepare checks that the node can run pods safely, fills in the defaults and makes the data
// directory. It returns the completed configuration and the node's logger.
func prepare(cfg Config) (Config, *slog.Logger, error) {
	// Every container gets Docker's default seccomp profile: a binary that cannot apply it
	// must not run pods.
	if err := checkSeccomp(); err != nil {
		return cfg, nil, fmt.Errorf("the node cannot run pods safely: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return cfg, nil, fmt.Errorf("node name: %w; pass --node-name", err)
		}
		cfg.Name = strings.ToLower(h) // node names are DNS names, as the kubelet makes them
	}
	if cfg.Repo == "" {
		return cfg, nil, errors.New("no repository: pass --repo URL (file:///path, https://..., ssh://...)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return cfg, nil, fmt.Errorf("data dir: %w", err)
	}
	if cfg.ClusterPort == 0 {
		cfg.ClusterPort = join.DefaultPort
	}
	return cfg, log.With("node", cfg.Name), nil
}

// daemon is a node being run: the context of its parts, the goroutines and servers they
// started and what they opened, so that stop ends them all in reverse order.
type daemon struct {
	ctx     context.Context
	cancel  context.CancelFunc
	log     *slog.Logger
	wg      sync.WaitGroup
	servers []*http.Server
	closers []closer // in the order opened
	// keys keep the cluster's Secrets encrypted in the store (nil on an external store).
	keys *cluster.Keys
	// removed is set when the node learns that it was removed from the cluster.
	removed atomic.Bool
}

// closer is something a phase opened, closed once every goroutine has ended.
type closer struct {
	name  string
	close func() error
}

func newDaemon(ctx context.Context, log *slog.Logger) *daemon {
	ctx, cancel := context.WithCancel(ctx)
	return &daemon{ctx: ctx, cancel: cancel, log: log}
}

// goFn runs f in a goroutine that stop waits for. An error of f, unless the node is stopping
// already, is logged and stops the node.
func (d *daemon) goFn(name string, f func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := f(); err != nil && d.ctx.Err() == nil {
			d.log.Error(name+" stopped", "err", err)
			d.cancel()
		}
	}()
}

// onStop has stop call f after every goroutine has ended, before what was opened earlier.
func (d *daemon) onStop(name string, f func() error) {
	d.closers = append(d.closers, closer{name: name, close: f})
}

// serve serves h on l (over TLS with tc unless it is nil) until the node stops.
func (d *daemon) serve(name string, l net.Listener, h http.Handler, tc *tls.Config) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tc}
	d.servers = append(d.servers, srv)
	d.goFn(name, func() error {
		var err error
		if tc != nil {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
}

// stop ends the node: it cancels its context, shuts its servers down (giving requests in
// flight 5 s), waits for every goroutine and then closes what the phases opened, last first.
func (d *daemon) stop() {
	d.cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	for _, srv := range d.servers {
		_ = srv.Shutdown(sctx)
	}
	d.wg.Wait()
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i].close(); err != nil {
			d.log.Warn("stop "+d.closers[i].name, "err", err)
		}
	}
}

// membership makes the node part of its cluster's store (see package membership) and keeps
// it so in the background.
func (d *daemon) membership(cfg Config) (*membership.Membership, error) {
	m, err := membership.Setup(d.ctx, membership.Config{Name: cfg.Name, DataDir: cfg.DataDir, Addresses: cfg.Addresses,
		Store: cfg.Store, StoreCA: cfg.StoreCA, StoreCert: cfg.StoreCert, StoreKey: cfg.StoreKey,
		Join: cfg.Join, JoinToken: cfg.JoinToken, Role: cfg.Role, Repo: cfg.Repo, Console: cfg.Console, Logger: d.log,
		AgentPermissions: cluster.AgentPermissions, Nodes: cluster.NodeNames})
	if err != nil {
		return nil, err
	}
	d.onStop("the store", m.Close)
	// A node removed from the cluster stops acting in it (membership.ErrRemoved).
	d.goFn("membership", func() error {
		err := m.Run(d.ctx)
		if errors.Is(err, membership.ErrRemoved) {
			d.removed.Store(true) // logged, and returned by Run
			d.cancel()
			return nil
		}
		return err
	})
	if cfg.Store == "" {
		if d.keys, err = cluster.LoadKeys(filepath.Join(cfg.DataDir, "pki")); err != nil {
			return nil, fmt.Errorf("the keys that encrypt the cluster's Secrets: %w", err)
		}
	}
	return m, nil
}

// nodeRuntime is what the runtime phase hands on: the node's pods and what it offers them.
type nodeRuntime struct {
	driver  *linux.Driver
	rt      *lifecycle.Manager
	network *network // nil without a pod network
	// capacity is the node's, allocatable what of it pods may request.
	capacity, allocatable cluster.Resources
}

// runtime opens the image store and the container runtime, with the pod network when the node
// has one (its network plane runs later, once the master can give it a pod CIDR).
func (d *daemon) runtime(cfg Config, m *membership.Membership) (*nodeRuntime, error) {
	log := d.log
	images, err := image.NewStore(d.ctx, image.Config{Root: filepath.Join(cfg.DataDir, "images"),
		ImportDir: filepath.Join(cfg.DataDir, "images", "import"), InsecureRegistries: cfg.InsecureRegistries, Logger: log})
	if err != nil {
		return nil, err
	}
	d.onStop("the image store", images.Close)
	cgroup := cfg.CgroupParent
	if cgroup == "" {
		cgroup = "/shoal/" + cfg.Name
	}
	nr := &nodeRuntime{}
	var podNetwork linux.Network = linux.LoopbackNetwork{}
	if cfg.Net.Mode == "bridge" {
		cfg.Net.ReservedPorts = daemonPorts(cfg, m.Member())
		nr.network = newNetwork(cfg.Net, cfg.Name, cfg.DataDir, m.Store(), log)
		podNetwork = nr.network
	}
	nr.driver, err = linux.New(linux.Config{Root: filepath.Join(cfg.DataDir, "runtime"), Images: images, CgroupParent: cgroup, Network: podNetwork,
		ResolvConf: cfg.Net.ResolvConf, ClusterDomain: cfg.Net.Domain, Logger: log})
	if err != nil {
		return nil, err
	}
	capCPU, capMem := int64(goruntime.NumCPU())*1000, memTotal()
	capStorage, err := storageCapacity(cfg.DataDir)
	if err != nil {
		log.Warn("ephemeral storage unknown: pods' ephemeral-storage requests are not limited on this node", "err", err)
	}
	nr.capacity = cluster.Resources{MilliCPU: capCPU, Memory: capMem, EphemeralStorage: capStorage}
	nr.allocatable = cluster.Resources{MilliCPU: max(capCPU-cfg.ReservedCPU, 0), Memory: max(capMem-cfg.ReservedMemory, 0),
		EphemeralStorage: capStorage}
	seccompRoot := cfg.SeccompProfileRoot
	if seccompRoot == "" {
		seccompRoot = filepath.Join(cfg.DataDir, "seccomp")
	}
	alloc := nr.allocatable
	nr.rt, err = lifecycle.New(lifecycle.Config{Driver: nr.driver, Logger: log, Backoff: lifecycle.Backoff{Base: cfg.CrashLoopBase},
		Policy: lifecycle.Policy{AllowPrivileged: cfg.AllowPrivileged, AllowHostPaths: cfg.AllowHostPaths, AllowUnconfined: cfg.AllowUnconfined,
			SeccompProfileRoot: seccompRoot},
		Node: lifecycle.NodeInfo{Name: cfg.Name, HostIPs: hostIPs(cfg.Addresses),
			Allocatable: lifecycle.Resources{MilliCPU: alloc.MilliCPU, Memory: alloc.Memory, EphemeralStorage: alloc.EphemeralStorage}},
		EvictionInterval: cfg.EvictionInterval, StateDir: lifecycleDir(cfg.DataDir)})
	if err != nil {
		return nil, err
	}
	d.onStop("the runtime", nr.rt.Close)
	return nr, nil
}

// gitAndMaster starts following the repository and the node's campaign for master: while it
// leads, the node runs the master on the commits git brings. An agent never campaigns. It
// returns the syncer (for the webhooks) and the metrics registry (for the API).
func (d *daemon) gitAndMaster(cfg Config, m *membership.Membership) (*gitsync.Syncer, *prometheus.Registry, error) {
	ctx, log, st := d.ctx, d.log, m.Store()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := cluster.NewMetrics(reg)
	gcfg := gitsync.Config{URL: cfg.Repo, Ref: cfg.Ref, Path: cfg.Path, CacheDir: filepath.Join(cfg.DataDir, "git"),
		Poll: cfg.Poll, SSHKeyFile: cfg.SSHKeyFile, KnownHostsFile: cfg.KnownHosts, AllowInsecureHTTP: cfg.AllowHTTP, Logger: log,
		OnFetch: func(err error, took time.Duration) {
			metrics.GitFetchDuration.Observe(took.Seconds())
			if err != nil {
				metrics.GitFetchErrors.Inc()
			}
		}}
	if cfg.TokenFile != "" {
		tok, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("token file: %w", err)
		}
		gcfg.Token = strings.TrimSpace(string(tok))
	}
	syncer, err := gitsync.New(gcfg)
	if err != nil {
		return nil, nil, err
	}
	keyring := ""
	if cfg.VerifyKeyring != "" {
		k, err := os.ReadFile(cfg.VerifyKeyring)
		if err != nil {
			return nil, nil, fmt.Errorf("--verify-signatures: %w", err)
		}
		keyring = string(k)
	}
	master := cluster.NewMaster(cluster.MasterConfig{Node: cfg.Name, Store: st, Git: syncer, Keyring: keyring,
		NodeLostGrace: cfg.NodeLostGrace, ServiceCIDR: cfg.Net.ServiceCIDR, ClusterCIDR: cfg.Net.ClusterCIDR, Metrics: metrics, Logger: log,
		Load:             manifests.LoadOptions{Decryptor: cfg.Decryptor},
		AvoidStoreLeader: m.Member(), Keys: d.keys})
	d.goFn("git sync", func() error { return syncer.Run(ctx) })
	d.goFn("git heads", func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case h := <-syncer.Heads():
				master.SetHead(h)
			}
		}
	})
	if m.Role() == join.RoleAgent {
		log.Info("this node is an agent: it runs pods and never campaigns for master")
		return syncer, reg, nil
	}
	if !d.keys.CanLead() {
		log.Info("this node does not hold the cluster CA key, which opens the keyring of the cluster's Secrets: it never campaigns for master")
		return syncer, reg, nil
	}
	d.goFn("election", func() error {
		for ctx.Err() == nil {
			lead, err := st.Campaign(ctx, "/shoal/master", cfg.Name, cfg.LeaseTTL)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				log.Warn("campaign", "err", err)
				time.Sleep(time.Second)
				continue
			}
			if h, err := syncer.Last(); err == nil {
				master.SetHead(h)
			}
			err = master.Run(ctx, lead)
			log.Info("master stopped", "err", err)
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = lead.Resign(rctx)
			rcancel()
		}
		return nil
	})
	return syncer, reg, nil
}

// agent registers the node and starts its agent, which runs the pods the master places on it,
// and the image garbage collection.
func (d *daemon) agent(cfg Config, m *membership.Membership, nr *nodeRuntime) error {
	record, err := nodeRecord(cfg, m, nr)
	if err != nil {
		return err
	}
	var hostPorts cluster.HostPortForwarder // nil without a pod network: pods with host ports are refused
	if nr.network != nil {
		hostPorts = nr.network
	}
	agent := cluster.NewAgent(cluster.AgentConfig{Node: cfg.Name, Store: m.Store(), Runtime: nr.rt, Record: record, TTL: cfg.LeaseTTL,
		Logger: d.log, HostPorts: hostPorts, Volumes: &volumes.Dir{Root: filepath.Join(cfg.DataDir, "volumes")}, Keys: d.keys})
	d.goFn("agent", func() error { return agent.Run(d.ctx) })
	d.goFn("image gc", func() error {
		t := time.NewTicker(5 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-d.ctx.Done():
				return nil
			case <-t.C:
				if res, err := nr.driver.CollectImages(d.ctx); err != nil {
					d.log.Warn("image gc", "err", err)
				} else if len(res.ImagesRemoved) > 0 {
					d.log.Info("image gc", "removed", len(res.ImagesRemoved), "freed", res.BytesFreed)
				}
			}
		}
	})
	return nil
}

// nodeRecord is what the node registers about itself: labels, taints, resources, where other
// nodes reach it and what it is to the store.
func nodeRecord(cfg Config, m *membership.Membership, nr *nodeRuntime) (cluster.NodeRecord, error) {
	labels := map[string]string{"kubernetes.io/hostname": cfg.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": goruntime.GOARCH}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	taints, err := nodeTaints(cfg.DataDir, cfg.Taints, time.Now())
	if err != nil {
		return cluster.NodeRecord{}, fmt.Errorf("node taints: %w", err)
	}
	record := cluster.NodeRecord{Labels: labels, Taints: taints, Version: buildinfo.Get().Version, Addresses: cfg.Addresses,
		Capacity: nr.capacity, Allocatable: nr.allocatable}
	if addr := m.Address(); addr != "" {
		record.Endpoint = "https://" + net.JoinHostPort(addr, strconv.Itoa(cfg.ClusterPort))
	}
	switch {
	case cfg.Store != "":
		record.Store = "external"
	case m.Member():
		record.Store = "member"
	default:
		record.Store = "client"
	}
	if nr.network != nil && cfg.Net.NodeInterface != "" {
		record.NodePorts = true
		for _, p := range daemonPorts(cfg, m.Member()) {
			record.ReservedPorts = append(record.ReservedPorts, int32(p))
		}
	}
	return record, nil
}

// api serves the node's API on its socket and, when configured, on TCP; the cluster endpoint
// (joins, and this node's pods for other nodes); and the git webhooks.
func (d *daemon) api(cfg Config, m *membership.Membership, nr *nodeRuntime, syncer *gitsync.Syncer, reg *prometheus.Registry) error {
	log := d.log
	// An agent's store user reads its own part of the cluster only, and its API answers that.
	agent := cfg.Store == "" && m.Role() == join.RoleAgent
	backend := &cluster.Backend{Node: cfg.Name, Store: m.Store(), Runtime: nr.rt, Keys: d.keys, Agent: agent}
	scope := api.ScopeCluster
	if agent {
		scope = api.ScopeAgent
	}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	var dump func() (any, error)
	if nr.network != nil {
		dump = func() (any, error) { return nr.network.Dump() }
	}
	apiBackend := &forwardingBackend{Backend: backend}
	addr := m.Address()
	if addr != "" && !agent {
		var err error
		if apiBackend.tls, err = m.ClientTLS(); err != nil {
			return err
		}
	}
	sock, err := api.ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	d.onStop("the api socket", func() error {
		if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
	d.serve("api socket", sock, api.NewHandler(api.Config{Backend: apiBackend, Metrics: metricsHandler, Netplane: dump, Tokens: m, Scope: scope, Logger: log}), nil)
	if cfg.APIListen != "" {
		if cfg.APICert == "" || cfg.APIKey == "" || cfg.APITokenFile == "" {
			return errors.New("--api-listen needs --api-tls-cert, --api-tls-key and --api-token-file: the TCP API has no anonymous access")
		}
		tok, err := os.ReadFile(cfg.APITokenFile)
		if err != nil || len(strings.TrimSpace(string(tok))) < 16 {
			return fmt.Errorf("--api-token-file: want a token of at least 16 characters (%v)", err)
		}
		cert, err := tls.LoadX509KeyPair(cfg.APICert, cfg.APIKey)
		if err != nil {
			return fmt.Errorf("API certificate: %w", err)
		}
		l, err := net.Listen("tcp", cfg.APIListen)
		if err != nil {
			return fmt.Errorf("--api-listen: %w", err)
		}
		d.serve("api tcp", l, api.NewHandler(api.Config{Backend: apiBackend, Token: strings.TrimSpace(string(tok)), Metrics: metricsHandler, Netplane: dump, Tokens: m, Scope: scope, Logger: log}),
			&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	if addr != "" {
		tc, err := m.ServerTLS()
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(cfg.ClusterPort)))
		if err != nil {
			return fmt.Errorf("the cluster endpoint: %w; another process uses the port: choose another with --cluster-port", err)
		}
		// Other nodes get no Secret from this one: the Secrets of their pods are sealed to them.
		local := api.NewHandler(api.Config{Backend: backend.Redacted(), Logger: log})
		d.serve("cluster endpoint", l, clusterHandler(m, backend, local), tc)
	}
	if cfg.WebhookListen != "" {
		secret, err := os.ReadFile(cfg.WebhookSecret)
		if err != nil {
			return fmt.Errorf("--webhook-secret-file: %w", err)
		}
		l, err := net.Listen("tcp", cfg.WebhookListen)
		if err != nil {
			return fmt.Errorf("--webhook-listen: %w", err)
		}
		d.serve("webhooks", l, gitsync.WebhookHandler(syncer, gitsync.WebhookConfig{Secret: strings.TrimSpace(string(secret)), Logger: log}), nil)
	}
	return nil
}

// lifecycleDir keeps the runtime's own records (the pods it evicted).
func lifecycleDir(dataDir string) string { return filepath.Join(dataDir, "lifecycle") }

// daemonPorts are the TCP ports the daemon listens on at the node's address, which no
// LoadBalancer Service may take there: the cluster endpoint, the embedded store's client and
// peer ports when the node runs a member, and the API's and webhooks' listeners when they
// listen on that address or on every address.
func daemonPorts(cfg Config, storeMember bool) []uint16 {
	port := cfg.ClusterPort
	if port == 0 {
		port = join.DefaultPort
	}
	ports := []uint16{uint16(port)}
	if storeMember {
		ports = append(ports, join.DefaultStorePort, join.DefaultPeerPort)
	}
	for _, l := range []string{cfg.APIListen, cfg.WebhookListen} {
		host, p, err := net.SplitHostPort(l)
		n, perr := strconv.ParseUint(p, 10, 16)
		if err != nil || perr != nil || n == 0 {
			continue
		}
		ip, ierr := netip.ParseAddr(host)
		if host == "" || (ierr == nil && (ip.IsUnspecified() || slices.Contains(hostIPs(cfg.Addresses), ip.String()))) {
			ports = append(ports, uint16(n))
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// hostIPs are the node's addresses for its pods' status.hostIP: the --node-address values, or
// else the first global unicast address of an interface that is up.
func hostIPs(addresses []string) []string {
	var out []string
	for _, a := range addresses {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, ip.String())
		}
	}
	if len(out) > 0 {
		return out
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr().IsGlobalUnicast() {
				return []string{pfx.Addr().String()}
			}
		}
	}
	return nil
}

// memTotal returns the machine's memory in bytes.
func memTotal() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
