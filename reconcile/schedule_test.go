package reconcile

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

func TestNodeTermMatches(t *testing.T) {
	labels := map[string]string{"zone": "a", "cores": "16", "size": "big"}
	req := func(key string, op manifests.NodeSelectorOperator, values ...string) manifests.NodeSelectorRequirement {
		return manifests.NodeSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	tests := []struct {
		name  string
		term  manifests.NodeSelectorTerm
		match bool
	}{
		{"empty term matches nothing", manifests.NodeSelectorTerm{}, false},
		{"In", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "In", "a", "b")}}, true},
		{"In other value", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "In", "b")}}, false},
		{"In missing label", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("disk", "In", "ssd")}}, false},
		{"NotIn", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "NotIn", "b")}}, true},
		{"NotIn its value", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "NotIn", "a")}}, false},
		{"NotIn missing label", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("disk", "NotIn", "ssd")}}, true},
		{"Exists", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "Exists")}}, true},
		{"Exists missing", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("disk", "Exists")}}, false},
		{"DoesNotExist", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("disk", "DoesNotExist")}}, true},
		{"DoesNotExist present", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "DoesNotExist")}}, false},
		{"Gt", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("cores", "Gt", "8")}}, true},
		{"Gt equal", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("cores", "Gt", "16")}}, false},
		{"Lt", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("cores", "Lt", "32")}}, true},
		{"Lt smaller", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("cores", "Lt", "4")}}, false},
		{"Gt label no number", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("size", "Gt", "1")}}, false},
		{"Gt value no number", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("cores", "Gt", "x")}}, false},
		{"Lt missing label", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("disk", "Lt", "1")}}, false},
		{"unknown operator", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "Like", "a")}}, false},
		{"expressions ANDed", manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "In", "a"), req("cores", "Gt", "20")}}, false},
		{"matchFields name", manifests.NodeSelectorTerm{MatchFields: []manifests.NodeSelectorRequirement{req("metadata.name", "In", "n1")}}, true},
		{"matchFields other name", manifests.NodeSelectorTerm{MatchFields: []manifests.NodeSelectorRequirement{req("metadata.name", "NotIn", "n1")}}, false},
		{"matchFields and expressions", manifests.NodeSelectorTerm{
			MatchExpressions: []manifests.NodeSelectorRequirement{req("zone", "In", "a")},
			MatchFields:      []manifests.NodeSelectorRequirement{req("metadata.name", "In", "n2")}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term, ok := compileNodeTerm(&tt.term)
			got := ok && term.matches("n1", labels)
			if got != tt.match {
				t.Errorf("matches = %t, want %t", got, tt.match)
			}
		})
	}
}

func TestNodeSelection(t *testing.T) {
	in := func(key string, values ...string) manifests.NodeSelectorTerm {
		return manifests.NodeSelectorTerm{MatchExpressions: []manifests.NodeSelectorRequirement{{Key: key, Operator: "In", Values: values}}}
	}
	tests := []struct {
		name     string
		selector map[string]string
		terms    []manifests.NodeSelectorTerm // nil: no required node affinity
		match    bool
	}{
		{"nothing asked", nil, nil, true},
		{"selector", map[string]string{"zone": "a"}, nil, true},
		{"selector misses", map[string]string{"zone": "b"}, nil, false},
		{"terms ORed", nil, []manifests.NodeSelectorTerm{in("zone", "b"), in("disk", "ssd")}, true},
		{"no term matches", nil, []manifests.NodeSelectorTerm{in("zone", "b")}, false},
		{"only empty terms", nil, []manifests.NodeSelectorTerm{{}}, false},
		{"no terms", nil, []manifests.NodeSelectorTerm{}, false},
		{"selector and affinity both hold", map[string]string{"disk": "ssd"}, []manifests.NodeSelectorTerm{in("zone", "a")}, true},
		{"affinity holds, selector not", map[string]string{"disk": "hdd"}, []manifests.NodeSelectorTerm{in("zone", "a")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := manifests.PodSpec{NodeSelector: tt.selector}
			if tt.terms != nil {
				spec.Affinity = &manifests.Affinity{NodeAffinity: &manifests.NodeAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: &manifests.NodeSelector{NodeSelectorTerms: tt.terms}}}
			}
			sel := compileNodeSelection(&spec)
			if got := sel.matchesNode("n1", map[string]string{"zone": "a", "disk": "ssd"}); got != tt.match {
				t.Errorf("matchesNode = %t, want %t", got, tt.match)
			}
		})
	}
}

func TestTolerates(t *testing.T) {
	taint := manifests.Taint{Key: "dedicated", Value: "db", Effect: manifests.TaintEffectNoSchedule}
	tests := []struct {
		name string
		tol  manifests.Toleration
		want bool
	}{
		{"equal", manifests.Toleration{Key: "dedicated", Operator: "Equal", Value: "db", Effect: "NoSchedule"}, true},
		{"operator defaults to Equal", manifests.Toleration{Key: "dedicated", Value: "db"}, true},
		{"other value", manifests.Toleration{Key: "dedicated", Value: "web"}, false},
		{"no value", manifests.Toleration{Key: "dedicated"}, false},
		{"exists", manifests.Toleration{Key: "dedicated", Operator: "Exists"}, true},
		{"other key", manifests.Toleration{Key: "gpu", Operator: "Exists"}, false},
		{"other effect", manifests.Toleration{Key: "dedicated", Operator: "Exists", Effect: "NoExecute"}, false},
		{"empty key exists tolerates all", manifests.Toleration{Operator: "Exists"}, true},
		{"empty key exists, effect", manifests.Toleration{Operator: "Exists", Effect: "NoSchedule"}, true},
		{"unknown operator", manifests.Toleration{Key: "dedicated", Operator: "Like", Value: "db"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tolerates(&tt.tol, &taint); got != tt.want {
				t.Errorf("tolerates = %t, want %t", got, tt.want)
			}
		})
	}
}

func TestNoExecuteVerdict(t *testing.T) {
	now := time.Unix(10_000, 0)
	secs := func(s int64) *int64 { return &s }
	taint := func(key string, effect manifests.TaintEffect, added time.Time) Taint {
		return Taint{Taint: manifests.Taint{Key: key, Effect: effect}, TimeAdded: added}
	}
	tol := func(key string, s *int64) manifests.Toleration {
		return manifests.Toleration{Key: key, Operator: "Exists", Effect: "NoExecute", TolerationSeconds: s}
	}
	created := now.Add(-time.Hour)
	tests := []struct {
		name      string
		taints    []Taint
		tols      []manifests.Toleration
		created   time.Time
		wantEvict string
		wantWait  time.Duration
	}{
		{"no taints", nil, nil, created, "", 0},
		{"NoSchedule only", []Taint{taint("a", "NoSchedule", now)}, nil, created, "", 0},
		{"untolerated", []Taint{taint("a", "NoExecute", now)}, nil, created, "a", 0},
		{"tolerated for ever", []Taint{taint("a", "NoExecute", now)}, []manifests.Toleration{tol("a", nil)}, created, "", 0},
		{"tolerated a while after the taint", []Taint{taint("a", "NoExecute", now.Add(-20*time.Second))},
			[]manifests.Toleration{tol("a", secs(60))}, created, "", 40 * time.Second},
		{"time is up", []Taint{taint("a", "NoExecute", now.Add(-60*time.Second))},
			[]manifests.Toleration{tol("a", secs(60))}, created, "a", 0},
		{"counted from a later pod", []Taint{taint("a", "NoExecute", now.Add(-time.Hour))},
			[]manifests.Toleration{tol("a", secs(60))}, now.Add(-50 * time.Second), "", 10 * time.Second},
		{"zero seconds evict at once", []Taint{taint("a", "NoExecute", now)}, []manifests.Toleration{tol("a", secs(0))}, created, "a", 0},
		{"unknown time: from the pod", []Taint{taint("a", "NoExecute", time.Time{})}, []manifests.Toleration{tol("a", secs(7200))}, created, "", time.Hour},
		{"the shortest wait", []Taint{taint("a", "NoExecute", now), taint("b", "NoExecute", now)},
			[]manifests.Toleration{tol("a", secs(300)), tol("b", secs(30))}, created, "", 30 * time.Second},
		{"one of two untolerated", []Taint{taint("a", "NoExecute", now), taint("b", "NoExecute", now)},
			[]manifests.Toleration{tol("a", nil)}, created, "b", 0},
		{"huge seconds do not overflow", []Taint{taint("a", "NoExecute", now)}, []manifests.Toleration{tol("a", secs(1<<62))}, created, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, wait := noExecuteVerdict(tt.taints, tt.tols, tt.created, now)
			evict := ""
			if got != nil {
				evict = got.Key
			}
			if evict != tt.wantEvict {
				t.Errorf("evicting taint = %q, want %q", evict, tt.wantEvict)
			}
			if tt.name == "huge seconds do not overflow" {
				if wait <= 0 {
					t.Errorf("wait = %s, want a long one", wait)
				}
				return
			}
			if wait != tt.wantWait {
				t.Errorf("wait = %s, want %s", wait, tt.wantWait)
			}
		})
	}
}

func TestHostPortConflicts(t *testing.T) {
	tests := []struct {
		a, b hostPort
		want bool
	}{
		{hostPort{anyIP, "TCP", 80}, hostPort{anyIP, "TCP", 80}, true},
		{hostPort{anyIP, "TCP", 80}, hostPort{anyIP, "UDP", 80}, false},
		{hostPort{anyIP, "TCP", 80}, hostPort{anyIP, "TCP", 81}, false},
		{hostPort{"10.0.0.1", "TCP", 80}, hostPort{anyIP, "TCP", 80}, true},
		{hostPort{anyIP, "TCP", 80}, hostPort{"10.0.0.1", "TCP", 80}, true},
		{hostPort{"10.0.0.1", "TCP", 80}, hostPort{"10.0.0.2", "TCP", 80}, false},
		{hostPort{"10.0.0.1", "TCP", 80}, hostPort{"10.0.0.1", "TCP", 80}, true},
	}
	for _, tt := range tests {
		if got := tt.a.conflicts(tt.b); got != tt.want {
			t.Errorf("%v conflicts with %v = %t, want %t", tt.a, tt.b, got, tt.want)
		}
	}
	spec := manifests.PodSpec{Containers: []manifests.Container{{Ports: []manifests.ContainerPort{
		{ContainerPort: 80}, {ContainerPort: 80, HostPort: 8080}, {ContainerPort: 53, HostPort: 53, Protocol: "UDP", HostIP: "10.0.0.1"}}}}}
	always := manifests.ContainerRestartPolicyAlways
	spec.InitContainers = []manifests.Container{
		{Ports: []manifests.ContainerPort{{ContainerPort: 1, HostPort: 1}}},
		{RestartPolicy: &always, Ports: []manifests.ContainerPort{{ContainerPort: 2, HostPort: 2, HostIP: "::"}}},
	}
	got := hostPortsOf(&spec)
	want := []hostPort{{anyIP, "TCP", 8080}, {"10.0.0.1", "UDP", 53}, {anyIP, "TCP", 2}}
	if len(got) != len(want) {
		t.Fatalf("hostPortsOf = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("hostPortsOf = %v, want %v", got, want)
		}
	}
}

// TestSchedulerMessagesSpread checks the messages of the filters that the
// scenarios do not reach.
func TestSchedulerMessagesSpread(t *testing.T) {
	objs, err := decodeUnvalidated(`apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: p}}
spec:
  topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: zone
    whenUnsatisfiable: DoNotSchedule
    labelSelector: {matchLabels: {app: p}}
  containers:
  - name: c
    image: example.com/c:1
`)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []Node{
		{Name: "a", Ready: true, Allocatable: Resources{MilliCPU: 1000, Memory: 1 << 30}},
		{Name: "b", Ready: true, Allocatable: Resources{MilliCPU: 1000, Memory: 1 << 30}},
	}
	plan := Reconcile(State{Objects: objs, Nodes: nodes, Now: time.Unix(100, 0)}, &seqIDs{})
	want := "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints (missing required label)."
	if len(plan.Pending) != 1 || plan.Pending[0].Reason != want {
		t.Fatalf("pending = %+v\nwant reason %q", plan.Pending, want)
	}
}

// TestHostnameLabel checks that a node without kubernetes.io/hostname is
// known by its name, as the kubelet labels every node.
func TestHostnameLabel(t *testing.T) {
	objs, errs := manifests.DecodeFile("p.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  nodeSelector: {kubernetes.io/hostname: b}
  containers:
  - name: c
    image: example.com/c:1
`), manifests.LoadOptions{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	nodes := []Node{{Name: "a", Ready: true}, {Name: "b", Ready: true, Labels: map[string]string{"zone": "z"}}}
	in := State{Objects: objs, Nodes: nodes, Now: time.Unix(100, 0)}
	plan := Reconcile(in, &seqIDs{})
	if len(plan.Actions) != 1 || plan.Actions[0].(CreatePod).Pod.Node != "b" {
		t.Fatalf("actions = %+v, want the pod created on b", plan.Actions)
	}
	if _, ok := nodes[1].Labels[LabelHostname]; ok {
		t.Error("Reconcile changed the node's labels")
	}
}
