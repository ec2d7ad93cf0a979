package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/internal/atomicfile"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/netplane"
	"github.com/shoal-dev/shoal/reconcile"
)

// NetConfig is the network plane of a node.
type NetConfig struct {
	// Mode is "bridge" (pods get addresses on a bridge, Services work) or "none" (pods have only
	// loopback; for nodes that must not change the host's network).
	Mode        string
	ClusterCIDR netip.Prefix
	ServiceCIDR netip.Prefix
	Domain      string
	// LBCgroup is the cgroup v2 directory the socket load balancer attaches to: "" for the root
	// of the cgroup v2 hierarchy (every process of the machine, as Cilium does), or the node's
	// own subtree for several nodes on one machine.
	LBCgroup string
	// Upstreams for names outside the cluster (default: the nameservers of ResolvConf).
	Upstreams []string
	// ResolvConf is the node's resolver configuration: the cluster DNS server forwards to its
	// nameservers (unless Upstreams are set) and pods with dnsPolicy Default get it, as with the
	// kubelet's --resolv-conf. Default /etc/resolv.conf.
	ResolvConf string
	// NodeInterface, when set, carries NodePort Services: tc programs on it send
	// <node address>:<nodePort> to the Services' backends. NodeIP is the node's address on it.
	NodeInterface string
	NodeIP        netip.Addr
	// ReservedPorts are the TCP ports the daemon itself listens on at the node's address (the
	// cluster endpoint, the store, the API and webhooks): the ports of LoadBalancer Services
	// among them are not opened on this node.
	ReservedPorts []uint16
}

// netState is kept in the data dir so that `shoal node reset` can undo the network plane.
type netState struct {
	Node          string `json:"node"`
	PodCIDR       string `json:"podCIDR"`
	PinDir        string `json:"pinDir"`
	LBCgroup      string `json:"lbCgroup"`
	NodeInterface string `json:"nodeInterface,omitempty"`
	NodeIP        string `json:"nodeIP,omitempty"`
}

// network is the node's network plane: once the master has given the node a pod CIDR, a
// netplane.Kernel kept equal to what the store says (the Services, the other nodes' pod CIDRs
// and addresses) and to the host ports the agent declares.
type network struct {
	cfg     NetConfig
	node    string
	dataDir string
	st      *store.Client
	log     *slog.Logger

	ready chan struct{} // closed once plane is set
	mu    sync.Mutex
	plane *netplane.Kernel
	ap    *applier
}

func newNetwork(cfg NetConfig, node, dataDir string, st *store.Client, log *slog.Logger) *network {
	log = log.With("component", "netplane")
	return &network{cfg: cfg, node: node, dataDir: dataDir, st: st, log: log, ready: make(chan struct{}),
		ap: newApplier(node, cfg.ReservedPorts, log)}
}

// Setup gives a pod its network once the node's pod network exists (linux.Network).
func (n *network) Setup(ctx context.Context, uid, namespace, name, netnsPath string) (string, error) {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return n.plane.Setup(ctx, uid, namespace, name, netnsPath)
}

// Teardown releases a pod's network.
func (n *network) Teardown(ctx context.Context, uid, netnsPath string) error {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	return n.plane.Teardown(ctx, uid, netnsPath)
}

// DNS returns the pods' resolv.conf.
func (n *network) DNS(namespace string) string {
	select {
	case <-n.ready:
		return n.plane.ResolvConf(namespace)
	default:
		return ""
	}
}

// SetHostPorts forwards the node's host ports to its pods (cluster.HostPortForwarder). Before
// the network plane has its first Config the set is kept and applied with it; pods cannot
// have been set up before that.
func (n *network) SetHostPorts(ctx context.Context, ports []cluster.HostPort) (map[string]string, error) {
	refused := map[string]string{}
	var want []netplane.HostPort
	for _, p := range ports {
		hp, err := toHostPort(p)
		if err != nil {
			refused[p.UID] = err.Error()
			continue
		}
		want = append(want, hp)
	}
	more, err := n.ap.setHostPorts(ctx, want)
	maps.Copy(refused, more)
	return refused, err
}

// toHostPort converts a pod's host port for the network plane.
func toHostPort(p cluster.HostPort) (netplane.HostPort, error) {
	hp := netplane.HostPort{UID: p.UID, Pod: p.Pod, Proto: protoOf(p.Protocol)}
	if p.HostIP != "" {
		ip, err := netip.ParseAddr(p.HostIP)
		if err != nil {
			return hp, fmt.Errorf("hostIP %q is not an IP address", p.HostIP)
		}
		hp.HostIP = ip
	}
	if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
		return hp, fmt.Errorf("hostPort %d -> containerPort %d: ports are 1..65535", p.HostPort, p.ContainerPort)
	}
	hp.HostPort, hp.PodPort = uint16(p.HostPort), uint16(p.ContainerPort)
	return hp, nil
}

// protoOf converts a Kubernetes protocol name; "" is TCP. Others (validation refuses them)
// are left for the network plane to refuse.
func protoOf(p manifests.Protocol) netplane.Proto {
	switch p {
	case "", manifests.ProtocolTCP:
		return netplane.TCP
	case manifests.ProtocolUDP:
		return netplane.UDP
	}
	return 0
}

// run waits for the node's pod CIDR, opens the network plane and keeps it in step with the
// store and the agent until ctx ends. What the plane programmed stays for the pods when it ends.
func (n *network) run(ctx context.Context) error {
	var cidr netip.Prefix
	for {
		v, _, found, err := store.Get[netip.Prefix](ctx, n.st, cluster.PodCIDRKey(n.node))
		if err == nil && found && v.IsValid() {
			cidr = v
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	opts, err := netplane.Options{Node: n.node, PodCIDR: cidr, ServiceCIDR: n.cfg.ServiceCIDR, ClusterCIDR: n.cfg.ClusterCIDR,
		Domain: n.cfg.Domain, StateDir: filepath.Join(n.dataDir, "netplane", "ipam"), LBCgroup: n.cfg.LBCgroup,
		PinDir: filepath.Join("/sys/fs/bpf/shoal", n.node), NodeInterface: n.cfg.NodeInterface, NodeIP: n.cfg.NodeIP,
		Upstreams: n.cfg.Upstreams, ResolvConf: n.cfg.ResolvConf, Logger: n.log}.WithDefaults()
	if err != nil {
		return err
	}
	// Written first, so that `shoal node reset` also undoes a plane that was only half made.
	st := netState{Node: n.node, PodCIDR: cidr.String(), PinDir: opts.PinDir, LBCgroup: opts.LBCgroup, NodeInterface: opts.NodeInterface}
	if opts.NodeIP.IsValid() {
		st.NodeIP = opts.NodeIP.String()
	}
	if err := writeNetState(n.dataDir, st); err != nil {
		return err
	}
	plane, err := netplane.Open(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err := plane.Close(); err != nil {
			n.log.Warn("close the network plane", "err", err)
		}
	}()
	if err := n.ap.start(ctx, plane); err != nil {
		return err
	}
	n.mu.Lock()
	n.plane = plane
	n.mu.Unlock()
	close(n.ready)
	// cilium/ebpf keeps the kernel's BTF it parsed to check the features and load the programs,
	// some 35 MiB of heap, for the node's life: drop it and give the memory back (a later load
	// parses it again).
	btf.FlushKernelSpec()
	debug.FreeOSMemory()
	n.log.Info("network plane ready", "podCIDR", cidr, "gateway", cidr.Masked().Addr().Next(), "lbCgroup", opts.LBCgroup)

	var wg sync.WaitGroup
	defer wg.Wait()
	goRun := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	goRun(func() { n.ap.run(ctx) })
	goRun(func() {
		follow(ctx, n.st, cluster.ServicesPrefix, n.log, func(m map[string]reconcile.ServiceState) { n.ap.setServices(m) })
	})
	goRun(func() {
		follow(ctx, n.st, cluster.PodCIDRsPrefix, n.log, func(m map[string]netip.Prefix) {
			cidrs := map[string]netip.Prefix{}
			for k, v := range m {
				cidrs[strings.TrimPrefix(k, cluster.PodCIDRsPrefix)] = v
			}
			n.ap.setPodCIDRs(cidrs)
		})
	})
	goRun(func() {
		follow(ctx, n.st, cluster.NodesPrefix, n.log, func(m map[string]cluster.NodeRecord) {
			addrs := map[string]netip.Addr{}
			for _, rec := range m {
				if a, ok := firstIPv4(rec.Addresses); ok {
					addrs[rec.Name] = a
				}
			}
			n.ap.setNodeAddrs(addrs)
		})
	})
	<-ctx.Done()
	return nil
}

// firstIPv4 returns the first IPv4 address of addrs.
func firstIPv4(addrs []string) (netip.Addr, bool) {
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil && ip.Unmap().Is4() {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// follow keeps a map of the keys under prefix (key -> value) and calls changed with it after it
// listed them and after every change: a list, then a watch from the list's revision, and again
// after a resync or an error, until ctx ends.
func follow[T any](ctx context.Context, st *store.Client, prefix string, log *slog.Logger, changed func(map[string]T)) {
	for ctx.Err() == nil {
		kvs, rev, err := store.List[T](ctx, st, prefix)
		if err != nil {
			if ctx.Err() == nil {
				log.Debug("list the store", "prefix", prefix, "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		m := make(map[string]T, len(kvs))
		for _, kv := range kvs {
			m[kv.Key] = kv.Value
		}
		changed(maps.Clone(m))
		watch(ctx, st, prefix, rev+1, m, changed)
	}
}

// watch applies the changes under prefix from revision rev on to m until a resync (or ctx ends).
func watch[T any](ctx context.Context, st *store.Client, prefix string, rev int64, m map[string]T, changed func(map[string]T)) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watch after a resync
	for ev := range store.Watch[T](wctx, st, prefix, rev) {
		switch {
		case ev.Type == store.EventResync:
			return
		case ev.Err != nil:
			continue
		case ev.Type == store.EventPut:
			m[ev.Key] = ev.Value
		case ev.Type == store.EventDelete:
			delete(m, ev.Key)
		}
		changed(maps.Clone(m))
	}
}

// Backoff of the retries of a failed Set.
const (
	minRetry = time.Second
	maxRetry = 30 * time.Second
)

// applier builds the node's netplane.Config from what it was told last and Sets it: once the
// store's Services, pod CIDRs and nodes have all been listed, after every change, coalesced
// (changes that come while a Set runs make one Set after it), and again after a backoff when a
// Set fails. Its methods are safe for concurrent use.
type applier struct {
	node     string
	reserved []uint16
	log      *slog.Logger
	minRetry time.Duration
	maxRetry time.Duration
	kick     chan struct{} // a change waits to be applied

	applyMu sync.Mutex // one Set at a time

	mu       sync.Mutex
	plane    netplane.Plane // nil until start
	services map[string]reconcile.ServiceState
	podCIDRs map[string]netip.Prefix // by node name
	addrs    map[string]netip.Addr   // the nodes' first IPv4 addresses
	listed   struct{ services, podCIDRs, nodes bool }
	hosts    []netplane.HostPort
	declared bool // the agent declared the host ports at least once
	// What the last Set said: the host ports it refused (by pod UID), whether it failed, and
	// the problems already logged.
	hostRefused map[string]string
	failed      bool
	applied     bool
	logged      map[string]bool
}

func newApplier(node string, reserved []uint16, log *slog.Logger) *applier {
	return &applier{node: node, reserved: reserved, log: log, minRetry: minRetry, maxRetry: maxRetry, kick: make(chan struct{}, 1)}
}

// start hands the applier its plane. Until the agent declares the host ports, the plane keeps
// those it holds (the pod network restores them at Open).
func (a *applier) start(ctx context.Context, p netplane.Plane) error {
	st, err := p.State(ctx)
	if err != nil {
		return fmt.Errorf("network plane: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.plane = p
	if !a.declared {
		a.hosts = st.HostPorts
	}
	a.wake()
	return nil
}

// wake asks run for a Set. Called with mu held or not.
func (a *applier) wake() {
	select {
	case a.kick <- struct{}{}:
	default: // one is pending already
	}
}

func (a *applier) setServices(m map[string]reconcile.ServiceState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.listed.services, a.services = true, m
	a.wake()
}

func (a *applier) setPodCIDRs(m map[string]netip.Prefix) {
	a.mu.Lock()
	defer a.mu.Unlock()
	first := !a.listed.podCIDRs
	a.listed.podCIDRs = true
	if first || !maps.Equal(a.podCIDRs, m) {
		a.podCIDRs = m
		a.wake()
	}
}

// setNodeAddrs takes the nodes' addresses; node records change every few seconds (their
// liveness), their addresses seldom.
func (a *applier) setNodeAddrs(m map[string]netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	first := !a.listed.nodes
	a.listed.nodes = true
	if first || !maps.Equal(a.addrs, m) {
		a.addrs = m
		a.wake()
	}
}

// setHostPorts takes the host ports the agent declares and applies them at once when they
// changed; it returns, by pod UID, why ports were refused. Before the first Set it only keeps
// them.
func (a *applier) setHostPorts(ctx context.Context, ports []netplane.HostPort) (map[string]string, error) {
	a.mu.Lock()
	changed := !a.declared || !slices.Equal(a.hosts, ports)
	a.hosts, a.declared = ports, true
	ready := a.readyLocked() && a.applied
	refused, failed := a.hostRefused, a.failed
	a.mu.Unlock()
	if !ready {
		if changed {
			a.wake() // for a first Set under way with the ports it had
		}
		return nil, nil
	}
	if !changed && !failed {
		return refused, nil
	}
	res, err := a.apply(ctx)
	return res.HostPortsRefused(), err
}

// readyLocked reports whether a Set may run: the plane is open and the store listed.
func (a *applier) readyLocked() bool {
	return a.plane != nil && a.listed.services && a.listed.podCIDRs && a.listed.nodes
}

// run applies the changes until ctx ends.
func (a *applier) run(ctx context.Context) {
	var retry <-chan time.Time
	delay := a.minRetry
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-retry:
		}
		a.mu.Lock()
		ready := a.readyLocked()
		a.mu.Unlock()
		if !ready {
			continue
		}
		if _, err := a.apply(ctx); err != nil && ctx.Err() == nil {
			retry = time.After(delay)
			delay = min(2*delay, a.maxRetry)
		} else {
			retry, delay = nil, a.minRetry
		}
	}
}

// apply Sets the Config of what the applier knows now and logs what the Result says.
func (a *applier) apply(ctx context.Context) (netplane.Result, error) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	a.mu.Lock()
	c := buildConfig(a.node, a.services, a.podCIDRs, a.addrs, a.hosts, a.reserved)
	p := a.plane
	a.mu.Unlock()
	res, err := p.Set(ctx, c)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("network plane: Set failed, retrying", "err", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hostRefused, a.failed, a.applied = res.HostPortsRefused(), err != nil, true
	a.logProblems(res)
	return res, err
}

// logProblems logs each problem of res that the last Sets did not have. Refused host ports are
// the agent's to report.
func (a *applier) logProblems(res netplane.Result) {
	seen := map[string]bool{}
	for _, list := range []struct {
		problems []netplane.Problem
		msg      string
	}{{res.Skipped, "network plane: not applied by rule"}, {res.Refused, "network plane: refused"}} {
		for _, p := range list.problems {
			s := p.String()
			if p.Kind == netplane.KindHostPort || seen[s] {
				continue
			}
			seen[s] = true
			if a.logged[s] {
				continue
			}
			if p.Kind == netplane.KindNodePort && p.Service == "" {
				a.log.Info(list.msg, "what", s) // a node without a node interface
			} else {
				a.log.Warn(list.msg, "what", s)
			}
		}
	}
	a.logged = seen
}

// buildConfig is the node's network Config: the Services, a route to every other node's pod
// CIDR through that node's first IPv4 address (host-gw), the host ports, the daemon's ports.
func buildConfig(self string, services map[string]reconcile.ServiceState, podCIDRs map[string]netip.Prefix, addrs map[string]netip.Addr,
	hosts []netplane.HostPort, reserved []uint16) netplane.Config {
	c := netplane.Config{HostPorts: hosts, ReservedPorts: reserved}
	for _, key := range slices.Sorted(maps.Keys(services)) {
		c.Services = append(c.Services, toService(self, services[key]))
	}
	for _, node := range slices.Sorted(maps.Keys(podCIDRs)) {
		cidr := podCIDRs[node]
		via, ok := addrs[node]
		if node == self || !cidr.IsValid() || !ok {
			continue
		}
		c.Routes = append(c.Routes, netplane.Route{CIDR: cidr, Via: via})
	}
	return c
}

// toService is the network plane's view of a Service the master planned, on node self.
func toService(self string, r reconcile.ServiceState) netplane.Service {
	s := netplane.Service{Namespace: r.Namespace, Name: r.Name, Type: netplane.ServiceType(r.Type), Headless: r.Headless, Pending: r.Pending,
		ClusterIP: r.ClusterIP, LocalTraffic: r.LocalTraffic}
	if r.SessionAffinity == manifests.ServiceAffinityClientIP {
		s.Affinity = netplane.ClientIP
		s.AffinityTimeout = time.Duration(r.AffinityTimeout) * time.Second
	}
	for _, p := range r.Ports {
		s.Ports = append(s.Ports, netplane.ServicePort{Name: p.Name, Proto: protoOf(p.Protocol), Port: uint16(p.Port), NodePort: uint16(p.NodePort)})
	}
	for _, e := range r.Endpoints {
		if !e.IP.IsValid() {
			continue
		}
		ep := netplane.Endpoint{IP: e.IP, Ports: make(map[string]uint16, len(e.Ports)), Hostname: e.Hostname, Local: e.Node == self}
		for name, port := range e.Ports {
			ep.Ports[name] = uint16(port)
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s
}

// Dump returns the virtual IP ports the load balancer holds, read back from the kernel, for
// `shoal netplane dump`.
func (n *network) Dump() ([]netplane.Frontend, error) {
	n.mu.Lock()
	p := n.plane
	n.mu.Unlock()
	if p == nil {
		return nil, errors.New("the network plane is not ready yet (waiting for the node's pod CIDR)")
	}
	st, err := p.State(context.Background())
	if err != nil {
		return nil, err
	}
	return st.Frontends, nil
}

func writeNetState(dataDir string, st netState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	p := filepath.Join(dataDir, "netplane", "state.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(p, data, 0o600)
}

// resetNetwork removes the network plane a node made: its pod network, load balancer and node
// ports.
func resetNetwork(ctx context.Context, dataDir string) error {
	data, err := os.ReadFile(filepath.Join(dataDir, "netplane", "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st netState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("netplane state: %w", err)
	}
	o := netplane.Options{Node: st.Node, StateDir: filepath.Join(dataDir, "netplane", "ipam"), PinDir: st.PinDir, LBCgroup: st.LBCgroup,
		NodeInterface: st.NodeInterface}
	o.PodCIDR, _ = netip.ParsePrefix(st.PodCIDR)
	o.NodeIP, _ = netip.ParseAddr(st.NodeIP)
	err = netplane.Remove(ctx, o)
	if strings.HasPrefix(st.PinDir, "/sys/fs/bpf/") {
		_ = os.Remove(st.PinDir)
		_ = os.Remove(filepath.Dir(st.PinDir)) // /sys/fs/bpf/shoal, when empty
	}
	return err
}
