// Package lb load-balances Service virtual IPs (ClusterIPs) to backends with
// eBPF programs at the socket level, as Cilium's socket LB does.
//
// The programs (bpf/lb.c) are attached to a node's cgroup v2 directory:
// cgroup/connect4 rewrites the destination of TCP and connected UDP sockets,
// cgroup/sendmsg4 that of each unconnected UDP datagram, and cgroup/recvmsg4
// and cgroup/getpeername4 show the application the Service address again.
// Backends are chosen round-robin (or sticky per client with ClientIP
// affinity). A Service without backends makes connect() and sendmsg() fail at
// once with ECONNREFUSED, so no packet to a virtual IP leaves the node.
//
// Maps and links are pinned in a bpffs directory: translation keeps working
// while the daemon is down, and Open re-adopts the pins after a restart.
// Several instances (one per node, each with its own cgroup and pin
// directory) run side by side on one machine without seeing each other.
//
// Linux 6.5 or newer is required (bpf_sock_destroy); only IPv4 is handled.
//
// Package lbbench, below it, measures this load balancer against a direct
// connection and kube-proxy's iptables mode (`make bench-lb`).
package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/netplane/internal/slots"
)

// Proto is the transport protocol of a Service port.
type Proto uint8

// The protocols a Service port can have (IANA protocol numbers).
const (
	TCP Proto = 6
	UDP Proto = 17
)

// String returns "TCP" or "UDP".
func (p Proto) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// Affinity is a Service's session affinity.
type Affinity uint8

const (
	// None spreads connections round-robin over the backends.
	None Affinity = iota
	// ClientIP sends every connection of one client to the same backend
	// until the client has been idle for the affinity timeout. A client is
	// a network namespace (a pod has one namespace and one IP), because the
	// source address of a socket is not chosen yet when connect() runs.
	ClientIP
)

// String returns "None" or "ClientIP".
func (a Affinity) String() string {
	switch a {
	case None:
		return "None"
	case ClientIP:
		return "ClientIP"
	}
	return fmt.Sprintf("Affinity(%d)", uint8(a))
}

// Limits and defaults.
const (
	// MaxServices is the number of services one instance holds.
	MaxServices = 65535
	// MaxBackendsPerService bounds the backends of one service.
	MaxBackendsPerService = 65536
	// DefaultAffinityTimeout applies to ClientIP affinity without a
	// timeout (Kubernetes' default, 10800 s).
	DefaultAffinityTimeout = 3 * time.Hour
	// MaxAffinityTimeout is Kubernetes' maximum (86400 s).
	MaxAffinityTimeout = 24 * time.Hour
)

// Service is one load-balanced Service port: traffic to VIP:Port over Proto
// goes to one of Backends.
type Service struct {
	VIP      netip.Addr
	Port     uint16
	Proto    Proto
	Backends []netip.AddrPort
	Affinity Affinity
	// AffinityTimeout is the idle time after which a ClientIP client is
	// balanced again; zero means DefaultAffinityTimeout. Whole seconds.
	AffinityTimeout time.Duration
}

// String names the service as VIP:port/proto.
func (s Service) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(s.VIP, s.Port), s.Proto)
}

// Config says where an instance attaches and pins.
type Config struct {
	// CgroupPath is a cgroup v2 directory, e.g. /sys/fs/cgroup/shoal/<node>
	// (/sys/fs/cgroup/unified/shoal/<node> in the hybrid layout; see
	// Cgroup2Root). The programs translate for every process in it and below.
	CgroupPath string
	// PinDir is a directory in bpffs, e.g. /sys/fs/bpf/shoal/<node>. bpffs
	// is mounted at /sys/fs/bpf when it is missing there.
	PinDir string
}

// ErrClosed is returned by the methods of an LB after Close or Remove.
var ErrClosed = errors.New("load balancer is closed")

// LB is an instance of the load balancer attached to one cgroup. Its methods
// are safe for concurrent use.
type LB struct {
	mu      sync.Mutex
	cfg     Config
	objs    lbObjects
	links   map[string]linkCloser
	destroy destroyer
	tab     slots.Table[lbLb4Key, lbLb4Service]
	closed  bool
}

// normalized is a validated service in kernel form.
type normalized struct {
	key      lbLb4Key
	flags    uint32
	timeout  uint32
	backends []slots.Backend
}

func normalize(s Service) (normalized, error) {
	var n normalized
	vip := s.VIP.Unmap()
	if !vip.Is4() {
		return n, fmt.Errorf("service %s: virtual IP must be IPv4", s)
	}
	if s.Port == 0 {
		return n, fmt.Errorf("service %s: port must not be 0", s)
	}
	if s.Proto != TCP && s.Proto != UDP {
		return n, fmt.Errorf("service %s: protocol must be TCP or UDP", s)
	}
	n.key = lbLb4Key{Vip: slots.IP4(vip), Port: slots.Htons(s.Port), Proto: uint8(s.Proto)}
	switch s.Affinity {
	case None:
	case ClientIP:
		t := s.AffinityTimeout
		if t == 0 {
			t = DefaultAffinityTimeout
		}
		if t < 0 || t > MaxAffinityTimeout {
			return n, fmt.Errorf("service %s: affinity timeout %s is outside 1s..%s", s, s.AffinityTimeout, MaxAffinityTimeout)
		}
		n.flags = flagAffinityClientIP
		n.timeout = uint32((t + time.Second - 1) / time.Second)
	default:
		return n, fmt.Errorf("service %s: affinity must be None or ClientIP", s)
	}
	bs, err := slots.Backends(s.Backends, MaxBackendsPerService)
	if err != nil {
		return n, fmt.Errorf("service %s: %w", s, err)
	}
	n.backends = bs
	return n, nil
}

// Slots returns the id and the backend count of a service entry (slots.Value).
func (v lbLb4Service) Slots() (id, count uint32) { return v.Id, v.Count }

// table is the services of the maps in objs.
func table(objs *lbObjects) slots.Table[lbLb4Key, lbLb4Service] {
	return slots.Table[lbLb4Key, lbLb4Service]{Services: objs.Lb4Services, Backends: objs.Lb4Backends, RR: objs.Lb4Rr,
		IDs: slots.IDs{Max: MaxServices, What: "service"}}
}

func sortServices(svcs []Service) {
	sort.Slice(svcs, func(i, j int) bool {
		a, b := svcs[i], svcs[j]
		if c := a.VIP.Compare(b.VIP); c != 0 {
			return c < 0
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Proto < b.Proto
	})
}

func linkPin(dir, name string) string { return filepath.Join(dir, "link_"+name) }
