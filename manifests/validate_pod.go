package manifests

import (
	"strconv"
	"strings"
)

// HostnameTopologyKey is the only topology key Shoal supports: every node is
// its own topology domain.
const HostnameTopologyKey = "kubernetes.io/hostname"

// Limits of a pod's resolv.conf, as the C library has them.
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
)

// serviceAccountName checks the pod's account name and its deprecated alias.
// Whether the account exists is checked across objects (crossObject).
func (v *validator) serviceAccountName(s *PodSpec, p string) {
	if s.ServiceAccountName != "" {
		if msg := validateDNS1123Subdomain(s.ServiceAccountName); msg != "" {
			v.errf(p+".serviceAccountName", "%s", msg)
		}
	}
	if s.DeprecatedServiceAccount != "" && s.ServiceAccountName != "" && s.DeprecatedServiceAccount != s.ServiceAccountName {
		v.errf(p+".serviceAccount", "%q differs from serviceAccountName %q; serviceAccount is the deprecated name of serviceAccountName: "+
			"remove it or give both the same value", s.DeprecatedServiceAccount, s.ServiceAccountName)
	}
}

func (v *validator) imagePullSecrets(refs []LocalObjectReference, p string) {
	for i, r := range refs {
		v.refName(r.Name, idx(p, i)+".name")
	}
}

func (v *validator) hostAliases(aliases []HostAlias, p string) {
	for i, h := range aliases {
		hp := idx(p, i)
		if msg := checkIP(h.IP); msg != "" {
			v.errf(hp+".ip", "%s", msg)
		}
		for j, name := range h.Hostnames {
			if msg := validateDNS1123Subdomain(name); msg != "" {
				v.errf(idx(hp+".hostnames", j), "%s", msg)
			}
		}
	}
}

func (v *validator) dns(s *PodSpec, p string) {
	switch s.DNSPolicy {
	case "", DNSClusterFirst, DNSClusterFirstWithHostNet, DNSDefault:
	case DNSNone:
		if s.DNSConfig == nil || len(s.DNSConfig.Nameservers) == 0 {
			v.errf(p+".dnsPolicy", "None needs dnsConfig with at least one nameserver (dnsConfig.nameservers), as the pod's resolv.conf has only what dnsConfig says")
		}
	default:
		v.errf(p+".dnsPolicy", "%q is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None", s.DNSPolicy)
	}
	c := s.DNSConfig
	if c == nil {
		return
	}
	cp := p + ".dnsConfig"
	if len(c.Nameservers) > maxDNSNameservers {
		v.errf(cp+".nameservers", "has %d nameservers, more than %d (what a resolver reads); keep at most %d", len(c.Nameservers), maxDNSNameservers, maxDNSNameservers)
	}
	for i, ns := range c.Nameservers {
		if msg := checkIP(ns); msg != "" {
			v.errf(idx(cp+".nameservers", i), "%s", msg)
		}
	}
	if len(c.Searches) > maxDNSSearchPaths {
		v.errf(cp+".searches", "has %d search domains, more than %d; keep at most %d", len(c.Searches), maxDNSSearchPaths, maxDNSSearchPaths)
	}
	if n := len(strings.Join(c.Searches, " ")); n > maxDNSSearchListChars {
		v.errf(cp+".searches", "the search list is %d characters (with the spaces between domains), more than %d", n, maxDNSSearchListChars)
	}
	for i, d := range c.Searches {
		if d == "." {
			continue
		}
		if msg := validateDNS1123SubdomainWithUnderscore(strings.TrimSuffix(d, ".")); msg != "" {
			v.errf(idx(cp+".searches", i), "%s", msg)
		}
	}
	for i, o := range c.Options {
		if o.Name == "" {
			v.errf(idx(cp+".options", i)+".name", "required; name the resolver option, such as ndots")
		}
	}
}

func (v *validator) affinity(a *Affinity, p string) {
	if a == nil {
		return
	}
	if na := a.NodeAffinity; na != nil {
		np := p + ".nodeAffinity"
		if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
			rp := np + ".requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
			if len(r.NodeSelectorTerms) == 0 {
				v.errf(rp, "required; give at least one node selector term (a node fits when it matches any of them)")
			}
			for i := range r.NodeSelectorTerms {
				v.nodeSelectorTerm(&r.NodeSelectorTerms[i], idx(rp, i), true)
			}
		}
		for i := range na.PreferredDuringSchedulingIgnoredDuringExecution {
			t := &na.PreferredDuringSchedulingIgnoredDuringExecution[i]
			tp := idx(np+".preferredDuringSchedulingIgnoredDuringExecution", i)
			v.weight(t.Weight, tp+".weight")
			// Kubernetes allows any value in a preference: it just matches no node.
			v.nodeSelectorTerm(&t.Preference, tp+".preference", false)
		}
	}
	if pa := a.PodAffinity; pa != nil {
		v.podAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, p+".podAffinity")
	}
	if pa := a.PodAntiAffinity; pa != nil {
		v.podAffinityTerms(pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, p+".podAntiAffinity")
	}
}

func (v *validator) weight(w int32, p string) {
	if w < 1 || w > 100 {
		v.errf(p, "must be between 1 and 100, is %d", w)
	}
}

const nodeSelectorOperators = "In, NotIn, Exists, DoesNotExist, Gt, Lt"

// nodeSelectorTerm checks a term of node affinity. strict requires valid
// label values, as Kubernetes does in required terms.
func (v *validator) nodeSelectorTerm(t *NodeSelectorTerm, p string, strict bool) {
	for i, r := range t.MatchExpressions {
		v.nodeSelectorRequirement(r, idx(p+".matchExpressions", i), strict)
	}
	for i, r := range t.MatchFields {
		v.nodeFieldRequirement(r, idx(p+".matchFields", i))
	}
}

func (v *validator) nodeSelectorRequirement(r NodeSelectorRequirement, p string, strict bool) {
	switch r.Operator {
	case NodeSelectorOpIn, NodeSelectorOpNotIn:
		if len(r.Values) == 0 {
			v.errf(p+".values", "required when operator is %s; list the label values", r.Operator)
		}
	case NodeSelectorOpExists, NodeSelectorOpDoesNotExist:
		if len(r.Values) > 0 {
			v.errf(p+".values", "must be empty when operator is %s", r.Operator)
		}
	case NodeSelectorOpGt, NodeSelectorOpLt:
		if len(r.Values) != 1 {
			v.errf(p+".values", "needs exactly one value when operator is %s: the integer to compare the label with", r.Operator)
		} else if _, err := strconv.ParseInt(r.Values[0], 10, 64); err != nil {
			v.errf(idx(p+".values", 0), "%q is not an integer; %s compares the node's label as an integer", r.Values[0], r.Operator)
		}
	case "":
		v.errf(p+".operator", "required; one of %s", nodeSelectorOperators)
	default:
		v.errf(p+".operator", "%q is not one of %s", r.Operator, nodeSelectorOperators)
	}
	v.labelKey(r.Key, p+".key")
	if !strict {
		return
	}
	for i, val := range r.Values {
		if msg := validateLabelValue(val); msg != "" {
			v.errf(idx(p+".values", i), "label value %q: %s", val, msg)
		}
	}
}

// nodeFieldRequirement checks a matchFields requirement: Kubernetes
// selects nodes by metadata.name only.
func (v *validator) nodeFieldRequirement(r NodeSelectorRequirement, p string) {
	switch r.Operator {
	case NodeSelectorOpIn, NodeSelectorOpNotIn:
		if len(r.Values) != 1 {
			v.errf(p+".values", "needs exactly one value, a node name, when operator is %s in matchFields", r.Operator)
		}
	default:
		v.errf(p+".operator", "%q is not supported in matchFields; use In or NotIn", r.Operator)
	}
	if r.Key != "metadata.name" {
		v.errf(p+".key", "%q is not a node field; matchFields selects on metadata.name only (use matchExpressions for labels)", r.Key)
		return
	}
	for i, val := range r.Values {
		if msg := validateDNS1123Subdomain(val); msg != "" {
			v.errf(idx(p+".values", i), "%s", msg)
		}
	}
}

func (v *validator) labelKey(k, p string) {
	if k == "" {
		v.errf(p, "required; name a label key")
	} else if msg := validateQualifiedName(k); msg != "" {
		v.errf(p, "label key %q: %s", k, msg)
	}
}

func (v *validator) podAffinityTerms(required []PodAffinityTerm, preferred []WeightedPodAffinityTerm, p string) {
	for i := range required {
		v.podAffinityTerm(&required[i], idx(p+".requiredDuringSchedulingIgnoredDuringExecution", i))
	}
	for i := range preferred {
		tp := idx(p+".preferredDuringSchedulingIgnoredDuringExecution", i)
		v.weight(preferred[i].Weight, tp+".weight")
		v.podAffinityTerm(&preferred[i].PodAffinityTerm, tp+".podAffinityTerm")
	}
}

func (v *validator) podAffinityTerm(t *PodAffinityTerm, p string) {
	v.labelSelector(t.LabelSelector, p+".labelSelector")
	for i, ns := range t.Namespaces {
		if msg := validateDNS1123Label(ns); msg != "" {
			v.errf(idx(p+".namespaces", i), "%s", msg)
		}
	}
	if t.NamespaceSelector != nil {
		v.errf(p+".namespaceSelector", "%s; list the namespaces under namespaces instead (none: the pod's own namespace)", notYet)
	}
	if len(t.MatchLabelKeys) > 0 {
		v.errf(p+".matchLabelKeys", "%s; put the labels and their values in labelSelector instead", notYet)
	}
	if len(t.MismatchLabelKeys) > 0 {
		v.errf(p+".mismatchLabelKeys", "%s; put the labels and their values in labelSelector instead", notYet)
	}
	v.topologyKey(t.TopologyKey, p+".topologyKey")
}

// topologyKey refuses any topology key but kubernetes.io/hostname.
func (v *validator) topologyKey(k, p string) {
	switch {
	case k == HostnameTopologyKey:
	case k == "":
		v.errf(p, "required; Shoal supports %s (each node its own domain)", HostnameTopologyKey)
	case validateQualifiedName(k) != "":
		v.errf(p, "label key %q: %s", k, validateQualifiedName(k))
	default:
		v.errf(p, "topology key %q is %s; Shoal supports %s only (each node its own domain)", k, notYet, HostnameTopologyKey)
	}
}

// labelSelector checks a structured selector as Kubernetes does; nil is
// valid (it selects nothing).
func (v *validator) labelSelector(ls *LabelSelector, p string) {
	if ls == nil {
		return
	}
	for _, k := range sortedKeys(ls.MatchLabels) {
		kp := p + ".matchLabels[" + k + "]"
		v.labelKey(k, kp)
		if msg := validateLabelValue(ls.MatchLabels[k]); msg != "" {
			v.errf(kp, "label value %q: %s", ls.MatchLabels[k], msg)
		}
	}
	for i, e := range ls.MatchExpressions {
		ep := idx(p+".matchExpressions", i)
		v.labelKey(e.Key, ep+".key")
		switch e.Operator {
		case LabelSelectorOpIn, LabelSelectorOpNotIn:
			if len(e.Values) == 0 {
				v.errf(ep+".values", "required when operator is %s; list the label values", e.Operator)
			}
		case LabelSelectorOpExists, LabelSelectorOpDoesNotExist:
			if len(e.Values) > 0 {
				v.errf(ep+".values", "must be empty when operator is %s", e.Operator)
			}
		default:
			v.errf(ep+".operator", "%q is not one of In, NotIn, Exists, DoesNotExist", e.Operator)
		}
		for j, val := range e.Values {
			if msg := validateLabelValue(val); msg != "" {
				v.errf(idx(ep+".values", j), "label value %q: %s", val, msg)
			}
		}
	}
}

func (v *validator) tolerations(ts []Toleration, p string) {
	for i, t := range ts {
		tp := idx(p, i)
		if t.Key != "" {
			v.labelKey(t.Key, tp+".key")
		} else if t.Operator != TolerationOpExists {
			v.errf(tp+".operator", "must be Exists when key is empty (which tolerates every taint); name a key or use operator: Exists")
		}
		if t.TolerationSeconds != nil && t.Effect != TaintEffectNoExecute {
			v.errf(tp+".tolerationSeconds", "may only be set when effect is NoExecute (how long the pod stays on a node that gets the taint)")
		}
		switch t.Operator {
		case TolerationOpEqual, "":
			if msg := validateLabelValue(t.Value); msg != "" {
				v.errf(tp+".value", "%s", msg)
			}
		case TolerationOpExists:
			if t.Value != "" {
				v.errf(tp+".value", "must be empty when operator is Exists; remove it or use operator: Equal")
			}
		default:
			v.errf(tp+".operator", "%q is not one of Equal, Exists", t.Operator)
		}
		switch t.Effect {
		case "", TaintEffectNoSchedule, TaintEffectPreferNoSchedule, TaintEffectNoExecute:
		default:
			v.errf(tp+".effect", "%q is not one of NoSchedule, PreferNoSchedule, NoExecute (or empty for every effect)", t.Effect)
		}
	}
}

func (v *validator) topologySpread(cs []TopologySpreadConstraint, p string) {
	type kind struct {
		key  string
		when UnsatisfiableConstraintAction
	}
	seen := map[kind]int{}
	for i := range cs {
		c := &cs[i]
		cp := idx(p, i)
		if c.MaxSkew <= 0 {
			v.errf(cp+".maxSkew", "must be greater than zero, is %d", c.MaxSkew)
		}
		v.topologyKey(c.TopologyKey, cp+".topologyKey")
		switch c.WhenUnsatisfiable {
		case DoNotSchedule, ScheduleAnyway:
		case "":
			v.errf(cp+".whenUnsatisfiable", "required; one of DoNotSchedule, ScheduleAnyway")
		default:
			v.errf(cp+".whenUnsatisfiable", "%q is not one of DoNotSchedule, ScheduleAnyway", c.WhenUnsatisfiable)
		}
		k := kind{c.TopologyKey, c.WhenUnsatisfiable}
		if first, dup := seen[k]; dup {
			v.errf(cp, "duplicate of %s: one constraint per topologyKey and whenUnsatisfiable (%s, %s); merge them",
				idx(p, first), c.TopologyKey, c.WhenUnsatisfiable)
		} else {
			seen[k] = i
		}
		if md := c.MinDomains; md != nil {
			if *md <= 0 {
				v.errf(cp+".minDomains", "must be greater than zero, is %d", *md)
			}
			if c.WhenUnsatisfiable != DoNotSchedule {
				v.errf(cp+".minDomains", "may only be set when whenUnsatisfiable is DoNotSchedule")
			}
		}
		v.nodeInclusionPolicy(c.NodeAffinityPolicy, cp+".nodeAffinityPolicy")
		v.nodeInclusionPolicy(c.NodeTaintsPolicy, cp+".nodeTaintsPolicy")
		v.matchLabelKeys(c.MatchLabelKeys, c.LabelSelector, cp+".matchLabelKeys")
		v.labelSelector(c.LabelSelector, cp+".labelSelector")
	}
}

func (v *validator) nodeInclusionPolicy(np *NodeInclusionPolicy, p string) {
	if np == nil {
		return
	}
	switch *np {
	case NodeInclusionPolicyHonor, NodeInclusionPolicyIgnore:
	default:
		v.errf(p, "%q is not one of Honor, Ignore", *np)
	}
}

// matchLabelKeys checks the keys whose values, taken from the pod's own
// labels, narrow a spread constraint's selector.
func (v *validator) matchLabelKeys(keys []string, ls *LabelSelector, p string) {
	if len(keys) == 0 {
		return
	}
	if ls == nil {
		v.errf(p, "may only be set together with labelSelector")
		return
	}
	inSelector := map[string]bool{}
	for k := range ls.MatchLabels {
		inSelector[k] = true
	}
	for _, e := range ls.MatchExpressions {
		inSelector[e.Key] = true
	}
	for i, k := range keys {
		v.labelKey(k, idx(p, i))
		if inSelector[k] {
			v.errf(idx(p, i), "%q is also in labelSelector; a key may be in one of them", k)
		}
	}
}
