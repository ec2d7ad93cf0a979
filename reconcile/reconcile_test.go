package reconcile

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

func decodeDeployment(t testing.TB, yaml string) *manifests.Deployment {
	t.Helper()
	objs, errs := manifests.DecodeFile("d.yaml", []byte(yaml), manifests.LoadOptions{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return objs[0].(*manifests.Deployment)
}

func TestTemplateHash(t *testing.T) {
	base := decodeDeployment(t, deploymentYAML(3, "1", "25%", "25%", 0))
	h := TemplateHash(&base.Spec.Template)
	if len(h) == 0 || len(h) > 10 || strings.Trim(h, SuffixAlphabet) != "" {
		t.Fatalf("hash %q: want 1 to 10 characters of %s", h, SuffixAlphabet)
	}
	tests := []struct {
		name string
		yaml string
		same bool
	}{
		{"identical", deploymentYAML(3, "1", "25%", "25%", 0), true},
		{"replicas", deploymentYAML(7, "1", "25%", "25%", 0), true},
		{"strategy", deploymentYAML(3, "1", "1", "0", 0), true},
		{"minReadySeconds", deploymentYAML(3, "1", "25%", "25%", 9), true},
		{"image", deploymentYAML(3, "2", "25%", "25%", 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decodeDeployment(t, tt.yaml)
			if got := TemplateHash(&d.Spec.Template); (got == h) != tt.same {
				t.Errorf("hash %q vs %q: same = %t, want %t", got, h, got == h, tt.same)
			}
		})
	}
}

func TestPodName(t *testing.T) {
	tests := []struct {
		deployment, hash, suffix, want string
	}{
		{"web", "7fb9bbf558", "bcdfg", "web-7fb9bbf558-bcdfg"},
		{strings.Repeat("a", 60), "7fb9bbf558", "bcdfg", strings.Repeat("a", 46) + "-7fb9bbf558-bcdfg"},
		{strings.Repeat("a", 45) + "-b", "7fb9bbf558", "bcdfg", strings.Repeat("a", 45) + "-7fb9bbf558-bcdfg"},
		{strings.Repeat("a", 45) + ".b", "7fb9bbf558", "bcdfg", strings.Repeat("a", 45) + "-7fb9bbf558-bcdfg"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := PodName(tt.deployment, tt.hash, tt.suffix)
			if got != tt.want {
				t.Errorf("PodName = %q, want %q", got, tt.want)
			}
			if len(got) > 63 {
				t.Errorf("%q is %d characters long", got, len(got))
			}
		})
	}
}

func TestRolloutBounds(t *testing.T) {
	tests := []struct {
		replicas               int
		surge, unavailable     string
		wantSurge, wantUnavail int
	}{
		{4, "25%", "25%", 1, 1},
		{10, "25%", "25%", 3, 2}, // surge rounds up, unavailable down
		{1, "25%", "25%", 1, 0},
		{3, "1", "0", 1, 0},
		{3, "0", "1", 0, 1},
		{2, "0", "5", 0, 2},     // unavailable at most replicas
		{0, "25%", "25%", 0, 0}, // both 0 -> 1, then at most replicas
		{5, "10%", "10%", 1, 0},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.replicas)+"/"+tt.surge+"/"+tt.unavailable, func(t *testing.T) {
			d := decodeDeployment(t, deploymentYAML(tt.replicas, "1", tt.surge, tt.unavailable, 0))
			s, u := RolloutBounds(d)
			if s != tt.wantSurge || u != tt.wantUnavail {
				t.Errorf("RolloutBounds = %d, %d; want %d, %d", s, u, tt.wantSurge, tt.wantUnavail)
			}
		})
	}
	rec := decodeDeployment(t, strings.Replace(deploymentYAML(3, "1", "1", "1", 0), "    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}\n", "    type: Recreate\n", 1))
	if s, u := RolloutBounds(rec); s != 0 || u != 0 {
		t.Errorf("Recreate: RolloutBounds = %d, %d; want 0, 0", s, u)
	}
}

func TestRequests(t *testing.T) {
	q := func(s string) manifests.Quantity {
		v, err := manifests.ParseQuantity(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	c := func(cpu, mem string, limitsOnly bool) manifests.Container {
		rl := manifests.ResourceList{manifests.ResourceCPU: q(cpu), manifests.ResourceMemory: q(mem)}
		if limitsOnly {
			return manifests.Container{Name: "c", Resources: manifests.ResourceRequirements{Limits: rl}}
		}
		return manifests.Container{Name: "c", Resources: manifests.ResourceRequirements{Requests: rl}}
	}
	storage := func(c manifests.Container, size string) manifests.Container {
		if c.Resources.Limits != nil {
			c.Resources.Limits[manifests.ResourceEphemeralStorage] = q(size)
		} else {
			c.Resources.Requests[manifests.ResourceEphemeralStorage] = q(size)
		}
		return c
	}
	sidecar := func(c manifests.Container) manifests.Container {
		always := manifests.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
		return c
	}
	tests := []struct {
		name string
		spec manifests.PodSpec
		want Resources
	}{
		{"none", manifests.PodSpec{Containers: []manifests.Container{{Name: "a"}}}, Resources{}},
		{"sum of app containers", manifests.PodSpec{Containers: []manifests.Container{c("100m", "64Mi", false), c("250m", "1Gi", false)}},
			Resources{MilliCPU: 350, Memory: 64<<20 + 1<<30}},
		{"init container larger", manifests.PodSpec{
			InitContainers: []manifests.Container{c("2", "10Mi", false), c("500m", "2Gi", false)},
			Containers:     []manifests.Container{c("100m", "64Mi", false), c("250m", "1Gi", false)}},
			Resources{MilliCPU: 2000, Memory: 2 << 30}},
		{"limits only", manifests.PodSpec{Containers: []manifests.Container{c("1", "1G", true)}}, Resources{MilliCPU: 1000, Memory: 1e9}},
		{"ephemeral storage", manifests.PodSpec{Containers: []manifests.Container{storage(c("100m", "64Mi", false), "1Gi"), storage(c("100m", "64Mi", true), "2Gi")}},
			Resources{MilliCPU: 200, Memory: 128 << 20, EphemeralStorage: 3 << 30}},
		// Sidecars run beside the app containers and beside every init
		// container that starts after them.
		{"sidecars", manifests.PodSpec{
			InitContainers: []manifests.Container{c("1", "10Mi", false), sidecar(c("300m", "100Mi", false)), c("900m", "1Gi", false)},
			Containers:     []manifests.Container{c("100m", "64Mi", false)}},
			Resources{MilliCPU: 1200, Memory: 1<<30 + 100<<20}},
		{"sidecar only", manifests.PodSpec{
			InitContainers: []manifests.Container{sidecar(c("300m", "100Mi", false))},
			Containers:     []manifests.Container{c("100m", "64Mi", false)}},
			Resources{MilliCPU: 400, Memory: 164 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Requests(&tt.spec); got != tt.want {
				t.Errorf("Requests = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSchedulerMessages(t *testing.T) {
	tests := []struct {
		name  string
		nodes []Node
		want  string
	}{
		{"no nodes", nil, "no nodes available to schedule pods"},
		{"mixed", []Node{
			{Name: "a", Ready: true, Allocatable: Resources{MilliCPU: 50, Memory: 1 << 30}, Labels: map[string]string{"disk": "ssd"}},
			{Name: "b", Ready: true, Allocatable: Resources{MilliCPU: 4000, Memory: 1 << 20}, Labels: map[string]string{"disk": "ssd"}},
			{Name: "c", Ready: true, Allocatable: Resources{MilliCPU: 10, Memory: 1}, Labels: map[string]string{"disk": "ssd"}},
			{Name: "d", Ready: true, Allocatable: Resources{MilliCPU: 4000, Memory: 1 << 30}},
			{Name: "e", Ready: false, NotReadySince: time.Unix(1, 0), Labels: map[string]string{"disk": "ssd"}},
			{Name: "f", Ready: true, Unschedulable: true, Labels: map[string]string{"disk": "ssd"}},
		}, "0/6 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were not ready, 1 node(s) were unschedulable, 2 Insufficient cpu, 2 Insufficient memory."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, errs := manifests.DecodeFile("p.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  nodeSelector: {disk: ssd}
  containers:
  - name: c
    image: example.com/c:1
    resources: {requests: {cpu: 100m, memory: 64Mi}}
`), manifests.LoadOptions{})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			plan := Reconcile(State{Objects: objs, Nodes: tt.nodes, Now: time.Unix(100, 0)}, &seqIDs{})
			if len(plan.Pending) != 1 || plan.Pending[0].Reason != tt.want {
				t.Fatalf("pending = %+v\nwant reason %q", plan.Pending, tt.want)
			}
		})
	}
}

func TestDeletionOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	pods := []*Pod{
		{UID: "ready-old", Node: "n1", Phase: manifests.PodRunning, Ready: true, ReadySince: at(10), Created: at(1)},
		{UID: "ready-new", Node: "n1", Phase: manifests.PodRunning, Ready: true, ReadySince: at(500), Created: at(1)},
		{UID: "running", Node: "n1", Phase: manifests.PodRunning, Created: at(1)},
		{UID: "pending-bound", Node: "n1", Phase: manifests.PodPending, Created: at(1)},
		{UID: "unbound", Phase: manifests.PodPending, Created: at(1)},
		{UID: "restarts", Node: "n1", Phase: manifests.PodRunning, Ready: true, ReadySince: at(10), Restarts: 3, Created: at(1)},
		{UID: "created-late", Node: "n1", Phase: manifests.PodRunning, Ready: true, ReadySince: at(10), Created: at(5)},
	}
	p := newPlanner(State{Now: now, Nodes: []Node{{Name: "n1", Ready: true}}}, &seqIDs{})
	p.deletionOrder(pods)
	var got []string
	for _, pod := range pods {
		got = append(got, pod.UID)
	}
	want := []string{"unbound", "pending-bound", "running", "ready-new", "restarts", "created-late", "ready-old"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v\nwant    %v", got, want)
	}
}

// TestPure checks that Reconcile leaves its input alone and gives the same
// plan for the same input.
func TestPure(t *testing.T) {
	s := newSim()
	s.nodes = []Node{{Name: "n1", Ready: true, Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}}, {Name: "n2", Ready: true, Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}}}
	if err := s.apply(deploymentYAML(4, "1", "25%", "25%", 0)); err != nil {
		t.Fatal(err)
	}
	s.converge(10)
	if err := s.apply(deploymentYAML(5, "2", "25%", "25%", 0)); err != nil {
		t.Fatal(err)
	}
	st := s.state()
	before := s.state()
	p1 := Reconcile(st, &seqIDs{})
	p2 := Reconcile(st, &seqIDs{})
	if !reflect.DeepEqual(p1, p2) {
		t.Error("two plans of the same state differ")
	}
	if !reflect.DeepEqual(st, before) {
		t.Error("Reconcile modified its input")
	}
	if len(p1.Actions) == 0 {
		t.Error("expected a rollout to start")
	}
}

// TestImports keeps the package pure: only the standard library and
// manifests, and nothing of the standard library that does I/O, keeps time
// or draws random numbers on its own.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if path != "github.com/shoal-dev/shoal/manifests" && strings.Contains(first, ".") {
				t.Errorf("%s imports %s; reconcile may import only the standard library and manifests", f, path)
			}
			switch first {
			case "os", "net", "syscall", "unsafe", "runtime", "sync", "io":
				if path == "net/netip" {
					continue // addresses as values: no I/O
				}
				t.Errorf("%s imports %s; reconcile does no I/O and starts no goroutine", f, path)
			}
			if strings.HasSuffix(path, "/rand") || strings.HasPrefix(path, "math/rand") {
				t.Errorf("%s imports %s; randomness comes only from the IDSource", f, path)
			}
		}
	}
}
