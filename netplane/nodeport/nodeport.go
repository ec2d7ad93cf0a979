// Package nodeport makes Kubernetes NodePort Services reachable: TCP and
// UDP packets to <node address>:<NodePort> that arrive on the node's
// external interface go to one of the Service's backends, pods on this node
// or on other nodes, as Cilium's kube-proxy replacement does with tc
// programs.
//
// Two eBPF programs (bpf/nodeport.c) are attached to the external interface
// with tcx, one on ingress and one on egress:
//
//   - The first packet of a flow to NodeIP:NodePort picks a backend
//     round-robin. The choice is kept in a connection-tracking LRU map keyed
//     by the flow's 5-tuple, so all packets of a connection (or of a UDP
//     flow) reach the same backend. The destination is rewritten to the
//     backend and the IP and TCP/UDP checksums are fixed up.
//   - A backend on this node (the route to it does not leave through the
//     external interface: the pod bridge) keeps the client's address as
//     source; the stack forwards the packet, so the node must forward IPv4
//     (Shoal's pod network turns that on). Its replies leave through the
//     external interface, where the egress program gives them
//     NodeIP:NodePort as source again.
//   - A backend on another node (its pod CIDR is routed through the
//     external interface) gets the packet with the source rewritten to
//     NodeIP and a free port (the client's own port when it is not taken),
//     so its replies come back to this node. The ingress program recognises
//     them by a reverse NAT map, restores NodeIP:NodePort -> client and
//     sends them back out. Packets whose source is NodeIP cannot go through
//     the stack's forwarding (they would be dropped as martians), so both
//     directions are sent out with bpf_redirect_neigh, which resolves the
//     next hop.
//
// A NodePort whose Service has no backends drops new flows: a TCP client
// sees its connection attempt time out, a UDP client gets no answer. After
// Delete, the port is no longer translated and the node answers as for any
// closed port (TCP reset, ICMP port unreachable). Removing a backend or
// deleting a Service also forgets the flows tracked to it.
//
// Requirements and limits: Linux 6.6 or newer (tcx links); IPv4 over an
// Ethernet interface; other nodes and clients are reached through the
// external interface; IP fragments are not translated; the node itself
// and its pods reaching their own NodePort are not handled here (socket-level
// load balancing covers ClusterIPs). Maps and links are pinned in a bpffs
// directory: translation keeps working while the daemon is down, and Open
// re-adopts the pins after a restart.
package nodeport

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/shoal-dev/shoal/netplane/internal/slots"
)

// Proto is the transport protocol of a NodePort.
type Proto uint8

// The protocols a NodePort can have (IANA protocol numbers).
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

// Limits.
const (
	// MaxServices is the number of NodePorts one instance holds.
	MaxServices = 4095
	// MaxBackendsPerService bounds the backends of one NodePort.
	MaxBackendsPerService = 4096
)

// Service is one NodePort: traffic to the node's address and NodePort over
// Proto goes to one of Backends.
type Service struct {
	NodePort uint16
	Proto    Proto
	Backends []netip.AddrPort
}

// String names the service as :port/proto.
func (s Service) String() string {
	return fmt.Sprintf(":%d/%s", s.NodePort, s.Proto)
}

// Config says where an instance attaches and pins.
type Config struct {
	// Interface is the node's external interface, e.g. "eth0": the one
	// that holds NodeIP and through which clients and other nodes are
	// reached.
	Interface string
	// NodeIP is the node's IPv4 address on Interface.
	NodeIP netip.Addr
	// PinDir is a directory in bpffs, e.g. /sys/fs/bpf/shoal/<node>/nodeport.
	// bpffs is mounted at /sys/fs/bpf when it is missing there.
	PinDir string
	// NetNS is the path of the network namespace that holds Interface;
	// empty means the caller's.
	NetNS string
}

// ErrClosed is returned by the methods of a NodePort after Close or Remove.
var ErrClosed = errors.New("nodeport is closed")

// NodePort is an instance attached to one interface. Its methods are safe
// for concurrent use.
type NodePort struct {
	mu     sync.Mutex
	cfg    Config
	objs   nodeportObjects
	links  map[string]linkCloser
	tab    slots.Table[nodeportNp4SvcKey, nodeportNp4Service]
	closed bool
}

// normalized is a validated service in kernel form.
type normalized struct {
	key      nodeportNp4SvcKey
	backends []slots.Backend
}

func normalize(s Service) (normalized, error) {
	var n normalized
	if s.NodePort == 0 {
		return n, fmt.Errorf("nodeport %s: port must not be 0", s)
	}
	if s.Proto != TCP && s.Proto != UDP {
		return n, fmt.Errorf("nodeport %s: protocol must be TCP or UDP", s)
	}
	n.key = nodeportNp4SvcKey{Port: slots.Htons(s.NodePort), Proto: uint8(s.Proto)}
	bs, err := slots.Backends(s.Backends, MaxBackendsPerService)
	if err != nil {
		return n, fmt.Errorf("nodeport %s: %w", s, err)
	}
	n.backends = bs
	return n, nil
}

// Slots returns the id and the backend count of a service entry (slots.Value).
func (v nodeportNp4Service) Slots() (id, count uint32) { return v.Id, v.Count }

// table is the services of the maps in objs.
func table(objs *nodeportObjects) slots.Table[nodeportNp4SvcKey, nodeportNp4Service] {
	return slots.Table[nodeportNp4SvcKey, nodeportNp4Service]{Services: objs.Np4Services, Backends: objs.Np4Backends, RR: objs.Np4Rr,
		IDs: slots.IDs{Max: MaxServices, What: "nodeport"}}
}

// Upsert adds or updates a NodePort. Backend slots are written before the
// backend count grows and deleted after it shrinks, and the backends that
// stay keep their slots, so a new flow never sees a half-written service.
// Flows tracked to a removed backend are forgotten: their next packet is
// balanced again.
func (np *NodePort) Upsert(ctx context.Context, svc Service) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := normalize(svc)
	if err != nil {
		return err
	}
	np.mu.Lock()
	defer np.mu.Unlock()
	if np.closed {
		return ErrClosed
	}
	ch, err := np.tab.Upsert(n.key, n.backends, func(id, count uint32) nodeportNp4Service {
		return nodeportNp4Service{Id: id, Count: count}
	})
	if err != nil {
		return fmt.Errorf("upsert nodeport %s: %w", svc, err)
	}
	if len(ch.Removed) > 0 {
		removed := make(map[slots.Backend]bool, len(ch.Removed))
		for _, b := range ch.Removed {
			removed[b] = true
		}
		if err := np.forgetFlows(ctx, ch.Old.Id, removed); err != nil {
			return fmt.Errorf("upsert nodeport %s: %w", svc, err)
		}
	}
	return nil
}

// Delete removes the NodePort port/proto and forgets its flows; deleting a
// missing NodePort is no error.
func (np *NodePort) Delete(ctx context.Context, port uint16, proto Proto) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	svc := Service{NodePort: port, Proto: proto}
	n, err := normalize(svc)
	if err != nil {
		return err
	}
	np.mu.Lock()
	defer np.mu.Unlock()
	if np.closed {
		return ErrClosed
	}
	old, _, found, err := np.tab.Delete(n.key)
	if err != nil {
		return fmt.Errorf("delete nodeport %s: %w", svc, err)
	}
	if !found {
		return nil
	}
	if err := np.forgetFlows(ctx, old.Id, nil); err != nil {
		return fmt.Errorf("delete nodeport %s: %w", svc, err)
	}
	return nil
}

// Services returns the NodePorts the kernel maps hold, sorted by port and
// protocol.
func (np *NodePort) Services() ([]Service, error) {
	np.mu.Lock()
	defer np.mu.Unlock()
	if np.closed {
		return nil, ErrClosed
	}
	entries, err := np.tab.List()
	if err != nil {
		return nil, fmt.Errorf("list nodeports: %w", err)
	}
	out := make([]Service, 0, len(entries))
	for _, e := range entries {
		s := Service{NodePort: slots.Ntohs(e.Key.Port), Proto: Proto(e.Key.Proto)}
		for _, b := range e.Backends {
			s.Backends = append(s.Backends, b.AddrPort())
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].NodePort != out[j].NodePort {
			return out[i].NodePort < out[j].NodePort
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

// forgetFlows deletes the tracked flows of service id that go to one of
// removed (all of them when removed is nil) with their reverse entries.
func (np *NodePort) forgetFlows(ctx context.Context, id uint32, removed map[slots.Backend]bool) error {
	var (
		key  nodeportNp4Tuple
		val  nodeportNp4Ct
		dels []nodeportNp4Tuple
		revs []nodeportNp4Tuple
	)
	it := np.objs.Np4Ct.Iterate()
	for it.Next(&key, &val) {
		if val.Id != id {
			continue
		}
		if removed != nil && !removed[slots.Backend{IP: val.BackendIp, Port: val.BackendPort}] {
			continue
		}
		dels = append(dels, key)
		rev := nodeportNp4Tuple{Saddr: val.BackendIp, Sport: val.BackendPort, Daddr: key.Saddr, Dport: key.Sport, Proto: key.Proto}
		if val.Flags&flagSNAT != 0 {
			rev.Daddr, rev.Dport = key.Daddr, val.SnatPort
		}
		revs = append(revs, rev)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read tracked flows: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range dels {
		if err := np.objs.Np4Ct.Delete(&dels[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forget tracked flow: %w", err)
		}
		if err := np.objs.Np4Rev.Delete(&revs[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("forget tracked flow: %w", err)
		}
	}
	return nil
}

// flagSNAT marks flows to backends on other nodes (NP_FLAG_SNAT).
const flagSNAT = 1
