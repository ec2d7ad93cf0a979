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
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/shoal-dev/shoal/netplane/internal/slots"
	"net/netip"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
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
	ids    slots.IDs
	closed bool
}

// normalized is a validated service in kernel form.
type normalized struct {
	key      nodeportNp4SvcKey
	backends []nodeportNp4Backend
}

func normalize(s Service) (normalized, error) {
	var n normalized
	if s.NodePort == 0 {
		return n, fmt.Errorf("nodeport %s: port must not be 0", s)
	}
	if s.Proto != TCP && s.Proto != UDP {
		return n, fmt.Errorf("nodeport %s: protocol must be TCP or UDP", s)
	}
	if len(s.Backends) > MaxBackendsPerService {
		return n, fmt.Errorf("nodeport %s: %d backends, at most %d are supported", s, len(s.Backends), MaxBackendsPerService)
	}
	n.key = nodeportNp4SvcKey{Port: htons(s.NodePort), Proto: uint8(s.Proto)}
	seen := make(map[nodeportNp4Backend]bool, len(s.Backends))
	for _, b := range s.Backends {
		a := b.Addr().Unmap()
		if !a.Is4() || b.Port() == 0 {
			return n, fmt.Errorf("nodeport %s: backend %s must be an IPv4 address with a port", s, b)
		}
		kb := nodeportNp4Backend{Ip: ip4(a), Port: htons(b.Port())}
		if seen[kb] {
			continue
		}
		seen[kb] = true
		n.backends = append(n.backends, kb)
	}
	return n, nil
}

// Upsert adds or updates a NodePort. Backend slots are written before the
// backend count grows and deleted after it shrinks, so a new flow never sees
// a half-written service. Flows tracked to a removed backend are forgotten:
// their next packet is balanced again.
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
	var cur nodeportNp4Service
	err = np.objs.Np4Services.Lookup(&n.key, &cur)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return np.insert(svc, n)
	}
	if err != nil {
		return fmt.Errorf("upsert nodeport %s: read service: %w", svc, err)
	}
	old, err := np.slots(cur.Id, cur.Count)
	if err != nil {
		return fmt.Errorf("upsert nodeport %s: %w", svc, err)
	}
	for i, b := range n.backends {
		if i < len(old) && old[i] == b {
			continue
		}
		if err := np.objs.Np4Backends.Update(nodeportNp4SlotKey{Id: cur.Id, Slot: uint32(i)}, b, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("upsert nodeport %s: write backend slot %d: %w", svc, i, err)
		}
	}
	val := nodeportNp4Service{Id: cur.Id, Count: uint32(len(n.backends))}
	if val != cur {
		if err := np.objs.Np4Services.Update(&n.key, &val, ebpf.UpdateExist); err != nil {
			return fmt.Errorf("upsert nodeport %s: write service: %w", svc, err)
		}
	}
	if err := np.deleteSlots(cur.Id, len(n.backends), len(old)); err != nil {
		return fmt.Errorf("upsert nodeport %s: %w", svc, err)
	}
	kept := make(map[nodeportNp4Backend]bool, len(n.backends))
	for _, b := range n.backends {
		kept[b] = true
	}
	removed := make(map[nodeportNp4Backend]bool)
	for _, b := range old {
		if !kept[b] {
			removed[b] = true
		}
	}
	if len(removed) > 0 {
		if err := np.forgetFlows(ctx, cur.Id, removed); err != nil {
			return fmt.Errorf("upsert nodeport %s: %w", svc, err)
		}
	}
	return nil
}

func (np *NodePort) insert(svc Service, n normalized) error {
	id, err := np.ids.Alloc()
	if err != nil {
		return fmt.Errorf("upsert nodeport %s: %w", svc, err)
	}
	fail := func(err error) error {
		_ = np.deleteSlots(id, 0, len(n.backends))
		np.ids.Free(id)
		return fmt.Errorf("upsert nodeport %s: %w", svc, err)
	}
	if err := np.objs.Np4Rr.Update(id, uint32(0), ebpf.UpdateAny); err != nil {
		return fail(fmt.Errorf("reset round-robin position: %w", err))
	}
	for i, b := range n.backends {
		if err := np.objs.Np4Backends.Update(nodeportNp4SlotKey{Id: id, Slot: uint32(i)}, b, ebpf.UpdateAny); err != nil {
			return fail(fmt.Errorf("write backend slot %d: %w", i, err))
		}
	}
	val := nodeportNp4Service{Id: id, Count: uint32(len(n.backends))}
	if err := np.objs.Np4Services.Update(&n.key, &val, ebpf.UpdateNoExist); err != nil {
		return fail(fmt.Errorf("write service: %w", err))
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
	var cur nodeportNp4Service
	err = np.objs.Np4Services.Lookup(&n.key, &cur)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete nodeport %s: read service: %w", svc, err)
	}
	if err := np.objs.Np4Services.Delete(&n.key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete nodeport %s: %w", svc, err)
	}
	if err := np.deleteSlots(cur.Id, 0, int(cur.Count)); err != nil {
		return fmt.Errorf("delete nodeport %s: %w", svc, err)
	}
	np.ids.Free(cur.Id)
	if err := np.forgetFlows(ctx, cur.Id, nil); err != nil {
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
	var (
		key nodeportNp4SvcKey
		val nodeportNp4Service
		out []Service
	)
	it := np.objs.Np4Services.Iterate()
	for it.Next(&key, &val) {
		s := Service{NodePort: ntohs(key.Port), Proto: Proto(key.Proto)}
		slots, err := np.slots(val.Id, val.Count)
		if err != nil {
			return nil, fmt.Errorf("list nodeports: %s: %w", s, err)
		}
		for _, b := range slots {
			s.Backends = append(s.Backends, netip.AddrPortFrom(addr4(b.Ip), ntohs(b.Port)))
		}
		out = append(out, s)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list nodeports: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].NodePort != out[j].NodePort {
			return out[i].NodePort < out[j].NodePort
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

func slotKey(id, slot uint32) nodeportNp4SlotKey { return nodeportNp4SlotKey{Id: id, Slot: slot} }

// slots reads backend slots 0..count-1 of service id.
func (np *NodePort) slots(id, count uint32) ([]nodeportNp4Backend, error) {
	return slots.Read[nodeportNp4SlotKey, nodeportNp4Backend](np.objs.Np4Backends, id, count, slotKey)
}

// deleteSlots deletes the slots from..to-1 of service id and any stale slot after them.
func (np *NodePort) deleteSlots(id uint32, from, to int) error {
	return slots.Delete(np.objs.Np4Backends, id, from, to, slotKey)
}

// forgetFlows deletes the tracked flows of service id that go to one of
// removed (all of them when removed is nil) with their reverse entries.
func (np *NodePort) forgetFlows(ctx context.Context, id uint32, removed map[nodeportNp4Backend]bool) error {
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
		if removed != nil && !removed[nodeportNp4Backend{Ip: val.BackendIp, Port: val.BackendPort}] {
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

func ip4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func htons(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}
