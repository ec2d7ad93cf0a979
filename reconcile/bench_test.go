package reconcile

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// BenchmarkSchedule measures one Reconcile that creates and places 10,000
// pods (100 Deployments of 100 replicas, some with a nodeSelector) on 1,000
// nodes, and reports placements per second.
func BenchmarkSchedule(b *testing.B) { benchmarkDeployments(b, false, func(int) string { return "" }) }

// BenchmarkScheduleAntiAffinity is BenchmarkSchedule with every pod
// keeping away from the pods of its Deployment (required anti-affinity on
// kubernetes.io/hostname), as highly available Deployments do.
func BenchmarkScheduleAntiAffinity(b *testing.B) {
	benchmarkDeployments(b, false, func(i int) string {
		return fmt.Sprintf(`      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: app-%d}}
            topologyKey: kubernetes.io/hostname
`, i)
	})
}

// BenchmarkSchedulePreferences is BenchmarkSchedule with pods that score:
// preferred node affinity, preferred anti-affinity to their own
// Deployment, a ScheduleAnyway spread over the nodes, and PreferNoSchedule
// taints on some nodes.
func BenchmarkSchedulePreferences(b *testing.B) {
	benchmarkDeployments(b, true, func(i int) string {
		return fmt.Sprintf(`      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 10
            preference:
              matchExpressions:
              - {key: zone, operator: In, values: [z1]}
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 50
            podAffinityTerm:
              labelSelector: {matchLabels: {app: app-%d}}
              topologyKey: kubernetes.io/hostname
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector: {matchLabels: {app: app-%d}}
`, i, i)
	})
}

// benchmarkDeployments places 100 Deployments of 100 replicas, with
// extra(i) added to the pod spec of the i-th, on 1,000 nodes (one in ten
// with a PreferNoSchedule taint when taints is set).
func benchmarkDeployments(b *testing.B, taints bool, extra func(i int) string) {
	const nodes, deployments, replicas = 1000, 100, 100
	var st State
	st.Now = time.Unix(1_800_000_000, 0)
	for i := range nodes {
		zone := fmt.Sprintf("z%d", i%4)
		n := Node{
			Name: fmt.Sprintf("node-%04d", i), Ready: true, Labels: map[string]string{"zone": zone},
			Allocatable: Resources{MilliCPU: 16000, Memory: 64 << 30},
		}
		if taints && i%10 == 0 {
			n.Taints = []Taint{{Taint: manifests.Taint{Key: "spot", Effect: manifests.TaintEffectPreferNoSchedule}}}
		}
		st.Nodes = append(st.Nodes, n)
	}
	for i := range deployments {
		selector := ""
		if i%3 == 0 {
			selector = fmt.Sprintf("      nodeSelector: {zone: z%d}\n", i%4)
		}
		objs, errs := manifests.DecodeFile("b.yaml", []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: app-%d}
spec:
  replicas: %d
  selector: {matchLabels: {app: app-%d}}
  template:
    metadata: {labels: {app: app-%d}}
    spec:
%s%s      containers:
      - name: main
        image: example.com/app:%d
        resources: {requests: {cpu: 100m, memory: 128Mi}}
`, i, replicas, i, i, selector, extra(i), i)), manifests.LoadOptions{})
		if len(errs) > 0 {
			b.Fatal(errs)
		}
		st.Objects = append(st.Objects, objs...)
	}
	b.ResetTimer()
	placed := 0
	for b.Loop() {
		plan := Reconcile(st, &seqIDs{})
		if len(plan.Pending) != 0 {
			b.Fatalf("%d pods pending: %s", len(plan.Pending), plan.Pending[0].Reason)
		}
		placed += deployments * replicas
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "pods/s")
}

// BenchmarkScheduleOnly binds 10,000 existing pending pods (standalone, of
// unchanged Pod objects) to 1,000 nodes: the scheduler without making pods.
func BenchmarkScheduleOnly(b *testing.B) {
	const nodes, pods = 1000, 10000
	var st State
	st.Now = time.Unix(1_800_000_000, 0)
	for i := range nodes {
		st.Nodes = append(st.Nodes, Node{Name: fmt.Sprintf("node-%04d", i), Ready: true, Allocatable: Resources{MilliCPU: 16000, Memory: 64 << 30}})
	}
	q := func(s string) manifests.Quantity { v, _ := manifests.ParseQuantity(s); return v }
	spec := &manifests.Pod{Spec: manifests.PodSpec{Containers: []manifests.Container{{Name: "c", Resources: manifests.ResourceRequirements{
		Requests: manifests.ResourceList{manifests.ResourceCPU: q("100m"), manifests.ResourceMemory: q("128Mi")}}}}}}
	for i := range pods {
		obj := &manifests.Pod{TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: manifests.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("p-%d", i)}, Spec: spec.Spec}
		st.Objects = append(st.Objects, obj)
		st.Pods = append(st.Pods, Pod{UID: fmt.Sprint(i), Namespace: "default", Name: obj.Name, Spec: obj,
			TemplateHash: podObjectHash(obj), Created: st.Now})
	}
	b.ResetTimer()
	placed := 0
	for b.Loop() {
		plan := Reconcile(st, &seqIDs{})
		if len(plan.Pending) != 0 || len(plan.Actions) != pods {
			b.Fatalf("%d pods pending, %d actions", len(plan.Pending), len(plan.Actions))
		}
		placed += pods
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "pods/s")
}
