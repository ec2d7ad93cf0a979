package reconcile

import (
	"slices"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
)

func TestReferencesPullSecrets(t *testing.T) {
	ref := func(names ...string) []manifests.LocalObjectReference {
		var out []manifests.LocalObjectReference
		for _, n := range names {
			out = append(out, manifests.LocalObjectReference{Name: n})
		}
		return out
	}
	secret := func(ns, name string) *manifests.Secret {
		return &manifests.Secret{ObjectMeta: manifests.ObjectMeta{Namespace: ns, Name: name}, Type: manifests.SecretTypeDockerConfigJSON}
	}
	sa := func(ns, name string, pull ...string) *manifests.ServiceAccount {
		return &manifests.ServiceAccount{ObjectMeta: manifests.ObjectMeta{Namespace: ns, Name: name}, ImagePullSecrets: ref(pull...)}
	}
	objs := []manifests.Object{
		secret("shop", "pod-creds"), secret("shop", "default-creds"), secret("shop", "builder-creds"), secret("other", "pod-creds"),
		sa("shop", "default", "default-creds"), sa("shop", "builder", "builder-creds"), sa("other", "builder", "pod-creds"),
	}
	tests := []struct {
		name         string
		account      string
		pull         []string
		wantPull     []string
		wantAttached []string
	}{
		{"the pod's own secrets win over its account's", "builder", []string{"pod-creds"}, []string{"pod-creds"}, []string{"pod-creds"}},
		{"the named account's secrets", "builder", nil, []string{"builder-creds"}, []string{"builder-creds"}},
		{"the default account's secrets", "", nil, []string{"default-creds"}, []string{"default-creds"}},
		{"an account without secrets", "ghost", nil, nil, nil},
		{"a missing secret is not attached", "", []string{"gone", "pod-creds"}, []string{"gone", "pod-creds"}, []string{"pod-creds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desired := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Namespace: "shop", Name: "web"},
				Spec: manifests.PodSpec{ServiceAccountName: tt.account, ImagePullSecrets: ref(tt.pull...)}}
			pod, _, secrets := references(objs, desired)
			var pull []string
			for _, r := range pod.Spec.ImagePullSecrets {
				pull = append(pull, r.Name)
			}
			if !slices.Equal(pull, tt.wantPull) {
				t.Errorf("imagePullSecrets %v, want %v", pull, tt.wantPull)
			}
			var attached []string
			for n, s := range secrets {
				if s.Namespace != "shop" {
					t.Errorf("secret %s of namespace %s attached", n, s.Namespace)
				}
				attached = append(attached, n)
			}
			slices.Sort(attached)
			if !slices.Equal(attached, tt.wantAttached) {
				t.Errorf("attached %v, want %v", attached, tt.wantAttached)
			}
			if len(tt.pull) == 0 && len(desired.Spec.ImagePullSecrets) != 0 {
				t.Errorf("the desired pod was changed")
			}
		})
	}
}

// The pods a plan creates carry the ConfigMaps and Secrets they refer to.
func TestCreatedPodsCarryTheirReferences(t *testing.T) {
	replicas := int32(1)
	d := &manifests.Deployment{ObjectMeta: manifests.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: manifests.DeploymentSpec{Replicas: &replicas, Selector: &manifests.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: manifests.PodTemplateSpec{ObjectMeta: manifests.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: manifests.PodSpec{Containers: []manifests.Container{{Name: "c", Image: "i",
					EnvFrom: []manifests.EnvFromSource{{SecretRef: &manifests.SecretEnvSource{LocalObjectReference: manifests.LocalObjectReference{Name: "creds"}}}}}},
					Volumes: []manifests.Volume{{Name: "cfg", VolumeSource: manifests.VolumeSource{ConfigMap: &manifests.ConfigMapVolumeSource{LocalObjectReference: manifests.LocalObjectReference{Name: "cfg"}}}}}}}}}
	manifests.SetDefaults(d)
	cm := &manifests.ConfigMap{ObjectMeta: manifests.ObjectMeta{Namespace: "default", Name: "cfg"}}
	other := &manifests.ConfigMap{ObjectMeta: manifests.ObjectMeta{Namespace: "default", Name: "unused"}}
	sec := &manifests.Secret{ObjectMeta: manifests.ObjectMeta{Namespace: "default", Name: "creds"}}
	plan := Reconcile(State{Objects: []manifests.Object{d, cm, other, sec}, Nodes: []Node{{Name: "n1", Ready: true,
		Allocatable: Resources{MilliCPU: 1000, Memory: 1 << 30}}}}, &seqIDs{})
	if len(plan.Actions) != 1 {
		t.Fatalf("actions %+v, want one CreatePod", plan.Actions)
	}
	c, ok := plan.Actions[0].(CreatePod)
	if !ok || c.ConfigMaps["cfg"] != cm || len(c.ConfigMaps) != 1 || c.Secrets["creds"] != sec || len(c.Secrets) != 1 {
		t.Errorf("created %+v, want the pod with cfg and creds only", plan.Actions[0])
	}
}
