package lifecycle

import (
	"testing"

	"github.com/shoal-dev/shoal/manifests"
)

func TestStorageViolation(t *testing.T) {
	q := func(s string) *manifests.Quantity { v := mustQ(t, s); return &v }
	storage := func(s string) manifests.ResourceRequirements {
		return manifests.ResourceRequirements{Limits: manifests.ResourceList{manifests.ResourceEphemeralStorage: *q(s)}}
	}
	pod := func(vols []manifests.Volume, ctrs ...manifests.Container) *manifests.Pod {
		return &manifests.Pod{Spec: manifests.PodSpec{Volumes: vols, Containers: ctrs}}
	}
	scratch := func(limit string) []manifests.Volume {
		ed := &manifests.EmptyDirVolumeSource{}
		if limit != "" {
			ed.SizeLimit = q(limit)
		}
		return []manifests.Volume{{Name: "scratch", VolumeSource: manifests.VolumeSource{EmptyDir: ed}}}
	}
	tests := []struct {
		name string
		pod  *manifests.Pod
		use  PodStorage
		want string // "" : not evicted
	}{
		{"no limits", pod(scratch(""), manifests.Container{Name: "a"}),
			PodStorage{Containers: map[string]int64{"a": 1 << 40}, Volumes: map[string]int64{"scratch": 1 << 40}}, ""},
		{"emptyDir under its sizeLimit", pod(scratch("1Mi"), manifests.Container{Name: "a"}),
			PodStorage{Volumes: map[string]int64{"scratch": 1 << 20}}, ""},
		{"emptyDir over its sizeLimit", pod(scratch("1Mi"), manifests.Container{Name: "a"}),
			PodStorage{Volumes: map[string]int64{"scratch": 1<<20 + 1}}, `Usage of EmptyDir volume "scratch" exceeds the limit "1Mi".`},
		{"container over its limit", pod(nil, manifests.Container{Name: "a", Resources: storage("64Ki")}, manifests.Container{Name: "b"}),
			PodStorage{Containers: map[string]int64{"a": 65 << 10}}, `Pod ephemeral local storage usage exceeds the total limit of containers 64Ki.`},
		{"container over its own limit within the pod's", pod(nil, manifests.Container{Name: "a", Resources: storage("64Ki")}, manifests.Container{Name: "b", Resources: storage("1Mi")}),
			PodStorage{Containers: map[string]int64{"a": 65 << 10, "b": 0}}, `Container a exceeded its local ephemeral storage limit "64Ki".`},
		{"pod over the sum, containers within theirs", pod(scratch(""), manifests.Container{Name: "a", Resources: storage("100Ki")}, manifests.Container{Name: "b", Resources: storage("100Ki")}),
			PodStorage{Containers: map[string]int64{"a": 50 << 10, "b": 50 << 10}, Volumes: map[string]int64{"scratch": 101 << 10}},
			`Pod ephemeral local storage usage exceeds the total limit of containers 200Ki.`},
		{"pod within the sum", pod(scratch(""), manifests.Container{Name: "a", Resources: storage("100Ki")}, manifests.Container{Name: "b", Resources: storage("100Ki")}),
			PodStorage{Containers: map[string]int64{"a": 50 << 10, "b": 50 << 10}, Volumes: map[string]int64{"scratch": 100 << 10}}, ""},
		{"emptyDir first", pod(scratch("1Ki"), manifests.Container{Name: "a", Resources: storage("1Ki")}),
			PodStorage{Containers: map[string]int64{"a": 1 << 20}, Volumes: map[string]int64{"scratch": 1 << 20}}, `Usage of EmptyDir volume "scratch" exceeds the limit "1Ki".`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, evict := storageViolation(tt.pod, tt.use)
			if evict != (tt.want != "") || msg != tt.want {
				t.Errorf("storageViolation = %q, %v; want %q", msg, evict, tt.want)
			}
			if tt.want != "" && !storageLimited(tt.pod) {
				t.Errorf("a pod with limits is not checked")
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1000: "1k", 1024: "1Ki", 200 << 10: "200Ki", 3 << 30: "3Gi", 1500: "1500", 2e9: "2G"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
