// Package libct runs single containers through runc's libcontainer for Shoal's node runtime.
//
// Each container gets its own small supervisor process, the shim: the daemon re-executes its own
// binary as "shoal shim", detached from the daemon (new session, no parent-death signal, its own
// cgroup). The shim creates and starts the container with libcontainer, is the parent of the
// container's init, writes the container's stdout and stderr to a CRI-format log file with size
// based rotation, waits for the init to exit and records the exit (code, signal, OOM kill, time)
// atomically in the container's state directory. The daemon can therefore exit or crash at any
// time: containers keep running, and a restarted daemon re-adopts them with [Runner.Load] and still
// learns the real exit code of a container that exited while it was down.
//
// The container's environment may hold Secret values, so it never goes to disk: the state
// directory holds everything else. The daemon hands the environment to the shim in a sealed
// memfd, and the shim keeps that open for the container's life, so that Exec, also from a
// restarted daemon, gives the exec'd process the container's environment as Kubernetes does.
//
// The binary that uses this package must call [Main] first thing in main (and in TestMain for
// tests): it dispatches the "init" (libcontainer's container init) and "shim" re-executions.
//
// Containers are secure by default: containerd's 14 default capabilities, runc's masked and
// read-only paths, Docker's default seccomp profile, a pids limit, no host file descriptors, and
// no_new_privs on request. Privileged mode and an unconfined seccomp profile exist only when the
// Config asks for them; the caller enforces the node's policy.
package libct

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors returned by this package; test for them with errors.Is.
var (
	// ErrNotFound: no container with that ID exists in the Runner's state directory.
	ErrNotFound = errors.New("container not found")
	// ErrAlreadyExists: a container with that ID exists but is not running; Delete it first.
	ErrAlreadyExists = errors.New("container already exists")
	// ErrInvalidConfig: the Config cannot be turned into a container.
	ErrInvalidConfig = errors.New("invalid container config")
	// ErrCreateContainer: libcontainer could not create or start the container; the wrapped
	// error carries libcontainer's cause (for example "executable file not found in $PATH").
	ErrCreateContainer = errors.New("create container")
	// ErrNotRunning: the operation needs a running container.
	ErrNotRunning = errors.New("container not running")
)

// Defaults applied to a Config's zero values.
const (
	DefaultPidsLimit   = 1024
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 5
	DefaultCPUPeriod   = 100000
)

// Mount is a bind mount into the container (volumes, /etc/hosts, /etc/resolv.conf).
type Mount struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

// Config describes one container. Zero values mean the secure default.
type Config struct {
	// ID names the container; it is unique per Runner: [a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}.
	ID string `json:"id"`
	// Hostname is set in the container's own UTS namespace.
	Hostname string `json:"hostname,omitempty"`
	// NetNSPath is a bind-mounted network namespace the container joins (see NewNetNS).
	// Empty means a new, empty network namespace with only a loopback device that is down.
	NetNSPath string `json:"netnsPath,omitempty"`
	// CgroupParent is the cgroup under which the container's cgroup "<CgroupParent>/<ID>" is
	// made, e.g. "/shoal/<node>/pods/<pod-uid>". Empty means "/shoal".
	CgroupParent string `json:"cgroupParent,omitempty"`
	// Lower lists the unpacked image layer directories, top layer first.
	Lower []string `json:"lower"`

	Args []string `json:"args"`
	// Env is the environment, "NAME=value" entries. It may hold Secret values, so the runtime
	// never writes it to disk: the shim gets it through a sealed memfd and holds it in memory for
	// the container's life (see Container.Env).
	Env []string `json:"env,omitempty"`
	// Cwd is the working directory (default "/").
	Cwd string `json:"cwd,omitempty"`
	// User is "uid[:gid]" or "name[:group]", resolved against the rootfs /etc/passwd and
	// /etc/group. Empty means root.
	User               string   `json:"user,omitempty"`
	SupplementalGroups []uint32 `json:"supplementalGroups,omitempty"`
	Mounts             []Mount  `json:"mounts,omitempty"`

	// MemoryLimit in bytes (0: none).
	MemoryLimit int64 `json:"memoryLimit,omitempty"`
	// CPUQuota in microseconds per CPUPeriod (0: none); see CPUQuotaFromMilli.
	CPUQuota  int64 `json:"cpuQuota,omitempty"`
	CPUPeriod int64 `json:"cpuPeriod,omitempty"`
	// CPUShares is the relative CPU weight (0: the kernel default); see CPUSharesFromMilli.
	CPUShares uint64 `json:"cpuShares,omitempty"`
	// PidsLimit caps the number of tasks (0: DefaultPidsLimit, negative: unlimited).
	PidsLimit int64 `json:"pidsLimit,omitempty"`

	// CapAdd and CapDrop adjust the default capability set ("NET_ADMIN" or "CAP_NET_ADMIN";
	// "ALL" in CapDrop drops everything before CapAdd is applied).
	CapAdd  []string `json:"capAdd,omitempty"`
	CapDrop []string `json:"capDrop,omitempty"`
	// Privileged gives all capabilities, the host's devices, no seccomp and no masked paths.
	Privileged bool `json:"privileged,omitempty"`
	// NoNewPrivileges sets no_new_privs (allowPrivilegeEscalation: false).
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
	ReadonlyRootfs  bool `json:"readonlyRootfs,omitempty"`
	// SeccompUnconfined disables the default seccomp profile.
	SeccompUnconfined bool `json:"seccompUnconfined,omitempty"`
	// SeccompProfile replaces the default seccomp profile with one in the Docker/containerd
	// JSON format (what a Localhost profile file holds). Empty: Docker's default profile.
	SeccompProfile string `json:"seccompProfile,omitempty"`

	// LogPath is the CRI-format log file for stdout and stderr (default
	// "<state dir>/containers/<ID>/container.log").
	LogPath     string `json:"logPath,omitempty"`
	LogMaxSize  int64  `json:"logMaxSize,omitempty"`
	LogMaxFiles int    `json:"logMaxFiles,omitempty"`
}

// CPUQuotaFromMilli converts a CPU limit in milli-CPUs to a CFS quota for the given period
// (Kubernetes: quota = milli * period / 1000).
func CPUQuotaFromMilli(milli, period int64) int64 {
	if milli <= 0 {
		return 0
	}
	if period <= 0 {
		period = DefaultCPUPeriod
	}
	q := milli * period / 1000
	if q < 1000 {
		q = 1000 // the kernel's minimum quota is 1 ms
	}
	return q
}

// CPUSharesFromMilli converts a CPU request in milli-CPUs to cgroup v1 CPU shares
// (Kubernetes: shares = milli * 1024 / 1000, at least 2).
func CPUSharesFromMilli(milli int64) uint64 {
	s := milli * 1024 / 1000
	if s < 2 {
		s = 2
	}
	return uint64(s)
}

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func (c *Config) validate() error {
	switch {
	case !idPattern.MatchString(c.ID):
		return fmt.Errorf("%w: id %q must match %s", ErrInvalidConfig, c.ID, idPattern)
	case len(c.Args) == 0 || c.Args[0] == "":
		return fmt.Errorf("%w: container %q has no command; set Args", ErrInvalidConfig, c.ID)
	case len(c.Lower) == 0:
		return fmt.Errorf("%w: container %q has no image layers; set Lower", ErrInvalidConfig, c.ID)
	}
	for _, l := range c.Lower {
		if !filepath.IsAbs(l) {
			return fmt.Errorf("%w: layer dir %q must be absolute", ErrInvalidConfig, l)
		}
	}
	for _, m := range c.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("%w: mount %q -> %q: both paths must be absolute", ErrInvalidConfig, m.Source, m.Destination)
		}
	}
	if c.CgroupParent != "" && !filepath.IsAbs(c.CgroupParent) {
		return fmt.Errorf("%w: cgroup parent %q must be absolute", ErrInvalidConfig, c.CgroupParent)
	}
	for _, e := range c.Env {
		if strings.IndexByte(e, 0) >= 0 { // name only: the value may be a Secret
			name, _, _ := strings.Cut(e, "=")
			return fmt.Errorf("%w: container %q: environment variable %q holds a NUL byte", ErrInvalidConfig, c.ID, name)
		}
	}
	if c.SeccompProfile != "" && !json.Valid([]byte(c.SeccompProfile)) {
		return fmt.Errorf("%w: container %q: the seccomp profile is not JSON", ErrInvalidConfig, c.ID)
	}
	return nil
}

func (c *Config) setDefaults(dir string) {
	if c.Cwd == "" {
		c.Cwd = "/"
	}
	if c.Hostname == "" {
		c.Hostname = c.ID
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "/shoal"
	}
	if c.CPUQuota > 0 && c.CPUPeriod == 0 {
		c.CPUPeriod = DefaultCPUPeriod
	}
	if c.PidsLimit == 0 {
		c.PidsLimit = DefaultPidsLimit
	}
	if c.LogPath == "" {
		c.LogPath = filepath.Join(dir, "container.log")
	}
	if c.LogMaxSize <= 0 {
		c.LogMaxSize = DefaultLogMaxSize
	}
	if c.LogMaxFiles <= 0 {
		c.LogMaxFiles = DefaultLogMaxFiles
	}
}

// Status is a container's lifecycle phase.
type Status string

// Container statuses.
const (
	StatusCreated Status = "Created"
	StatusRunning Status = "Running"
	StatusExited  Status = "Exited"
)

// Reasons reported in State.Reason for exited containers.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
	// ReasonUnknown: the shim vanished without recording the exit (it was killed).
	ReasonUnknown = "Unknown"
)

// State is what is known about a container at one moment.
type State struct {
	ID         string    `json:"id"`
	Status     Status    `json:"status"`
	PID        int       `json:"pid,omitempty"` // the container init's PID on the host
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal,omitempty"` // the signal that killed the init, if any
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	LogPath    string    `json:"logPath,omitempty"`
}

// Runner starts and re-adopts containers. Its methods are safe for concurrent use.
type Runner struct {
	root       string // state dir root
	shimPath   string
	shimCgroup string

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// Option configures a Runner.
type Option func(*Runner)

// WithShimBinary sets the binary re-executed as the shim (default: os.Executable()). It must
// call Main.
func WithShimBinary(path string) Option { return func(r *Runner) { r.shimPath = path } }

// WithShimCgroup sets the cgroup under which each shim gets its own cgroup "<path>/<ID>"
// (default "/shoal/shims"). Shims then do not live in the daemon's cgroup, so stopping the
// daemon's service does not kill them.
func WithShimCgroup(path string) Option { return func(r *Runner) { r.shimCgroup = path } }

// NewRunner returns a Runner keeping its state under stateDir (created if missing; it should be
// on a local file system that survives daemon restarts, e.g. /var/lib/shoal/<node>/containers).
func NewRunner(stateDir string, opts ...Option) (*Runner, error) {
	if !filepath.IsAbs(stateDir) {
		return nil, fmt.Errorf("new runner: state dir %q must be absolute", stateDir)
	}
	r := &Runner{root: stateDir, shimCgroup: "/shoal/shims", locks: map[string]*sync.Mutex{}}
	for _, o := range opts {
		o(r)
	}
	if r.shimPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("new runner: find own binary for the shim: %w", err)
		}
		r.shimPath = exe
	}
	for _, d := range []string{r.containersDir(), r.lcRoot()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("new runner: %w", err)
		}
	}
	return r, nil
}

func (r *Runner) containersDir() string         { return filepath.Join(r.root, "containers") }
func (r *Runner) lcRoot() string                { return filepath.Join(r.root, "libcontainer") }
func (r *Runner) dir(id string) string          { return filepath.Join(r.containersDir(), id) }
func (r *Runner) shimCgroupOf(id string) string { return r.shimCgroup + "/" + id }

func (r *Runner) lock(id string) func() {
	r.mu.Lock()
	l, ok := r.locks[id]
	if !ok {
		l = &sync.Mutex{}
		r.locks[id] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Load re-adopts the container id, for example after the daemon restarted. It returns
// ErrNotFound if there is no such container. The container may be running or exited.
func (r *Runner) Load(ctx context.Context, id string) (*Container, error) {
	if !idPattern.MatchString(id) {
		return nil, fmt.Errorf("load container %q: %w", id, ErrNotFound)
	}
	unlock := r.lock(id)
	defer unlock()
	return r.load(ctx, id)
}

// List returns every container in the state directory, sorted by ID.
func (r *Runner) List(ctx context.Context) ([]*Container, error) {
	entries, err := os.ReadDir(r.containersDir())
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() && idPattern.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	var out []*Container
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := r.Load(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile, or half created
		}
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}
