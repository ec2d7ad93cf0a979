package podnet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Defaults for the zero values of Config.
const (
	DefaultBridge        = "shoal0"
	DefaultClusterDomain = "cluster.local"
	DefaultMTU           = 1500
)

var (
	// DefaultServiceCIDR is the service CIDR when Config.ServiceCIDR is not set.
	DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	// DefaultClusterCIDR is the cluster CIDR when Config.ClusterCIDR is not set and it holds
	// the node's pod CIDR.
	DefaultClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
)

// RouteProtocol marks the routes Shoal owns in the kernel's main routing table (the
// "proto" column of `ip route`), so SetRoutes and Remove touch no other routes.
const RouteProtocol netlink.RouteProtocol = 115

// Config configures the pod network of a node.
type Config struct {
	// Node is the node's name; it names the nftables table ("shoal-<node>").
	Node string
	// PodCIDR is the node's IPv4 pod CIDR (for example 10.244.1.0/24). Its first address is
	// the gateway on the bridge; pods get the rest.
	PodCIDR netip.Prefix
	// ServiceCIDR gets an unreachable route; default 10.96.0.0/16.
	ServiceCIDR netip.Prefix
	// ClusterCIDR holds the pod CIDRs of all nodes; traffic from pods to addresses outside it
	// is masqueraded. Default 10.244.0.0/16 when that holds PodCIDR, else PodCIDR.
	ClusterCIDR netip.Prefix
	// Bridge is the bridge's name; default "shoal0".
	Bridge string
	// StateDir keeps the address allocations; it must survive daemon restarts.
	StateDir string
	// NetNS is the path of the network namespace the node side lives in; "" means the
	// caller's (the host's) namespace.
	NetNS string
	// DNSServer is the name server written into the pods' resolv.conf.
	DNSServer netip.Addr
	// ClusterDomain is the cluster's DNS domain; default "cluster.local".
	ClusterDomain string
	// MTU of the bridge and the veth pairs; default 1500.
	MTU int
}

func (c *Config) setDefaults() error {
	if c.Node == "" {
		return errors.New("config: node name is empty; set the node's name")
	}
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() {
		return fmt.Errorf("config: pod CIDR %q is not an IPv4 prefix; give the node a pod CIDR such as 10.244.1.0/24", c.PodCIDR)
	}
	c.PodCIDR = c.PodCIDR.Masked()
	if _, _, err := usableRange(c.PodCIDR); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if !c.ServiceCIDR.IsValid() {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if !c.ServiceCIDR.Addr().Is4() {
		return fmt.Errorf("config: service CIDR %s is not IPv4", c.ServiceCIDR)
	}
	c.ServiceCIDR = c.ServiceCIDR.Masked()
	if !c.ClusterCIDR.IsValid() {
		c.ClusterCIDR = c.PodCIDR
		if DefaultClusterCIDR.Bits() <= c.PodCIDR.Bits() && DefaultClusterCIDR.Contains(c.PodCIDR.Addr()) {
			c.ClusterCIDR = DefaultClusterCIDR
		}
	}
	c.ClusterCIDR = c.ClusterCIDR.Masked()
	if !c.ClusterCIDR.Addr().Is4() || c.ClusterCIDR.Bits() > c.PodCIDR.Bits() || !c.ClusterCIDR.Contains(c.PodCIDR.Addr()) {
		return fmt.Errorf("config: cluster CIDR %s does not hold the pod CIDR %s", c.ClusterCIDR, c.PodCIDR)
	}
	if c.ServiceCIDR.Overlaps(c.ClusterCIDR) {
		return fmt.Errorf("config: service CIDR %s overlaps the cluster CIDR %s; pick disjoint ranges", c.ServiceCIDR, c.ClusterCIDR)
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if len(c.Bridge) > unix.IFNAMSIZ-1 || strings.ContainsAny(c.Bridge, "/ \t\n:") {
		return fmt.Errorf("config: bridge name %q is not a valid interface name (at most 15 characters, no '/', ':' or spaces)", c.Bridge)
	}
	if c.StateDir == "" {
		return errors.New("config: state dir is empty; set a directory that survives restarts")
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	c.ClusterDomain = strings.Trim(c.ClusterDomain, ".")
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < 576 || c.MTU > 65535 {
		return fmt.Errorf("config: MTU %d is out of range 576..65535", c.MTU)
	}
	return nil
}

// Net is the pod network of a node. Its methods are safe for concurrent use; calls that change
// the network are serialised.
type Net struct {
	cfg  Config
	lock *os.File // flock on the state dir: one Net per state dir

	mu     sync.Mutex
	nodeNS netns.NsHandle
	nl     *netlink.Handle
	ipam   *ipam
	closed bool

	hostPorts    []HostPort      // accepted by SetHostPorts, sorted
	tableWritten bool            // the node's table holds tablePorts
	tablePorts   []forwardedPort // the host ports in the table
}

// New makes the node's pod network, or adopts the one an earlier New on the same Config made:
// the bridge with the gateway address, the unreachable route for the service CIDR, the
// nftables table (masquerade and the host ports kept from the last SetHostPorts) and the
// address store. It then frees the addresses of pods whose network
// namespace is gone (Reconcile). Call Close when the daemon stops, Remove to take it all away.
func New(ctx context.Context, cfg Config) (*Net, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("pod network: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("pod network: state dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.StateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pod network: state dir: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("pod network: state dir %s is in use by another process (%w); stop the other shoal daemon or give this one its own data dir", cfg.StateDir, err)
	}
	n := &Net{cfg: cfg, lock: lock, nodeNS: -1}
	if err := n.init(ctx); err != nil {
		n.release()
		return nil, fmt.Errorf("pod network of node %q: %w", cfg.Node, err)
	}
	return n, nil
}

func (n *Net) init(ctx context.Context) error {
	nsPath := n.cfg.NetNS
	if nsPath == "" {
		nsPath = "/proc/self/ns/net"
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("open node network namespace %s: %w", nsPath, err)
	}
	n.nodeNS = ns
	n.nl, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in node network namespace: %w", err)
	}
	// Pods reach other nodes and the outside through the node.
	if err := writeSysctl(ns, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if err := n.ensureBridge(); err != nil {
		return err
	}
	if err := n.ensureServiceRoute(); err != nil {
		return err
	}
	// Host ports reached from the node's 127.0.0.1 leave through the bridge with a loopback
	// source until they are masqueraded (the CNI portmap plugin does the same).
	if err := writeSysctl(ns, "net/ipv4/conf/"+n.cfg.Bridge+"/route_localnet", "1"); err != nil {
		return err
	}
	n.removeTempFiles()
	n.ipam, err = openIPAM(filepath.Join(n.cfg.StateDir, "addresses"), n.cfg.PodCIDR)
	if err != nil {
		return err
	}
	if err := n.loadHostPorts(); err != nil {
		return err
	}
	if _, err := n.reconcileLocked(ctx); err != nil {
		return err
	}
	// Written whole, also when it looks current: the table may have been changed by hand or
	// made by an older version.
	return n.writeTable(n.forwarded())
}

func (n *Net) removeTempFiles() {
	entries, _ := os.ReadDir(n.cfg.StateDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.Remove(filepath.Join(n.cfg.StateDir, e.Name()))
		}
	}
}

func (n *Net) ensureBridge() error {
	name := n.cfg.Bridge
	link, err := n.nl.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: n.cfg.MTU}}
		if err := n.nl.LinkAdd(br); err != nil {
			return fmt.Errorf("create bridge %s: %w", name, err)
		}
		if link, err = n.nl.LinkByName(name); err != nil {
			return fmt.Errorf("create bridge %s: %w", name, err)
		}
		// A bridge takes the lowest MAC address of its ports unless one is set: pin the one
		// it has, so the pods' gateway keeps its address while pods come and go.
		if err := n.nl.LinkSetHardwareAddr(link, link.Attrs().HardwareAddr); err != nil {
			return fmt.Errorf("bridge %s: set MAC address: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("find bridge %s: %w", name, err)
	case link.Type() != "bridge":
		return fmt.Errorf("interface %s exists and is a %s, not a bridge; remove it or configure another bridge name", name, link.Type())
	}
	if link.Attrs().MTU != n.cfg.MTU {
		if err := n.nl.LinkSetMTU(link, n.cfg.MTU); err != nil {
			return fmt.Errorf("bridge %s: set MTU %d: %w", name, n.cfg.MTU, err)
		}
	}
	gw := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(gateway(n.cfg.PodCIDR), n.cfg.PodCIDR.Bits()))}
	addrs, err := n.nl.AddrList(link, unix.AF_INET)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("bridge %s: list addresses: %w", name, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() != gw.IPNet.String() {
			// An address from an earlier pod CIDR would route pods of another node here.
			if err := n.nl.AddrDel(link, &a); err != nil {
				return fmt.Errorf("bridge %s: remove old address %s: %w", name, a.IPNet, err)
			}
		}
	}
	if err := n.nl.AddrReplace(link, gw); err != nil {
		return fmt.Errorf("bridge %s: add gateway address %s: %w", name, gw.IPNet, err)
	}
	if err := n.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s: set up: %w", name, err)
	}
	return nil
}

func (n *Net) ensureServiceRoute() error {
	r := &netlink.Route{
		Dst:      ipNet(n.cfg.ServiceCIDR),
		Type:     unix.RTN_UNREACHABLE,
		Protocol: RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
	}
	if err := n.nl.RouteReplace(r); err != nil {
		return fmt.Errorf("add unreachable route for the service CIDR %s: %w", n.cfg.ServiceCIDR, err)
	}
	return nil
}

// Close releases the handles and the state dir lock. The bridge, routes, rules, pods'
// interfaces and allocations stay, so pods keep their network while the daemon is down and a
// new New adopts them. Close is idempotent.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.release()
	return nil
}

func (n *Net) release() {
	n.closed = true
	if n.nl != nil {
		n.nl.Close()
		n.nl = nil
	}
	if n.nodeNS >= 0 {
		n.nodeNS.Close()
		n.nodeNS = -1
	}
	if n.lock != nil {
		n.lock.Close() // drops the flock
		n.lock = nil
	}
}

// Remove takes the node's pod network away: the pods' host-side interfaces, the bridge, the
// routes Shoal added, the nftables table, the address store and the host ports. Pods' network namespaces are
// left to their owner (the runtime removes them). The Net is closed afterwards.
func (n *Net) Remove(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("remove pod network: already closed; call New again to remove it")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	defer n.release()
	var errs []error
	if br, err := n.nl.LinkByName(n.cfg.Bridge); err == nil {
		links, err := n.nl.LinkList()
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			errs = append(errs, fmt.Errorf("list interfaces: %w", err))
		}
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "veth" {
				if err := n.nl.LinkDel(l); err != nil && !isNotFound(err) {
					errs = append(errs, fmt.Errorf("delete %s: %w", l.Attrs().Name, err))
				}
			}
		}
		if err := n.nl.LinkDel(br); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w", n.cfg.Bridge, err))
		}
	}
	routes, err := n.ownRoutes()
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range routes {
		if err := n.nl.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r.Dst, err))
		}
	}
	if err := n.deleteTable(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []string{filepath.Join(n.cfg.StateDir, "addresses"), filepath.Join(n.cfg.StateDir, "next-address"), n.hostPortsPath()} {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	n.removeTempFiles()
	if err := os.Remove(filepath.Join(n.cfg.StateDir, "lock")); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	_ = os.Remove(n.cfg.StateDir) // only when empty: the directory may hold others' files
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pod network of node %q: %w", n.cfg.Node, err)
	}
	return nil
}

// DNS returns the resolv.conf of a pod in the given Kubernetes namespace.
func (n *Net) DNS(namespace string) string {
	var b strings.Builder
	if n.cfg.DNSServer.IsValid() {
		fmt.Fprintf(&b, "nameserver %s\n", n.cfg.DNSServer)
	}
	d := n.cfg.ClusterDomain
	if namespace != "" {
		fmt.Fprintf(&b, "search %s.svc.%s svc.%s %s\n", namespace, d, d, d)
	} else {
		fmt.Fprintf(&b, "search svc.%s %s\n", d, d)
	}
	b.WriteString("options ndots:5\n")
	return b.String()
}

// Allocated returns the pods' addresses by pod UID.
func (n *Net) Allocated() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := map[string]string{}
	if n.ipam == nil {
		return m
	}
	for addr, al := range n.ipam.all() {
		m[al.UID] = addr.String()
	}
	return m
}

// Config returns the configuration with defaults filled in.
func (n *Net) Config() Config { return n.cfg }

// hostVethName is the name of the host end of a pod's veth pair: "shoal" and 10 hex digits of
// a hash of the UID (interface names have at most 15 characters).
func hostVethName(uid string) string {
	sum := sha256.Sum256([]byte(uid))
	return "shoal" + hex.EncodeToString(sum[:5])
}

// ipNet converts p, keeping its address bits (an interface address is not masked).
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}
