package manifests

import "testing"

func TestHPARules(t *testing.T) {
	head := "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n"
	ref := "  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n"
	tests := []struct {
		name, spec string
		want       []string
	}{
		{"valid", ref + "  minReplicas: 2\n  maxReplicas: 10\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n" +
			"  - type: Resource\n    resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}\n" +
			"  behavior:\n    scaleDown:\n      stabilizationWindowSeconds: 60\n      policies: [{type: Pods, value: 1, periodSeconds: 60}]\n", nil},
		{"kind", "  scaleTargetRef: {kind: ReplicaSet, name: web}\n  maxReplicas: 3\n",
			[]string{`a.yaml:5: spec.scaleTargetRef.kind: "ReplicaSet": Shoal scales a Deployment or a StatefulSet`}},
		{"max below min", ref + "  minReplicas: 4\n  maxReplicas: 3\n",
			[]string{"a.yaml:7: spec.maxReplicas: must be at least minReplicas (4), is 3"}},
		{"no max", ref, []string{"a.yaml:4: spec.maxReplicas: required, 1 or more; the most replicas the autoscaler may set"}},
		{"pods metric", ref + "  maxReplicas: 3\n  metrics:\n  - type: Pods\n    pods: {metric: {name: qps}, target: {type: AverageValue, averageValue: 1k}}\n",
			[]string{"a.yaml:9: spec.metrics[0].pods: supported by Kubernetes, not by Shoal yet: Shoal measures the pods' cpu and memory: use type: Resource"}},
		{"utilization missing", ref + "  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization}}\n",
			[]string{"a.yaml:9: spec.metrics[0].resource.target.averageUtilization: required for type Utilization, a percentage of the pods' requests of 1 or more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, head+tt.spec, tt.want) })
	}
	objs, errs := DecodeFile("a.yaml", []byte(head+ref+"  maxReplicas: 5\n"), LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	h := objs[0].(*HorizontalPodAutoscaler)
	if *h.Spec.MinReplicas != 1 || len(h.Spec.Metrics) != 1 || *h.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 ||
		*h.Spec.Behavior.ScaleDown.StabilizationWindowSeconds != 300 || len(h.Spec.Behavior.ScaleUp.Policies) != 2 {
		t.Errorf("defaults %+v", h.Spec)
	}
}
