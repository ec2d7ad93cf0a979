package manifests

import "testing"

func TestStatefulSetRules(t *testing.T) {
	head := "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n"
	sel := "  selector: {matchLabels: {app: db}}\n"
	tmpl := "  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n      - name: main\n        image: example.com/db:1\n        volumeMounts: [{name: data, mountPath: /data}]\n"
	claims := "  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"
	tests := []struct {
		name, spec string
		want       []string
	}{
		{"valid", sel + tmpl + claims + "  podManagementPolicy: Parallel\n  updateStrategy: {rollingUpdate: {partition: 2}}\n", nil},
		{"mount without volume or template", sel + tmpl, []string{
			"a.yaml:13: spec.template.spec.containers[0].volumeMounts[0].name: no volume named \"data\" in the pod; add it under volumes"}},
		{"template nobody mounts", sel + tmpl + claims + "  - metadata: {name: logs}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
			[]string{"a.yaml:17: spec.volumeClaimTemplates[1].metadata.name: no container mounts a volume named \"logs\"; add a volumeMount with name: logs"}},
		{"template access mode", sel + tmpl + "  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteMany], resources: {requests: {storage: 1Gi}}}\n",
			[]string{"a.yaml:16: spec.volumeClaimTemplates[0].spec.accessModes[0]: ReadWriteMany is supported by Kubernetes, not by Shoal yet: Shoal provisions local volumes, which live on one node; use ReadWriteOnce, or keep shared data in a database or object store"}},
		{"policy", sel + tmpl + claims + "  podManagementPolicy: Burst\n",
			[]string{"a.yaml:17: spec.podManagementPolicy: \"Burst\" is not one of OrderedReady, Parallel"}},
		{"partition", sel + tmpl + claims + "  updateStrategy: {rollingUpdate: {partition: -1}}\n",
			[]string{"a.yaml:17: spec.updateStrategy.rollingUpdate.partition: must be 0 or more, is -1"}},
		{"retention", sel + tmpl + claims + "  persistentVolumeClaimRetentionPolicy: {whenScaled: Keep}\n",
			[]string{"a.yaml:17: spec.persistentVolumeClaimRetentionPolicy.whenScaled: \"Keep\" is not one of Retain, Delete"}},
		{"maxUnavailable", sel + tmpl + claims + "  updateStrategy: {rollingUpdate: {maxUnavailable: 2}}\n",
			[]string{"a.yaml:17: spec.updateStrategy.rollingUpdate.maxUnavailable: supported by Kubernetes, not by Shoal yet: the pods are updated one at a time, highest ordinal first"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, head+tt.spec, tt.want) })
	}
	objs, errs := DecodeFile("a.yaml", []byte(head+sel+tmpl+claims), LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	s := objs[0].(*StatefulSet)
	if *s.Spec.Replicas != 1 || s.Spec.PodManagementPolicy != OrderedReadyPodManagement || *s.Spec.UpdateStrategy.RollingUpdate.Partition != 0 ||
		s.ClaimRetention().WhenDeleted != RetainClaimRetention || *s.Spec.VolumeClaimTemplates[0].Spec.StorageClassName != LocalPathStorageClass {
		t.Errorf("defaults %+v", s.Spec)
	}
	spec := s.PodSpecFor(&s.Spec.Template.Spec, 2)
	if spec.Hostname != "db-2" || spec.Subdomain != "db" || len(spec.Volumes) != 1 || spec.Volumes[0].PersistentVolumeClaim.ClaimName != "data-db-2" {
		t.Errorf("pod spec of ordinal 2: hostname %q subdomain %q volumes %+v", spec.Hostname, spec.Subdomain, spec.Volumes)
	}
}
