package cluster

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// HostPort is one container port with a hostPort of a pod on this node.
type HostPort struct {
	UID string
	// Pod is "namespace/name".
	Pod      string
	Protocol manifests.Protocol // TCP or UDP
	// HostIP is the node address the port is on; "" or 0.0.0.0 for every address.
	HostIP        string
	HostPort      int32
	ContainerPort int32
}

func (h HostPort) hostIP() string {
	if h.HostIP == "" {
		return "0.0.0.0"
	}
	return h.HostIP
}

// overlaps reports whether h and o would catch the same packets.
func (h HostPort) overlaps(o HostPort) bool {
	if h.Protocol != o.Protocol || h.HostPort != o.HostPort {
		return false
	}
	a, errA := netip.ParseAddr(h.hostIP())
	b, errB := netip.ParseAddr(o.hostIP())
	if errA != nil || errB != nil {
		return h.hostIP() == o.hostIP()
	}
	a, b = a.Unmap(), b.Unmap()
	return a.IsUnspecified() || b.IsUnspecified() || a == b
}

// HostPortForwarder forwards the node's host ports to its pods: the pod network.
type HostPortForwarder interface {
	// SetHostPorts declares every host port of the node (the set replaces the last one). Ports
	// of pods whose network is not set up yet take effect when it is. It returns, by pod UID, why
	// ports it did not forward were refused.
	SetHostPorts(ctx context.Context, ports []HostPort) (refused map[string]string, err error)
}

// ReasonNodePorts is the status reason of a pod the node refused because its host ports are
// taken, as the kubelet's admission says it.
const ReasonNodePorts = "NodePorts"

// podHostPorts returns the host ports the pod's containers ask for.
func podHostPorts(spec runtime.PodSpec) []HostPort {
	p := spec.Pod
	if p == nil {
		return nil
	}
	var out []HostPort
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.HostPort == 0 {
				continue
			}
			proto := port.Protocol
			if proto == "" {
				proto = manifests.ProtocolTCP
			}
			out = append(out, HostPort{UID: spec.UID, Pod: p.Namespace + "/" + p.Name, Protocol: proto,
				HostIP: port.HostIP, HostPort: port.HostPort, ContainerPort: port.ContainerPort})
		}
	}
	return out
}

// hostPortPod is a pod with host ports, as admission sees it.
type hostPortPod struct {
	pl      Placement
	ports   []HostPort
	running bool // the runtime has it
}

// hostPortDecision is what admission made of the pods with host ports.
type hostPortDecision struct {
	admitted []string          // UIDs, in the order their ports were taken
	rejected map[string]string // UID -> status message
	waiting  map[string]bool   // UIDs whose ports a terminating pod still holds
}

// admitHostPorts decides which pods may run on a node whose host ports they share, as the
// kubelet's admission does: a pod whose host ports overlap those of a pod the node runs (or
// admitted earlier) is refused. Pods the runtime has, or that were admitted before (decided),
// come first, then by creation time; decided keeps the earlier verdicts (UID -> "" admitted or
// the rejection message). A pod that clashes only with a terminating pod waits for it to go.
// node is the node's name, for messages; noNetwork refuses every pod with a host port.
func admitHostPorts(node string, pods []hostPortPod, decided map[string]string, noNetwork bool) hostPortDecision {
	d := hostPortDecision{rejected: map[string]string{}, waiting: map[string]bool{}}
	holds := func(p hostPortPod) bool {
		msg, ok := decided[p.pl.Spec.UID]
		return p.running || ok && msg == ""
	}
	slices.SortStableFunc(pods, func(a, b hostPortPod) int {
		if ha, hb := holds(a), holds(b); ha != hb {
			if ha {
				return -1
			}
			return 1
		}
		return cmp.Or(a.pl.Created.Compare(b.pl.Created), cmp.Compare(a.pl.Spec.UID, b.pl.Spec.UID))
	})
	var held []HostPort
	var terminating []HostPort
	for _, p := range pods {
		uid := p.pl.Spec.UID
		if p.pl.Terminating {
			if p.running {
				terminating = append(terminating, p.ports...)
			}
			continue
		}
		if msg, ok := decided[uid]; ok && msg != "" {
			d.rejected[uid] = msg
			continue
		}
		_, wasAdmitted := decided[uid]
		if !p.running && !wasAdmitted {
			if noNetwork {
				d.rejected[uid] = fmt.Sprintf("Pod was rejected: node %s runs without a pod network (--pod-network none), so hostPort %s cannot be forwarded; "+
					"run pods with host ports on nodes with the bridge network", node, describeHostPort(p.ports[0]))
				continue
			}
			if o, mine, ok := firstOverlap(p.ports, held); ok {
				d.rejected[uid] = fmt.Sprintf("Pod was rejected: hostPort %s is already used by pod %s on node %s; "+
					"choose another hostPort, or let the scheduler place the pod on a node where the port is free", describeHostPort(mine), o.Pod, node)
				continue
			}
			if _, _, ok := firstOverlap(p.ports, terminating); ok {
				d.waiting[uid] = true
				continue
			}
		}
		held = append(held, p.ports...)
		d.admitted = append(d.admitted, uid)
	}
	return d
}

// firstOverlap finds a port of ports that overlaps one of held.
func firstOverlap(ports, held []HostPort) (other, mine HostPort, ok bool) {
	for _, p := range ports {
		for _, h := range held {
			if p.overlaps(h) {
				return h, p, true
			}
		}
	}
	return HostPort{}, HostPort{}, false
}

func describeHostPort(h HostPort) string {
	return fmt.Sprintf("%d/%s on %s", h.HostPort, h.Protocol, h.hostIP())
}

// hostPortAdmission runs admission over the placed pods and declares the admitted pods' host
// ports to the network plane. It returns the UIDs the agent must not start now.
func (a *Agent) hostPortAdmission(ctx context.Context, placed map[string]Placement, have map[string]runtime.PodState) map[string]bool {
	var pods []hostPortPod
	byUID := map[string][]HostPort{}
	for uid, pl := range placed {
		ports := podHostPorts(pl.Spec)
		if len(ports) == 0 {
			continue
		}
		_, running := have[uid]
		pods = append(pods, hostPortPod{pl: pl, ports: ports, running: running})
		byUID[uid] = ports
		if !running && !pl.Terminating {
			a.recallRejection(ctx, uid)
		}
	}
	a.mu.Lock()
	decided := make(map[string]string, len(a.hostPortVerdicts))
	for k, v := range a.hostPortVerdicts {
		decided[k] = v
	}
	a.mu.Unlock()
	d := admitHostPorts(a.cfg.Node, pods, decided, a.cfg.HostPorts == nil)
	skip := map[string]bool{}
	a.mu.Lock()
	for _, uid := range d.admitted {
		a.hostPortVerdicts[uid] = ""
	}
	for uid, msg := range d.rejected {
		a.hostPortVerdicts[uid] = msg
		skip[uid] = true
	}
	a.mu.Unlock()
	for uid := range d.waiting {
		skip[uid] = true
	}
	for uid, msg := range d.rejected {
		a.reportRejected(ctx, placed[uid], msg)
	}
	if a.cfg.HostPorts == nil {
		return skip
	}
	var declare []HostPort
	for _, uid := range d.admitted {
		declare = append(declare, byUID[uid]...)
	}
	for _, p := range pods { // terminating pods keep their ports until their network goes
		if p.pl.Terminating && p.running {
			declare = append(declare, p.ports...)
		}
	}
	refused, err := a.cfg.HostPorts.SetHostPorts(ctx, declare)
	if err != nil {
		a.log.Warn("host ports", "err", err)
	}
	a.mu.Lock()
	a.hostPortNotes = refused
	a.mu.Unlock()
	return skip
}

// recallRejection loads the verdict of a pod this agent refused before it restarted: a pod once
// refused stays refused, as in Kubernetes.
func (a *Agent) recallRejection(ctx context.Context, uid string) {
	a.mu.Lock()
	_, known := a.hostPortVerdicts[uid]
	a.mu.Unlock()
	if known {
		return
	}
	rec, _, found, err := store.Get[PodStatusRecord](ctx, a.cfg.Store, statusKey(a.cfg.Node, uid))
	if err != nil || !found || rec.Status.Phase != manifests.PodFailed || rec.Status.Reason != ReasonNodePorts {
		return
	}
	a.mu.Lock()
	a.hostPortVerdicts[uid] = rec.Status.Message
	a.mu.Unlock()
}

// reportRejected writes the status of a pod the node refused: Failed, reason NodePorts.
func (a *Agent) reportRejected(ctx context.Context, pl Placement, msg string) {
	uid := pl.Spec.UID
	digest := "rejected:" + msg
	a.mu.Lock()
	done := a.reported[uid] == digest
	a.mu.Unlock()
	if done {
		return
	}
	var ns, name string
	if pl.Spec.Pod != nil {
		ns, name = pl.Spec.Pod.Namespace, pl.Spec.Pod.Name
	}
	a.log.Warn("pod refused: its host ports are taken", "pod", podName(pl), "reason", msg)
	rec := PodStatusRecord{UID: uid, Namespace: ns, Name: name, Node: a.cfg.Node, Reported: time.Now(),
		Status: manifests.PodStatus{Phase: manifests.PodFailed, Reason: ReasonNodePorts, Message: msg}}
	if err := store.Put(ctx, a.cfg.Store, statusKey(a.cfg.Node, uid), rec); err != nil {
		a.log.Debug("report status", "pod", podName(pl), "err", err)
		return
	}
	a.mu.Lock()
	a.reported[uid] = digest
	delete(a.lastStatus, uid)
	a.mu.Unlock()
}

// withHostPortNote adds to a running pod's status why the network plane did not forward its
// host ports (note; for two pods that were both running before they met on this node).
func withHostPortNote(st manifests.PodStatus, note string) manifests.PodStatus {
	if note == "" {
		return st
	}
	msg := "hostPort not forwarded: " + note
	if st.Message != "" && !strings.Contains(st.Message, msg) {
		msg = st.Message + "; " + msg
	}
	st.Message = msg
	return st
}
