package manifests

import (
	"slices"
	"strings"
)

// Annotations of Argo CD's and Helm's hooks: objects that those tools apply at a phase of a
// sync or a release instead of with the other objects.
const (
	ArgoHookAnnotation = "argocd.argoproj.io/hook"
	HelmHookAnnotation = "helm.sh/hook"
)

// Hook phases Shoal gives a meaning: the object is applied with the commit, as any other.
var (
	argoApplied = []string{"PreSync", "Sync", "PostSync"}
	helmApplied = []string{"pre-install", "post-install", "pre-upgrade", "post-upgrade"}
)

// hookPhases returns the phases an annotation value lists ("pre-install,post-upgrade").
func hookPhases(v string) []string {
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// hooks refuses the hook phases that Shoal cannot give a meaning to: Argo CD's SyncFail and
// Skip, and Helm's test, delete and rollback hooks, which run on events Shoal does not have.
func (v *validator) hooks(m *ObjectMeta, p string) {
	if val, ok := m.Annotations[ArgoHookAnnotation]; ok {
		for _, ph := range hookPhases(val) {
			if !slices.Contains(argoApplied, ph) {
				v.errf(p+".annotations["+ArgoHookAnnotation+"]", "hook %q runs on an Argo CD sync event that Shoal does not have; "+
					"Shoal applies PreSync, Sync and PostSync hooks with the rest of the commit: use one of those or remove the annotation", ph)
			}
		}
	}
	if val, ok := m.Annotations[HelmHookAnnotation]; ok {
		for _, ph := range hookPhases(val) {
			if !slices.Contains(helmApplied, ph) {
				v.errf(p+".annotations["+HelmHookAnnotation+"]", "hook %q runs on a Helm release event that Shoal does not have; "+
					"Shoal applies install and upgrade hooks with the rest of the commit: use one of those or remove the annotation", ph)
			}
		}
	}
}

// hookWarning says what a hook annotation that loads means in Shoal, "" for an object
// without one.
func hookWarning(m *ObjectMeta) (field, msg string) {
	for _, a := range []string{ArgoHookAnnotation, HelmHookAnnotation} {
		if val, ok := m.Annotations[a]; ok {
			msg = "hook " + strings.Join(hookPhases(val), ",") +
				" is applied with the rest of the commit: Shoal has no sync phases, so it runs neither before nor after the other objects, " +
				"and a hook Job runs once per change of its template, not on every sync"
			if _, ok := m.Annotations[a+"-delete-policy"]; ok {
				msg += "; " + a + "-delete-policy has no effect (ttlSecondsAfterFinished deletes a finished Job's pods)"
			}
			return "metadata.annotations[" + a + "]", msg
		}
	}
	return "", ""
}
