package manifests

import (
	"maps"
	"slices"
)

// PersistentVolumeClaim is a v1 PersistentVolumeClaim: a request for
// storage that outlives the pods using it. Shoal provisions every claim as a
// directory on one node (as k3s' local-path provisioner does): the claim is
// bound to the node of the first pod that uses it, and the pods that use it
// later run there.
type PersistentVolumeClaim struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Spec       PersistentVolumeClaimSpec   `json:"spec"`
	Status     PersistentVolumeClaimStatus `json:"status,omitempty"`
}

// PersistentVolumeClaimSpec is what a claim asks for.
type PersistentVolumeClaimSpec struct {
	AccessModes      []PersistentVolumeAccessMode `json:"accessModes,omitempty"`
	Resources        VolumeResourceRequirements   `json:"resources,omitempty"`
	StorageClassName *string                      `json:"storageClassName,omitempty"`
	VolumeMode       *PersistentVolumeMode        `json:"volumeMode,omitempty"`
}

// VolumeResourceRequirements is how much storage a claim asks for.
type VolumeResourceRequirements struct {
	Limits   ResourceList `json:"limits,omitempty"`
	Requests ResourceList `json:"requests,omitempty"`
}

// PersistentVolumeAccessMode is how a volume may be mounted.
type PersistentVolumeAccessMode string

// Access modes. A local volume is on one node: ReadWriteOnce (mounted by the
// pods of one node) and ReadWriteOncePod (by one pod) are what it can be.
const (
	ReadWriteOnce    PersistentVolumeAccessMode = "ReadWriteOnce"
	ReadOnlyMany     PersistentVolumeAccessMode = "ReadOnlyMany"
	ReadWriteMany    PersistentVolumeAccessMode = "ReadWriteMany"
	ReadWriteOncePod PersistentVolumeAccessMode = "ReadWriteOncePod"
)

// PersistentVolumeMode is Filesystem or Block.
type PersistentVolumeMode string

// Volume modes.
const (
	PersistentVolumeFilesystem PersistentVolumeMode = "Filesystem"
	PersistentVolumeBlock      PersistentVolumeMode = "Block"
)

// ResourceStorage is the size of a claim.
const ResourceStorage ResourceName = "storage"

// PersistentVolumeClaimPhase is Pending, Bound or Lost.
type PersistentVolumeClaimPhase string

// Claim phases.
const (
	ClaimPending PersistentVolumeClaimPhase = "Pending"
	ClaimBound   PersistentVolumeClaimPhase = "Bound"
	ClaimLost    PersistentVolumeClaimPhase = "Lost"
)

// PersistentVolumeClaimStatus is a claim's observed state.
type PersistentVolumeClaimStatus struct {
	Phase       PersistentVolumeClaimPhase   `json:"phase,omitempty"`
	AccessModes []PersistentVolumeAccessMode `json:"accessModes,omitempty"`
	Capacity    ResourceList                 `json:"capacity,omitempty"`
}

// PersistentVolumeClaimVolumeSource mounts a claim's volume into a pod.
type PersistentVolumeClaimVolumeSource struct {
	ClaimName string `json:"claimName"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// LocalPathStorageClass is the one storage class Shoal provisions: a
// directory in the node's data directory. A claim that names no class gets
// it, as k3s makes local-path the default class.
const LocalPathStorageClass = "local-path"

// Reclaim policies, set on a claim with AnnotationReclaimPolicy.
const (
	// AnnotationReclaimPolicy says what happens to a claim's data when the
	// claim is removed from git: Delete (the default, as for the volumes a
	// storage class provisions) or Retain.
	AnnotationReclaimPolicy = "shoal.dev/reclaim-policy"
	ReclaimDelete           = "Delete"
	ReclaimRetain           = "Retain"
)

// DeepCopyObject returns a deep copy.
func (c *PersistentVolumeClaim) DeepCopyObject() Object { return clone(c) }

// ReclaimPolicy is the claim's reclaim policy: its AnnotationReclaimPolicy,
// else the reclaimPolicy of its StorageClass among classes (by name), else
// Delete.
func (c *PersistentVolumeClaim) ReclaimPolicy(classes map[string]*StorageClass) string {
	if rp := c.Annotations[AnnotationReclaimPolicy]; rp == ReclaimRetain || rp == ReclaimDelete {
		return rp
	}
	if c.Spec.StorageClassName != nil {
		if sc := classes[*c.Spec.StorageClassName]; sc != nil && sc.ReclaimPolicy != nil {
			return *sc.ReclaimPolicy
		}
	}
	return ReclaimDelete
}

// StorageClass is a storage.k8s.io/v1 StorageClass. Shoal provisions the
// claims of every class as it provisions local-path: a directory on the
// node of the claim's first pod. A class names a reclaim policy for its
// claims; its provisioner, parameters and mount options are not used.
type StorageClass struct {
	TypeMeta             `json:",inline"`
	ObjectMeta           `json:"metadata,omitempty"`
	Provisioner          string            `json:"provisioner"`
	Parameters           map[string]string `json:"parameters,omitempty"`
	ReclaimPolicy        *string           `json:"reclaimPolicy,omitempty"`
	VolumeBindingMode    *string           `json:"volumeBindingMode,omitempty"`
	AllowVolumeExpansion *bool             `json:"allowVolumeExpansion,omitempty"`
	MountOptions         []string          `json:"mountOptions,omitempty"`
}

// LocalPathProvisioner is the provisioner of k3s' local-path class, which
// Shoal's provisioning is.
const LocalPathProvisioner = "rancher.io/local-path"

// DeepCopyObject returns a deep copy.
func (c *StorageClass) DeepCopyObject() Object { return clone(c) }

func defaultStorageClass(c *StorageClass) {
	if c.ReclaimPolicy == nil {
		c.ReclaimPolicy = ptr(ReclaimDelete)
	}
	if c.VolumeBindingMode == nil {
		c.VolumeBindingMode = ptr("Immediate")
	}
}

func (v *validator) storageClass(c *StorageClass) {
	if c.Provisioner == "" {
		v.errf("provisioner", "required; name the provisioner (Shoal provisions every class as local directories, as %s)", LocalPathProvisioner)
	}
	if rp := c.ReclaimPolicy; rp != nil && *rp != ReclaimDelete && *rp != ReclaimRetain {
		v.errf("reclaimPolicy", "%q is not one of Delete, Retain", *rp)
	}
	if m := c.VolumeBindingMode; m != nil && *m != "Immediate" && *m != "WaitForFirstConsumer" {
		v.errf("volumeBindingMode", "%q is not one of Immediate, WaitForFirstConsumer", *m)
	}
}

// storageClassWarnings warns of the classes Shoal provisions as local
// directories although they name another provisioner, and of claims whose
// class is neither local-path nor a StorageClass of the commit, which get a
// local-path volume.
func storageClassWarnings(items []located) ErrorList {
	var w ErrorList
	add := func(src *source, field, format string, args ...any) {
		w = append(w, warningAt(src, field, format, args...))
	}
	classes := map[string]bool{LocalPathStorageClass: true}
	for _, it := range items {
		if sc, ok := it.obj.(*StorageClass); ok {
			classes[sc.Name] = true
			if sc.Provisioner != LocalPathProvisioner {
				add(it.src, "provisioner", "StorageClass %q names provisioner %s; Shoal provisions its claims as local-path volumes "+
					"(a directory on the node of the claim's first pod), and uses only its reclaimPolicy", sc.Name, sc.Provisioner)
			}
		}
	}
	check := func(it located, spec *PersistentVolumeClaimSpec, field string) {
		if sc := spec.StorageClassName; sc != nil && *sc != "" && !classes[*sc] {
			add(it.src, field, "storage class %q is not in this commit; Shoal provisions the claim as %s (a directory on the node of its first pod)",
				*sc, LocalPathStorageClass)
		}
	}
	for _, it := range items {
		switch o := it.obj.(type) {
		case *PersistentVolumeClaim:
			check(it, &o.Spec, "spec.storageClassName")
		case *StatefulSet:
			for i := range o.Spec.VolumeClaimTemplates {
				check(it, &o.Spec.VolumeClaimTemplates[i].Spec, idx("spec.volumeClaimTemplates", i)+".spec.storageClassName")
			}
		}
	}
	return w
}

// StorageRequest is the storage the claim asks for, in bytes.
func (c *PersistentVolumeClaim) StorageRequest() int64 {
	q := c.Spec.Resources.Requests[ResourceStorage]
	return q.Value()
}

func defaultPersistentVolumeClaim(c *PersistentVolumeClaim) {
	if c.Spec.StorageClassName == nil {
		c.Spec.StorageClassName = ptr(LocalPathStorageClass)
	}
	if c.Spec.VolumeMode == nil {
		c.Spec.VolumeMode = ptr(PersistentVolumeFilesystem)
	}
}

func (v *validator) persistentVolumeClaim(c *PersistentVolumeClaim) {
	v.claimSpec(&c.Spec, "spec")
	if rp, ok := c.Annotations[AnnotationReclaimPolicy]; ok && rp != ReclaimDelete && rp != ReclaimRetain {
		v.errf("metadata.annotations["+AnnotationReclaimPolicy+"]", "%q is not one of Delete, Retain", rp)
	}
}

// claimSpec checks a claim's spec: a PersistentVolumeClaim's, or one of a
// StatefulSet's volumeClaimTemplates.
func (v *validator) claimSpec(s *PersistentVolumeClaimSpec, p string) {
	if len(s.AccessModes) == 0 {
		v.errf(p+".accessModes", "required; a local volume is ReadWriteOnce (the pods of one node) or ReadWriteOncePod (one pod)")
	}
	seen := map[PersistentVolumeAccessMode]bool{}
	for i, m := range s.AccessModes {
		mp := idx(p+".accessModes", i)
		switch m {
		case ReadWriteOnce, ReadWriteOncePod:
		case ReadOnlyMany, ReadWriteMany:
			v.errf(mp, "%s is %s: Shoal provisions local volumes, which live on one node; use ReadWriteOnce, or keep shared data in a database or object store", m, notYet)
		default:
			v.errf(mp, "%q is not one of ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod", m)
		}
		if seen[m] {
			v.errf(mp, "duplicate access mode %s", m)
		}
		seen[m] = true
	}
	if seen[ReadWriteOncePod] && len(s.AccessModes) > 1 {
		v.errf(p+".accessModes", "ReadWriteOncePod may not be given with other access modes")
	}
	rp := p + ".resources"
	for _, part := range []struct {
		list ResourceList
		name string
	}{{s.Resources.Requests, "requests"}, {s.Resources.Limits, "limits"}} {
		for _, k := range slices.Sorted(maps.Keys(part.list)) {
			if k != ResourceStorage {
				v.errf(rp+"."+part.name+"["+string(k)+"]", "a claim asks for storage only, not %q", k)
			}
		}
	}
	req, ok := s.Resources.Requests[ResourceStorage]
	switch {
	case !ok:
		v.errf(rp+".requests[storage]", "required; say how much storage the claim needs, such as \"storage: 1Gi\"")
	case req.rat().Sign() <= 0:
		v.errf(rp+".requests[storage]", "must be more than 0, is %s", req)
	}
	if lim, okL := s.Resources.Limits[ResourceStorage]; okL && ok && req.Cmp(lim) > 0 {
		v.errf(rp+".requests[storage]", "request %s is more than the limit %s; a request must be at most its limit", req, lim)
	}
	if sc := s.StorageClassName; sc != nil && *sc == "" {
		v.errf(p+".storageClassName", `"" asks for a PersistentVolume made beforehand, which Shoal does not have; remove storageClassName for a %s volume (a directory on the node)`,
			LocalPathStorageClass)
	}
	if vm := s.VolumeMode; vm != nil {
		switch *vm {
		case PersistentVolumeFilesystem:
		case PersistentVolumeBlock:
			v.errf(p+".volumeMode", "Block is %s; local volumes are directories: use Filesystem", notYet)
		default:
			v.errf(p+".volumeMode", "%q is not one of Filesystem, Block", *vm)
		}
	}
}
