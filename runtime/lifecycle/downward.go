package lifecycle

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// Field paths of the downward API.
var (
	volumeFieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations",
		"metadata.labels['KEY']", "metadata.annotations['KEY']"}
	envFieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels['KEY']", "metadata.annotations['KEY']",
		"spec.nodeName", "spec.serviceAccountName", "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs"}
)

// podFieldValue resolves a downward API fieldPath as the kubelet does. A volume file may name
// the pod's metadata only; an environment variable also its node, account and addresses.
func podFieldValue(spec *runtime.PodSpec, sb Sandbox, node NodeInfo, path string, env bool) (string, error) {
	pod := spec.Pod
	if base, key, ok := splitSubscript(path); ok {
		switch base {
		case "metadata.labels":
			return pod.Labels[key], nil
		case "metadata.annotations":
			return pod.Annotations[key], nil
		}
		return "", configErrorf("fieldRef %q: only metadata.labels and metadata.annotations take a ['key'] subscript", path)
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return spec.UID, nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	if !env {
		return "", configErrorf("fieldRef %q is not supported in a downwardAPI volume; use one of %s", path, strings.Join(volumeFieldPaths, ", "))
	}
	switch path {
	case "spec.nodeName":
		return node.Name, nil
	case "spec.serviceAccountName":
		return serviceAccountName(pod), nil
	case "status.podIP", "status.podIPs":
		return sb.IP, nil // one address per pod
	case "status.hostIP":
		if len(node.HostIPs) == 0 {
			return "", nil
		}
		return node.HostIPs[0], nil
	case "status.hostIPs":
		return strings.Join(node.HostIPs, ","), nil
	}
	return "", configErrorf("fieldRef %q is not supported; use one of %s", path, strings.Join(envFieldPaths, ", "))
}

// serviceAccountName is the pod's account, "default" unless it names one (as the
// ServiceAccount admission plugin sets it).
func serviceAccountName(pod *manifests.Pod) string {
	if n := pod.Spec.ServiceAccountName; n != "" {
		return n
	}
	if n := pod.Spec.DeprecatedServiceAccount; n != "" {
		return n
	}
	return "default"
}

// splitSubscript splits "metadata.labels['app']" into "metadata.labels" and "app".
func splitSubscript(path string) (base, key string, ok bool) {
	s, found := strings.CutSuffix(path, "']")
	if !found {
		return path, "", false
	}
	base, key, found = strings.Cut(s, "['")
	if !found || base == "" {
		return path, "", false
	}
	return base, key, true
}

// formatMap renders labels or annotations as the kubelet does in downward API files: one
// key="value" line per entry (the value Go-quoted), sorted by key, without a final newline.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = k + "=" + strconv.Quote(m[k])
	}
	return strings.Join(lines, "\n")
}

// downwardAPIFiles resolves the files of a downwardAPI volume.
func downwardAPIFiles(spec *runtime.PodSpec, src *manifests.DownwardAPIVolumeSource, node NodeInfo) ([]File, error) {
	mode := uint32(defaultFileMode)
	if src.DefaultMode != nil {
		mode = uint32(*src.DefaultMode)
	}
	files := make([]File, 0, len(src.Items))
	for _, it := range src.Items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podFieldValue(spec, Sandbox{}, node, it.FieldRef.FieldPath, false)
		case it.ResourceFieldRef != nil:
			if it.ResourceFieldRef.ContainerName == "" {
				return nil, configErrorf("file %q: a resourceFieldRef in a volume needs containerName", it.Path)
			}
			v, err = resourceValue(spec.Pod, nil, it.ResourceFieldRef, node.Allocatable)
		default:
			return nil, configErrorf("file %q has neither fieldRef nor resourceFieldRef", it.Path)
		}
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", it.Path, err)
		}
		m := mode
		if it.Mode != nil {
			m = uint32(*it.Mode)
		}
		files = append(files, File{Path: it.Path, Data: []byte(v), Mode: m})
	}
	return files, nil
}

// findContainer finds an app or init container of the pod by name.
func findContainer(pod *manifests.Pod, name string) *manifests.Container {
	for _, list := range [][]manifests.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// resourceValue resolves a resourceFieldRef as the kubelet does: the request or limit of the
// named container (own when it names none), divided by the divisor and rounded up. A limit
// the container does not set is the node's allocatable amount; a request it does not set is
// its limit (the API server's default), else 0.
func resourceValue(pod *manifests.Pod, own *manifests.Container, sel *manifests.ResourceFieldSelector, alloc Resources) (string, error) {
	c := own
	if sel.ContainerName != "" {
		if c = findContainer(pod, sel.ContainerName); c == nil {
			return "", configErrorf("resourceFieldRef %q: the pod has no container %q", sel.Resource, sel.ContainerName)
		}
	}
	if c == nil {
		return "", configErrorf("resourceFieldRef %q: set containerName", sel.Resource)
	}
	kind, name, _ := strings.Cut(sel.Resource, ".")
	res := manifests.ResourceName(name)
	var nodeAmount int64
	switch res {
	case manifests.ResourceCPU:
		nodeAmount = alloc.MilliCPU
	case manifests.ResourceMemory:
		nodeAmount = alloc.Memory
	case manifests.ResourceEphemeralStorage:
		nodeAmount = alloc.EphemeralStorage
	default:
		kind = ""
	}
	var q manifests.Quantity
	var set bool
	switch kind {
	case "limits":
		q, set = c.Resources.Limits[res]
		set = set && !q.IsZero()
	case "requests":
		if q, set = c.Resources.Requests[res]; !set {
			q, set = c.Resources.Limits[res]
		}
	default:
		return "", configErrorf("resourceFieldRef %q is not supported; use limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory or requests.ephemeral-storage", sel.Resource)
	}
	cpu := res == manifests.ResourceCPU
	var amount int64 // millicores for CPU, bytes otherwise
	switch {
	case set && cpu:
		amount = q.MilliValue()
	case set:
		amount = q.Value()
	case kind == "limits":
		amount = nodeAmount
	}
	div := int64(1)
	if cpu {
		div = 1000
	}
	if d := sel.Divisor; d != nil && !d.IsZero() {
		div = d.Value()
		if cpu {
			div = d.MilliValue()
		}
	}
	if div <= 0 {
		return "", configErrorf("resourceFieldRef %q: divisor %s must be positive", sel.Resource, sel.Divisor)
	}
	return strconv.FormatInt(ceilDiv(amount, div), 10), nil
}

// ceilDiv divides rounding up, for a non-negative a and a positive b.
func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return a / b
	}
	return (a-1)/b + 1
}

// podLimit is the pod's limit of a resource as Kubernetes computes it: the app containers'
// limits added up, or the largest need of an init container (with the sidecars started
// before it) if that is more. found reports whether any container sets the limit; all
// whether every container does.
func podLimit(pod *manifests.Pod, res manifests.ResourceName) (limit int64, found, all bool) {
	all = true
	value := func(c *manifests.Container) int64 {
		q, ok := c.Resources.Limits[res]
		if !ok {
			all = false
			return 0
		}
		found = true
		if res == manifests.ResourceCPU {
			return q.MilliValue()
		}
		return q.Value()
	}
	for i := range pod.Spec.Containers {
		limit += value(&pod.Spec.Containers[i])
	}
	var sidecars, initMax int64
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		v := value(c)
		if c.RestartPolicy != nil && *c.RestartPolicy == manifests.ContainerRestartPolicyAlways {
			limit += v
			sidecars += v
			initMax = max(initMax, sidecars)
			continue
		}
		initMax = max(initMax, v+sidecars)
	}
	return max(limit, initMax), found, all
}

// memoryVolumeSize is the size of the tmpfs of an emptyDir of medium Memory, as the kubelet
// sizes it: the node's allocatable memory, the pod's memory limit if every container sets one
// and the volume's sizeLimit, whichever is least. 0 means no bound is known.
func memoryVolumeSize(pod *manifests.Pod, ed *manifests.EmptyDirVolumeSource, allocatable int64) int64 {
	size := allocatable
	less := func(v int64) {
		if v > 0 && (size <= 0 || v < size) {
			size = v
		}
	}
	if lim, _, all := podLimit(pod, manifests.ResourceMemory); all {
		less(lim)
	}
	if ed.SizeLimit != nil {
		less(ed.SizeLimit.Value())
	}
	return max(size, 0)
}

// localhostProfile reads and checks a Localhost seccomp profile: rel is relative to root and
// may not leave it, also through symbolic links.
func localhostProfile(root, rel string) ([]byte, string, error) {
	if root == "" {
		return nil, "", errors.New("seccomp profile type Localhost: this node has no seccomp profile directory; start the daemon with --seccomp-profile-root DIR")
	}
	path := filepath.Join(root, rel)
	if rel == "" || !filepath.IsLocal(rel) {
		return nil, path, fmt.Errorf("seccomp localhostProfile %q must be a relative path inside the node's seccomp profile directory %s", rel, root)
	}
	data, err := readInRoot(root, rel)
	if err != nil {
		return nil, path, fmt.Errorf("seccomp profile %s: %v; put the profile there or use seccompProfile RuntimeDefault", path, err)
	}
	if err := checkSeccompProfile(data); err != nil {
		return nil, path, fmt.Errorf("seccomp profile %s: %v", path, err)
	}
	return data, path, nil
}

// readInRoot reads a file below root without following links out of it.
func readInRoot(root, rel string) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSeccompProfile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSeccompProfile {
		return nil, fmt.Errorf("larger than %d bytes", maxSeccompProfile)
	}
	return data, nil
}

// checkSeccompProfile parses a profile in the Docker/containerd JSON format as the runtime
// will load it.
func checkSeccompProfile(data []byte) error {
	s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}}
	p, err := seccomp.LoadProfile(string(data), s)
	if err != nil {
		return fmt.Errorf("not a valid seccomp profile (Docker's JSON format): %v", err)
	}
	if p == nil {
		return errors.New("the profile has no defaultAction and no syscalls, so it filters nothing; use seccompProfile Unconfined to run without seccomp")
	}
	return nil
}

// pullSecrets resolves the pod's image pull secrets into the docker configs they hold, in
// the pod's order. Like the kubelet, a secret that is missing or of another type does not
// stop the pull; it is named in the error of a pull that fails.
func pullSecrets(spec *runtime.PodSpec) PullSecrets {
	var ps PullSecrets
	for _, ref := range spec.Pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		s := spec.Secrets[ref.Name]
		var key string
		switch {
		case s == nil:
			ps.Problems = append(ps.Problems, fmt.Sprintf("imagePullSecret %q not found in namespace %q", ref.Name, spec.Pod.Namespace))
			continue
		case s.Type == manifests.SecretTypeDockerConfigJSON:
			key = ".dockerconfigjson"
		case s.Type == secretTypeDockercfg:
			key = ".dockercfg"
		default:
			ps.Problems = append(ps.Problems, fmt.Sprintf("imagePullSecret %q is of type %q; image pull secrets are of type %s (key .dockerconfigjson) or %s (key .dockercfg)",
				ref.Name, s.Type, manifests.SecretTypeDockerConfigJSON, secretTypeDockercfg))
			continue
		}
		data, ok := s.Data[key]
		if !ok {
			ps.Problems = append(ps.Problems, fmt.Sprintf("imagePullSecret %q of type %s has no key %s", ref.Name, s.Type, key))
			continue
		}
		ps.Configs = append(ps.Configs, DockerConfig{Secret: ref.Name, Legacy: key == ".dockercfg", Data: data})
	}
	return ps
}
