package lifecycle

import (
	"context"
	"io"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// Driver does a runtime's work on the machine: sandboxes, images, containers, probes from the node
// into a pod. The Manager decides what to do and when; the Driver does it and remembers what it did
// (so a new process can find the containers an earlier one started). Implementations must be safe
// for concurrent use.
type Driver interface {
	// CreateSandbox makes the pod's sandbox (its network namespace, hostname, /etc/hosts,
	// /etc/resolv.conf and volumes). Idempotent by UID: an existing sandbox is returned as it is.
	CreateSandbox(ctx context.Context, cfg SandboxConfig) (Sandbox, error)
	// RemoveSandbox removes the sandbox and its volumes. Unknown UIDs are not an error.
	RemoveSandbox(ctx context.Context, uid string) error
	// Sandboxes lists the sandboxes the driver holds (also those made by an earlier process).
	Sandboxes(ctx context.Context) ([]Sandbox, error)

	// EnsureImage makes ref available on the node according to policy. A pull tries the
	// credentials of the pod's image pull secrets that match the image's registry, then the
	// node's own; secrets.Problems are added to the error of a pull that fails.
	EnsureImage(ctx context.Context, ref string, policy manifests.PullPolicy, secrets PullSecrets) (Image, error)

	// StartContainer creates and starts a container in a sandbox and returns once its process
	// runs. A failure to start (command not found, bad user) is returned as an error; the
	// Manager reports it as CreateContainerError with the error's text.
	StartContainer(ctx context.Context, cfg ContainerConfig) (string, error)
	// Containers lists the containers of a pod ("" : of every pod), running or exited.
	Containers(ctx context.Context, podUID string) ([]ContainerInfo, error)
	// WaitContainer blocks until the container's process exits (or ctx ends) and returns its
	// final state.
	WaitContainer(ctx context.Context, id string) (ContainerInfo, error)
	// StopContainer sends SIGTERM, then SIGKILL after grace, and returns the final state.
	StopContainer(ctx context.Context, id string, grace time.Duration) (ContainerInfo, error)
	// RemoveContainer removes an exited container (stopping it first if needed).
	RemoveContainer(ctx context.Context, id string) error

	// ContainerUsage measures a running container from its cgroup: its CPU time so far and its
	// memory working set. An unknown container gives runtime.ErrNotFound, one that is not
	// running runtime.ErrNotRunning.
	ContainerUsage(ctx context.Context, id string) (ContainerUsage, error)

	// Exec runs a process in a running container and returns its exit code.
	Exec(ctx context.Context, id string, opts runtime.ExecOptions) (int, error)
	// Logs writes a container's log to w.
	Logs(ctx context.Context, id string, opts runtime.LogOptions, w io.Writer) error

	// ProbeTCP connects to host:port from inside the sandbox's network namespace.
	ProbeTCP(ctx context.Context, sb Sandbox, host string, port int) error
	// ProbeHTTP sends a GET from inside the sandbox's network namespace; a status in
	// [200, 400) is success (any response, with HTTPProbe.AnyStatus).
	ProbeHTTP(ctx context.Context, sb Sandbox, p HTTPProbe) error
	// ProbeGRPC calls grpc.health.v1.Health/Check on the pod's address from inside the
	// sandbox's network namespace, until ctx ends; the status SERVING is success, anything else
	// (NOT_SERVING, an unknown service, a server without the health service, no connection) an
	// error that says which.
	ProbeGRPC(ctx context.Context, sb Sandbox, p GRPCProbe) error
}

// SandboxConfig describes a pod's sandbox.
type SandboxConfig struct {
	UID       string
	Namespace string
	Name      string
	Hostname  string
	// Subdomain is the pod's spec.subdomain: with it the pod's /etc/hosts also names it
	// <hostname>.<subdomain>.<namespace>.svc.<cluster domain>, as the kubelet writes it.
	Subdomain string
	Volumes   []VolumeConfig
	// PidsLimit caps the number of processes of the whole pod.
	PidsLimit int64
	// StartTime is when the node took the pod on (its status.startTime). The driver keeps it
	// with the sandbox, so that a pod re-adopted by a later process keeps its start time.
	StartTime time.Time
	// DNSPolicy ("" is ClusterFirst) and DNSConfig say how the driver makes the pod's
	// /etc/resolv.conf from the cluster's or the node's resolver configuration.
	DNSPolicy manifests.DNSPolicy
	DNSConfig *manifests.PodDNSConfig
	// HostAliases are added to the pod's /etc/hosts.
	HostAliases []manifests.HostAlias
}

// Sandbox is a pod's sandbox as the driver made it.
type Sandbox struct {
	UID       string
	Namespace string
	Name      string
	// NetNS is the path of the network namespace that the pod's containers join.
	NetNS string
	// IP is the pod's address ("" when the pod has only loopback).
	IP string
	// StartTime is SandboxConfig.StartTime as the sandbox was first made with it (the time of
	// its creation when that was zero).
	StartTime time.Time
}

// VolumeConfig is one pod volume, resolved: the Manager has read the ConfigMap or Secret.
type VolumeConfig struct {
	Name string
	// Exactly one of the following.
	EmptyDir  *manifests.EmptyDirVolumeSource
	HostPath  *manifests.HostPathVolumeSource
	Files     []File // configMap, secret and downwardAPI volumes: read-only files
	Sensitive bool   // the files hold secrets (kept off disk where the driver can: tmpfs)
	// TmpfsSize is the size in bytes of an emptyDir of medium Memory: its sizeLimit, the pod's
	// memory limit or the node's allocatable memory, whichever is least (0: the kernel's default).
	TmpfsSize int64
}

// PullSecrets are a pod's image pull secrets, resolved by the Manager: the docker configs
// they hold, in the order the pod lists them, and what made some unusable.
type PullSecrets struct {
	Configs []DockerConfig
	// Problems say why a listed secret could not be used (missing, wrong type); a failed pull
	// reports them.
	Problems []string
}

// DockerConfig is the registry credentials of one image pull secret.
type DockerConfig struct {
	Secret string // the secret's name, for messages
	// Legacy marks the ~/.dockercfg format of kubernetes.io/dockercfg secrets
	// ({"host": {"auth": ...}}); otherwise Data is a config.json ({"auths": {...}}).
	Legacy bool
	Data   []byte
}

// File is a file of a configMap or secret volume.
type File struct {
	Path string // relative to the volume
	Data []byte
	Mode uint32
}

// Image is an image available on the node.
type Image struct {
	Ref        string
	ID         string // config digest
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}

// ContainerConfig is a container ready to start: command, environment and security resolved.
type ContainerConfig struct {
	Meta    ContainerMeta
	Sandbox Sandbox
	Image   Image
	Args    []string // argv, argv[0] is the program
	Env     []string
	Cwd     string
	User    string // "uid[:gid]" or a name, resolved in the image
	Mounts  []Mount
	// Resources.
	MemoryLimit int64 // bytes, 0: none
	CPUQuota    int64 // microseconds per CPUPeriod, 0: none
	CPUPeriod   int64
	CPUShares   uint64
	// Security.
	CapAdd, CapDrop   []string
	Privileged        bool
	NoNewPrivileges   bool
	ReadonlyRootfs    bool
	SeccompUnconfined bool
	// SeccompProfile is a Localhost seccomp profile in the Docker/containerd JSON format, read
	// from SeccompProfilePath under the node's profile root (nil: the runtime default).
	SeccompProfile     []byte
	SeccompProfilePath string
	SupplementalGroups []uint32
	// TerminationMessagePath, when set, is where the container finds a file of its own, empty
	// and writable by any user, whose content (its last 4096 bytes) becomes the termination
	// message of each run: ContainerInfo.Message. With TerminationMessagePolicy
	// FallbackToLogsOnError, a run that failed and left the file empty gets the end of its log
	// instead (the last 80 lines, at most 2048 bytes). The driver keeps the file with the
	// container, so the message of a run that ended while no process watched is not lost.
	TerminationMessagePath   string
	TerminationMessagePolicy manifests.TerminationMessagePolicy
}

// ContainerMeta identifies a container and is kept by the driver with it, so that a new process
// can re-adopt it.
type ContainerMeta struct {
	PodUID       string
	PodNamespace string
	PodName      string
	Name         string // container name in the pod
	Init         bool   // an init container
	Sidecar      bool   // an init container with restartPolicy Always
	Attempt      int32  // 0 for the first run, then the restart count
	// What stopping the container takes when no pod spec is at hand (a pod left by an earlier
	// process): its preStop hook, its ports (named ports of the hook), the pod's grace period.
	PreStop            *manifests.LifecycleHandler `json:",omitempty"`
	Ports              []manifests.ContainerPort   `json:",omitempty"`
	GracePeriodSeconds *int64                      `json:",omitempty"`
}

// Mount binds a volume (or a part of it) into a container.
type Mount struct {
	Volume      string // volume name in the sandbox
	SubPath     string
	Destination string
	ReadOnly    bool
}

// HTTPProbe is an httpGet probe, resolved.
type HTTPProbe struct {
	Scheme  string // HTTP or HTTPS
	Host    string // "" : the pod's address
	Port    int
	Path    string
	Headers map[string]string
	// AnyStatus makes any HTTP response a success, as for lifecycle hooks (the kubelet does not
	// look at their status); an HTTPS request answered in plain HTTP is then sent again over HTTP.
	AnyStatus bool
}

// GRPCProbe is a grpc probe, resolved: the port on the pod's address and the service to ask
// about ("" : the server as a whole).
type GRPCProbe struct {
	Port    int
	Service string
}

// ContainerStatus is the life state of a container process.
type ContainerStatus int

// Container states.
const (
	ContainerCreated ContainerStatus = iota
	ContainerRunning
	ContainerExited
)

// ContainerUsage is one measurement of a container's cgroup (see runtime.ContainerMetrics).
type ContainerUsage struct {
	// CPUUsageNanos is the CPU time of the container's processes since it started.
	CPUUsageNanos uint64
	// MemoryWorkingSet is the cgroup's memory usage less its inactive file pages, at least 0.
	MemoryWorkingSet int64
	// Time is when it was measured.
	Time time.Time
}

// ContainerInfo is what the driver knows of a container.
type ContainerInfo struct {
	ID         string
	Meta       ContainerMeta
	ImageRef   string
	ImageID    string
	Status     ContainerStatus
	PID        int
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	Signal     int32
	OOMKilled  bool
	// Message is the termination message of an exited container (see
	// ContainerConfig.TerminationMessagePath).
	Message string
}
