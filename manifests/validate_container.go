package manifests

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
)

// maxTerminationMessagePath is the longest terminationMessagePath.
const maxTerminationMessagePath = 4096

// containerLifecycle checks what a container does around its run: its
// restart policy (sidecars), probes, lifecycle hooks and termination
// message. Init containers may have probes and hooks only as sidecars
// (restartPolicy: Always), as in Kubernetes 1.29.
func (v *validator) containerLifecycle(c *Container, p string, pc *podContext, init bool) {
	sidecar := false
	if rp := c.RestartPolicy; rp != nil {
		switch {
		case !init:
			v.errf(p+".restartPolicy", "may not be set on an app container; only an init container can be a sidecar "+
				"(restartPolicy: Always): move the container under initContainers or remove restartPolicy")
		case *rp != ContainerRestartPolicyAlways:
			v.errf(p+".restartPolicy", "%q is not supported; the only value is Always (a sidecar, which runs beside the app containers)", *rp)
		default:
			sidecar = true
		}
	}
	probes := []struct {
		probe *Probe
		name  string
	}{{c.LivenessProbe, "livenessProbe"}, {c.ReadinessProbe, "readinessProbe"}, {c.StartupProbe, "startupProbe"}}
	for _, pr := range probes {
		if pr.probe == nil {
			continue
		}
		if init && !sidecar {
			v.errf(p+"."+pr.name, "may not be set on an init container unless it is a sidecar (restartPolicy: Always)")
			continue
		}
		v.probe(pr.probe, p+"."+pr.name, pr.name, c)
	}
	if c.Lifecycle != nil {
		if init && !sidecar {
			v.errf(p+".lifecycle", "may not be set on an init container unless it is a sidecar (restartPolicy: Always)")
		} else {
			v.lifecycle(c.Lifecycle, p+".lifecycle", c, pc.spec.TerminationGracePeriodSeconds)
		}
	}
	switch tp := c.TerminationMessagePath; {
	case tp == "":
	case !path.IsAbs(tp):
		v.errf(p+".terminationMessagePath", "must be an absolute path, such as %s, is %q", DefaultTerminationMessagePath, tp)
	case len(tp) > maxTerminationMessagePath:
		v.errf(p+".terminationMessagePath", "must be at most %d characters, is %d", maxTerminationMessagePath, len(tp))
	}
	switch c.TerminationMessagePolicy {
	case "", TerminationMessageReadFile, TerminationMessageFallbackToLogsOnError:
	default:
		v.errf(p+".terminationMessagePolicy", "%q is not one of File, FallbackToLogsOnError", c.TerminationMessagePolicy)
	}
}

// lifecycle checks the postStart and preStop hooks. grace is the pod's
// terminationGracePeriodSeconds, which bounds a sleep.
func (v *validator) lifecycle(l *Lifecycle, p string, c *Container, grace *int64) {
	hooks := []struct {
		h    *LifecycleHandler
		name string
	}{{l.PostStart, "postStart"}, {l.PreStop, "preStop"}}
	for _, hook := range hooks {
		h := hook.h
		if h == nil {
			continue
		}
		hp := p + "." + hook.name
		n := 0
		if e := h.Exec; e != nil {
			n++
			if len(e.Command) == 0 {
				v.errf(hp+".exec.command", "required; give the command to run")
			}
		}
		if h.HTTPGet != nil {
			n++
			v.httpGet(h.HTTPGet, hp+".httpGet", c)
		}
		if h.TCPSocket != nil {
			n++
			v.errf(hp+".tcpSocket", "is deprecated as a hook: Kubernetes accepts it but never runs it, so Shoal refuses it; use exec or httpGet")
		}
		if sl := h.Sleep; sl != nil {
			n++
			switch {
			case sl.Seconds < 0:
				v.errf(hp+".sleep.seconds", "must be 0 or more, is %d", sl.Seconds)
			case grace != nil && sl.Seconds > *grace:
				v.errf(hp+".sleep.seconds", "must be at most terminationGracePeriodSeconds (%d), is %d: the container is killed when the grace period ends; "+
					"sleep less or raise terminationGracePeriodSeconds", *grace, sl.Seconds)
			}
		}
		switch {
		case n == 0:
			v.errf(hp, "needs a handler: one of exec, httpGet, sleep")
		case n > 1:
			v.errf(hp, "has %d handlers; use exactly one of exec, httpGet, sleep", n)
		}
	}
}

// hostPorts refuses a host port that two of the containers bind with the
// same protocol and host IP. first is the index of cs[0] in its list at p.
func (v *validator) hostPorts(cs []Container, p string, first int) {
	type key struct {
		port  int32
		proto Protocol
		ip    string
	}
	seen := map[key]string{}
	for i, c := range cs {
		for j, port := range c.Ports {
			if port.HostPort == 0 {
				continue
			}
			pp := idx(idx(p, first+i)+".ports", j)
			k := key{port.HostPort, port.Protocol, port.HostIP}
			if other, dup := seen[k]; dup {
				on := ""
				if port.HostIP != "" {
					on = " on " + port.HostIP
				}
				v.errf(pp+".hostPort", "host port %d/%s%s is already taken by %s of this pod; give each its own host port", port.HostPort, port.Protocol, on, other)
				continue
			}
			seen[k] = strings.TrimPrefix(pp, parentPath(p)+".")
		}
	}
}

// checkIP: an IPv4 or IPv6 address, without a zone.
func checkIP(s string) string {
	if s == "" {
		return "required; give an IPv4 or IPv6 address"
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return fmt.Sprintf("%q is not an IPv4 or IPv6 address", s)
	}
	return ""
}

// The downward API's fields of the pod, in environment variables and in
// downwardAPI volumes; both also take metadata.labels['KEY'] and
// metadata.annotations['KEY'].
var (
	envFieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
		"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"}
	volumeFieldPaths = []string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations"}
)

// fieldRef checks a downward API field of the pod; paths are those allowed
// where it is used.
func (v *validator) fieldRef(f *ObjectFieldSelector, p string, paths []string) {
	if f.APIVersion != "" && f.APIVersion != "v1" {
		v.errf(p+".apiVersion", "must be v1, is %q", f.APIVersion)
	}
	supported := strings.Join(paths, ", ") + ", metadata.labels['KEY'], metadata.annotations['KEY']"
	fp := f.FieldPath
	if fp == "" {
		v.errf(p+".fieldPath", "required; one of %s", supported)
		return
	}
	base, key, ok := splitSubscript(fp)
	if !ok {
		if !slices.Contains(paths, fp) {
			v.errf(p+".fieldPath", "%q is not supported here; use one of %s", fp, supported)
		}
		return
	}
	switch base {
	case "metadata.labels":
		if msg := validateQualifiedName(key); msg != "" {
			v.errf(p+".fieldPath", "label key %q: %s", key, msg)
		}
	case "metadata.annotations":
		if msg := validateQualifiedName(strings.ToLower(key)); msg != "" {
			v.errf(p+".fieldPath", "annotation key %q: %s", key, msg)
		}
	default:
		v.errf(p+".fieldPath", "%s takes no ['KEY']; only metadata.labels and metadata.annotations do", base)
	}
}

// splitSubscript splits "metadata.labels['app']" into "metadata.labels"
// and "app".
func splitSubscript(fp string) (base, key string, ok bool) {
	s, found := strings.CutSuffix(fp, "']")
	if !found {
		return fp, "", false
	}
	base, key, found = strings.Cut(s, "['")
	if !found || base == "" {
		return fp, "", false
	}
	return base, key, true
}

// resourceFieldPaths are the container resources the downward API exposes.
var resourceFieldPaths = []string{"limits.cpu", "limits.memory", "limits.ephemeral-storage",
	"requests.cpu", "requests.memory", "requests.ephemeral-storage"}

// Divisors Kubernetes allows, by resource.
var (
	cpuDivisors  = mustQuantities("1m", "1")
	sizeDivisors = mustQuantities("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")
)

// mustQuantities parses constant quantities (TestDivisorsParse checks them).
func mustQuantities(ss ...string) []Quantity {
	out := make([]Quantity, len(ss))
	for i, s := range ss {
		out[i], _ = ParseQuantity(s)
	}
	return out
}

// resourceFieldRef checks a downward API resource of a container. In a
// volume the container must be named; in an environment variable it is
// the variable's own container when unnamed.
func (v *validator) resourceFieldRef(r *ResourceFieldSelector, p string, pc *podContext, volume bool) {
	switch {
	case r.ContainerName == "" && volume:
		v.errf(p+".containerName", "required in a downwardAPI volume; name the container whose resource to expose")
	case r.ContainerName != "" && !pc.containers[r.ContainerName]:
		v.errf(p+".containerName", "this pod has no container named %q; its containers: %s", r.ContainerName, strings.Join(sortedKeys(pc.containers), ", "))
	}
	if !slices.Contains(resourceFieldPaths, r.Resource) {
		if r.Resource == "" {
			v.errf(p+".resource", "required; one of %s", strings.Join(resourceFieldPaths, ", "))
		} else {
			v.errf(p+".resource", "%q is not supported; use one of %s", r.Resource, strings.Join(resourceFieldPaths, ", "))
		}
		return
	}
	if r.Divisor == nil || r.Divisor.IsZero() {
		return
	}
	allowed, names := sizeDivisors, "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
	if strings.HasSuffix(r.Resource, ".cpu") {
		allowed, names = cpuDivisors, "1m, 1"
	}
	if !slices.ContainsFunc(allowed, func(q Quantity) bool { return q.Cmp(*r.Divisor) == 0 }) {
		v.errf(p+".divisor", "%s is not a divisor for %s; use one of %s", r.Divisor, r.Resource, names)
	}
}

// downwardAPIVolume checks the files of a downwardAPI volume.
func (v *validator) downwardAPIVolume(d *DownwardAPIVolumeSource, p string, pc *podContext) {
	v.fileMode(d.DefaultMode, p+".defaultMode")
	paths := map[string]bool{}
	for i := range d.Items {
		it := &d.Items[i]
		ip := idx(p+".items", i)
		if msg := nonReservedPath(it.Path); msg != "" {
			v.errf(ip+".path", "%s", msg)
		} else if paths[path.Clean(it.Path)] {
			v.errf(ip+".path", "duplicate path %q", it.Path)
		}
		paths[path.Clean(it.Path)] = true
		switch {
		case it.FieldRef != nil && it.ResourceFieldRef != nil:
			v.errf(ip, "has both fieldRef and resourceFieldRef; a file shows one of them")
		case it.FieldRef != nil:
			v.fieldRef(it.FieldRef, ip+".fieldRef", volumeFieldPaths)
		case it.ResourceFieldRef != nil:
			v.resourceFieldRef(it.ResourceFieldRef, ip+".resourceFieldRef", pc, true)
		default:
			v.errf(ip, "needs fieldRef or resourceFieldRef: what the file shows")
		}
		v.fileMode(it.Mode, ip+".mode")
	}
}
