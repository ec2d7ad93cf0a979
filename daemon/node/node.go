// Package node assembles a Shoal node daemon: the shared store (embedded etcd or an external
// cluster), git synchronisation, the election and the master, the node agent over the runtime,
// and the API.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/buildinfo"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/gitsync"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime/image"
	"github.com/shoal-dev/shoal/runtime/libct"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/linux"
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
	// Store: "" for the embedded etcd, else etcd://host:port,... or etcds://...
	Store                        string
	StoreCA, StoreCert, StoreKey string
	// Join is the address of a node of the cluster to join (HOST or HOST:PORT), "" to found a
	// cluster or to start again as what the node was; JoinToken is the cluster's join token.
	Join, JoinToken string
	// NoStoreMember keeps a joining node from running a store member even while the store has
	// fewer than three.
	NoStoreMember bool
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
func Run(ctx context.Context, cfg Config) error {
	// Every container gets Docker's default seccomp profile: a binary that cannot apply it
	// must not run pods.
	if err := checkSeccomp(); err != nil {
		return fmt.Errorf("the node cannot run pods safely: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w; pass --node-name", err)
		}
		cfg.Name = strings.ToLower(h) // node names are DNS names, as the kubelet makes them
	}
	if cfg.Repo == "" {
		return errors.New("no repository: pass --repo URL (file:///path, https://..., ssh://...)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	log = log.With("node", cfg.Name)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	goFn := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				log.Error(name+" stopped", "err", err)
				cancel()
			}
		}()
	}

	// The store.
	setup, err := setupStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer setup.close()
	endpoints := setup.cfg.Endpoints
	storeCfg := setup.cfg
	st, err := store.Connect(ctx, storeCfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if setup.emb == nil && setup.ca != nil {
		goFn("store endpoints", func() error { return followMembers(ctx, cfg.DataDir, st, log) })
	}

	// The runtime.
	images, err := image.NewStore(ctx, image.Config{Root: filepath.Join(cfg.DataDir, "images"),
		ImportDir: filepath.Join(cfg.DataDir, "images", "import"), InsecureRegistries: cfg.InsecureRegistries, Logger: log})
	if err != nil {
		return err
	}
	defer images.Close()
	cgroup := cfg.CgroupParent
	if cgroup == "" {
		cgroup = "/shoal/" + cfg.Name
	}
	var network *network
	var podNetwork linux.Network = linux.LoopbackNetwork{}
	if cfg.Net.Mode == "bridge" {
		cfg.Net.ReservedPorts = daemonPorts(cfg, setup.emb != nil)
		network = newNetwork(cfg.Net, cfg.Name, cfg.DataDir, st, log)
		podNetwork = network
	}
	driver, err := linux.New(linux.Config{Root: filepath.Join(cfg.DataDir, "runtime"), Images: images, CgroupParent: cgroup, Network: podNetwork,
		ResolvConf: cfg.Net.ResolvConf, Logger: log})
	if err != nil {
		return err
	}
	capCPU, capMem := int64(goruntime.NumCPU())*1000, memTotal()
	capStorage, err := storageCapacity(cfg.DataDir)
	if err != nil {
		log.Warn("ephemeral storage unknown: pods' ephemeral-storage requests are not limited on this node", "err", err)
	}
	allocatable := cluster.Resources{MilliCPU: max(capCPU-cfg.ReservedCPU, 0), Memory: max(capMem-cfg.ReservedMemory, 0),
		EphemeralStorage: capStorage}
	seccompRoot := cfg.SeccompProfileRoot
	if seccompRoot == "" {
		seccompRoot = filepath.Join(cfg.DataDir, "seccomp")
	}
	rt, err := lifecycle.New(lifecycle.Config{Driver: driver, Logger: log, Backoff: lifecycle.Backoff{Base: cfg.CrashLoopBase},
		Policy: lifecycle.Policy{AllowPrivileged: cfg.AllowPrivileged, AllowHostPaths: cfg.AllowHostPaths, AllowUnconfined: cfg.AllowUnconfined,
			SeccompProfileRoot: seccompRoot},
		Node: lifecycle.NodeInfo{Name: cfg.Name, HostIPs: hostIPs(cfg.Addresses),
			Allocatable: lifecycle.Resources{MilliCPU: allocatable.MilliCPU, Memory: allocatable.Memory, EphemeralStorage: allocatable.EphemeralStorage}},
		EvictionInterval: cfg.EvictionInterval, StateDir: lifecycleDir(cfg.DataDir)})
	if err != nil {
		return err
	}
	defer rt.Close()

	// Git.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := cluster.NewMetrics(reg)
	gcfg := gitsync.Config{URL: cfg.Repo, Ref: cfg.Ref, Path: cfg.Path, CacheDir: filepath.Join(cfg.DataDir, "git"),
		Poll: cfg.Poll, SSHKeyFile: cfg.SSHKeyFile, KnownHostsFile: cfg.KnownHosts, AllowInsecureHTTP: cfg.AllowHTTP, Logger: log,
		OnFetch: func(err error, d time.Duration) {
			metrics.GitFetchDuration.Observe(d.Seconds())
			if err != nil {
				metrics.GitFetchErrors.Inc()
			}
		}}
	if cfg.TokenFile != "" {
		tok, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		gcfg.Token = strings.TrimSpace(string(tok))
	}
	syncer, err := gitsync.New(gcfg)
	if err != nil {
		return err
	}
	keyring := ""
	if cfg.VerifyKeyring != "" {
		k, err := os.ReadFile(cfg.VerifyKeyring)
		if err != nil {
			return fmt.Errorf("--verify-signatures: %w", err)
		}
		keyring = string(k)
	}
	master := cluster.NewMaster(cluster.MasterConfig{Node: cfg.Name, Store: st, Git: gitAdapter{syncer}, Keyring: keyring,
		NodeLostGrace: cfg.NodeLostGrace, ServiceCIDR: cfg.Net.ServiceCIDR, ClusterCIDR: cfg.Net.ClusterCIDR, Metrics: metrics, Logger: log,
		AvoidStoreLeader: setup.emb != nil})
	goFn("git sync", func() error { return syncer.Run(ctx) })
	goFn("git heads", func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case h := <-syncer.Heads():
				master.SetHead(cluster.Head{SHA: h.SHA, SeenAt: h.SeenAt})
			}
		}
	})
	goFn("election", func() error {
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
				master.SetHead(cluster.Head{SHA: h.SHA, SeenAt: h.SeenAt})
			}
			err = master.Run(ctx, lead)
			log.Info("master stopped", "err", err)
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = lead.Resign(rctx)
			rcancel()
		}
		return nil
	})

	// The agent.
	if network != nil {
		goFn("network plane", func() error { return network.run(ctx) })
	}
	labels := map[string]string{"kubernetes.io/hostname": cfg.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": goruntime.GOARCH}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	taints, err := nodeTaints(cfg.DataDir, cfg.Taints, time.Now())
	if err != nil {
		return fmt.Errorf("node taints: %w", err)
	}
	record := cluster.NodeRecord{Labels: labels, Taints: taints, Version: buildinfo.Get().Version, Addresses: cfg.Addresses,
		Capacity:    cluster.Resources{MilliCPU: capCPU, Memory: capMem, EphemeralStorage: capStorage},
		Allocatable: allocatable}
	if cfg.ClusterPort == 0 {
		cfg.ClusterPort = join.DefaultPort
	}
	if setup.ca != nil && setup.addr != "" {
		record.Endpoint = "https://" + net.JoinHostPort(setup.addr, strconv.Itoa(cfg.ClusterPort))
	}
	switch {
	case cfg.Store != "":
		record.Store = "external"
	case setup.emb != nil:
		record.Store = "member"
	default:
		record.Store = "client"
	}
	if network != nil && cfg.Net.NodeInterface != "" {
		record.NodePorts = true
		for _, p := range cfg.Net.ReservedPorts {
			record.ReservedPorts = append(record.ReservedPorts, int32(p))
		}
	}
	var hostPorts cluster.HostPortForwarder // nil without a pod network: pods with host ports are refused
	if network != nil {
		hostPorts = network
	}
	agent := cluster.NewAgent(cluster.AgentConfig{Node: cfg.Name, Store: st, Runtime: rt, Record: record, TTL: cfg.LeaseTTL, Logger: log, HostPorts: hostPorts})
	goFn("agent", func() error { return agent.Run(ctx) })
	goFn("image gc", func() error {
		t := time.NewTicker(5 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if res, err := driver.CollectImages(ctx); err != nil {
					log.Warn("image gc", "err", err)
				} else if len(res.ImagesRemoved) > 0 {
					log.Info("image gc", "removed", len(res.ImagesRemoved), "freed", res.BytesFreed)
				}
			}
		}
	})

	// The API.
	backend := &cluster.Backend{Node: cfg.Name, Store: st, Runtime: rt}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	sock, err := api.ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	servers := []*http.Server{}
	serve := func(name string, l net.Listener, h http.Handler, tc *tls.Config) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tc}
		servers = append(servers, srv)
		goFn(name, func() error {
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
	var dump func() (any, error)
	if network != nil {
		dump = func() (any, error) { return network.Dump() }
	}
	apiBackend := &forwardingBackend{Backend: backend}
	if setup.ca != nil && setup.addr != "" {
		if apiBackend.tls, err = pki.ClientTLS(setup.ca, setup.certPEM, setup.keyPEM); err != nil {
			return err
		}
	}
	serve("api socket", sock, api.NewHandler(api.Config{Backend: apiBackend, Metrics: metricsHandler, Netplane: dump, Logger: log}), nil)
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
		serve("api tcp", l, api.NewHandler(api.Config{Backend: apiBackend, Token: strings.TrimSpace(string(tok)), Metrics: metricsHandler, Netplane: dump, Logger: log}),
			&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	if setup.ca != nil && setup.addr != "" {
		tc, err := pki.ServerTLS(setup.ca, setup.certPEM, setup.keyPEM)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", net.JoinHostPort(setup.addr, strconv.Itoa(cfg.ClusterPort)))
		if err != nil {
			return fmt.Errorf("the cluster endpoint: %w; another process uses the port: choose another with --cluster-port", err)
		}
		local := api.NewHandler(api.Config{Backend: backend, Logger: log})
		serve("cluster endpoint", l, setup.clusterHandler(st, local, log), tc)
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
		serve("webhooks", l, gitsync.WebhookHandler(syncer, gitsync.WebhookConfig{Secret: strings.TrimSpace(string(secret)), Logger: log}), nil)
	}
	log.Info("node started", "repo", cfg.Repo, "socket", cfg.Socket, "store", strings.Join(endpoints, ","), "data", cfg.DataDir)
	<-ctx.Done()
	log.Info("stopping; pods keep running")
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
	os.Remove(cfg.Socket)
	return nil
}

// checkSeccomp is libct.CheckSeccomp; tests replace it.
var checkSeccomp = libct.CheckSeccomp

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
	if err := os.WriteFile(p, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return fmt.Errorf("data dir: %w", err)
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

// gitAdapter turns a gitsync.Syncer into the master's Git.
type gitAdapter struct{ s *gitsync.Syncer }

func (g gitAdapter) Tree(ctx context.Context, sha string) (fs.FS, string, error) {
	return g.s.RepoTree(ctx, sha)
}
func (g gitAdapter) IsAncestor(ctx context.Context, a, d string) (bool, error) {
	return g.s.IsAncestor(ctx, a, d)
}
func (g gitAdapter) Verify(ctx context.Context, from, to, keyring string) error {
	return g.s.Verify(ctx, from, to, keyring)
}
func (g gitAdapter) Commit(ctx context.Context, sha string) (cluster.CommitInfo, error) {
	c, err := g.s.Commit(ctx, sha)
	if err != nil {
		return cluster.CommitInfo{}, err
	}
	return cluster.CommitInfo{SHA: c.SHA, Author: c.Author, Message: c.Message, Time: c.Time}, nil
}
