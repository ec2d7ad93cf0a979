package reconcile

import (
	"github.com/shoal-dev/shoal/manifests"
)

// standalone plans the pods of standalone Pod objects: one pod each, named
// as the object; replaced (deleted, then created once gone) when the object
// changes in git; deleted when it is removed. As in Kubernetes, a standalone
// pod is never moved off a lost node: it stays, reported as Unknown.
func (p *planner) standalone(objs []*manifests.Pod, pods []*Pod) {
	byName := make(map[string][]*Pod, len(pods))
	for _, pod := range pods {
		k := pod.Namespace + "/" + pod.Name
		byName[k] = append(byName[k], pod)
	}
	want := make(map[string]bool, len(objs))
	for _, o := range objs {
		k := o.Namespace + "/" + o.Name
		if want[k] {
			continue // duplicates are refused by validation; keep the first
		}
		want[k] = true
		hash := podObjectHash(o)
		waiting := false // a pod of that name still exists
		kept := false
		for _, pod := range byName[k] {
			lost := p.nodeLost(pod)
			switch {
			case pod.Terminating || p.isDeleted(pod):
				if lost || pod.Node == "" {
					p.delete(pod, DeleteSpecChanged, "") // no node will confirm: force it
				} else {
					waiting = true
				}
			case kept || specChanged(pod, hash):
				// Changed in git (or a duplicate): delete, then create once
				// gone. On a lost node the delete is forced: nothing waits.
				p.delete(pod, DeleteSpecChanged, "")
				waiting = waiting || !lost && pod.Node != ""
			default:
				kept = true
				if lost {
					p.markUnknown(pod)
				}
			}
		}
		if kept || waiting {
			continue
		}
		spec, _ := o.DeepCopyObject().(*manifests.Pod)
		if spec == nil {
			continue
		}
		spec.Status = manifests.PodStatus{}
		p.create(Pod{
			UID: p.ids.NewUID(), Namespace: o.Namespace, Name: o.Name, TemplateHash: hash,
			Spec: spec, Commit: p.s.Commit, Created: p.s.Now, Phase: manifests.PodPending,
		}, requestOf(o.Namespace, spec.Labels, &spec.Spec))
		p.event("Pod/"+o.Namespace+"/"+o.Name, EventNormal, "Created", "Created pod "+o.Namespace+"/"+o.Name)
	}
	for _, pod := range pods {
		if want[pod.Namespace+"/"+pod.Name] {
			continue
		}
		if !pod.Terminating || pod.Node == "" || p.nodeLost(pod) {
			p.delete(pod, DeletePruned, "")
		}
	}
}

// specChanged reports whether a standalone pod was made from another
// version of its Pod object than the one of hash. A pod without a recorded
// hash is compared by its spec.
func specChanged(pod *Pod, hash string) bool {
	if pod.TemplateHash != "" || pod.Spec == nil {
		return pod.TemplateHash != hash
	}
	return podObjectHash(pod.Spec) != hash
}

// markUnknown reports a standalone pod of a lost node as Unknown, once.
func (p *planner) markUnknown(pod *Pod) {
	if pod.Phase == manifests.PodUnknown {
		return
	}
	msg := "node " + pod.Node + " is lost; the pod stays bound to it"
	p.plan.Actions = append(p.plan.Actions, SetPodStatus{UID: pod.UID, Phase: manifests.PodUnknown, Reason: "NodeLost", Message: msg})
	p.event("Pod/"+pod.Namespace+"/"+pod.Name, EventWarning, "NodeLost", "Pod "+pod.Namespace+"/"+pod.Name+" is Unknown: "+msg)
}
