package podnet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// Protocols of a host port.
const (
	ProtoTCP = "TCP"
	ProtoUDP = "UDP"
)

// HostPort forwards a port of the node to a port of one pod, as the CNI portmap plugin does for
// a container port with a hostPort: traffic to the node's addresses (or to HostIP only) on
// HostPort/Protocol goes to the pod's address on PodPort, whether it comes from another host,
// from the node itself or from a pod.
type HostPort struct {
	// UID is the pod's UID; the pod's address is the one Setup gave it.
	UID string `json:"uid"`
	// Pod is "namespace/name", for messages and the rules' comments.
	Pod string `json:"pod,omitempty"`
	// Protocol is "TCP" or "UDP".
	Protocol string `json:"protocol"`
	// HostIP limits the port to one address of the node; the zero value or 0.0.0.0 means every
	// address of the node (127.0.0.1 included).
	HostIP   netip.Addr `json:"hostIP,omitzero"`
	HostPort uint16     `json:"hostPort"`
	PodPort  uint16     `json:"podPort"`
}

// String is "0.0.0.0:8080/TCP -> ns/name:80".
func (h HostPort) String() string {
	return fmt.Sprintf("%s/%s -> %s:%d", netip.AddrPortFrom(h.hostIP(), h.HostPort), h.Protocol, h.Pod, h.PodPort)
}

// hostIP returns HostIP with the zero value as 0.0.0.0.
func (h HostPort) hostIP() netip.Addr {
	if !h.HostIP.IsValid() {
		return netip.IPv4Unspecified()
	}
	return h.HostIP
}

// wildcard reports whether h listens on every address of the node.
func (h HostPort) wildcard() bool { return h.hostIP().IsUnspecified() }

// overlaps reports whether h and o would catch the same packets: same protocol and port, and
// one of them on every address or both on the same one.
func (h HostPort) overlaps(o HostPort) bool {
	return h.Protocol == o.Protocol && h.HostPort == o.HostPort &&
		(h.wildcard() || o.wildcard() || h.hostIP() == o.hostIP())
}

// check says what is wrong with h, if anything.
func (h HostPort) check() error {
	switch {
	case h.UID == "":
		return errors.New("no pod uid")
	case h.Protocol != ProtoTCP && h.Protocol != ProtoUDP:
		return fmt.Errorf("protocol %q is not supported for host ports; use TCP or UDP", h.Protocol)
	case h.HostPort == 0:
		return errors.New("hostPort 0")
	case h.PodPort == 0:
		return errors.New("containerPort 0")
	case h.HostIP.IsValid() && !h.HostIP.Unmap().Is4():
		return fmt.Errorf("hostIP %s is not an IPv4 address: the pod network is IPv4 only; use an IPv4 hostIP or leave it empty", h.HostIP)
	}
	return nil
}

// RefusedHostPort is a host port that SetHostPorts did not program, and why.
type RefusedHostPort struct {
	HostPort
	Reason string
}

// hostPortsFile keeps the node's host ports in the state dir, so that New programs them again
// at once after a daemon restart, before anybody calls SetHostPorts.
const hostPortsFile = "hostports.json"

// SetHostPorts declares every host port of the node: the set replaces the one of the last call
// (ports of pods that are not in it are removed). A pod's ports are forwarded while the pod has
// an address: at once for a pod that is set up, from Setup on for one that is not yet, until its
// Teardown. The set is kept in the state dir and programmed again by New after a restart.
//
// Two ports that catch the same packets (same protocol and port, on the same address or one of
// them on every address) never both take effect: a port already programmed keeps it, else the
// earlier in ports wins; the others come back as refused, as do invalid ones. SetHostPorts is
// idempotent and changes the node's rules only when the forwarded set changes.
func (n *Net) SetHostPorts(ctx context.Context, ports []HostPort) ([]RefusedHostPort, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("set host ports: the pod network is closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	accepted, refused := ResolveHostPorts(n.hostPorts, ports)
	if !slices.Equal(accepted, n.hostPorts) {
		if err := n.saveHostPorts(accepted); err != nil {
			return refused, fmt.Errorf("set host ports: %w", err)
		}
		n.hostPorts = accepted
	}
	if err := n.writeTableIfChanged(); err != nil {
		return refused, fmt.Errorf("set host ports: %w", err)
	}
	return refused, nil
}

// HostPorts returns the host ports SetHostPorts accepted last.
func (n *Net) HostPorts() []HostPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.hostPorts)
}

// ResolveHostPorts is the choice SetHostPorts makes: it drops invalid ports and ports that
// overlap one taken before, giving the ports of prev (those accepted by the last call)
// precedence over new ones. The accepted ports are sorted.
func ResolveHostPorts(prev, ports []HostPort) (accepted []HostPort, refused []RefusedHostPort) {
	held := map[HostPort]bool{}
	for _, p := range prev {
		held[p] = true
	}
	order := make([]HostPort, 0, len(ports))
	for _, p := range ports {
		if p.HostIP.IsValid() {
			p.HostIP = p.HostIP.Unmap()
		}
		order = append(order, p)
	}
	// Stable: ports held before first, then the caller's order.
	slices.SortStableFunc(order, func(a, b HostPort) int {
		switch {
		case held[a] == held[b]:
			return 0
		case held[a]:
			return -1
		default:
			return 1
		}
	})
	seen := map[HostPort]bool{}
	for _, p := range order {
		if seen[p] {
			continue // the same port given twice
		}
		seen[p] = true
		if err := p.check(); err != nil {
			refused = append(refused, RefusedHostPort{p, err.Error()})
			continue
		}
		if i := slices.IndexFunc(accepted, p.overlaps); i >= 0 {
			o := accepted[i]
			refused = append(refused, RefusedHostPort{p, fmt.Sprintf("hostPort %d/%s on %s is already used by pod %s on this node (%s)",
				p.HostPort, p.Protocol, p.hostIP(), o.Pod, o.hostIP())})
			continue
		}
		accepted = append(accepted, p)
	}
	slices.SortFunc(accepted, compareHostPorts)
	return accepted, refused
}

func compareHostPorts(a, b HostPort) int {
	return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.HostPort, b.HostPort),
		a.hostIP().Compare(b.hostIP()), cmp.Compare(a.UID, b.UID), cmp.Compare(a.PodPort, b.PodPort))
}

func (n *Net) hostPortsPath() string { return filepath.Join(n.cfg.StateDir, hostPortsFile) }

func (n *Net) saveHostPorts(ports []HostPort) error {
	if ports == nil {
		ports = []HostPort{}
	}
	data, err := json.Marshal(ports)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(n.hostPortsPath(), data); err != nil {
		return fmt.Errorf("save host ports: %w", err)
	}
	return nil
}

// loadHostPorts reads the saved host ports; a missing file is an empty set. Entries that do not
// check out (a file from another version, or edited by hand) are dropped.
func (n *Net) loadHostPorts() error {
	data, err := os.ReadFile(n.hostPortsPath())
	if errors.Is(err, os.ErrNotExist) {
		n.hostPorts = nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("load host ports: %w", err)
	}
	ports, err := parseHostPorts(data)
	if err != nil {
		return fmt.Errorf("load host ports from %s: %w; remove the file, the node agent declares the ports again", n.hostPortsPath(), err)
	}
	n.hostPorts, _ = ResolveHostPorts(nil, ports)
	return nil
}

// parseHostPorts decodes a host ports file.
func parseHostPorts(data []byte) ([]HostPort, error) {
	var ports []HostPort
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ports); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode: trailing data")
	}
	return ports, nil
}

// forwardedPort is a host port of a pod that has an address.
type forwardedPort struct {
	Port HostPort
	Addr netip.Addr
}

// forwarded returns the accepted host ports of the pods that have an address now, sorted.
func (n *Net) forwarded() []forwardedPort {
	var out []forwardedPort
	for _, p := range n.hostPorts {
		if addr, ok := n.ipam.lookup(p.UID); ok {
			out = append(out, forwardedPort{p, addr})
		}
	}
	return out
}

// writeTableIfChanged writes the node's table when the forwarded ports differ from what the
// table holds.
func (n *Net) writeTableIfChanged() error {
	fw := n.forwarded()
	if n.tableWritten && slices.Equal(fw, n.tablePorts) {
		return nil
	}
	return n.writeTable(fw)
}
