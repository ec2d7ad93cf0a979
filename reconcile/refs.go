package reconcile

import (
	"slices"

	"github.com/shoal-dev/shoal/manifests"
)

// references finds, among the desired objects, the ConfigMaps and Secrets a new pod refers to
// (those of its volumes and environment, and its image pull secrets), for its node to run it
// with. As Kubernetes' ServiceAccount admission does, a pod that lists no imagePullSecrets gets
// those of its ServiceAccount: references then returns a copy of the pod with them (the desired
// pod is shared and never changed).
func references(objs []manifests.Object, pod *manifests.Pod) (*manifests.Pod, map[string]*manifests.ConfigMap, map[string]*manifests.Secret) {
	if pod == nil {
		return nil, nil, nil
	}
	ns := pod.Namespace
	if len(pod.Spec.ImagePullSecrets) == 0 {
		if sa := serviceAccount(objs, ns, pod.Spec); sa != nil && len(sa.ImagePullSecrets) > 0 {
			pod = pod.DeepCopyObject().(*manifests.Pod)
			pod.Spec.ImagePullSecrets = slices.Clone(sa.ImagePullSecrets)
		}
	}
	configMaps, secrets := map[string]bool{}, map[string]bool{}
	ps := &pod.Spec
	for _, v := range ps.Volumes {
		if v.ConfigMap != nil {
			configMaps[v.ConfigMap.Name] = true
		}
		if v.Secret != nil {
			secrets[v.Secret.SecretName] = true
		}
	}
	for _, r := range ps.ImagePullSecrets {
		secrets[r.Name] = true
	}
	for _, c := range slices.Concat(ps.InitContainers, ps.Containers) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				configMaps[e.ValueFrom.ConfigMapKeyRef.Name] = true
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				secrets[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				configMaps[ef.ConfigMapRef.Name] = true
			}
			if ef.SecretRef != nil {
				secrets[ef.SecretRef.Name] = true
			}
		}
	}
	var cms map[string]*manifests.ConfigMap
	var scs map[string]*manifests.Secret
	for _, o := range objs {
		switch o := o.(type) {
		case *manifests.ConfigMap:
			if o.Namespace == ns && configMaps[o.Name] {
				if cms == nil {
					cms = map[string]*manifests.ConfigMap{}
				}
				cms[o.Name] = o
			}
		case *manifests.Secret:
			if o.Namespace == ns && secrets[o.Name] {
				if scs == nil {
					scs = map[string]*manifests.Secret{}
				}
				scs[o.Name] = o
			}
		}
	}
	return pod, cms, scs
}

// PodSecrets returns the Secrets among objs that pod refers to, as references finds them for a
// new pod. The master uses it to seal a placed pod's Secrets again: one placed pending and bound
// later, or one whose node's key changed.
func PodSecrets(objs []manifests.Object, pod *manifests.Pod) map[string]*manifests.Secret {
	_, _, secrets := references(objs, pod)
	return secrets
}

// serviceAccount finds the pod's ServiceAccount ("default" unless it names one) among the
// desired objects.
func serviceAccount(objs []manifests.Object, ns string, ps manifests.PodSpec) *manifests.ServiceAccount {
	name := ps.ServiceAccountName
	if name == "" {
		name = ps.DeprecatedServiceAccount
	}
	if name == "" {
		name = manifests.DefaultServiceAccountName
	}
	for _, o := range objs {
		if sa, ok := o.(*manifests.ServiceAccount); ok && sa.Namespace == ns && sa.Name == name {
			return sa
		}
	}
	return nil
}

// resolveReferences gives every pod the plan creates the objects it refers to.
func (p *planner) resolveReferences() {
	for i, a := range p.plan.Actions {
		if c, ok := a.(CreatePod); ok {
			c.Pod.Spec, c.ConfigMaps, c.Secrets = references(p.s.Objects, c.Pod.Spec)
			p.plan.Actions[i] = c
		}
	}
}
