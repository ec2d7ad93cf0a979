package lifecycle

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// Policy is what a node allows its pods beyond the secure defaults.
type Policy struct {
	AllowPrivileged bool
	// AllowHostPaths lists the host directories under which hostPath volumes may be mounted.
	// Empty: no hostPath volumes.
	AllowHostPaths []string
	// AllowUnconfined lets pods ask for seccompProfile Unconfined.
	AllowUnconfined bool
	// PidsLimit is the most processes of one pod (default 1024).
	PidsLimit int64
	// SeccompProfileRoot is the node's directory of seccomp profiles: a Localhost profile's
	// localhostProfile is a path relative to it. Empty: Localhost profiles are refused.
	SeccompProfileRoot string

	// node is the node the pods run on, for the downward API; New sets it from Config.Node.
	node NodeInfo
}

// NodeInfo is what a pod may learn of its node through the downward API.
type NodeInfo struct {
	// Name is the node's name (spec.nodeName).
	Name string
	// HostIPs are the node's addresses, the primary one first (status.hostIP, status.hostIPs).
	HostIPs []string
	// Allocatable is what the node has for pods. As in Kubernetes, a resourceFieldRef to a
	// limit that the container does not set gives the node's allocatable amount.
	Allocatable Resources
}

// Resources are amounts of the resources a node accounts for.
type Resources struct {
	MilliCPU         int64
	Memory           int64 // bytes
	EphemeralStorage int64 // bytes
}

// secretTypeDockercfg is the legacy image pull secret type, whose .dockercfg key holds a
// ~/.dockercfg file.
const secretTypeDockercfg manifests.SecretType = "kubernetes.io/dockercfg"

// maxSeccompProfile bounds the size of a Localhost seccomp profile file.
const maxSeccompProfile = 1 << 20

// configError is a problem with a pod's configuration that retrying cannot fix until the pod
// changes (Kubernetes' CreateContainerConfigError).
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

func isConfigError(err error) bool {
	var ce *configError
	return errors.As(err, &ce) || errors.Is(err, runtime.ErrNotAllowed)
}

const defaultFileMode = 0o644

// sandboxConfig resolves a pod's volumes and checks them against the node's policy.
func sandboxConfig(spec *runtime.PodSpec, pol Policy) (SandboxConfig, error) {
	pod := spec.Pod
	cfg := SandboxConfig{
		UID:         spec.UID,
		Namespace:   pod.Namespace,
		Name:        pod.Name,
		Hostname:    pod.Spec.Hostname,
		Subdomain:   pod.Spec.Subdomain,
		PidsLimit:   pol.PidsLimit,
		DNSPolicy:   pod.Spec.DNSPolicy,
		DNSConfig:   pod.Spec.DNSConfig,
		HostAliases: pod.Spec.HostAliases,
	}
	if cfg.Hostname == "" {
		cfg.Hostname = pod.Name
	}
	if len(cfg.Hostname) > 63 {
		cfg.Hostname = cfg.Hostname[:63]
	}
	if cfg.PidsLimit <= 0 {
		cfg.PidsLimit = 1024
	}
	for _, v := range pod.Spec.Volumes {
		vc := VolumeConfig{Name: v.Name}
		switch {
		case v.EmptyDir != nil:
			vc.EmptyDir = v.EmptyDir
			if v.EmptyDir.Medium == manifests.StorageMediumMemory {
				vc.TmpfsSize = memoryVolumeSize(pod, v.EmptyDir, pol.node.Allocatable.Memory)
			}
		case v.HostPath != nil:
			if !hostPathAllowed(v.HostPath.Path, pol.AllowHostPaths) {
				return cfg, fmt.Errorf("volume %q: hostPath %s: %w (allowed: %s)", v.Name, v.HostPath.Path,
					runtime.ErrNotAllowed, allowedList(pol.AllowHostPaths))
			}
			vc.HostPath = v.HostPath
		case v.PersistentVolumeClaim != nil:
			cv := spec.Claims[v.PersistentVolumeClaim.ClaimName]
			if cv.Path == "" {
				return cfg, configErrorf("volume %q: persistentvolumeclaim %q has no volume on this node", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
			dir := manifests.HostPathDirectory
			vc.HostPath = &manifests.HostPathVolumeSource{Path: cv.Path, Type: &dir}
		case v.ConfigMap != nil:
			files, err := configMapFiles(spec, v.ConfigMap)
			if err != nil {
				return cfg, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			vc.Files = files
		case v.Secret != nil:
			files, err := secretFiles(spec, v.Secret)
			if err != nil {
				return cfg, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			vc.Files, vc.Sensitive = files, true
		case v.DownwardAPI != nil:
			files, err := downwardAPIFiles(spec, v.DownwardAPI, pol.node)
			if err != nil {
				return cfg, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			vc.Files = files
		default:
			return cfg, configErrorf("volume %q has no source Shoal supports", v.Name)
		}
		cfg.Volumes = append(cfg.Volumes, vc)
	}
	return cfg, nil
}

func allowedList(paths []string) string {
	if len(paths) == 0 {
		return "none; start the daemon with --allow-host-path DIR to allow some"
	}
	return strings.Join(paths, ", ")
}

func hostPathAllowed(p string, allowed []string) bool {
	p = path.Clean(p)
	for _, a := range allowed {
		a = path.Clean(a)
		if p == a || strings.HasPrefix(p, strings.TrimSuffix(a, "/")+"/") {
			return true
		}
	}
	return false
}

func isTrue(b *bool) bool { return b != nil && *b }

func projectFiles(data map[string][]byte, items []manifests.KeyToPath, defaultMode *int32, what string, optional bool) ([]File, error) {
	mode := uint32(defaultFileMode)
	if defaultMode != nil {
		mode = uint32(*defaultMode)
	}
	var files []File
	if len(items) == 0 {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			files = append(files, File{Path: k, Data: data[k], Mode: mode})
		}
		return files, nil
	}
	for _, it := range items {
		d, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, configErrorf("%s has no key %q", what, it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = uint32(*it.Mode)
		}
		files = append(files, File{Path: it.Path, Data: d, Mode: m})
	}
	return files, nil
}

func configMapData(cm *manifests.ConfigMap) map[string][]byte {
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return data
}

func configMapFiles(spec *runtime.PodSpec, src *manifests.ConfigMapVolumeSource) ([]File, error) {
	cm := spec.ConfigMaps[src.Name]
	if cm == nil {
		if isTrue(src.Optional) {
			return nil, nil
		}
		return nil, configErrorf("configmap %q not found in namespace %q", src.Name, spec.Pod.Namespace)
	}
	return projectFiles(configMapData(cm), src.Items, src.DefaultMode, fmt.Sprintf("configmap %q", src.Name), isTrue(src.Optional))
}

func secretFiles(spec *runtime.PodSpec, src *manifests.SecretVolumeSource) ([]File, error) {
	s := spec.Secrets[src.SecretName]
	if s == nil {
		if isTrue(src.Optional) {
			return nil, nil
		}
		return nil, configErrorf("secret %q not found in namespace %q", src.SecretName, spec.Pod.Namespace)
	}
	return projectFiles(s.Data, src.Items, src.DefaultMode, fmt.Sprintf("secret %q", src.SecretName), isTrue(src.Optional))
}

// containerConfig resolves one container of a pod against its image: argv, environment, user,
// resources and security, as the kubelet does.
func containerConfig(spec *runtime.PodSpec, sb Sandbox, c *manifests.Container, img Image, meta ContainerMeta, pol Policy) (ContainerConfig, error) {
	pod := spec.Pod
	cfg := ContainerConfig{Meta: meta, Sandbox: sb, Image: img}

	env, err := containerEnv(spec, sb, c, img, pol.node)
	if err != nil {
		return cfg, err
	}
	cfg.Env = env
	vars := envMap(env)

	// Kubernetes: command replaces the image's Entrypoint (and then ignores its Cmd); args
	// replace the Cmd. $(VAR) is expanded in the pod's command and args, not in the image's.
	command := expandAll(c.Command, vars)
	args := expandAll(c.Args, vars)
	var argv []string
	switch {
	case len(command) > 0:
		argv = append(command, args...)
	case len(args) > 0:
		argv = append(slices.Clone(img.Entrypoint), args...)
	default:
		argv = append(slices.Clone(img.Entrypoint), img.Cmd...)
	}
	if len(argv) == 0 {
		return cfg, configErrorf("container %q has no command: the image %s sets no Entrypoint or Cmd and the pod sets no command", c.Name, img.Ref)
	}
	cfg.Args = argv

	cfg.Cwd = c.WorkingDir
	if cfg.Cwd == "" {
		cfg.Cwd = img.WorkingDir
	}
	if cfg.Cwd == "" {
		cfg.Cwd = "/"
	}

	user, err := containerUser(pod, c, img)
	if err != nil {
		return cfg, err
	}
	cfg.User = user
	if psc := pod.Spec.SecurityContext; psc != nil {
		for _, g := range psc.SupplementalGroups {
			cfg.SupplementalGroups = append(cfg.SupplementalGroups, uint32(g))
		}
		if psc.FSGroup != nil {
			cfg.SupplementalGroups = append(cfg.SupplementalGroups, uint32(*psc.FSGroup))
		}
	}

	// Resources: limits are cgroup limits; a CPU request sets the CPU weight.
	if q, ok := c.Resources.Limits[manifests.ResourceMemory]; ok {
		cfg.MemoryLimit = q.Value()
	}
	if q, ok := c.Resources.Limits[manifests.ResourceCPU]; ok {
		cfg.CPUPeriod = 100000
		cfg.CPUQuota = max(q.MilliValue()*cfg.CPUPeriod/1000, 1000)
	}
	req, ok := c.Resources.Requests[manifests.ResourceCPU]
	if !ok {
		req, ok = c.Resources.Limits[manifests.ResourceCPU] // Kubernetes defaults requests to limits
	}
	cfg.CPUShares = 2
	if ok {
		cfg.CPUShares = uint64(max(req.MilliValue()*1024/1000, 2))
	}

	// Security.
	sc := c.SecurityContext
	if sc == nil {
		sc = &manifests.SecurityContext{}
	}
	if isTrue(sc.Privileged) {
		if !pol.AllowPrivileged {
			return cfg, fmt.Errorf("container %q is privileged: %w (start the daemon with --allow-privileged)", c.Name, runtime.ErrNotAllowed)
		}
		cfg.Privileged = true
	}
	if sc.Capabilities != nil {
		for _, a := range sc.Capabilities.Add {
			cfg.CapAdd = append(cfg.CapAdd, string(a))
		}
		for _, d := range sc.Capabilities.Drop {
			cfg.CapDrop = append(cfg.CapDrop, string(d))
		}
	}
	cfg.NoNewPrivileges = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	cfg.ReadonlyRootfs = isTrue(sc.ReadOnlyRootFilesystem)
	profile := sc.SeccompProfile
	if profile == nil && pod.Spec.SecurityContext != nil {
		profile = pod.Spec.SecurityContext.SeccompProfile
	}
	if profile != nil {
		switch profile.Type {
		case manifests.SeccompProfileTypeUnconfined:
			if !pol.AllowUnconfined && !cfg.Privileged {
				return cfg, fmt.Errorf("container %q asks for seccomp Unconfined: %w (start the daemon with --allow-unconfined-seccomp)", c.Name, runtime.ErrNotAllowed)
			}
			cfg.SeccompUnconfined = true
		case manifests.SeccompProfileTypeLocalhost:
			if cfg.Privileged {
				break // privileged containers run without seccomp, as with containerd
			}
			rel := ""
			if profile.LocalhostProfile != nil {
				rel = *profile.LocalhostProfile
			}
			data, path, err := localhostProfile(pol.SeccompProfileRoot, rel)
			if err != nil {
				return cfg, configErrorf("container %q: %v", c.Name, err)
			}
			cfg.SeccompProfile, cfg.SeccompProfilePath = data, path
		}
	}

	// Mounts.
	volumes := map[string]*manifests.Volume{}
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		if v == nil {
			return cfg, configErrorf("container %q mounts volume %q, which the pod does not have", c.Name, m.Name)
		}
		ro := m.ReadOnly || v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil ||
			v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ReadOnly
		cfg.Mounts = append(cfg.Mounts, Mount{Volume: m.Name, SubPath: m.SubPath, Destination: m.MountPath, ReadOnly: ro})
	}
	return cfg, nil
}

// containerUser picks the user a container runs as and enforces runAsNonRoot.
func containerUser(pod *manifests.Pod, c *manifests.Container, img Image) (string, error) {
	var uid, gid *int64
	nonRoot := false
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid, nonRoot = psc.RunAsUser, psc.RunAsGroup, isTrue(psc.RunAsNonRoot)
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
	}
	var user string
	switch {
	case uid != nil:
		user = strconv.FormatInt(*uid, 10)
		if gid != nil {
			user += ":" + strconv.FormatInt(*gid, 10)
		}
	default:
		user = img.User
		if gid != nil {
			name, _, _ := strings.Cut(user, ":")
			if name == "" {
				name = "0"
			}
			user = name + ":" + strconv.FormatInt(*gid, 10)
		}
	}
	if nonRoot {
		name, _, _ := strings.Cut(user, ":")
		switch n, err := strconv.ParseInt(name, 10, 64); {
		case name == "" || name == "root" || (err == nil && n == 0):
			return "", configErrorf("container %q has runAsNonRoot and would run as root: set securityContext.runAsUser to a non-zero UID", c.Name)
		case err != nil:
			return "", configErrorf("container %q has runAsNonRoot and the image's user %q is not numeric, so Shoal cannot verify it is not root: set securityContext.runAsUser", c.Name, name)
		}
	}
	return user, nil
}

// containerEnv builds a container's environment: the image's, then envFrom, then env, with
// $(VAR) references expanded as Kubernetes expands them.
func containerEnv(spec *runtime.PodSpec, sb Sandbox, c *manifests.Container, img Image, node NodeInfo) ([]string, error) {
	pod := spec.Pod
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range img.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, ef := range c.EnvFrom {
		var data map[string][]byte
		switch {
		case ef.ConfigMapRef != nil:
			cm := spec.ConfigMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				if isTrue(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, configErrorf("configmap %q not found in namespace %q", ef.ConfigMapRef.Name, pod.Namespace)
			}
			data = configMapData(cm)
		case ef.SecretRef != nil:
			s := spec.Secrets[ef.SecretRef.Name]
			if s == nil {
				if isTrue(ef.SecretRef.Optional) {
					continue
				}
				return nil, configErrorf("secret %q not found in namespace %q", ef.SecretRef.Name, pod.Namespace)
			}
			data = s.Data
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if name := ef.Prefix + k; validEnvName(name) {
				set(name, string(data[k]))
			}
		}
	}
	// Only variables defined by the pod (not the image) are visible to $(VAR) expansion, and
	// only those defined before the one being expanded.
	defined := map[string]string{}
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = expand(e.Value, defined)
		case e.ValueFrom.FieldRef != nil:
			var err error
			if v, err = podFieldValue(spec, sb, node, e.ValueFrom.FieldRef.FieldPath, true); err != nil {
				return nil, fmt.Errorf("env %q: %w", e.Name, err)
			}
		case e.ValueFrom.ResourceFieldRef != nil:
			var err error
			if v, err = resourceValue(pod, c, e.ValueFrom.ResourceFieldRef, node.Allocatable); err != nil {
				return nil, fmt.Errorf("env %q: %w", e.Name, err)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm := spec.ConfigMaps[ref.Name]
			if cm == nil {
				if isTrue(ref.Optional) {
					continue
				}
				return nil, configErrorf("env %q: configmap %q not found in namespace %q", e.Name, ref.Name, pod.Namespace)
			}
			d, ok := configMapData(cm)[ref.Key]
			if !ok {
				if isTrue(ref.Optional) {
					continue
				}
				return nil, configErrorf("env %q: configmap %q has no key %q", e.Name, ref.Name, ref.Key)
			}
			v = string(d)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := spec.Secrets[ref.Name]
			if s == nil {
				if isTrue(ref.Optional) {
					continue
				}
				return nil, configErrorf("env %q: secret %q not found in namespace %q", e.Name, ref.Name, pod.Namespace)
			}
			d, ok := s.Data[ref.Key]
			if !ok {
				if isTrue(ref.Optional) {
					continue
				}
				return nil, configErrorf("env %q: secret %q has no key %q", e.Name, ref.Name, ref.Key)
			}
			v = string(d)
		}
		defined[e.Name] = v
		set(e.Name, v)
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env, nil
}

func expandAll(in []string, vars map[string]string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, vars)
	}
	return out
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func validEnvName(s string) bool {
	if s == "" || strings.ContainsAny(s, "=\x00") {
		return false
	}
	return true
}

// expand replaces $(VAR) with the value of VAR, as Kubernetes does for env values, command and
// args: $$ escapes a $, and a reference to an undefined variable is left as written.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
