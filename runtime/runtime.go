package runtime

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

// Errors that callers test for with errors.Is.
var (
	// ErrNotFound: no pod or container with that identity on this node.
	ErrNotFound = errors.New("not found")
	// ErrNotRunning: the container exists but has no running process (for Exec).
	ErrNotRunning = errors.New("container is not running")
	// ErrNotAllowed: the node's policy refuses what the pod asks for (privileged, host paths, ...).
	ErrNotAllowed = errors.New("not allowed by this node's policy")
)

// PodSpec is what the node agent asks a Runtime to run: one instance of a pod, with the
// ConfigMaps and Secrets its volumes and environment refer to already resolved.
type PodSpec struct {
	// UID identifies this instance of the pod. Pods are immutable: a changed pod is a new UID.
	UID string
	// Pod is the pod with Kubernetes' defaults applied (manifests.SetDefaults).
	Pod *manifests.Pod
	// ConfigMaps and Secrets referenced by the pod, by name, from the pod's namespace.
	ConfigMaps map[string]*manifests.ConfigMap
	Secrets    map[string]*manifests.Secret
	// Claims are the volumes of the PersistentVolumeClaims the pod uses, by claim name. The
	// master sets UID; the node sets Path once it has made the volume's directory.
	Claims map[string]ClaimVolume `json:",omitempty"`
}

// ClaimVolume is the volume of a PersistentVolumeClaim on the pod's node.
type ClaimVolume struct {
	// UID is the claim's UID, which names its volume.
	UID string
	// Path is the volume's directory on the node, "" until the node has made it.
	Path string `json:",omitempty"`
}

// PodState is a pod as a Runtime sees it.
type PodState struct {
	UID       string
	Namespace string
	Name      string
	// Status has Kubernetes' shape: phase, conditions (Initialized, ContainersReady, Ready), the
	// pod IP and one ContainerStatus per init and app container, with restart counts and the
	// reasons Kubernetes uses (ContainerCreating, ErrImagePull, ImagePullBackOff, CrashLoopBackOff,
	// CreateContainerError, Completed, Error, OOMKilled, PostStartHookError). Sidecars (init
	// containers with restartPolicy Always) are among the init container statuses.
	Status manifests.PodStatus
}

// PodMetrics is what the running containers of one pod use, measured on the node from their
// cgroups.
type PodMetrics struct {
	UID       string
	Namespace string
	Name      string
	// Containers are the pod's running containers (sidecars too), by name.
	Containers []ContainerMetrics
}

// ContainerMetrics is one measurement of a running container.
type ContainerMetrics struct {
	Name string
	// ID identifies this run of the container: a restarted container has a new ID, and its CPU
	// time counts from zero again.
	ID string
	// CPUUsageNanos is the CPU time the container's processes have used since it started, in
	// nanoseconds: a counter, whose rate over a window is the container's CPU usage.
	CPUUsageNanos uint64
	// MemoryWorkingSet is the memory the container uses that the kernel cannot just drop, in
	// bytes, as the kubelet (cAdvisor) computes it and the OOM killer sees it: the cgroup's
	// memory usage less its inactive file pages, at least 0.
	MemoryWorkingSet int64
	// Time is when it was measured.
	Time time.Time
}

// LogOptions select what Logs returns.
type LogOptions struct {
	Follow     bool      // keep streaming until ctx ends or the container exits
	Tail       int       // only the last Tail lines (0: all)
	Since      time.Time // only lines written after Since
	Timestamps bool      // prefix each line with its RFC 3339 timestamp
	Previous   bool      // the previous run of a restarted container
}

// ExecOptions describe a process to run in a container.
type ExecOptions struct {
	Command []string
	Env     []string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Runtime runs the pods of one node. Implementations: the libcontainer runtime (production) and
// an in-memory fake; both pass the conformance suite in package runtimetest.
//
// All methods are safe for concurrent use. Pods outlive the process that runs the Runtime: Close
// stops the Runtime's own work and leaves containers running, and a new Runtime over the same state
// re-adopts them when the pod is ensured again (same container IDs and PIDs, restart counts kept).
type Runtime interface {
	// EnsurePod makes the pod run: sandbox, init containers in order (a sidecar, an init
	// container with restartPolicy Always, only until it has started: it keeps running beside the
	// pod), then the app containers, each with its postStart hook, restarted per restartPolicy
	// with crash-loop backoff (sidecars always) and probed as the spec says. It returns
	// once the pod is accepted; progress shows in PodStatus. Idempotent: a pod already known by
	// UID (also one adopted from an earlier process) is left as it is. The Runtime keeps its own
	// copy of spec: the caller may change or reuse it afterwards.
	EnsurePod(ctx context.Context, spec *PodSpec) error
	// RemovePod stops the pod's containers as the kubelet does (each container's preStop hook,
	// then SIGTERM, then SIGKILL once grace is over, at least 2 s after SIGTERM; sidecars after
	// the app containers, in reverse order; nil grace means the pod's
	// terminationGracePeriodSeconds, a grace of 0 skips the hooks and kills at once) and removes
	// its sandbox and state. Pods left by an earlier process are stopped the same way. Removing
	// an unknown pod is not an error.
	RemovePod(ctx context.Context, uid string, grace *time.Duration) error
	// PodStatus reports one pod; ErrNotFound if the node has no pod with that UID.
	PodStatus(ctx context.Context, uid string) (PodState, error)
	// Pods lists every pod on the node, including pods left by an earlier process that nobody
	// has ensured since (so the caller can remove what is no longer wanted).
	Pods(ctx context.Context) ([]PodState, error)
	// Logs writes a container's log lines to w.
	Logs(ctx context.Context, uid, container string, opts LogOptions, w io.Writer) error
	// Exec runs a process in a running container and returns its exit code.
	Exec(ctx context.Context, uid, container string, opts ExecOptions) (int, error)
	// PodMetrics measures the running containers of every pod on the node (also pods left by an
	// earlier process): their cumulative CPU time and memory working set, from their cgroups.
	// Pods with no running container are left out. A pod one of whose containers could not be
	// measured is left out too, and the error says why; the other pods are returned with it.
	PodMetrics(ctx context.Context) ([]PodMetrics, error)
	// Changes delivers the UID of a pod whenever its status changes, so that the node agent can
	// report promptly. It is buffered and never blocks the runtime: a reader that falls far behind
	// loses notices, so it should also relist (Pods) now and then.
	Changes() <-chan string
	// Close stops the Runtime's probes and workers. Containers keep running.
	Close() error
}
