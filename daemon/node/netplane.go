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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/netplane/dns"
	"github.com/shoal-dev/shoal/netplane/lb"
	"github.com/shoal-dev/shoal/netplane/nodeport"
	"github.com/shoal-dev/shoal/netplane/podnet"
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

// network is the node's network plane: the pod network (once the master has given the node a
// pod CIDR), the Service load balancer and the DNS server, fed from the store.
type network struct {
	cfg     NetConfig
	node    string
	dataDir string
	st      *store.Client
	log     *slog.Logger

	ready chan struct{} // closed once net is set
	net   *podnet.Net
	lb    *lb.LB
	np    *nodeport.NodePort // nil without a NodeInterface
	dns   *dns.Server
	mu    sync.Mutex
	// hpMu serialises host port updates; hostPorts is the last set the agent declared, applied
	// once net is set.
	hpMu      sync.Mutex
	hostPorts []podnet.HostPort
	// warned holds the LoadBalancer ports already logged as not opened (program).
	warned map[string]bool
}

func newNetwork(cfg NetConfig, node, dataDir string, st *store.Client, log *slog.Logger) *network {
	return &network{cfg: cfg, node: node, dataDir: dataDir, st: st, log: log.With("component", "netplane"), ready: make(chan struct{})}
}

// Setup gives a pod its network once the node's pod network exists (linux.Network).
func (n *network) Setup(ctx context.Context, uid, namespace, name, netnsPath string) (string, error) {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return n.net.Setup(ctx, uid, namespace, name, netnsPath)
}

// Teardown releases a pod's network.
func (n *network) Teardown(ctx context.Context, uid, netnsPath string) error {
	select {
	case <-n.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	return n.net.Teardown(ctx, uid, netnsPath)
}

// SetHostPorts forwards the node's host ports to its pods (cluster.HostPortForwarder). Before
// the pod network exists the set is kept and applied when it is made; pods cannot have been
// set up before that.
func (n *network) SetHostPorts(ctx context.Context, ports []cluster.HostPort) (map[string]string, error) {
	refused := map[string]string{}
	var want []podnet.HostPort
	for _, p := range ports {
		hp, err := toPodnetHostPort(p)
		if err != nil {
			refused[p.UID] = err.Error()
			continue
		}
		want = append(want, hp)
	}
	n.hpMu.Lock()
	defer n.hpMu.Unlock()
	n.hostPorts = want
	n.mu.Lock()
	net := n.net
	n.mu.Unlock()
	if net == nil {
		return refused, nil
	}
	rs, err := net.SetHostPorts(ctx, want)
	for _, r := range rs {
		refused[r.UID] = r.Reason
	}
	return refused, err
}

// toPodnetHostPort converts a pod's host port for the pod network.
func toPodnetHostPort(p cluster.HostPort) (podnet.HostPort, error) {
	hp := podnet.HostPort{UID: p.UID, Pod: p.Pod, Protocol: p.Protocol}
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

// DNS returns the pods' resolv.conf.
func (n *network) DNS(namespace string) string {
	select {
	case <-n.ready:
		return n.net.DNS(namespace)
	default:
		return ""
	}
}

// run waits for the node's pod CIDR, builds the network plane and keeps it in step with the
// store until ctx ends. The pinned load balancer and the bridge stay for the pods when it ends.
func (n *network) run(ctx context.Context) error {
	var cidr netip.Prefix
	for {
		v, _, found, err := store.Get[string](ctx, n.st, cluster.PodCIDRKey(n.node))
		if err == nil && found {
			if cidr, err = netip.ParsePrefix(v); err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	gw := cidr.Masked().Addr().Next()
	net, err := podnet.New(ctx, podnet.Config{Node: n.node, PodCIDR: cidr, ServiceCIDR: n.cfg.ServiceCIDR, ClusterCIDR: n.cfg.ClusterCIDR,
		StateDir: filepath.Join(n.dataDir, "netplane", "ipam"), DNSServer: gw, ClusterDomain: n.cfg.Domain})
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	cg := n.cfg.LBCgroup
	if cg == "" {
		if cg, err = lb.Cgroup2Root(); err != nil {
			return err
		}
	}
	pins := filepath.Join("/sys/fs/bpf/shoal", n.node)
	balancer, err := lb.Open(lb.Config{CgroupPath: cg, PinDir: pins})
	if err != nil {
		return fmt.Errorf("service load balancer: %w", err)
	}
	var np *nodeport.NodePort
	if n.cfg.NodeInterface != "" {
		if np, err = nodeport.Open(nodeport.Config{Interface: n.cfg.NodeInterface, NodeIP: n.cfg.NodeIP, PinDir: filepath.Join(pins, "nodeport")}); err != nil {
			return fmt.Errorf("node ports: %w", err)
		}
		defer np.Close()
	}
	st := netState{Node: n.node, PodCIDR: cidr.String(), PinDir: pins, LBCgroup: cg, NodeInterface: n.cfg.NodeInterface}
	if n.cfg.NodeIP.IsValid() {
		st.NodeIP = n.cfg.NodeIP.String()
	}
	if err := writeNetState(n.dataDir, st); err != nil {
		return err
	}
	server, err := dns.New(dns.Config{Domain: n.cfg.Domain, Listen: []string{gw.String() + ":53"}, Upstreams: n.cfg.Upstreams,
		ResolvConf: n.cfg.ResolvConf, Logger: n.log})
	if err != nil {
		return fmt.Errorf("dns server: %w", err)
	}
	n.hpMu.Lock()
	n.mu.Lock()
	n.net, n.lb, n.np, n.dns = net, balancer, np, server
	n.mu.Unlock()
	// The ports the agent declared while the network was being made (New restored those of
	// the last run already). The agent declares them again at its next sync and gets the
	// refusals then.
	if n.hostPorts != nil {
		if _, err := net.SetHostPorts(ctx, n.hostPorts); err != nil {
			n.log.Warn("host ports", "err", err)
		}
	}
	n.hpMu.Unlock()
	close(n.ready)
	n.log.Info("network plane ready", "podCIDR", cidr, "gateway", gw, "lbCgroup", cg)
	defer balancer.Close()
	defer net.Close()
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx) }()
	defer func() {
		if err := <-done; err != nil {
			n.log.Warn("dns server stopped", "err", err)
		}
	}()
	routesDone := make(chan struct{})
	go func() {
		defer close(routesDone)
		n.routes(ctx, net)
	}()
	defer func() { <-routesDone }()

	for ctx.Err() == nil {
		kvs, rev, err := store.List[cluster.ServiceRecord](ctx, n.st, cluster.ServicesPrefix)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		svcs := map[string]cluster.ServiceRecord{}
		for _, kv := range kvs {
			svcs[kv.Key] = kv.Value
		}
		n.program(ctx, svcs)
		for ev := range store.Watch[cluster.ServiceRecord](ctx, n.st, cluster.ServicesPrefix, rev+1) {
			if ev.Type == store.EventResync {
				break
			}
			switch ev.Type {
			case store.EventPut:
				svcs[ev.Key] = ev.Value
			case store.EventDelete:
				delete(svcs, ev.Key)
			}
			n.program(ctx, svcs)
		}
	}
	return nil
}

// routes keeps a route to every other node's pod CIDR through that node's first address
// (host-gw).
func (n *network) routes(ctx context.Context, net *podnet.Net) {
	var last string
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		cidrs, _, err1 := store.List[string](ctx, n.st, cluster.PodCIDRsPrefix)
		nodes, _, err2 := store.List[cluster.NodeRecord](ctx, n.st, cluster.NodesPrefix)
		if err1 == nil && err2 == nil {
			addr := map[string]netip.Addr{}
			for _, kv := range nodes {
				for _, a := range kv.Value.Addresses {
					if ip, err := netip.ParseAddr(a); err == nil && ip.Is4() {
						addr[kv.Value.Name] = ip
						break
					}
				}
			}
			var routes []podnet.Route
			for _, kv := range cidrs {
				node := strings.TrimPrefix(kv.Key, cluster.PodCIDRsPrefix)
				p, err := netip.ParsePrefix(kv.Value)
				via, ok := addr[node]
				if node == n.node || err != nil || !ok {
					continue
				}
				routes = append(routes, podnet.Route{CIDR: p, Via: via})
			}
			slices.SortFunc(routes, func(a, b podnet.Route) int { return a.CIDR.Addr().Compare(b.CIDR.Addr()) })
			key := fmt.Sprint(routes)
			if key != last {
				if err := net.SetRoutes(ctx, routes); err != nil {
					n.log.Warn("routes to other nodes' pods", "err", err)
				} else {
					last = key
					n.log.Info("routes to other nodes' pods", "routes", key)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// program makes the load balancer, the node ports and the DNS server match the Services.
func (n *network) program(ctx context.Context, svcs map[string]cluster.ServiceRecord) {
	var records []dns.Service
	for _, s := range svcs {
		ip, _ := netip.ParseAddr(s.ClusterIP)
		rec := dns.Service{Namespace: s.Namespace, Name: s.Name, ClusterIP: ip, Headless: s.Headless}
		for _, p := range s.Ports {
			rec.Ports = append(rec.Ports, dns.Port{Name: p.Name, Protocol: p.Protocol, Port: uint16(p.Port)})
		}
		for _, e := range s.Endpoints {
			if a, err := netip.ParseAddr(e.IP); err == nil {
				rec.Endpoints = append(rec.Endpoints, a)
			}
		}
		records = append(records, rec)
	}
	want, wantNP, skipped := wantServices(svcs, n.cfg.ReservedPorts)
	for _, sk := range skipped {
		if n.np == nil {
			break // the node opens no port on its address
		}
		if n.warned == nil {
			n.warned = map[string]bool{}
		}
		if !n.warned[sk] {
			n.warned[sk] = true
			n.log.Warn("LoadBalancer port not opened on this node", "port", sk)
		}
	}
	n.dns.Update(records)
	have, err := n.lb.Services()
	if err != nil {
		n.log.Warn("read the load balancer's services", "err", err)
		return
	}
	for _, h := range have {
		k := lbKey{h.VIP, h.Port, h.Proto}
		w, ok := want[k]
		if !ok {
			if err := n.lb.Delete(ctx, h.VIP, h.Port, h.Proto); err != nil {
				n.log.Warn("delete service", "vip", h.VIP, "port", h.Port, "err", err)
			}
			continue
		}
		if sameLB(h, w) {
			delete(want, k)
		}
	}
	for _, w := range want {
		if err := n.lb.Upsert(ctx, w); err != nil {
			n.log.Warn("program service", "service", w.String(), "err", err)
		}
	}
	if n.np == nil {
		return
	}
	haveNP, err := n.np.Services()
	if err != nil {
		n.log.Warn("read the node ports", "err", err)
		return
	}
	for _, h := range haveNP {
		k := npKey{h.NodePort, h.Proto}
		w, ok := wantNP[k]
		if !ok {
			if err := n.np.Delete(ctx, h.NodePort, h.Proto); err != nil {
				n.log.Warn("delete node port", "port", h.NodePort, "err", err)
			}
			continue
		}
		hb := slices.Clone(h.Backends)
		slices.SortFunc(hb, func(a, b netip.AddrPort) int { return a.Compare(b) })
		if slices.Equal(hb, w.Backends) {
			delete(wantNP, k)
		}
	}
	for _, w := range wantNP {
		if err := n.np.Upsert(ctx, w); err != nil {
			n.log.Warn("program node port", "service", w.String(), "err", err)
		}
	}
}

// lbKey is a Service port of the socket load balancer.
type lbKey struct {
	vip   netip.Addr
	port  uint16
	proto lb.Proto
}

// npKey is a port of the node's address, served by the node port programs.
type npKey struct {
	port  uint16
	proto nodeport.Proto
}

// wantServices is what the load balancer and the node ports should hold for the Services: every
// port of a Service with a virtual IP on that IP; every node port; and every port of a
// LoadBalancer Service on the node's address, with the same backends, unless the master left it
// pending (another LoadBalancer Service holds one of its ports). A LoadBalancer port that
// is in reserved (TCP ports the daemon listens on at the node's address) is left out and
// returned in skipped ("namespace/name port/proto: why"), as is one that a node port holds
// already.
func wantServices(svcs map[string]cluster.ServiceRecord, reserved []uint16) (want map[lbKey]lb.Service, wantNP map[npKey]nodeport.Service, skipped []string) {
	want, wantNP = map[lbKey]lb.Service{}, map[npKey]nodeport.Service{}
	type lbPort struct {
		svc string
		np  nodeport.Service
	}
	var lbPorts []lbPort
	for _, key := range slices.Sorted(maps.Keys(svcs)) {
		s := svcs[key]
		ip, _ := netip.ParseAddr(s.ClusterIP)
		if !ip.IsValid() {
			continue
		}
		for _, p := range s.Ports {
			proto := lb.TCP
			if p.Protocol == "UDP" {
				proto = lb.UDP
			}
			svc := lb.Service{VIP: ip, Port: uint16(p.Port), Proto: proto}
			if s.SessionAffinity == "ClientIP" {
				svc.Affinity = lb.ClientIP
				svc.AffinityTimeout = time.Duration(s.AffinityTimeout) * time.Second
			}
			for _, e := range s.Endpoints {
				a, err := netip.ParseAddr(e.IP)
				target, ok := e.Ports[p.Name]
				if err != nil || !ok {
					continue
				}
				svc.Backends = append(svc.Backends, netip.AddrPortFrom(a, uint16(target)))
			}
			slices.SortFunc(svc.Backends, func(a, b netip.AddrPort) int { return a.Compare(b) })
			want[lbKey{ip, svc.Port, proto}] = svc
			if p.NodePort != 0 {
				wantNP[npKey{uint16(p.NodePort), nodeport.Proto(proto)}] = nodeport.Service{NodePort: uint16(p.NodePort), Proto: nodeport.Proto(proto), Backends: svc.Backends}
			}
			if s.Type == string(manifests.ServiceTypeLoadBalancer) && !s.Pending {
				lbPorts = append(lbPorts, lbPort{s.Namespace + "/" + s.Name, nodeport.Service{NodePort: svc.Port, Proto: nodeport.Proto(proto), Backends: svc.Backends}})
			}
		}
	}
	// Node ports first: validation keeps a LoadBalancer port off every explicit node port and
	// allocation off every LoadBalancer port, so a clash is a leftover of an older plan.
	for _, l := range lbPorts {
		k := npKey{l.np.NodePort, l.np.Proto}
		why := ""
		switch _, taken := wantNP[k]; {
		case l.np.Proto == nodeport.TCP && slices.Contains(reserved, l.np.NodePort):
			why = "the daemon listens on it"
		case taken:
			why = "it is a node port"
		}
		if why != "" {
			skipped = append(skipped, fmt.Sprintf("%s %d/%s: %s", l.svc, l.np.NodePort, l.np.Proto, why))
			continue
		}
		wantNP[k] = l.np
	}
	return want, wantNP, skipped
}

func sameLB(a, b lb.Service) bool {
	if a.Affinity != b.Affinity || (a.Affinity == lb.ClientIP && a.AffinityTimeout != b.AffinityTimeout) || len(a.Backends) != len(b.Backends) {
		return false
	}
	x, y := slices.Clone(a.Backends), slices.Clone(b.Backends)
	slices.SortFunc(x, func(a, b netip.AddrPort) int { return a.Compare(b) })
	slices.SortFunc(y, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Equal(x, y)
}

// Dump returns what the load balancer holds, for `shoal netplane dump`.
func (n *network) Dump() ([]lb.Service, error) {
	n.mu.Lock()
	l := n.lb
	n.mu.Unlock()
	if l == nil {
		return nil, errors.New("the network plane is not ready yet (waiting for the node's pod CIDR)")
	}
	return l.Services()
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
	return os.WriteFile(p, data, 0o600)
}

// resetNetwork removes the pod network and the load balancer a node made.
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
	var errs []error
	if cidr, err := netip.ParsePrefix(st.PodCIDR); err == nil {
		net, err := podnet.New(ctx, podnet.Config{Node: st.Node, PodCIDR: cidr, StateDir: filepath.Join(dataDir, "netplane", "ipam")})
		if err == nil {
			err = net.Remove(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pod network: %w", err))
		}
	}
	if st.PinDir != "" && strings.HasPrefix(st.PinDir, "/sys/fs/bpf/") {
		// The node ports' pins live inside the load balancer's pin dir: they go first.
		if st.NodeInterface != "" {
			ip, _ := netip.ParseAddr(st.NodeIP)
			np, err := nodeport.Open(nodeport.Config{Interface: st.NodeInterface, NodeIP: ip, PinDir: filepath.Join(st.PinDir, "nodeport")})
			if err == nil {
				err = np.Remove()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("node ports: %w", err))
			}
		}
		l, err := lb.Open(lb.Config{CgroupPath: st.LBCgroup, PinDir: st.PinDir})
		if err == nil {
			err = l.Remove()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("load balancer: %w", err))
		}
		_ = os.Remove(st.PinDir)
		_ = os.Remove(filepath.Dir(st.PinDir)) // /sys/fs/bpf/shoal, when empty
	}
	return errors.Join(errs...)
}
