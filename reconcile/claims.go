package reconcile

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// ClaimState is a PersistentVolumeClaim as the cluster has it. Its volume
// is a directory on one node: the claim waits for its first pod (as the
// local-path provisioner binds WaitForFirstConsumer), is bound to the node
// that pod is placed on, and every later pod that uses it goes there too.
type ClaimState struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// UID names the claim's volume, VolumeName: a claim removed from git
	// and written again is a new claim with a new, empty volume.
	UID string `json:"uid"`
	// Node is the node the volume is on, "" while the claim is pending.
	Node string `json:"node,omitempty"`
	// Capacity is the storage asked for, in bytes, and AccessModes the
	// claim's modes, as they were when the claim was made: a claim's spec
	// does not change afterwards.
	Capacity    int64                                  `json:"capacity"`
	AccessModes []manifests.PersistentVolumeAccessMode `json:"accessModes"`
	// ReclaimPolicy is Delete or Retain: what becomes of the volume's data
	// once the claim is released.
	ReclaimPolicy string    `json:"reclaimPolicy"`
	Created       time.Time `json:"created"`
	BoundAt       time.Time `json:"boundAt,omitzero"`
	// Deleting is set once the claim is no longer desired: it is released
	// when no pod uses it any more (as Kubernetes' pvc-protection finalizer
	// holds a claim), and no new pod may use it meanwhile.
	Deleting bool `json:"deleting,omitempty"`
	// Owner is the StatefulSet whose volumeClaimTemplates made the claim
	// (StatefulSetOwner), "" for a claim of git. WhenDeleted is its
	// persistentVolumeClaimRetentionPolicy.whenDeleted as last seen: what
	// becomes of the claim once the StatefulSet leaves git.
	Owner       string `json:"owner,omitempty"`
	WhenDeleted string `json:"whenDeleted,omitempty"`
}

// Phase is the claim's phase as kubectl shows it: Pending or Bound.
func (c ClaimState) Phase() manifests.PersistentVolumeClaimPhase {
	if c.Node == "" {
		return manifests.ClaimPending
	}
	return manifests.ClaimBound
}

// VolumeName is the name of the claim's volume, as the local-path
// provisioner names it.
func (c ClaimState) VolumeName() string { return "pvc-" + c.UID }

// ReadWriteOncePod reports whether one pod at most may use the claim.
func (c ClaimState) ReadWriteOncePod() bool {
	return slices.Contains(c.AccessModes, manifests.ReadWriteOncePod)
}

// ReleasedClaim is a claim the plan releases: removed from git and used by
// no pod. Its volume's data on Node is deleted (ReclaimPolicy Delete) or
// kept (Retain).
type ReleasedClaim struct {
	ClaimState
}

// ClaimKey is the key of a claim in State.Claims.
func ClaimKey(namespace, name string) string { return namespace + "/" + name }

// PodClaims returns the names of the claims a pod's volumes use, sorted.
func PodClaims(spec *manifests.PodSpec) []string {
	var names []string
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil && !slices.Contains(names, v.PersistentVolumeClaim.ClaimName) {
			names = append(names, v.PersistentVolumeClaim.ClaimName)
		}
	}
	slices.Sort(names)
	return names
}

// claimSet is the claims during one plan.
type claimSet struct {
	byKey map[string]*ClaimState
	// users counts, per claim, the pods placed on a node that use it (for
	// ReadWriteOncePod).
	users map[string]int
}

func (cs *claimSet) get(namespace, name string) *ClaimState {
	if cs == nil {
		return nil
	}
	return cs.byKey[ClaimKey(namespace, name)]
}

// add adds a new claim.
func (cs *claimSet) add(c *ClaimState) { cs.byKey[ClaimKey(c.Namespace, c.Name)] = c }

// ownedBy returns the claims a StatefulSet's templates made, sorted.
func (cs *claimSet) ownedBy(owner string) []*ClaimState {
	var out []*ClaimState
	for _, key := range slices.Sorted(maps.Keys(cs.byKey)) {
		if c := cs.byKey[key]; c.Owner == owner {
			out = append(out, c)
		}
	}
	return out
}

// initClaims makes the plan's claims: those of State.Claims, a new one for
// every desired claim the cluster does not have, and the others marked as
// being deleted. A claim whose node was removed from the cluster lost its
// volume: it is made anew, pending.
func (p *planner) initClaims() {
	cs := &claimSet{byKey: make(map[string]*ClaimState, len(p.s.Claims)), users: map[string]int{}}
	p.claims = cs
	for _, key := range slices.Sorted(maps.Keys(p.s.Claims)) {
		c := p.s.Claims[key]
		c.AccessModes = slices.Clone(c.AccessModes)
		if c.Owner == "" {
			c.Deleting = true // until git is found to hold it
		} else if c.Node != "" && p.nodeRemoved(c.Node) && !c.Deleting {
			// A StatefulSet's claim on a removed node: made anew for its next pod.
			p.event("PersistentVolumeClaim/"+key, EventWarning, "VolumeLost", "node "+c.Node+" was removed from the cluster with volume "+
				c.VolumeName()+"; its data is lost, and a new volume is provisioned for the next pod")
			c.UID, c.Node, c.BoundAt, c.Created = p.ids.NewUID(), "", time.Time{}, p.s.Now
		}
		cs.byKey[key] = &c
	}
	var desired []*manifests.PersistentVolumeClaim
	for _, o := range p.s.Objects {
		if c, ok := o.(*manifests.PersistentVolumeClaim); ok {
			desired = append(desired, c)
		}
	}
	slices.SortStableFunc(desired, func(a, b *manifests.PersistentVolumeClaim) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	for _, d := range desired {
		key := ClaimKey(d.Namespace, d.Name)
		object := "PersistentVolumeClaim/" + key
		c := cs.byKey[key]
		if c != nil && !c.Deleting {
			continue // a duplicate, refused by validation
		}
		if c != nil && c.Owner != "" {
			// Git now holds a claim a StatefulSet made: it is git's from now on.
			c.Owner, c.WhenDeleted = "", ""
		}
		if c != nil && c.Node != "" && p.nodeRemoved(c.Node) {
			p.event(object, EventWarning, "VolumeLost", "node "+c.Node+" was removed from the cluster with volume "+
				c.VolumeName()+"; its data is lost, and a new volume is provisioned for the next pod")
			c = nil
		}
		if c == nil {
			c = &ClaimState{Namespace: d.Namespace, Name: d.Name, UID: p.ids.NewUID(), Capacity: d.StorageRequest(),
				AccessModes: slices.Clone(d.Spec.AccessModes), Created: p.s.Now}
			cs.byKey[key] = c
			p.event(object, EventNormal, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
		}
		c.Deleting = false
		c.ReclaimPolicy = d.ReclaimPolicy(p.storageClasses())
	}
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		if pod.Node == "" || pod.Terminating || pod.Spec == nil || pod.Phase == manifests.PodSucceeded || pod.Phase == manifests.PodFailed {
			continue
		}
		for _, name := range PodClaims(&pod.Spec.Spec) {
			cs.users[ClaimKey(pod.Namespace, name)]++
		}
	}
}

// storageClasses are the StorageClasses of git, by name.
func (p *planner) storageClasses() map[string]*manifests.StorageClass {
	if p.classes == nil {
		p.classes = map[string]*manifests.StorageClass{}
		for _, o := range p.s.Objects {
			if sc, ok := o.(*manifests.StorageClass); ok {
				p.classes[sc.Name] = sc
			}
		}
	}
	return p.classes
}

// orphanClaims applies whenDeleted to the claims of StatefulSets that
// left git: Delete releases them once their pods are gone; Retain keeps
// them, for the StatefulSet to use again if it comes back.
func (p *planner) orphanClaims(seen map[string]bool) {
	for _, key := range slices.Sorted(maps.Keys(p.claims.byKey)) {
		c := p.claims.byKey[key]
		if c.Owner == "" || seen[c.Owner] || c.Deleting {
			continue
		}
		if c.WhenDeleted == manifests.DeleteClaimRetention {
			c.Deleting = true
			p.event("PersistentVolumeClaim/"+key, EventNormal, "OwnerDeleted", strings.TrimPrefix(c.Owner, "StatefulSet/")+
				" left git; the claim goes once its pods are gone (whenDeleted: Delete)")
		}
	}
}

// nodeRemoved reports whether the node is neither registered nor known:
// it was removed from the cluster (shoal node remove).
func (p *planner) nodeRemoved(node string) bool {
	return p.s.Known != nil && !p.s.Known[node] && !p.registered(node)
}

// claimRefusal is why no node can take a pod for its claims, "" when the
// claims allow nodes: a claim that does not exist or is being deleted, or
// a ReadWriteOncePod claim another pod uses. The messages are
// kube-scheduler's.
func (cs *claimSet) refusal(namespace string, claims []string) string {
	for _, name := range claims {
		c := cs.get(namespace, name)
		switch {
		case c == nil:
			return `persistentvolumeclaim "` + name + `" not found`
		case c.Deleting:
			return `persistentvolumeclaim "` + name + `" is being deleted`
		case c.ReadWriteOncePod() && cs.users[ClaimKey(namespace, name)] > 0:
			return "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
		}
	}
	return ""
}

// fit is how a node fits a pod's claims: rFits, rVolumeConflict when a
// claim is bound to another node, rVolumeSpace when the node has no room
// for the claims still to be provisioned.
func (cs *claimSet) fit(namespace string, claims []string, n *schedNode, free int64) uint8 {
	var need int64
	for _, name := range claims {
		c := cs.get(namespace, name)
		switch {
		case c.Node == "":
			need += c.Capacity
		case c.Node != n.name:
			return rVolumeConflict
		}
	}
	if need > 0 && n.alloc.EphemeralStorage > 0 && need > free {
		return rVolumeSpace
	}
	return rFits
}

// bind binds the pod's pending claims to the node it was placed on, and
// returns the storage they take there.
func (p *planner) bindClaims(namespace string, claims []string, node string) int64 {
	var took int64
	for _, name := range claims {
		c := p.claims.get(namespace, name)
		p.claims.users[ClaimKey(namespace, name)]++
		if c.Node != "" {
			continue
		}
		c.Node, c.BoundAt = node, p.s.Now
		took += c.Capacity
		p.event("PersistentVolumeClaim/"+ClaimKey(namespace, name), EventNormal, "ProvisioningSucceeded",
			"Successfully provisioned volume "+c.VolumeName()+" on node "+node)
	}
	return took
}

// boundStorage is the storage of the claims bound to each node.
func (cs *claimSet) boundStorage() map[string]int64 {
	out := map[string]int64{}
	for _, c := range cs.byKey {
		if c.Node != "" {
			out[c.Node] += c.Capacity
		}
	}
	return out
}

// finishClaims puts the claims in the plan: every claim in Plan.Claims,
// but those being deleted that no pod uses any more, which are released.
func (p *planner) finishClaims() {
	used := map[string]bool{}
	for i := range p.s.Pods {
		pod := &p.s.Pods[i]
		if pod.Spec == nil {
			continue
		}
		for _, name := range PodClaims(&pod.Spec.Spec) {
			used[ClaimKey(pod.Namespace, name)] = true
		}
	}
	for _, c := range p.created {
		if c.pod.Spec != nil {
			for _, name := range PodClaims(&c.pod.Spec.Spec) {
				used[ClaimKey(c.pod.Namespace, name)] = true
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(p.claims.byKey)) {
		c := p.claims.byKey[key]
		if !c.Deleting || used[key] {
			p.plan.Claims = append(p.plan.Claims, *c)
			continue
		}
		object := "PersistentVolumeClaim/" + key
		why := "claim removed from git"
		if c.Owner != "" {
			why = "claim released by " + strings.TrimPrefix(c.Owner, "StatefulSet/")
		}
		switch {
		case c.Node == "":
			p.event(object, EventNormal, "Deleted", why+"; it had no volume yet")
		case c.ReclaimPolicy == manifests.ReclaimRetain:
			p.event(object, EventNormal, "VolumeRetained", why+"; volume "+c.VolumeName()+
				" is kept on node "+c.Node+" (reclaim policy Retain)")
		default:
			p.event(object, EventNormal, "VolumeDelete", why+"; volume "+c.VolumeName()+
				" on node "+c.Node+" is deleted (reclaim policy Delete)")
		}
		p.plan.ReleasedClaims = append(p.plan.ReleasedClaims, ReleasedClaim{*c})
	}
}
