package manifests

import "testing"

func TestPersistentVolumeClaimRules(t *testing.T) {
	head := "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n"
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"valid", "spec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n", nil},
		{"valid class and retain", "  annotations: {shoal.dev/reclaim-policy: Retain}\nspec:\n  accessModes: [ReadWriteOncePod]\n  storageClassName: local-path\n  resources: {requests: {storage: 10Mi}, limits: {storage: 1Gi}}\n", nil},
		{"nothing asked", "spec: {}\n", []string{
			"a.yaml:5: spec.accessModes: required; a local volume is ReadWriteOnce (the pods of one node) or ReadWriteOncePod (one pod)",
			"a.yaml:5: spec.resources.requests[storage]: required; say how much storage the claim needs, such as \"storage: 1Gi\"",
		}},
		{"shared modes", "spec:\n  accessModes: [ReadWriteMany, ReadWriteOnce, ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n", []string{
			"a.yaml:6: spec.accessModes[0]: ReadWriteMany is supported by Kubernetes, not by Shoal yet: Shoal provisions local volumes, which live on one node; use ReadWriteOnce, or keep shared data in a database or object store",
			"a.yaml:6: spec.accessModes[2]: duplicate access mode ReadWriteOnce",
		}},
		{"pod with others", "spec:\n  accessModes: [ReadWriteOncePod, ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
			[]string{"a.yaml:6: spec.accessModes: ReadWriteOncePod may not be given with other access modes"}},
		{"bad sizes", "spec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 2Gi, cpu: 1}, limits: {storage: 1Gi}}\n", []string{
			"a.yaml:7: spec.resources.requests[cpu]: a claim asks for storage only, not \"cpu\"",
			"a.yaml:7: spec.resources.requests[storage]: request 2Gi is more than the limit 1Gi; a request must be at most its limit",
		}},
		{"other class", "spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: gp2\n  resources: {requests: {storage: 1Gi}}\n",
			[]string{"a.yaml:7: spec.storageClassName: \"gp2\" is not a storage class Shoal has; Shoal provisions \"local-path\" (a directory on the node), the default when storageClassName is not set"}},
		{"block", "spec:\n  accessModes: [ReadWriteOnce]\n  volumeMode: Block\n  resources: {requests: {storage: 1Gi}}\n",
			[]string{"a.yaml:7: spec.volumeMode: Block is supported by Kubernetes, not by Shoal yet; local volumes are directories: use Filesystem"}},
		{"volume name", "spec:\n  accessModes: [ReadWriteOnce]\n  volumeName: pv-1\n  resources: {requests: {storage: 1Gi}}\n",
			[]string{"a.yaml:7: spec.volumeName: supported by Kubernetes, not by Shoal yet: Shoal provisions a volume for every claim; there are no PersistentVolumes to name"}},
		{"bad policy", "  annotations: {shoal.dev/reclaim-policy: Recycle}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
			[]string{"a.yaml:5: metadata.annotations[shoal.dev/reclaim-policy]: \"Recycle\" is not one of Delete, Retain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrors(t, head+tt.doc, tt.want) })
	}
}

func TestPersistentVolumeClaimDefaults(t *testing.T) {
	objs, errs := DecodeFile("a.yaml", []byte("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: d}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Ki}}\n"), LoadOptions{})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	c := objs[0].(*PersistentVolumeClaim)

	if *c.Spec.StorageClassName != LocalPathStorageClass || *c.Spec.VolumeMode != PersistentVolumeFilesystem || c.ReclaimPolicy() != ReclaimDelete || c.StorageRequest() != 1024 {
		t.Errorf("defaults: %+v", c.Spec)
	}
}

func TestNewQuantity(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1000: "1000", 1024: "1Ki", 3 << 30: "3Gi", 1536 << 20: "1536Mi"} {
		if q := NewQuantity(n); q.String() != want || q.Value() != n {
			t.Errorf("NewQuantity(%d) = %s (%d), want %s", n, q, q.Value(), want)
		}
	}
}
