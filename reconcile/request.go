package reconcile

import (
	"encoding/json"
	"slices"

	"github.com/shoal-dev/shoal/manifests"
)

// podRequest is what the scheduler needs of a pod, compiled once per
// template (all the pods of a Deployment revision share one).
type podRequest struct {
	res       Resources
	namespace string
	labels    map[string]string
	// nodes is the pod's node selection: nodeSelector, node affinity and
	// tolerations. fitKey is its canonical form; pods with the same fitKey
	// fit the same nodes as far as those go.
	nodes  nodeSelection
	fitKey string
	ports  []hostPort
	// affinity holds the pod's (anti-)affinity terms; nil when it has none.
	affinity *podAffinity
	spread   []spreadConstraint
	// claims are the names of the PersistentVolumeClaims its volumes use.
	claims []string
}

// requestOf compiles what the scheduler needs of a pod in namespace with
// labels and spec.
func requestOf(namespace string, labels map[string]string, spec *manifests.PodSpec) *podRequest {
	req := &podRequest{
		res:       podResources(spec),
		namespace: namespace,
		labels:    labels,
		nodes:     compileNodeSelection(spec),
		ports:     hostPortsOf(spec),
		affinity:  compilePodAffinity(namespace, labels, spec.Affinity),
		spread:    compileSpread(namespace, labels, spec.TopologySpreadConstraints),
		claims:    PodClaims(spec),
	}
	req.fitKey = fitKey(spec)
	return req
}

// fitKey renders what the static node filters depend on: nodeSelector,
// node affinity and tolerations (canonical JSON, map keys sorted).
func fitKey(spec *manifests.PodSpec) string {
	var na *manifests.NodeAffinity
	if spec.Affinity != nil {
		na = spec.Affinity.NodeAffinity
	}
	if len(spec.NodeSelector) == 0 && na == nil && len(spec.Tolerations) == 0 {
		return ""
	}
	b, err := json.Marshal(struct {
		S map[string]string       `json:"s,omitempty"`
		A *manifests.NodeAffinity `json:"a,omitempty"`
		T []manifests.Toleration  `json:"t,omitempty"`
	}{spec.NodeSelector, na, spec.Tolerations})
	if err != nil { // cannot happen for these types; keep the pod apart
		return "\x00unique"
	}
	return string(b)
}

// Requests returns the CPU, memory and ephemeral storage a pod with this
// spec asks for, as the scheduler counts them.
func Requests(spec *manifests.PodSpec) Resources { return podResources(spec) }

// podResources computes a pod's requests as Kubernetes does: the app
// containers and the sidecars (init containers with restartPolicy Always)
// run together; each other init container runs alone beside the sidecars
// started before it; the pod needs the larger of the two, per resource. A
// container that sets only a limit requests its limit.
func podResources(spec *manifests.PodSpec) Resources {
	var total, sidecars, initMax Resources
	for i := range spec.Containers {
		total = total.add(containerRequest(&spec.Containers[i]))
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		r := containerRequest(c)
		if isSidecar(c) {
			total = total.add(r)
			sidecars = sidecars.add(r)
			r = sidecars
		} else {
			r = r.add(sidecars)
		}
		initMax = initMax.max(r)
	}
	return total.max(initMax)
}

func isSidecar(c *manifests.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == manifests.ContainerRestartPolicyAlways
}

func (r Resources) add(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU + o.MilliCPU, Memory: r.Memory + o.Memory, EphemeralStorage: r.EphemeralStorage + o.EphemeralStorage}
}

func (r Resources) sub(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU - o.MilliCPU, Memory: r.Memory - o.Memory, EphemeralStorage: r.EphemeralStorage - o.EphemeralStorage}
}

func (r Resources) max(o Resources) Resources {
	return Resources{MilliCPU: max(r.MilliCPU, o.MilliCPU), Memory: max(r.Memory, o.Memory), EphemeralStorage: max(r.EphemeralStorage, o.EphemeralStorage)}
}

func containerRequest(c *manifests.Container) Resources {
	get := func(name manifests.ResourceName) (manifests.Quantity, bool) {
		if q, ok := c.Resources.Requests[name]; ok {
			return q, true
		}
		q, ok := c.Resources.Limits[name]
		return q, ok
	}
	var r Resources
	if q, ok := get(manifests.ResourceCPU); ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := get(manifests.ResourceMemory); ok {
		r.Memory = q.Value()
	}
	if q, ok := get(manifests.ResourceEphemeralStorage); ok {
		r.EphemeralStorage = q.Value()
	}
	return r
}

// hostPort is a port a pod takes on its node's addresses.
type hostPort struct {
	ip    string // "0.0.0.0" for every address
	proto manifests.Protocol
	port  int32
}

const anyIP = "0.0.0.0"

// hostPortsOf lists the host ports of a pod's containers and sidecars, with
// Kubernetes' defaults: protocol TCP, every address.
func hostPortsOf(spec *manifests.PodSpec) []hostPort {
	var out []hostPort
	add := func(c *manifests.Container) {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			hp := hostPort{ip: p.HostIP, proto: p.Protocol, port: p.HostPort}
			if hp.ip == "" || hp.ip == "::" {
				hp.ip = anyIP
			}
			if hp.proto == "" {
				hp.proto = manifests.ProtocolTCP
			}
			out = append(out, hp)
		}
	}
	for i := range spec.Containers {
		add(&spec.Containers[i])
	}
	for i := range spec.InitContainers {
		if isSidecar(&spec.InitContainers[i]) {
			add(&spec.InitContainers[i])
		}
	}
	return out
}

// conflicts reports whether two host ports cannot both be bound: the same
// protocol and port on the same address, or on any address when one of
// them binds every address.
func (a hostPort) conflicts(b hostPort) bool {
	return a.port == b.port && a.proto == b.proto && (a.ip == b.ip || a.ip == anyIP || b.ip == anyIP)
}

// mergeSelector returns ls with, for each key of in that the pod's labels
// have, "key In (value)" added, and for each key of notIn "key NotIn
// (value)", as Kubernetes merges matchLabelKeys and mismatchLabelKeys. A
// nil selector stays nil (it selects nothing).
func mergeSelector(ls *manifests.LabelSelector, labels map[string]string, in, notIn []string) manifests.Selector {
	if ls != nil && (len(in) > 0 || len(notIn) > 0) {
		merged := manifests.LabelSelector{MatchLabels: ls.MatchLabels, MatchExpressions: slices.Clone(ls.MatchExpressions)}
		for _, k := range in {
			if v, ok := labels[k]; ok {
				merged.MatchExpressions = append(merged.MatchExpressions,
					manifests.LabelSelectorRequirement{Key: k, Operator: manifests.LabelSelectorOpIn, Values: []string{v}})
			}
		}
		for _, k := range notIn {
			if v, ok := labels[k]; ok {
				merged.MatchExpressions = append(merged.MatchExpressions,
					manifests.LabelSelectorRequirement{Key: k, Operator: manifests.LabelSelectorOpNotIn, Values: []string{v}})
			}
		}
		ls = &merged
	}
	sel, err := manifests.SelectorFromLabelSelector(ls)
	if err != nil {
		return manifests.Nothing() // refused by validation; select nothing if it comes
	}
	return sel
}
