package reconcile

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// TestSchedulingInvariants places random Deployments (node selectors and
// affinity, tolerations, host ports, ephemeral storage, required pod
// affinity and anti-affinity) on random nodes (labels, taints, storage,
// cordons) through random events, and checks after every plan, with the
// test's own simple rules, that each placement the plan makes is allowed
// and that no node is overcommitted or runs conflicting pods.
func TestSchedulingInvariants(t *testing.T) {
	for seed := range uint64(80) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5c4ed))
			checkRandomScheduling(t, rng.IntN, 60)
		})
	}
}

// FuzzScheduling is TestSchedulingInvariants with the choices taken from
// the fuzzer's bytes.
func FuzzScheduling(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("anti-affinity, host ports and taints on five nodes"))
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14"))
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func(n int) int {
			if len(data) == 0 {
				return 0
			}
			v := int(data[0])
			data = data[1:]
			return v % n
		}
		checkRandomScheduling(t, next, min(len(data), 200))
	})
}

var testApps = []string{"a", "b", "c", "d"}

func randomNodes(next func(int) int) []Node {
	n := 2 + next(4)
	var nodes []Node
	for i := range n {
		labels := map[string]string{"zone": fmt.Sprintf("z%d", next(3))}
		if d := next(3); d < 2 {
			labels["disk"] = []string{"ssd", "hdd"}[d]
		}
		node := Node{Name: fmt.Sprintf("n%d", i+1), Ready: true, Labels: labels,
			Allocatable: Resources{MilliCPU: int64(500 + 500*next(4)), Memory: 4 << 30, EphemeralStorage: int64(next(3)) << 30}}
		switch next(5) {
		case 0:
			node.Taints = []Taint{{Taint: manifests.Taint{Key: "dedicated", Value: "x", Effect: manifests.TaintEffectNoSchedule}}}
		case 1:
			node.Taints = []Taint{{Taint: manifests.Taint{Key: "spot", Effect: manifests.TaintEffectPreferNoSchedule}}}
		case 2:
			node.Taints = []Taint{{Taint: manifests.Taint{Key: "evict", Effect: manifests.TaintEffectNoExecute}}}
		}
		nodes = append(nodes, node)
	}
	return nodes
}

// randomDeployment writes a Deployment of app with random scheduling
// constraints.
func randomDeployment(next func(int) int, app string, image int) string {
	var spec strings.Builder
	if next(4) == 0 {
		fmt.Fprintf(&spec, "      nodeSelector: {zone: z%d}\n", next(3))
	}
	if next(3) == 0 {
		spec.WriteString("      tolerations:\n")
		switch next(3) {
		case 0:
			spec.WriteString("      - {key: dedicated, operator: Equal, value: x, effect: NoSchedule}\n")
		case 1:
			spec.WriteString("      - {key: evict, operator: Exists}\n")
		default:
			spec.WriteString("      - {operator: Exists}\n")
		}
	}
	var aff strings.Builder
	if next(4) == 0 {
		aff.WriteString(`        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {key: disk, operator: In, values: [ssd]}
            - matchExpressions:
              - {key: zone, operator: NotIn, values: [z0]}
`)
	}
	if next(3) == 0 {
		fmt.Fprintf(&aff, `        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: %s}}
            topologyKey: kubernetes.io/hostname
`, testApps[next(len(testApps))])
	}
	if next(5) == 0 {
		other := testApps[next(len(testApps))]
		if other != app {
			fmt.Fprintf(&aff, `        podAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: %s}}
            topologyKey: kubernetes.io/hostname
`, other)
		}
	}
	if aff.Len() > 0 {
		spec.WriteString("      affinity:\n" + aff.String())
	}
	ports := ""
	if p := next(4); p < 2 {
		ports = fmt.Sprintf("        ports: [{containerPort: 8080, hostPort: %d}]\n", 80+p)
	}
	storage := ""
	if next(3) == 0 {
		storage = ", ephemeral-storage: 512Mi"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s}
spec:
  replicas: %d
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
%s      containers:
      - name: c
        image: example.com/%s:%d
%s        resources: {requests: {cpu: %dm, memory: 64Mi%s}}
`, app, 1+next(4), app, app, spec.String(), app, image, ports, 100*(1+next(4)), storage)
}

func checkRandomScheduling(t *testing.T, next func(int) int, steps int) {
	t.Helper()
	s := newSim()
	s.nodes = randomNodes(next)
	apps := map[string]string{}
	image := 0
	commit := func() {
		var docs []string
		for _, app := range testApps {
			if y, ok := apps[app]; ok {
				docs = append(docs, y)
			}
		}
		if err := s.applyUnvalidated(strings.Join(docs, "---\n")); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range testApps[:1+next(len(testApps))] {
		image++
		apps[app] = randomDeployment(next, app, image)
	}
	commit()
	var log []string
	for step := range steps {
		var what string
		switch r := next(100); {
		case r < 40:
			what = "reconcile"
		case r < 55:
			what = "report ready"
			_, _ = s.report("*", "ready")
		case r < 65:
			what = "report stopped"
			_, _ = s.report("*", "stopped")
		case r < 72:
			n := &s.nodes[next(len(s.nodes))]
			n.Unschedulable = !n.Unschedulable
			n.Draining = n.Unschedulable && next(2) == 0
			what = fmt.Sprintf("cordon %s %t drain %t", n.Name, n.Unschedulable, n.Draining)
		case r < 78:
			n := &s.nodes[next(len(s.nodes))]
			if len(n.Taints) > 0 {
				n.Taints = nil
			} else {
				n.Taints = []Taint{{Taint: manifests.Taint{Key: "evict", Effect: manifests.TaintEffectNoExecute}, TimeAdded: s.now}}
			}
			what = fmt.Sprintf("taints %s %v", n.Name, n.Taints)
		case r < 90:
			app := testApps[next(len(testApps))]
			image++
			apps[app] = randomDeployment(next, app, image)
			commit()
			what = "change " + app
		default:
			s.now = s.now.Add(time.Duration(1+next(20)) * time.Second)
			what = "tick"
		}
		log = append(log, fmt.Sprintf("%d: %s", step, what))
		if what != "reconcile" {
			continue
		}
		plan := s.reconcile()
		if errs := checkPlacements(s, plan); len(errs) > 0 {
			t.Fatalf("%s\nafter:\n%s\npods:\n%s", strings.Join(errs, "\n"), strings.Join(log[max(0, len(log)-20):], "\n"), s.formatPods())
		}
	}
}

// checkPlacements checks the pods a plan placed, and the nodes after it.
func checkPlacements(s *sim, plan Plan) []string {
	var errs []string
	placed := map[string]bool{}
	for _, a := range plan.Actions {
		switch a := a.(type) {
		case CreatePod:
			if a.Pod.Node != "" {
				placed[a.Pod.UID] = true
			}
		case BindPod:
			placed[a.UID] = true
		}
	}
	running := func(p *Pod) bool {
		return p.Node != "" && p.Phase != manifests.PodFailed && p.Phase != manifests.PodSucceeded
	}
	counted := func(p *Pod) bool { return running(p) && !p.Terminating }
	for i := range s.pods {
		p := &s.pods[i]
		if !placed[p.UID] {
			continue
		}
		n := s.node(p.Node)
		spec := &p.Spec.Spec
		if n == nil || !n.Ready {
			errs = append(errs, fmt.Sprintf("%s placed on missing or not ready node %s", p.Name, p.Node))
			continue
		}
		if n.Unschedulable && (n.Draining || !testTolerates(spec.Tolerations, manifests.Taint{Key: TaintUnschedulable, Effect: manifests.TaintEffectNoSchedule})) {
			errs = append(errs, fmt.Sprintf("%s placed on cordoned node %s", p.Name, n.Name))
		}
		for _, taint := range n.Taints {
			if taint.Effect != manifests.TaintEffectPreferNoSchedule && !testTolerates(spec.Tolerations, taint.Taint) {
				errs = append(errs, fmt.Sprintf("%s placed on %s, whose taint %v it does not tolerate", p.Name, n.Name, taint.Taint))
			}
		}
		for k, v := range spec.NodeSelector {
			if n.Labels[k] != v {
				errs = append(errs, fmt.Sprintf("%s placed on %s against its nodeSelector", p.Name, n.Name))
			}
		}
		if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
			ok := false
			for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
				ok = ok || testTermMatches(term, n.Labels)
			}
			if !ok {
				errs = append(errs, fmt.Sprintf("%s placed on %s against its node affinity", p.Name, n.Name))
			}
		}
		if a := spec.Affinity; a != nil && a.PodAffinity != nil {
			for _, term := range a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
				sel, _ := manifests.SelectorFromLabelSelector(term.LabelSelector)
				found := slices.ContainsFunc(s.pods, func(q Pod) bool {
					return q.UID != p.UID && q.Node == p.Node && counted(&q) && q.Namespace == p.Namespace && sel.Matches(q.Spec.Labels)
				})
				if !found {
					errs = append(errs, fmt.Sprintf("%s placed on %s, where no pod matches its pod affinity", p.Name, n.Name))
				}
			}
		}
	}
	// Per node, after the plan: requests within allocatable, no host port
	// twice, no required anti-affinity broken by a pod placed now.
	for _, n := range s.nodes {
		var used Resources
		ports := map[string]string{}
		var on []*Pod
		for i := range s.pods {
			p := &s.pods[i]
			if p.Node != n.Name || !running(p) {
				continue
			}
			used = used.add(Requests(&p.Spec.Spec))
			for _, c := range p.Spec.Spec.Containers {
				for _, cp := range c.Ports {
					if cp.HostPort == 0 {
						continue
					}
					key := fmt.Sprintf("%d/%s", cp.HostPort, cmpOr(string(cp.Protocol), "TCP"))
					if other, dup := ports[key]; dup && (placed[p.UID] || placed[other]) {
						errs = append(errs, fmt.Sprintf("%s: %s and %s both use host port %s", n.Name, other, p.UID, key))
					}
					ports[key] = p.UID
				}
			}
			if counted(p) {
				on = append(on, p)
			}
		}
		if used.MilliCPU > n.Allocatable.MilliCPU || used.Memory > n.Allocatable.Memory ||
			n.Allocatable.EphemeralStorage > 0 && used.EphemeralStorage > n.Allocatable.EphemeralStorage {
			errs = append(errs, fmt.Sprintf("%s overcommitted: %+v of %+v", n.Name, used, n.Allocatable))
		}
		for _, p := range on {
			a := p.Spec.Spec.Affinity
			if a == nil || a.PodAntiAffinity == nil {
				continue
			}
			for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
				sel, _ := manifests.SelectorFromLabelSelector(term.LabelSelector)
				for _, q := range on {
					if q != p && (placed[p.UID] || placed[q.UID]) && q.Namespace == p.Namespace && sel.Matches(q.Spec.Labels) {
						errs = append(errs, fmt.Sprintf("%s: %s and %s together, against %s's anti-affinity", n.Name, p.Name, q.Name, p.Name))
					}
				}
			}
		}
		// NoExecute: what is not tolerated is being evicted.
		for _, p := range on {
			for _, taint := range n.Taints {
				if taint.Effect == manifests.TaintEffectNoExecute && !testTolerates(p.Spec.Spec.Tolerations, taint.Taint) {
					errs = append(errs, fmt.Sprintf("%s stays on %s with its untolerated NoExecute taint", p.Name, n.Name))
				}
			}
		}
	}
	return errs
}

func cmpOr(a, b string) string {
	if a == "" {
		return b
	}
	return a
}

// testTolerates is the test's own reading of Kubernetes' toleration rules.
func testTolerates(tols []manifests.Toleration, taint manifests.Taint) bool {
	for _, t := range tols {
		keyOK := t.Key == "" || t.Key == taint.Key
		effectOK := t.Effect == "" || t.Effect == taint.Effect
		valueOK := t.Operator == manifests.TolerationOpExists || t.Value == taint.Value
		if keyOK && effectOK && valueOK {
			return true
		}
	}
	return false
}

func testTermMatches(term manifests.NodeSelectorTerm, labels map[string]string) bool {
	if len(term.MatchExpressions) == 0 {
		return false
	}
	for _, e := range term.MatchExpressions {
		v, ok := labels[e.Key]
		in := ok && slices.Contains(e.Values, v)
		switch e.Operator {
		case manifests.NodeSelectorOpIn:
			if !in {
				return false
			}
		case manifests.NodeSelectorOpNotIn:
			if in {
				return false
			}
		default:
			return false
		}
	}
	return true
}
