package lifecycle

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

func podSpec(c manifests.Container) *runtime.PodSpec {
	pod := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: manifests.PodSpec{Containers: []manifests.Container{c}}}
	manifests.SetDefaults(pod)
	return &runtime.PodSpec{UID: "u1", Pod: pod}
}

var testImage = Image{Ref: "img", Entrypoint: []string{"/entry"}, Cmd: []string{"default-arg"}, Env: []string{"PATH=/bin", "FROM_IMAGE=1"}, WorkingDir: "/srv", User: "1000"}

func mustQ(t *testing.T, s string) manifests.Quantity {
	t.Helper()
	q, err := manifests.ParseQuantity(s)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestArgvFollowsKubernetes(t *testing.T) {
	tests := []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image entrypoint and cmd", nil, nil, []string{"/entry", "default-arg"}},
		{"args replace cmd", nil, []string{"a", "b"}, []string{"/entry", "a", "b"}},
		{"command replaces entrypoint and drops cmd", []string{"/bin/x"}, nil, []string{"/bin/x"}},
		{"command and args", []string{"/bin/x"}, []string{"-v"}, []string{"/bin/x", "-v"}},
		{"expansion in args", nil, []string{"$(NAME)", "$$(NAME)", "$(NOPE)"}, []string{"/entry", "value", "$(NAME)", "$(NOPE)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := podSpec(manifests.Container{Name: "c", Image: "img", Command: tt.command, Args: tt.args,
				Env: []manifests.EnvVar{{Name: "NAME", Value: "value"}}})
			cfg, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Args, tt.want) {
				t.Errorf("argv %q, want %q", cfg.Args, tt.want)
			}
			if cfg.Cwd != "/srv" || cfg.User != "1000" {
				t.Errorf("cwd %q user %q, want the image's", cfg.Cwd, cfg.User)
			}
		})
	}
}

func TestEnvOrderAndSources(t *testing.T) {
	spec := podSpec(manifests.Container{Name: "c", Image: "img",
		EnvFrom: []manifests.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &manifests.ConfigMapEnvSource{LocalObjectReference: manifests.LocalObjectReference{Name: "cm"}}}},
		Env: []manifests.EnvVar{
			{Name: "FROM_IMAGE", Value: "overridden"},
			{Name: "IP", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "NS", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "PW", ValueFrom: &manifests.EnvVarSource{SecretKeyRef: &manifests.SecretKeySelector{LocalObjectReference: manifests.LocalObjectReference{Name: "s"}, Key: "pw"}}},
			{Name: "URL", Value: "http://$(IP):80/$(NS)"},
		}})
	spec.ConfigMaps = map[string]*manifests.ConfigMap{"cm": {Data: map[string]string{"a": "1", "bad=key": "x"}}}
	spec.Secrets = map[string]*manifests.Secret{"s": {Data: map[string][]byte{"pw": []byte("hunter2")}}}
	cfg, err := containerConfig(spec, Sandbox{IP: "10.244.1.7"}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "FROM_IMAGE=overridden", "CM_a=1", "IP=10.244.1.7", "NS=shop", "PW=hunter2", "URL=http://10.244.1.7:80/shop"}
	if !slices.Equal(cfg.Env, want) {
		t.Errorf("env\n got %q\nwant %q", cfg.Env, want)
	}
}

func TestConfigErrors(t *testing.T) {
	yes, zero := true, int64(0)
	tests := []struct {
		name string
		c    manifests.Container
		pol  Policy
		want string
	}{
		{"missing configmap", manifests.Container{Env: []manifests.EnvVar{{Name: "X", ValueFrom: &manifests.EnvVarSource{ConfigMapKeyRef: &manifests.ConfigMapKeySelector{LocalObjectReference: manifests.LocalObjectReference{Name: "nope"}, Key: "k"}}}}}, Policy{}, `configmap "nope" not found`},
		{"runAsNonRoot with uid 0", manifests.Container{SecurityContext: &manifests.SecurityContext{RunAsNonRoot: &yes, RunAsUser: &zero}}, Policy{}, "runAsNonRoot"},
		{"privileged refused", manifests.Container{SecurityContext: &manifests.SecurityContext{Privileged: &yes}}, Policy{}, "privileged"},
		{"unconfined refused", manifests.Container{SecurityContext: &manifests.SecurityContext{SeccompProfile: &manifests.SeccompProfile{Type: manifests.SeccompProfileTypeUnconfined}}}, Policy{}, "Unconfined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Name, tt.c.Image = "c", "img"
			spec := podSpec(tt.c)
			_, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, tt.pol)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !isConfigError(err) {
				t.Errorf("err %v, want a config error mentioning %q", err, tt.want)
			}
		})
	}
	spec := podSpec(manifests.Container{Name: "c", Image: "img", SecurityContext: &manifests.SecurityContext{Privileged: &yes}})
	if _, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{AllowPrivileged: true}); err != nil {
		t.Errorf("privileged with the node's permission: %v", err)
	}
}

func TestResourcesAndSecurity(t *testing.T) {
	no := false
	spec := podSpec(manifests.Container{Name: "c", Image: "img",
		Resources: manifests.ResourceRequirements{
			Limits:   manifests.ResourceList{manifests.ResourceCPU: mustQ(t, "500m"), manifests.ResourceMemory: mustQ(t, "64Mi")},
			Requests: manifests.ResourceList{manifests.ResourceCPU: mustQ(t, "250m")},
		},
		SecurityContext: &manifests.SecurityContext{AllowPrivilegeEscalation: &no,
			Capabilities: &manifests.Capabilities{Drop: []manifests.Capability{"ALL"}, Add: []manifests.Capability{"NET_BIND_SERVICE"}}},
	})
	cfg, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryLimit != 64<<20 || cfg.CPUQuota != 50000 || cfg.CPUPeriod != 100000 || cfg.CPUShares != 256 {
		t.Errorf("resources: mem %d quota %d/%d shares %d", cfg.MemoryLimit, cfg.CPUQuota, cfg.CPUPeriod, cfg.CPUShares)
	}
	if !cfg.NoNewPrivileges || !slices.Equal(cfg.CapDrop, []string{"ALL"}) || !slices.Equal(cfg.CapAdd, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("security: %+v", cfg)
	}
}

func TestHostPathPolicy(t *testing.T) {
	spec := podSpec(manifests.Container{Name: "c", Image: "img"})
	spec.Pod.Spec.Volumes = []manifests.Volume{{Name: "h", VolumeSource: manifests.VolumeSource{HostPath: &manifests.HostPathVolumeSource{Path: "/var/lib/data/x"}}}}
	if _, err := sandboxConfig(spec, Policy{}); !errors.Is(err, runtime.ErrNotAllowed) {
		t.Errorf("hostPath without permission: %v, want ErrNotAllowed", err)
	}
	if _, err := sandboxConfig(spec, Policy{AllowHostPaths: []string{"/var/lib/data"}}); err != nil {
		t.Errorf("hostPath under an allowed dir: %v", err)
	}
	if _, err := sandboxConfig(spec, Policy{AllowHostPaths: []string{"/var/lib/dat"}}); err == nil {
		t.Errorf("a prefix that is not a parent directory allowed the path")
	}
}

func TestClaimVolume(t *testing.T) {
	spec := podSpec(manifests.Container{Name: "c", Image: "img", Command: []string{"/app"}, VolumeMounts: []manifests.VolumeMount{{Name: "d", MountPath: "/data"}}})
	spec.Pod.Spec.Volumes = []manifests.Volume{{Name: "d", VolumeSource: manifests.VolumeSource{
		PersistentVolumeClaim: &manifests.PersistentVolumeClaimVolumeSource{ClaimName: "data", ReadOnly: true}}}}
	if _, err := sandboxConfig(spec, Policy{}); err == nil || !strings.Contains(err.Error(), `persistentvolumeclaim "data" has no volume on this node`) {
		t.Errorf("claim without a volume: %v", err)
	}
	spec.Claims = map[string]runtime.ClaimVolume{"data": {UID: "u1", Path: "/var/lib/shoal/volumes/u1"}}
	cfg, err := sandboxConfig(spec, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if hp := cfg.Volumes[0].HostPath; hp == nil || hp.Path != "/var/lib/shoal/volumes/u1" || *hp.Type != manifests.HostPathDirectory {
		t.Errorf("claim volume: %+v", cfg.Volumes[0])
	}
	cc, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], Image{}, ContainerMeta{}, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Mounts) != 1 || !cc.Mounts[0].ReadOnly {
		t.Errorf("a read-only claim is mounted %+v", cc.Mounts)
	}
}
