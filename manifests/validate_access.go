package manifests

import (
	"cmp"
	"fmt"
	"slices"
)

// Checks of the kinds that configure identity and access: ServiceAccount,
// which Shoal uses (its imagePullSecrets), and the RBAC kinds, which are
// decoded strictly, checked lightly and reported as warnings, since they
// only configure access to a Kubernetes API that Shoal does not have.

func (v *validator) serviceAccount(sa *ServiceAccount) {
	v.imagePullSecrets(sa.ImagePullSecrets, "imagePullSecrets")
}

func (v *validator) policyRules(rules []PolicyRule, p string, namespaced bool) {
	for i, r := range rules {
		rp := idx(p, i)
		if len(r.Verbs) == 0 {
			v.errf(rp+".verbs", "required; list at least one verb, such as get")
		}
		if len(r.NonResourceURLs) > 0 {
			if namespaced {
				v.errf(rp+".nonResourceURLs", "a Role's rules cannot apply to non-resource URLs; use a ClusterRole")
			}
			if len(r.APIGroups) > 0 || len(r.Resources) > 0 || len(r.ResourceNames) > 0 {
				v.errf(rp+".nonResourceURLs", "a rule applies to resources or to non-resource URLs, not both; split it")
			}
			continue
		}
		if len(r.APIGroups) == 0 {
			v.errf(rp+".apiGroups", "required; list at least one API group (\"\" is the core group)")
		}
		if len(r.Resources) == 0 {
			v.errf(rp+".resources", "required; list at least one resource, such as pods")
		}
	}
}

func (v *validator) aggregationRule(a *AggregationRule) {
	if a == nil {
		return
	}
	for i := range a.ClusterRoleSelectors {
		v.labelSelector(&a.ClusterRoleSelectors[i], idx("aggregationRule.clusterRoleSelectors", i))
	}
}

// roleBinding checks the subjects and role of a RoleBinding (namespaced)
// or ClusterRoleBinding.
func (v *validator) roleBinding(subjects []Subject, ref RoleRef, namespaced bool) {
	if ref.APIGroup != RBACGroup {
		v.errf("roleRef.apiGroup", "must be %s, is %q", RBACGroup, ref.APIGroup)
	}
	switch {
	case ref.Kind == "ClusterRole":
	case ref.Kind == "Role" && namespaced:
	case namespaced:
		v.errf("roleRef.kind", "%q is not one of Role, ClusterRole", ref.Kind)
	default:
		v.errf("roleRef.kind", "%q is not supported; a ClusterRoleBinding grants a ClusterRole", ref.Kind)
	}
	if ref.Name == "" {
		v.errf("roleRef.name", "required; name the role to grant")
	} else if msg := validatePathSegmentName(ref.Name); msg != "" {
		v.errf("roleRef.name", "%s", msg)
	}
	for i, s := range subjects {
		sp := idx("subjects", i)
		if s.Name == "" {
			v.errf(sp+".name", "required")
		}
		switch s.Kind {
		case "ServiceAccount":
			if s.Name != "" {
				if msg := validateDNS1123Subdomain(s.Name); msg != "" {
					v.errf(sp+".name", "%s", msg)
				}
			}
			if s.APIGroup != "" {
				v.errf(sp+".apiGroup", "must be empty for a ServiceAccount, is %q", s.APIGroup)
			}
			if s.Namespace == "" && !namespaced {
				v.errf(sp+".namespace", "required; name the ServiceAccount's namespace")
			}
		case "User", "Group":
			if s.APIGroup != RBACGroup {
				v.errf(sp+".apiGroup", "must be %s for a %s, is %q", RBACGroup, s.Kind, s.APIGroup)
			}
		default:
			v.errf(sp+".kind", "%q is not one of ServiceAccount, User, Group", s.Kind)
		}
		if s.Namespace != "" {
			if msg := validateDNS1123Label(s.Namespace); msg != "" {
				v.errf(sp+".namespace", "%s", msg)
			}
		}
	}
}

// serviceAccountRefs refuses pods whose account is neither "default" nor a
// ServiceAccount of their namespace in the tree.
func (v *validator) serviceAccountRefs(items []located, pods []podTemplate) {
	accounts := map[string]bool{}
	for _, it := range items {
		if sa, ok := it.obj.(*ServiceAccount); ok {
			accounts[sa.Namespace+"/"+sa.Name] = true
		}
	}
	for _, pod := range pods {
		name := pod.spec.ServiceAccountName
		if name == "" || name == DefaultServiceAccountName || accounts[pod.namespace+"/"+name] {
			continue
		}
		v.src = pod.src
		field := pod.specPath + ".serviceAccountName"
		if pod.src != nil && !pod.src.has(field) && pod.src.has(pod.specPath+".serviceAccount") {
			field = pod.specPath + ".serviceAccount"
		}
		v.errf(field, "ServiceAccount %q is not in namespace %q of this commit; add it (kind: ServiceAccount) or use %q",
			name, pod.namespace, DefaultServiceAccountName)
	}
}

// warningAt is a warning about field of the object read from src (nil: no place to name).
func warningAt(src *source, field, format string, args ...any) *Error {
	e := &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
	if src != nil {
		e.File, e.Line = src.file, src.lineOf(field)
	}
	return e
}

// objectWarnings returns what in the tree loads but does not do what it
// would in Kubernetes: the RBAC kinds, and ServiceAccount tokens asked for.
func objectWarnings(items []located) ErrorList {
	var w ErrorList
	add := func(src *source, field, format string, args ...any) {
		w = append(w, warningAt(src, field, format, args...))
	}
	const noToken = "Shoal mounts no ServiceAccount token: it has no Kubernetes API for a token to be used with"
	for _, it := range items {
		if field, msg := hookWarning(it.obj.GetObjectMeta()); msg != "" {
			add(it.src, field, "%s", msg)
		}
		switch o := it.obj.(type) {
		case *Role, *ClusterRole, *RoleBinding, *ClusterRoleBinding:
			kind := it.obj.GetKind()
			add(it.src, "", "%s %q has no effect in Shoal: %s only configures access to the Kubernetes API, which Shoal does not have",
				kind, it.obj.GetObjectMeta().Name, kind)
		case *ServiceAccount:
			if t := o.AutomountServiceAccountToken; t != nil && *t {
				add(it.src, "automountServiceAccountToken", "%s", noToken)
			}
		}
	}
	for _, pod := range podTemplates(items) {
		if t := pod.spec.AutomountServiceAccountToken; t != nil && *t {
			add(pod.src, pod.specPath+".automountServiceAccountToken", "%s", noToken)
		}
	}
	w = append(w, loadBalancerSharing(items)...)
	w = append(w, storageClassWarnings(items)...)
	w.Sort()
	return w
}

// loadBalancerSharing warns of LoadBalancer Services that want a port and protocol that an
// earlier one (by namespace and name) has: each LoadBalancer port is opened on every node's
// address, so only one of them is served and the others stay pending, as with k3s's ServiceLB.
func loadBalancerSharing(items []located) ErrorList {
	type lbPort struct {
		port  int32
		proto Protocol
	}
	type lbService struct {
		svc *Service
		src *source
	}
	var lbs []lbService
	for _, it := range items {
		if svc, ok := it.obj.(*Service); ok && svc.Spec.Type == ServiceTypeLoadBalancer {
			lbs = append(lbs, lbService{svc, it.src})
		}
	}
	slices.SortStableFunc(lbs, func(a, b lbService) int {
		return cmp.Or(cmp.Compare(a.svc.Namespace, b.svc.Namespace), cmp.Compare(a.svc.Name, b.svc.Name))
	})
	var w ErrorList
	first := map[lbPort]ObjectKey{}
	for _, l := range lbs {
		self := KeyOf(l.svc)
		for i, p := range l.svc.Spec.Ports {
			k := lbPort{p.Port, p.Protocol}
			other, taken := first[k]
			if !taken {
				first[k] = self
				continue
			}
			if other == self {
				continue
			}
			field := idx("spec.ports", i) + ".port"
			e := &Error{Field: field, Msg: fmt.Sprintf("port %d/%s is also a port of the LoadBalancer Service %s: a LoadBalancer port is opened on "+
				"every node's address, so only one of the two is served and the other stays pending (no EXTERNAL-IP), as with k3s's ServiceLB; "+
				"the one that had the port keeps it, else the first by namespace and name; give each LoadBalancer Service its own ports", p.Port, p.Protocol, other.Namespace+"/"+other.Name)}
			if l.src != nil {
				e.File, e.Line = l.src.file, l.src.lineOf(field)
			}
			w = append(w, e)
		}
	}
	return w
}
