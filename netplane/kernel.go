package netplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/netplane/dns"
	"github.com/shoal-dev/shoal/netplane/lb"
	"github.com/shoal-dev/shoal/netplane/nodeport"
	"github.com/shoal-dev/shoal/netplane/podnet"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Options say where a Kernel plane lives: the node's pod network, the cgroup and the pin
// directory of the load balancer, the node interface and the DNS server's addresses.
type Options struct {
	// Node is the node's name; it names the nftables table.
	Node string
	// PodCIDR is the node's pod CIDR; its first address is the pods' gateway and DNS server.
	PodCIDR netip.Prefix
	// ServiceCIDR and ClusterCIDR default as in podnet.Config.
	ServiceCIDR netip.Prefix
	ClusterCIDR netip.Prefix
	// Domain is the cluster's DNS domain; default cluster.local.
	Domain string
	// Bridge is the pods' bridge; default podnet.DefaultBridge.
	Bridge string
	// StateDir keeps the pods' addresses and the host ports; it must survive restarts.
	StateDir string
	// NetNS is the path of the network namespace the node side lives in; "" means the
	// caller's. The DNS server's sockets are made in it.
	NetNS string
	// LBCgroup is the cgroup v2 directory the socket load balancer attaches to; "" means the
	// root of the cgroup v2 hierarchy (every process of the machine).
	LBCgroup string
	// PinDir is the directory in bpffs where the load balancer pins its maps and links, and
	// the node port programs theirs (in PinDir/nodeport). Required.
	PinDir string
	// NodeInterface, when set, carries node ports and LoadBalancer ports, on NodeIP. Without
	// it the node opens none (Set says so in its Result).
	NodeInterface string
	NodeIP        netip.Addr
	// DNSListen are the DNS server's addresses; default the gateway's port 53.
	DNSListen []string
	// Upstreams and ResolvConf say where the DNS server forwards names outside the cluster
	// (dns.Config).
	Upstreams  []string
	ResolvConf string
	// Logger receives the DNS server's warnings; default discard.
	Logger *slog.Logger
}

// WithDefaults returns o with the defaults filled in, as Open uses them: the cgroup v2 root for
// LBCgroup, the gateway's port 53 for DNSListen.
func (o Options) WithDefaults() (Options, error) {
	if !o.PodCIDR.IsValid() || !o.PodCIDR.Addr().Is4() {
		return o, fmt.Errorf("network plane: pod CIDR %q is not an IPv4 prefix", o.PodCIDR)
	}
	o.PodCIDR = o.PodCIDR.Masked()
	if !o.ServiceCIDR.IsValid() {
		o.ServiceCIDR = podnet.DefaultServiceCIDR
	}
	if o.Domain == "" {
		o.Domain = podnet.DefaultClusterDomain
	}
	if o.Bridge == "" {
		o.Bridge = podnet.DefaultBridge
	}
	if o.LBCgroup == "" {
		root, err := lb.Cgroup2Root()
		if err != nil {
			return o, fmt.Errorf("network plane: %w", err)
		}
		o.LBCgroup = root
	}
	if len(o.DNSListen) == 0 {
		o.DNSListen = []string{netip.AddrPortFrom(gateway(o.PodCIDR), 53).String()}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// gateway is the first address of the pod CIDR.
func gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// Kernel is the network plane of a node in the kernel: the pod network (podnet: bridge,
// routes, nftables host ports), the eBPF socket load balancer for virtual IPs (lb), the eBPF
// node port programs (nodeport) and the DNS server (dns). What it programs outlives it (pinned
// maps and links, the bridge, the routes and rules), so pods keep their network while the
// daemon is down, and the next Open adopts it. Its methods are safe for concurrent use.
type Kernel struct {
	opts Options
	node node

	mu     sync.Mutex // serializes Set and State
	closed bool
	net    *podnet.Net
	lb     *lb.LB
	np     *nodeport.NodePort // nil without a node interface
	dns    *dns.Server
	dnsSet bool // dns has had its first Update

	stopDNS context.CancelFunc
	dnsDone chan error
}

var _ Plane = (*Kernel)(nil)

// Open makes or adopts the node's network plane and starts its DNS server. When the kernel
// lacks a feature the plane needs, the error matches ErrNotSupported and names the feature.
// Close it when the daemon stops; Remove takes it all away.
func Open(ctx context.Context, o Options) (_ *Kernel, err error) {
	if o, err = o.WithDefaults(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(o.PinDir) {
		return nil, fmt.Errorf("network plane: pin dir %q must be an absolute path in bpffs", o.PinDir)
	}
	if err := checkFeatures(lbFeatures); err != nil {
		return nil, fmt.Errorf("network plane: %w", err)
	}
	if o.NodeInterface != "" {
		if err := checkFeatures(nodePortFeatures); err != nil {
			return nil, fmt.Errorf("network plane: node ports: %w", err)
		}
	}
	k := &Kernel{opts: o, node: node{podCIDR: o.PodCIDR, serviceCIDR: o.ServiceCIDR, nodePorts: o.NodeInterface != ""}}
	defer func() {
		if err != nil {
			_ = k.closeParts() // the error that got us here is the one to report
		}
	}()
	k.net, err = podnet.New(ctx, podnet.Config{Node: o.Node, PodCIDR: o.PodCIDR, ServiceCIDR: o.ServiceCIDR, ClusterCIDR: o.ClusterCIDR,
		Bridge: o.Bridge, StateDir: o.StateDir, NetNS: o.NetNS, DNSServer: gateway(o.PodCIDR), ClusterDomain: o.Domain})
	if err != nil {
		return nil, fmt.Errorf("network plane: %w", err)
	}
	k.lb, err = lb.Open(lb.Config{CgroupPath: o.LBCgroup, PinDir: o.PinDir})
	if err != nil {
		return nil, fmt.Errorf("network plane: service load balancer: %w",
			classify(err, "the eBPF socket load balancer (cgroup socket programs with bpf_sock_destroy)", "Linux 6.5 or newer"))
	}
	if o.NodeInterface != "" {
		k.np, err = nodeport.Open(nodeport.Config{Interface: o.NodeInterface, NodeIP: o.NodeIP, PinDir: filepath.Join(o.PinDir, "nodeport"), NetNS: o.NetNS})
		if err != nil {
			return nil, fmt.Errorf("network plane: node ports: %w",
				classify(err, "the node port programs (tc programs on tcx links)", "Linux 6.6 or newer"))
		}
	}
	err = inNetNS(o.NetNS, func() error {
		var err error
		k.dns, err = dns.New(dns.Config{Domain: o.Domain, Listen: o.DNSListen, Upstreams: o.Upstreams, ResolvConf: o.ResolvConf, Logger: o.Logger})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("network plane: dns server: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	k.stopDNS, k.dnsDone = stop, make(chan error, 1)
	go func() { k.dnsDone <- k.dns.Run(runCtx) }()
	return k, nil
}

// Options returns the options the plane was opened with, defaults filled in.
func (k *Kernel) Options() Options { return k.opts }

// Set makes the plane hold exactly c (see Plane). The DNS records change first, then the load
// balancer (removed ports first), the node ports, the routes and the host ports; a part that
// fails does not stop the others.
func (k *Kernel) Set(ctx context.Context, c Config) (Result, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return Result{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	p := plan(c, k.node)
	res := p.res
	var errs []error
	fail := func(pr Problem, err error) {
		pr.Reason = err.Error()
		res.Failed = append(res.Failed, pr)
		errs = append(errs, err)
	}
	// The same records again would only bump the zone's serial.
	if !k.dnsSet || !reflect.DeepEqual(normalDNS(k.dns.Services()), p.want.DNS) {
		k.dns.Update(p.want.DNS)
		k.dnsSet = true
	}
	if err := k.setFrontends(ctx, p, fail); err != nil {
		errs = append(errs, err)
	}
	if k.np != nil {
		if err := k.setNodePorts(ctx, p, fail); err != nil {
			errs = append(errs, err)
		}
	}
	routes := make([]podnet.Route, 0, len(p.want.Routes))
	for _, r := range p.want.Routes {
		routes = append(routes, podnet.Route{CIDR: r.CIDR, Via: r.Via})
	}
	if err := k.net.SetRoutes(ctx, routes); err != nil {
		fail(Problem{Kind: KindRoute}, err)
	}
	refused, err := k.net.SetHostPorts(ctx, toPodnet(c.HostPorts))
	res.Refused = append(res.Refused, hostPortProblems(refused)...)
	if err != nil {
		fail(Problem{Kind: KindHostPort}, err)
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("set network plane: %w", err)
	}
	return res, nil
}

// setFrontends makes the load balancer hold p's frontends. It fails whole only when it cannot
// read what the load balancer holds.
func (k *Kernel) setFrontends(ctx context.Context, p planned, fail func(Problem, error)) error {
	have, err := k.lb.Services()
	if err != nil {
		return fmt.Errorf("read the load balancer: %w", err)
	}
	todo := map[frontendKey]bool{}
	want := map[frontendKey]Frontend{}
	for _, f := range p.want.Frontends {
		want[f.key()], todo[f.key()] = f, true
	}
	for _, h := range have {
		f := frontendOf(h)
		w, ok := want[f.key()]
		if !ok {
			if err := k.lb.Delete(ctx, h.VIP, h.Port, h.Proto); err != nil {
				fail(Problem{Kind: KindService, Item: f.String()}, err)
			}
			continue
		}
		if sameFrontend(f, w) {
			delete(todo, f.key())
		}
	}
	for _, f := range p.want.Frontends {
		if !todo[f.key()] {
			continue
		}
		s := lb.Service{VIP: f.VIP, Port: f.Port, Proto: lb.Proto(f.Proto), Backends: f.Backends, Affinity: lb.Affinity(f.Affinity),
			AffinityTimeout: f.AffinityTimeout}
		if err := k.lb.Upsert(ctx, s); err != nil {
			fail(Problem{Kind: KindService, Service: p.owner[f.String()], Item: f.String()}, err)
		}
	}
	return nil
}

// setNodePorts makes the node port programs hold p's node ports.
func (k *Kernel) setNodePorts(ctx context.Context, p planned, fail func(Problem, error)) error {
	have, err := k.np.Services()
	if err != nil {
		return fmt.Errorf("read the node ports: %w", err)
	}
	todo := map[nodePortKey]bool{}
	want := map[nodePortKey]NodePort{}
	for _, n := range p.want.NodePorts {
		want[n.key()], todo[n.key()] = n, true
	}
	for _, h := range have {
		n := nodePortOf(h)
		w, ok := want[n.key()]
		if !ok {
			if err := k.np.Delete(ctx, h.NodePort, h.Proto); err != nil {
				fail(Problem{Kind: KindNodePort, Item: portItem(n)}, err)
			}
			continue
		}
		if slices.Equal(n.Backends, w.Backends) {
			delete(todo, n.key())
		}
	}
	for _, n := range p.want.NodePorts {
		if !todo[n.key()] {
			continue
		}
		if err := k.np.Upsert(ctx, nodeport.Service{NodePort: n.Port, Proto: nodeport.Proto(n.Proto), Backends: n.Backends}); err != nil {
			fail(Problem{Kind: KindNodePort, Service: p.owner[n.String()], Item: portItem(n)}, err)
		}
	}
	return nil
}

// frontendOf converts what the load balancer holds, backends sorted.
func frontendOf(s lb.Service) Frontend {
	f := Frontend{VIP: s.VIP, Port: s.Port, Proto: Proto(s.Proto), Backends: sortedBackends(s.Backends), Affinity: Affinity(s.Affinity)}
	if f.Affinity == ClientIP {
		f.AffinityTimeout = s.AffinityTimeout
	}
	return f
}

func nodePortOf(s nodeport.Service) NodePort {
	return NodePort{Port: s.NodePort, Proto: Proto(s.Proto), Backends: sortedBackends(s.Backends)}
}

func sameFrontend(a, b Frontend) bool {
	return a.key() == b.key() && a.Affinity == b.Affinity && a.AffinityTimeout == b.AffinityTimeout && slices.Equal(a.Backends, b.Backends)
}

// State reads back what the kernel and the DNS server hold.
func (k *Kernel) State(ctx context.Context) (State, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return State{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	var st State
	svcs, err := k.lb.Services()
	if err != nil {
		return State{}, fmt.Errorf("network plane state: %w", err)
	}
	for _, s := range svcs {
		st.Frontends = append(st.Frontends, frontendOf(s))
	}
	sortFrontends(st.Frontends)
	if k.np != nil {
		nps, err := k.np.Services()
		if err != nil {
			return State{}, fmt.Errorf("network plane state: %w", err)
		}
		for _, s := range nps {
			st.NodePorts = append(st.NodePorts, nodePortOf(s))
		}
		sortNodePorts(st.NodePorts)
	}
	routes, err := k.net.Routes()
	if err != nil {
		return State{}, fmt.Errorf("network plane state: %w", err)
	}
	for _, r := range routes {
		st.Routes = append(st.Routes, Route{CIDR: r.CIDR, Via: r.Via})
	}
	st.HostPorts = fromPodnet(k.net.HostPorts())
	st.DNS = normalDNS(k.dns.Services())
	return st, nil
}

// Setup gives a pod its network: an address on the bridge and a veth pair into the namespace
// at netnsPath (podnet.Net.Setup). It returns the pod's address.
func (k *Kernel) Setup(ctx context.Context, uid, namespace, name, netnsPath string) (string, error) {
	return k.net.Setup(ctx, uid, namespace, name, netnsPath)
}

// Teardown releases a pod's network.
func (k *Kernel) Teardown(ctx context.Context, uid, netnsPath string) error {
	return k.net.Teardown(ctx, uid, netnsPath)
}

// ResolvConf returns the resolv.conf of a pod in the given Kubernetes namespace.
func (k *Kernel) ResolvConf(namespace string) string { return k.net.DNS(namespace) }

// Close stops the DNS server and releases the handles. What the plane programmed stays: pods
// keep their network and Services keep working until the next Open or Remove. Close is
// idempotent.
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	return k.closeParts()
}

func (k *Kernel) closeParts() error {
	var errs []error
	switch {
	case k.stopDNS != nil:
		k.stopDNS()
		if err := <-k.dnsDone; err != nil {
			errs = append(errs, fmt.Errorf("dns server: %w", err))
		}
	case k.dns != nil:
		errs = append(errs, k.dns.Close())
	}
	if k.np != nil {
		errs = append(errs, k.np.Close())
	}
	if k.lb != nil {
		errs = append(errs, k.lb.Close())
	}
	if k.net != nil {
		errs = append(errs, k.net.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close network plane: %w", err)
	}
	return nil
}

// Remove closes the plane and takes away everything it programmed (see the function Remove).
func (k *Kernel) Remove(ctx context.Context) error {
	return errors.Join(k.Close(), Remove(ctx, k.opts))
}

// Remove takes away the network plane that a Kernel opened with o made, whether it runs or
// not: the node port programs and the load balancer with their pins, and the pod network (the
// pods' host-side interfaces, the bridge, the routes, the nftables table, the addresses and
// host ports). Pods' own namespaces are left to their owner.
func Remove(ctx context.Context, o Options) error {
	var errs []error
	if o.PodCIDR.IsValid() {
		net, err := podnet.New(ctx, podnet.Config{Node: o.Node, PodCIDR: o.PodCIDR, ServiceCIDR: o.ServiceCIDR, ClusterCIDR: o.ClusterCIDR,
			Bridge: o.Bridge, StateDir: o.StateDir, NetNS: o.NetNS})
		if err == nil {
			err = net.Remove(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pod network: %w", err))
		}
	}
	if o.PinDir != "" && strings.HasPrefix(filepath.Clean(o.PinDir), "/sys/fs/bpf/") {
		if _, err := os.Stat(o.PinDir); err == nil {
			// The node ports' pins live inside the load balancer's pin dir: they go first.
			if o.NodeInterface != "" {
				np, err := nodeport.Open(nodeport.Config{Interface: o.NodeInterface, NodeIP: o.NodeIP, PinDir: filepath.Join(o.PinDir, "nodeport"), NetNS: o.NetNS})
				if err == nil {
					err = np.Remove()
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("node ports: %w", err))
				}
			}
			cg := o.LBCgroup
			if cg == "" {
				var err error
				if cg, err = lb.Cgroup2Root(); err != nil {
					errs = append(errs, fmt.Errorf("load balancer: %w", err))
				}
			}
			if cg != "" {
				l, err := lb.Open(lb.Config{CgroupPath: cg, PinDir: o.PinDir})
				if err == nil {
					err = l.Remove()
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("load balancer: %w", err))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove network plane: %w", err)
	}
	return nil
}

// inNetNS runs fn in the network namespace at path ("" = the caller's) and waits for it. fn
// runs on a fresh OS thread that joins the namespace and is never handed back to the Go
// scheduler, so no other goroutine ever runs in the namespace by accident. Sockets fn makes stay
// in the namespace and may be used from any goroutine.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread stays locked: it exits with this goroutine.
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
