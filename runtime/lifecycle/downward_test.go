package lifecycle

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
)

var testNode = NodeInfo{Name: "node-1", HostIPs: []string{"192.0.2.10", "2001:db8::10"},
	Allocatable: Resources{MilliCPU: 3900, Memory: 7 << 30, EphemeralStorage: 100 << 30}}

func fieldEnv(name, path string) manifests.EnvVar {
	return manifests.EnvVar{Name: name, ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: path}}}
}

func resourceEnv(name, container, resource, divisor string) manifests.EnvVar {
	sel := &manifests.ResourceFieldSelector{ContainerName: container, Resource: resource}
	if divisor != "" {
		q, err := manifests.ParseQuantity(divisor)
		if err != nil {
			panic(err)
		}
		sel.Divisor = &q
	}
	return manifests.EnvVar{Name: name, ValueFrom: &manifests.EnvVarSource{ResourceFieldRef: sel}}
}

func TestDownwardAPIEnv(t *testing.T) {
	tests := []struct {
		env  manifests.EnvVar
		want string
	}{
		{fieldEnv("V", "metadata.name"), "web"},
		{fieldEnv("V", "metadata.namespace"), "shop"},
		{fieldEnv("V", "metadata.uid"), "u1"},
		{fieldEnv("V", "metadata.labels['app']"), "web"},
		{fieldEnv("V", "metadata.labels['missing']"), ""},
		{fieldEnv("V", "metadata.annotations['example.com/owner']"), "team \"a\""},
		{fieldEnv("V", "spec.nodeName"), "node-1"},
		{fieldEnv("V", "spec.serviceAccountName"), "default"},
		{fieldEnv("V", "status.podIP"), "10.244.1.7"},
		{fieldEnv("V", "status.podIPs"), "10.244.1.7"},
		{fieldEnv("V", "status.hostIP"), "192.0.2.10"},
		{fieldEnv("V", "status.hostIPs"), "192.0.2.10,2001:db8::10"},
		// Limits that are set, divided and rounded up as the kubelet does.
		{resourceEnv("V", "", "limits.cpu", ""), "1"},     // 500m rounds up to 1 CPU
		{resourceEnv("V", "", "limits.cpu", "1m"), "500"}, // in millicores
		{resourceEnv("V", "", "limits.memory", ""), "67108864"},
		{resourceEnv("V", "", "limits.memory", "1Mi"), "64"},
		{resourceEnv("V", "", "limits.memory", "1M"), "68"}, // 67.1 MB rounds up
		{resourceEnv("V", "", "requests.cpu", "1m"), "250"},
		{resourceEnv("V", "", "requests.memory", ""), "67108864"},        // a request defaults to the limit
		{resourceEnv("V", "", "limits.ephemeral-storage", "1Gi"), "100"}, // unset: the node's allocatable
		{resourceEnv("V", "", "requests.ephemeral-storage", ""), "0"},
		{resourceEnv("V", "side", "limits.cpu", "1m"), "3900"}, // another container, no limit
		{resourceEnv("V", "side", "limits.memory", "1Ki"), "7340032"},
		{resourceEnv("V", "init", "requests.cpu", "1m"), "100"},
	}
	for _, tt := range tests {
		name := tt.want
		if f := tt.env.ValueFrom.FieldRef; f != nil {
			name = f.FieldPath
		} else if r := tt.env.ValueFrom.ResourceFieldRef; r != nil {
			name = r.ContainerName + "/" + r.Resource + "/" + tt.want
		}
		t.Run(name, func(t *testing.T) {
			spec := podSpec(manifests.Container{Name: "c", Image: "img", Env: []manifests.EnvVar{tt.env},
				Resources: manifests.ResourceRequirements{
					Limits:   manifests.ResourceList{manifests.ResourceCPU: mustQ(t, "500m"), manifests.ResourceMemory: mustQ(t, "64Mi")},
					Requests: manifests.ResourceList{manifests.ResourceCPU: mustQ(t, "250m")},
				}})
			spec.Pod.Labels = map[string]string{"app": "web"}
			spec.Pod.Annotations = map[string]string{"example.com/owner": `team "a"`}
			spec.Pod.Spec.Containers = append(spec.Pod.Spec.Containers, manifests.Container{Name: "side", Image: "img"})
			spec.Pod.Spec.InitContainers = []manifests.Container{{Name: "init", Image: "img",
				Resources: manifests.ResourceRequirements{Requests: manifests.ResourceList{manifests.ResourceCPU: mustQ(t, "100m")}}}}
			cfg, err := containerConfig(spec, Sandbox{IP: "10.244.1.7"}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{node: testNode})
			if err != nil {
				t.Fatal(err)
			}
			if got := envMap(cfg.Env)["V"]; got != tt.want {
				t.Errorf("V=%q, want %q", got, tt.want)
			}
		})
	}
}

func TestDownwardAPIEnvErrors(t *testing.T) {
	tests := []struct {
		env  manifests.EnvVar
		want string
	}{
		{fieldEnv("V", "spec.hostname"), `fieldRef "spec.hostname" is not supported`},
		{fieldEnv("V", "spec.nodeName['x']"), "subscript"},
		{resourceEnv("V", "", "limits.hugepages-2Mi", ""), "not supported"},
		{resourceEnv("V", "", "cpu", ""), "not supported"},
		{resourceEnv("V", "nope", "limits.cpu", ""), `no container "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			spec := podSpec(manifests.Container{Name: "c", Image: "img", Env: []manifests.EnvVar{tt.env}})
			_, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{node: testNode})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !isConfigError(err) {
				t.Errorf("err %v, want a config error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestDownwardAPIVolume(t *testing.T) {
	mode, defMode := int32(0o600), int32(0o444)
	spec := podSpec(manifests.Container{Name: "c", Image: "img",
		Resources:    manifests.ResourceRequirements{Limits: manifests.ResourceList{manifests.ResourceMemory: mustQ(t, "64Mi")}},
		VolumeMounts: []manifests.VolumeMount{{Name: "info", MountPath: "/etc/podinfo"}}})
	spec.Pod.Labels = map[string]string{"zone": "eu", "app": "web", "tier": "front\nend"}
	spec.Pod.Annotations = map[string]string{"build": "42"}
	spec.Pod.Spec.Volumes = []manifests.Volume{{Name: "info", VolumeSource: manifests.VolumeSource{DownwardAPI: &manifests.DownwardAPIVolumeSource{
		DefaultMode: &defMode,
		Items: []manifests.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.annotations"}, Mode: &mode},
			{Path: "meta/name", FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "uid", FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.uid"}},
			{Path: "app", FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}},
			{Path: "mem", ResourceFieldRef: &manifests.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory"}},
			{Path: "cpu", ResourceFieldRef: &manifests.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu"}},
		}}}}}
	sb, err := sandboxConfig(spec, Policy{node: testNode})
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{Path: "labels", Data: []byte("app=\"web\"\ntier=\"front\\nend\"\nzone=\"eu\""), Mode: 0o444},
		{Path: "annotations", Data: []byte(`build="42"`), Mode: 0o600},
		{Path: "meta/name", Data: []byte("web"), Mode: 0o444},
		{Path: "uid", Data: []byte("u1"), Mode: 0o444},
		{Path: "app", Data: []byte("web"), Mode: 0o444},
		{Path: "mem", Data: []byte("67108864"), Mode: 0o444},
		{Path: "cpu", Data: []byte("4"), Mode: 0o444}, // unset: the node's 3.9 CPUs, rounded up
	}
	got := sb.Volumes[0].Files
	if !slices.EqualFunc(got, want, func(a, b File) bool { return a.Path == b.Path && string(a.Data) == string(b.Data) && a.Mode == b.Mode }) {
		t.Errorf("files\n got %+v\nwant %+v", got, want)
	}
	cfg, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{node: testNode})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Mounts[0].ReadOnly {
		t.Errorf("a downwardAPI volume is mounted read-write")
	}

	for _, bad := range []manifests.DownwardAPIVolumeFile{
		{Path: "ip", FieldRef: &manifests.ObjectFieldSelector{FieldPath: "status.podIP"}},
		{Path: "mem", ResourceFieldRef: &manifests.ResourceFieldSelector{Resource: "limits.memory"}},
	} {
		spec.Pod.Spec.Volumes[0].DownwardAPI.Items = []manifests.DownwardAPIVolumeFile{bad}
		if _, err := sandboxConfig(spec, Policy{node: testNode}); err == nil || !isConfigError(err) {
			t.Errorf("file %s: err %v, want a config error", bad.Path, err)
		}
	}
}

func TestMemoryVolumeSize(t *testing.T) {
	tests := []struct {
		name      string
		limits    []string // memory limit per container, "" for none
		sizeLimit string
		want      int64
	}{
		{"node allocatable only", []string{""}, "", 7 << 30},
		{"sizeLimit", []string{""}, "1Mi", 1 << 20},
		{"pod limit when every container has one", []string{"64Mi", "32Mi"}, "", 96 << 20},
		{"no pod limit when one container has none", []string{"64Mi", ""}, "", 7 << 30},
		{"sizeLimit below the pod limit", []string{"64Mi"}, "16Mi", 16 << 20},
		{"sizeLimit above the pod limit", []string{"64Mi"}, "1Gi", 64 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &manifests.Pod{}
			for i, l := range tt.limits {
				c := manifests.Container{Name: string(rune('a' + i))}
				if l != "" {
					c.Resources.Limits = manifests.ResourceList{manifests.ResourceMemory: mustQ(t, l)}
				}
				pod.Spec.Containers = append(pod.Spec.Containers, c)
			}
			ed := &manifests.EmptyDirVolumeSource{Medium: manifests.StorageMediumMemory}
			if tt.sizeLimit != "" {
				q := mustQ(t, tt.sizeLimit)
				ed.SizeLimit = &q
			}
			if got := memoryVolumeSize(pod, ed, 7<<30); got != tt.want {
				t.Errorf("size %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPodLimit(t *testing.T) {
	always := manifests.ContainerRestartPolicyAlways
	lim := func(s string) manifests.ResourceRequirements {
		return manifests.ResourceRequirements{Limits: manifests.ResourceList{manifests.ResourceEphemeralStorage: mustQ(t, s)}}
	}
	pod := &manifests.Pod{Spec: manifests.PodSpec{
		InitContainers: []manifests.Container{
			{Name: "sidecar", RestartPolicy: &always, Resources: lim("1Ki")},
			{Name: "big-init", Resources: lim("10Ki")},
		},
		Containers: []manifests.Container{{Name: "a", Resources: lim("2Ki")}, {Name: "b", Resources: lim("3Ki")}},
	}}
	// Apps 2+3 and the sidecar 1 make 6Ki; the init container needs 10 beside the sidecar: 11Ki.
	if got, found, all := podLimit(pod, manifests.ResourceEphemeralStorage); got != 11<<10 || !found || !all {
		t.Errorf("podLimit = %d, %v, %v; want 11Ki, found, all", got, found, all)
	}
	pod.Spec.InitContainers = nil
	pod.Spec.Containers[1].Resources = manifests.ResourceRequirements{}
	if got, found, all := podLimit(pod, manifests.ResourceEphemeralStorage); got != 2<<10 || !found || all {
		t.Errorf("podLimit = %d, %v, %v; want 2Ki, found, not all", got, found, all)
	}
}

func TestPullSecrets(t *testing.T) {
	spec := podSpec(manifests.Container{Name: "c", Image: "img"})
	spec.Pod.Spec.ImagePullSecrets = []manifests.LocalObjectReference{{Name: "json"}, {Name: "gone"}, {Name: "legacy"}, {Name: "opaque"}, {Name: "empty"}}
	spec.Secrets = map[string]*manifests.Secret{
		"json":   {Type: manifests.SecretTypeDockerConfigJSON, Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)}},
		"legacy": {Type: "kubernetes.io/dockercfg", Data: map[string][]byte{".dockercfg": []byte(`{}`)}},
		"opaque": {Type: manifests.SecretTypeOpaque, Data: map[string][]byte{"x": nil}},
		"empty":  {Type: manifests.SecretTypeDockerConfigJSON},
	}
	ps := pullSecrets(spec)
	if len(ps.Configs) != 2 || ps.Configs[0].Secret != "json" || ps.Configs[0].Legacy || ps.Configs[1].Secret != "legacy" || !ps.Configs[1].Legacy {
		t.Errorf("configs %+v, want json then legacy", ps.Configs)
	}
	want := []string{`"gone" not found in namespace "shop"`, `"opaque" is of type "Opaque"`, `"empty" of type kubernetes.io/dockerconfigjson has no key .dockerconfigjson`}
	if len(ps.Problems) != len(want) {
		t.Fatalf("problems %q, want %d", ps.Problems, len(want))
	}
	for i, w := range want {
		if !strings.Contains(ps.Problems[i], w) {
			t.Errorf("problem %q does not say %q", ps.Problems[i], w)
		}
	}
}

func TestSeccompLocalhost(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO"}]}`
	write("profiles/good.json", good)
	write("bad.json", `{"defaultAction":`)
	write("empty.json", `{}`)
	outside := filepath.Join(t.TempDir(), "outside.json")
	if err := os.WriteFile(outside, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link.json")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		profile, root, want string // want "" : accepted
	}{
		{"profiles/good.json", root, ""},
		{"missing.json", root, filepath.Join(root, "missing.json") + ": open"},
		{"bad.json", root, filepath.Join(root, "bad.json") + ": not a valid seccomp profile"},
		{"empty.json", root, "filters nothing"},
		{"../outside.json", root, "must be a relative path inside"},
		{"link.json", root, filepath.Join(root, "link.json")},
		{"profiles/good.json", "", "--seccomp-profile-root"},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			p := tt.profile
			spec := podSpec(manifests.Container{Name: "c", Image: "img", SecurityContext: &manifests.SecurityContext{
				SeccompProfile: &manifests.SeccompProfile{Type: manifests.SeccompProfileTypeLocalhost, LocalhostProfile: &p}}})
			cfg, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{SeccompProfileRoot: tt.root})
			if tt.want == "" {
				if err != nil || string(cfg.SeccompProfile) != good {
					t.Fatalf("profile %q, err %v; want the file's content", cfg.SeccompProfile, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !isConfigError(err) {
				t.Errorf("err %v, want a config error mentioning %q", err, tt.want)
			}
		})
	}
	// The pod's profile applies to containers that set none.
	p := "profiles/good.json"
	spec := podSpec(manifests.Container{Name: "c", Image: "img"})
	spec.Pod.Spec.SecurityContext = &manifests.PodSecurityContext{SeccompProfile: &manifests.SeccompProfile{Type: manifests.SeccompProfileTypeLocalhost, LocalhostProfile: &p}}
	cfg, err := containerConfig(spec, Sandbox{}, &spec.Pod.Spec.Containers[0], testImage, ContainerMeta{}, Policy{SeccompProfileRoot: root})
	if err != nil || cfg.SeccompProfile == nil || cfg.SeccompProfilePath != filepath.Join(root, p) {
		t.Errorf("pod-level Localhost profile: %q %q %v", cfg.SeccompProfile, cfg.SeccompProfilePath, err)
	}
}

// The pod's hostname and subdomain reach the sandbox, which names the pod by them in its
// /etc/hosts; the hostname defaults to the pod's name, cut to 63 characters.
func TestSandboxHostnameAndSubdomain(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		name, podName, hostname, subdomain string
		wantHostname, wantSubdomain        string
	}{
		{"hostname and subdomain", "web-0", "web-0", "web", "web-0", "web"},
		{"subdomain only: the pod's name", "web-0", "", "web", "web-0", "web"},
		{"hostname only", "web-0", "h", "", "h", ""},
		{"long pod name", long, "", "web", long[:63], "web"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := podSpec(manifests.Container{Name: "c", Image: "img"})
			spec.Pod.Name, spec.Pod.Spec.Hostname, spec.Pod.Spec.Subdomain = tt.podName, tt.hostname, tt.subdomain
			cfg, err := sandboxConfig(spec, Policy{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Hostname != tt.wantHostname || cfg.Subdomain != tt.wantSubdomain {
				t.Errorf("hostname %q, subdomain %q; want %q, %q", cfg.Hostname, cfg.Subdomain, tt.wantHostname, tt.wantSubdomain)
			}
		})
	}
}

func TestSandboxDNSAndAliases(t *testing.T) {
	spec := podSpec(manifests.Container{Name: "c", Image: "img"})
	spec.Pod.Spec.DNSPolicy = manifests.DNSNone
	spec.Pod.Spec.DNSConfig = &manifests.PodDNSConfig{Nameservers: []string{"192.0.2.53"}}
	spec.Pod.Spec.HostAliases = []manifests.HostAlias{{IP: "192.0.2.1", Hostnames: []string{"a", "b"}}}
	cfg, err := sandboxConfig(spec, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DNSPolicy != manifests.DNSNone || cfg.DNSConfig == nil || len(cfg.HostAliases) != 1 {
		t.Errorf("sandbox config lost the pod's DNS settings: %+v", cfg)
	}
}
