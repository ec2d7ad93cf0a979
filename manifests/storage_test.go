package manifests

import (
	"slices"
	"strings"
	"testing"
)

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
		{"no class", "spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  resources: {requests: {storage: 1Gi}}\n",
			[]string{"a.yaml:7: spec.storageClassName: \"\" asks for a PersistentVolume made beforehand, which Shoal does not have; remove storageClassName for a local-path volume (a directory on the node)"}},
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

	if *c.Spec.StorageClassName != LocalPathStorageClass || *c.Spec.VolumeMode != PersistentVolumeFilesystem || c.ReclaimPolicy(nil) != ReclaimDelete || c.StorageRequest() != 1024 {
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

// A claim of another class gets a local-path volume, with a warning; a StorageClass of the
// commit gives its claims its reclaim policy.
func TestStorageClasses(t *testing.T) {
	files := map[string]string{
		"class.yaml": "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: kubernetes.io/gce-pd\nreclaimPolicy: Retain\n",
		"fast.yaml":  "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: fast}\nspec:\n  storageClassName: fast\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
		"std.yaml":   "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: std}\nspec:\n  storageClassName: standard\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
	}
	set, err := loadMap(t, files)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`class.yaml:4: warning: provisioner: StorageClass "fast" names provisioner kubernetes.io/gce-pd; Shoal provisions its claims as local-path volumes (a directory on the node of the claim's first pod), and uses only its reclaimPolicy`,
		`std.yaml:5: warning: spec.storageClassName: storage class "standard" is not in this commit; Shoal provisions the claim as local-path (a directory on the node of its first pod)`,
	}
	if got := set.Warnings.Warnings(); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	classes := map[string]*StorageClass{"fast": set.Get(ObjectKey{Kind: "StorageClass", Name: "fast"}).(*StorageClass)}
	fast := set.Get(ObjectKey{Kind: "PersistentVolumeClaim", Namespace: "default", Name: "fast"}).(*PersistentVolumeClaim)
	std := set.Get(ObjectKey{Kind: "PersistentVolumeClaim", Namespace: "default", Name: "std"}).(*PersistentVolumeClaim)
	if fast.ReclaimPolicy(classes) != ReclaimRetain || std.ReclaimPolicy(classes) != ReclaimDelete {
		t.Errorf("reclaim policies %s and %s, want Retain (the class's) and Delete", fast.ReclaimPolicy(classes), std.ReclaimPolicy(classes))
	}
}
