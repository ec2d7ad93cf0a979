package linux_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/imagetest"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

func quantity(t *testing.T, s string) manifests.Quantity {
	t.Helper()
	q, err := manifests.ParseQuantity(s)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// waitStatus polls a pod until ok holds.
func waitStatus(t *testing.T, rt runtime.Runtime, uid, what string, timeout time.Duration, ok func(manifests.PodStatus) bool) manifests.PodStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := rt.PodStatus(context.Background(), uid)
		if err == nil && ok(st.Status) {
			return st.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s is not %s after %s: %+v (%v)", uid, what, timeout, st.Status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ensure(t *testing.T, rt runtime.Runtime, spec *runtime.PodSpec) {
	t.Helper()
	ctx := context.Background()
	if err := rt.EnsurePod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zero := time.Duration(0)
		if err := rt.RemovePod(ctx, spec.UID, &zero); err != nil {
			t.Errorf("remove pod %s: %v", spec.UID, err)
		}
	})
}

func logsOf(t *testing.T, rt runtime.Runtime, uid, container string) string {
	t.Helper()
	var b bytes.Buffer
	if err := rt.Logs(context.Background(), uid, container, runtime.LogOptions{}, &b); err != nil {
		t.Fatalf("logs of %s: %v", container, err)
	}
	return b.String()
}

func startRegistry(t *testing.T) (registry, ref string) {
	registry = imagetest.StartRegistry(t)
	ref = registry + "/testapp:v1"
	imagetest.Push(t, imagetest.TestAppImage(t), ref)
	return registry, ref
}

// TestPodConfigurationInContainers runs containers that print what the runtime gave them:
// downward API environment and files, /etc/hosts with the pod's fully qualified name (it has a
// subdomain) and hostAliases, and a dnsPolicy None resolv.conf.
func TestPodConfigurationInContainers(t *testing.T) {
	registry, ref := startRegistry(t)
	n := newNode(t, registry)
	rt, err := lifecycle.New(lifecycle.Config{Driver: n.driver, Backoff: lifecycle.Backoff{Base: 200 * time.Millisecond},
		Node: lifecycle.NodeInfo{Name: "node-7", HostIPs: []string{"192.0.2.7"}, Allocatable: lifecycle.Resources{MilliCPU: 2000, Memory: 4 << 30}}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()

	mode := int32(0o400)
	one := "1"
	ctr := func(name string, args ...string) manifests.Container {
		return manifests.Container{Name: name, Image: ref, Args: args,
			VolumeMounts: []manifests.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}}}
	}
	env := ctr("env", "read", "/proc/self/environ")
	env.Resources.Limits = manifests.ResourceList{manifests.ResourceMemory: quantity(t, "64Mi")}
	env.Env = []manifests.EnvVar{
		{Name: "POD_NAME", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_UID", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
		{Name: "APP", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
		{Name: "NODE", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "HOST_IP", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
		{Name: "SA", ValueFrom: &manifests.EnvVarSource{FieldRef: &manifests.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
		{Name: "MEM_MI", ValueFrom: &manifests.EnvVarSource{ResourceFieldRef: &manifests.ResourceFieldSelector{Resource: "limits.memory", Divisor: ptrQ(quantity(t, "1Mi"))}}},
		{Name: "CPUS", ValueFrom: &manifests.EnvVarSource{ResourceFieldRef: &manifests.ResourceFieldSelector{Resource: "limits.cpu"}}},
		{Name: "WHERE", Value: "$(NODE)/$(POD_NAME)"},
	}
	spec := testPod(ref, "conf")
	pod := spec.Pod
	pod.Labels = map[string]string{"app": "conf", "tier": "back"}
	pod.Annotations = map[string]string{"note": "a \"quoted\" value"}
	pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	pod.Spec.ServiceAccountName = "builder"
	pod.Spec.HostAliases = []manifests.HostAlias{{IP: "192.0.2.80", Hostnames: []string{"db.internal", "db"}}}
	pod.Spec.Subdomain = "confs"
	pod.Spec.DNSPolicy = manifests.DNSNone
	pod.Spec.DNSConfig = &manifests.PodDNSConfig{Nameservers: []string{"192.0.2.53"}, Searches: []string{"corp.example"},
		Options: []manifests.PodDNSConfigOption{{Name: "ndots", Value: &one}}}
	pod.Spec.Volumes = []manifests.Volume{{Name: "podinfo", VolumeSource: manifests.VolumeSource{DownwardAPI: &manifests.DownwardAPIVolumeSource{
		Items: []manifests.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &manifests.ObjectFieldSelector{FieldPath: "metadata.annotations"}, Mode: &mode},
			{Path: "mem", ResourceFieldRef: &manifests.ResourceFieldSelector{ContainerName: "env", Resource: "limits.memory"}},
		}}}}}
	pod.Spec.Containers = []manifests.Container{env,
		ctr("labels", "read", "/etc/podinfo/labels"),
		ctr("annotations", "read", "/etc/podinfo/annotations"),
		ctr("mem", "read", "/etc/podinfo/mem"),
		ctr("hosts", "read", "/etc/hosts"),
		ctr("resolv", "read", "/etc/resolv.conf"),
		ctr("readonly", "write", "/etc/podinfo/labels", "changed"),
	}
	manifests.SetDefaults(pod)
	ensure(t, rt, spec)
	st := waitStatus(t, rt, spec.UID, "finished", 60*time.Second, func(s manifests.PodStatus) bool {
		return s.Phase == manifests.PodFailed || s.Phase == manifests.PodSucceeded
	})
	for _, cs := range st.ContainerStatuses {
		if term := cs.State.Terminated; term == nil || (term.ExitCode != 0) != (cs.Name == "readonly") {
			t.Errorf("container %s: %+v", cs.Name, cs.State)
		}
	}

	environ := map[string]string{}
	for _, kv := range strings.Split(logsOf(t, rt, spec.UID, "env"), "\x00") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			environ[k] = v
		}
	}
	for k, want := range map[string]string{"POD_NAME": "conf", "POD_UID": spec.UID, "APP": "conf", "NODE": "node-7", "HOST_IP": "192.0.2.7",
		"SA": "builder", "MEM_MI": "64", "CPUS": "2", "WHERE": "node-7/conf"} {
		if environ[k] != want {
			t.Errorf("env %s=%q, want %q", k, environ[k], want)
		}
	}
	for name, want := range map[string]string{
		"labels":      "app=\"conf\"\ntier=\"back\"",
		"annotations": `note="a \"quoted\" value"`,
		"mem":         "67108864",
		"hosts":       "127.0.1.1\tconf.confs.default.svc.cluster.local\tconf\n\n# Entries added by HostAliases.\n192.0.2.80\tdb.internal\tdb\n",
		"resolv":      "nameserver 192.0.2.53\nsearch corp.example\noptions ndots:1\n",
		"readonly":    "read-only file system",
	} {
		if got := logsOf(t, rt, spec.UID, name); !strings.Contains(got, want) {
			t.Errorf("container %s printed %q, want it to contain %q", name, got, want)
		}
	}
	fi, err := os.Stat(filepath.Join(n.root, "runtime", "pods", spec.UID, "volumes", "podinfo", "annotations"))
	if err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("annotations file: %v %v, want mode 0400", fi, err)
	}
}

func ptrQ(q manifests.Quantity) *manifests.Quantity { return &q }

// TestMemoryEmptyDirSize checks the tmpfs of emptyDir volumes of medium Memory: the sizeLimit,
// else the pod's memory limit.
func TestMemoryEmptyDirSize(t *testing.T) {
	registry, ref := startRegistry(t)
	n := newNode(t, registry)
	rt := n.open(t)
	defer rt.Close()
	tests := []struct {
		name, sizeLimit, memLimit string
		want                      uint64
	}{
		{"sizeLimit", "1Mi", "64Mi", 1 << 20},
		{"the pod's memory limit", "", "48Mi", 48 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testPod(ref, "mem", "sleep", "inf")
			ed := &manifests.EmptyDirVolumeSource{Medium: manifests.StorageMediumMemory}
			if tt.sizeLimit != "" {
				ed.SizeLimit = ptrQ(quantity(t, tt.sizeLimit))
			}
			spec.Pod.Spec.Volumes = []manifests.Volume{{Name: "cache", VolumeSource: manifests.VolumeSource{EmptyDir: ed}}}
			c := &spec.Pod.Spec.Containers[0]
			c.Resources.Limits = manifests.ResourceList{manifests.ResourceMemory: quantity(t, tt.memLimit)}
			c.VolumeMounts = []manifests.VolumeMount{{Name: "cache", MountPath: "/cache"}}
			ensure(t, rt, spec)
			waitRunning(t, rt, spec.UID)
			var fs unix.Statfs_t
			if err := unix.Statfs(filepath.Join(n.root, "runtime", "pods", spec.UID, "volumes", "cache"), &fs); err != nil {
				t.Fatal(err)
			}
			if fs.Type != unix.TMPFS_MAGIC || fs.Blocks*uint64(fs.Bsize) != tt.want {
				t.Errorf("volume: type %#x, %d bytes; want tmpfs of %d", fs.Type, fs.Blocks*uint64(fs.Bsize), tt.want)
			}
		})
	}
}

// TestStorageEviction runs containers that write more than their limits allow: the pod is
// evicted with the kubelet's message, and a pod within its limits keeps running.
func TestStorageEviction(t *testing.T) {
	registry, ref := startRegistry(t)
	n := newNode(t, registry)
	rt, err := lifecycle.New(lifecycle.Config{Driver: n.driver, Backoff: lifecycle.Backoff{Base: 200 * time.Millisecond}, EvictionInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })     // after the parallel subtests
	data := strings.Repeat("x", 120<<10) // one argument may hold up to 128 KiB
	storage := func(s string) manifests.ResourceRequirements {
		return manifests.ResourceRequirements{Limits: manifests.ResourceList{manifests.ResourceEphemeralStorage: quantity(t, s)}}
	}
	scratch := func(sizeLimit string) []manifests.Volume {
		ed := &manifests.EmptyDirVolumeSource{}
		if sizeLimit != "" {
			ed.SizeLimit = ptrQ(quantity(t, sizeLimit))
		}
		return []manifests.Volume{{Name: "scratch", VolumeSource: manifests.VolumeSource{EmptyDir: ed}}}
	}
	writer := func(name, file, limit string) manifests.Container {
		c := manifests.Container{Name: name, Image: ref, Args: []string{"write", file, data},
			VolumeMounts: []manifests.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}
		if limit != "" {
			c.Resources = storage(limit)
		}
		return c
	}
	tests := []struct {
		name    string
		volumes []manifests.Volume
		ctrs    []manifests.Container
		want    string // "" : not evicted
	}{
		{"emptyDir over its sizeLimit", scratch("64Ki"), []manifests.Container{writer("app", "/scratch/f", "")},
			`Usage of EmptyDir volume "scratch" exceeds the limit "64Ki".`},
		{"writable layer over the container's limit", scratch(""), []manifests.Container{writer("app", "/tmp/f", "64Ki"), writer("other", "/tmp/g", "10Mi")},
			`Container app exceeded its local ephemeral storage limit "64Ki".`},
		{"pod over the sum of its containers' limits", scratch(""), []manifests.Container{writer("a", "/scratch/a", "100Ki"), writer("b", "/scratch/b", "100Ki")},
			`Pod ephemeral local storage usage exceeds the total limit of containers 200Ki.`},
		{"within the limits", scratch("1Mi"), []manifests.Container{writer("app", "/scratch/f", "10Mi")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := testPod(ref, "writer")
			spec.Pod.Spec.Volumes = tt.volumes
			spec.Pod.Spec.Containers = tt.ctrs
			manifests.SetDefaults(spec.Pod)
			ensure(t, rt, spec)
			if tt.want == "" {
				// Written at least once, and measured many times since.
				waitStatus(t, rt, spec.UID, "restarted", 60*time.Second, func(s manifests.PodStatus) bool { return s.ContainerStatuses[0].RestartCount > 0 })
				time.Sleep(time.Second)
				if st, _ := rt.PodStatus(context.Background(), spec.UID); st.Status.Reason == "Evicted" {
					t.Fatalf("a pod within its limits was evicted: %s", st.Status.Message)
				}
				return
			}
			st := waitStatus(t, rt, spec.UID, "evicted", 60*time.Second, func(s manifests.PodStatus) bool { return s.Phase == manifests.PodFailed })
			if st.Reason != "Evicted" || st.Message != tt.want {
				t.Errorf("reason %q message %q, want Evicted: %q", st.Reason, st.Message, tt.want)
			}
			ctrs, err := n.driver.Containers(context.Background(), spec.UID)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range ctrs {
				if c.Status == lifecycle.ContainerRunning {
					t.Errorf("container %s of the evicted pod still runs", c.ID)
				}
			}
		})
	}
}

// TestSeccompLocalhostProfile runs a container under a profile from the node's profile
// directory that makes unshare fail with EOPNOTSUPP (the default profile gives EPERM).
func TestSeccompLocalhostProfile(t *testing.T) {
	registry, ref := startRegistry(t)
	n := newNode(t, registry)
	root := t.TempDir()
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]}`
	if err := os.MkdirAll(filepath.Join(root, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "profiles", "no-unshare.json"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := lifecycle.New(lifecycle.Config{Driver: n.driver, Backoff: lifecycle.Backoff{Base: 200 * time.Millisecond},
		Policy: lifecycle.Policy{SeccompProfileRoot: root}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	tests := []struct {
		name, profile string // "" : RuntimeDefault
		want          string
	}{
		{"runtime default", "", "operation not permitted"},
		{"localhost profile", "profiles/no-unshare.json", "operation not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testPod(ref, "seccomp", "unshare")
			spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
			if tt.profile != "" {
				p := tt.profile
				spec.Pod.Spec.Containers[0].SecurityContext = &manifests.SecurityContext{
					SeccompProfile: &manifests.SeccompProfile{Type: manifests.SeccompProfileTypeLocalhost, LocalhostProfile: &p}}
			}
			ensure(t, rt, spec)
			waitStatus(t, rt, spec.UID, "finished", 60*time.Second, func(s manifests.PodStatus) bool { return s.Phase == manifests.PodFailed })
			if got := logsOf(t, rt, spec.UID, "app"); !strings.Contains(got, tt.want) {
				t.Errorf("unshare printed %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("missing profile", func(t *testing.T) {
		spec := testPod(ref, "seccomp", "unshare")
		p := "profiles/missing.json"
		spec.Pod.Spec.Containers[0].SecurityContext = &manifests.SecurityContext{
			SeccompProfile: &manifests.SeccompProfile{Type: manifests.SeccompProfileTypeLocalhost, LocalhostProfile: &p}}
		ensure(t, rt, spec)
		st := waitStatus(t, rt, spec.UID, "refused", 60*time.Second, func(s manifests.PodStatus) bool {
			w := s.ContainerStatuses[0].State.Waiting
			return w != nil && w.Reason == "CreateContainerConfigError"
		})
		if msg := st.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, filepath.Join(root, p)) {
			t.Errorf("message %q does not name the profile file", msg)
		}
	})
}

// TestImagePullSecrets pulls an image from a registry that wants basic auth: the pod's
// dockerconfigjson secret lets it, and without one the pull fails with a clear message.
func TestImagePullSecrets(t *testing.T) {
	const user, pass = "puller", "s3cret"
	registry := imagetest.StartRegistryWith(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); (!ok || u != user || p != pass) && r.Header.Get("X-Shoal-Test-Push") == "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="shoal-test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ref := registry + "/private/testapp:v1"
	imagetest.Push(t, imagetest.TestAppImage(t), ref, withPushHeader())
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // the node itself has no credentials
	n := newNode(t, registry)
	rt := n.open(t)
	defer rt.Close()

	authJSON := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, registry, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	secrets := map[string]*manifests.Secret{
		"registry": {Type: manifests.SecretTypeDockerConfigJSON, Data: map[string][]byte{".dockerconfigjson": []byte(authJSON)}},
		"opaque":   {Type: manifests.SecretTypeOpaque, Data: map[string][]byte{"password": []byte(pass)}},
	}
	tests := []struct {
		name    string
		secrets []string
		want    string // "" : runs
	}{
		{"no secret", nil, "unauthorized"},
		{"missing and wrong-type secrets", []string{"gone", "opaque"}, `imagePullSecret "gone" not found in namespace "default"; imagePullSecret "opaque" is of type "Opaque"`},
		{"dockerconfigjson secret", []string{"gone", "registry"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testPod(ref, "private", "sleep", "inf")
			spec.Pod.Spec.Containers[0].ImagePullPolicy = manifests.PullAlways
			for _, s := range tt.secrets {
				spec.Pod.Spec.ImagePullSecrets = append(spec.Pod.Spec.ImagePullSecrets, manifests.LocalObjectReference{Name: s})
			}
			spec.Secrets = secrets
			ensure(t, rt, spec)
			if tt.want == "" {
				waitRunning(t, rt, spec.UID)
				return
			}
			st := waitStatus(t, rt, spec.UID, "failing to pull", 60*time.Second, func(s manifests.PodStatus) bool {
				w := s.ContainerStatuses[0].State.Waiting
				return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
			})
			if msg := st.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to say %q", msg, tt.want)
			}
		})
	}
	// The credentials stay in memory: no file of the node holds them.
	err := filepath.WalkDir(n.root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && (bytes.Contains(b, []byte(pass)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(user+":"+pass))))) {
			t.Errorf("%s holds the registry password", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// withPushHeader marks the test's own pushes, which the registry lets through unauthenticated.
func withPushHeader() remote.Option {
	return remote.WithTransport(pushTransport{})
}

type pushTransport struct{}

func (pushTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Shoal-Test-Push", "1")
	return http.DefaultTransport.RoundTrip(r)
}
