// Package linux is the production lifecycle.Driver: pod sandboxes (a network namespace, volumes,
// /etc/hosts with the pod's hostAliases and an /etc/resolv.conf made by the pod's dnsPolicy),
// images from the node's image store (with the pod's image pull secrets, kept in memory), and
// containers through package libct, each under its own shim so that it outlives the daemon. It
// also measures the local storage of pods, for the Manager's ephemeral-storage eviction, and the
// CPU time and memory working set of containers, from their cgroups, for the node's metrics.
//
// On-disk state under the driver's root:
//
//	pods/<uid>/sandbox.json        the sandbox (pod identity, netns path, address, start time)
//	pods/<uid>/netns               the bind-mounted network namespace
//	pods/<uid>/hosts, resolv.conf  mounted read-only into every container of the pod
//	pods/<uid>/volumes/<name>/     emptyDir, configMap, secret and downwardAPI volumes (secrets and
//	                               emptyDirs of medium Memory on tmpfs)
//	pods/<uid>/termination/<id>    each container's termination message file
//	containers/                    libct's state: one directory per container, its shim's files
//	meta/<container id>.json       which pod, container name and attempt a container is
package linux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/netplane/dns"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/image"
	"github.com/shoal-dev/shoal/runtime/libct"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// Network gives pods their network. The network plane implements it; the default gives each
// pod a namespace with only loopback.
type Network interface {
	// Setup makes the pod's network namespace at netnsPath and returns the pod's address ("" for
	// none). Idempotent.
	Setup(ctx context.Context, uid, namespace, name, netnsPath string) (ip string, err error)
	// Teardown releases what Setup made. Idempotent.
	Teardown(ctx context.Context, uid, netnsPath string) error
	// DNS returns the resolv.conf for a pod of the namespace (nameservers, search, options).
	DNS(namespace string) string
}

// LoopbackNetwork gives each pod a network namespace with only a loopback device.
type LoopbackNetwork struct{}

// Setup creates the namespace.
func (LoopbackNetwork) Setup(_ context.Context, _, _, _, netnsPath string) (string, error) {
	if _, err := os.Stat(netnsPath); err == nil {
		return "", nil
	}
	return "", libct.NewNetNS(netnsPath)
}

// Teardown removes the namespace.
func (LoopbackNetwork) Teardown(_ context.Context, _, netnsPath string) error {
	return libct.RemoveNetNS(netnsPath)
}

// DNS returns an empty resolv.conf: a loopback-only pod reaches no name server.
func (LoopbackNetwork) DNS(string) string { return "" }

// Config configures a Driver.
type Config struct {
	// Root holds the driver's state; it must survive daemon restarts.
	Root string
	// Images is the node's image store.
	Images *image.Store
	// CgroupParent is the node's cgroup subtree, e.g. "/shoal/<node>"; pods live under
	// "<CgroupParent>/pods/<uid>".
	CgroupParent string
	// Network gives pods their network; default LoopbackNetwork.
	Network Network
	// RunnerOptions are passed to libct.NewRunner (e.g. the shim binary in tests).
	RunnerOptions []libct.Option
	// LogMaxSize and LogMaxFiles rotate container logs (default 10 MiB × 5, as the kubelet).
	LogMaxSize  int64
	LogMaxFiles int
	// ResolvConf is the node's resolver configuration, the base of the resolv.conf of pods
	// with dnsPolicy Default, as the kubelet's --resolv-conf (default /etc/resolv.conf).
	ResolvConf string
	// ClusterDomain is the cluster's DNS domain, in the fully qualified names of pods with a
	// subdomain in their /etc/hosts (default cluster.local).
	ClusterDomain string
	Logger        *slog.Logger
}

// Driver implements lifecycle.Driver on this machine.
type Driver struct {
	cfg    Config
	runner *libct.Runner
	log    *slog.Logger

	mu sync.Mutex // guards sandbox creation and removal

	msgMu    sync.Mutex
	messages map[string]string // container ID -> termination message, once it exited

	imu      sync.Mutex
	reserved map[string]time.Time // image ID -> when a container was last about to use it
}

// reserveFor is how long an image pulled for a container counts as in use before the container
// exists.
const reserveFor = 10 * time.Minute

var _ lifecycle.Driver = (*Driver)(nil)

// New returns a Driver over cfg.Root, re-adopting what an earlier process left there.
func New(cfg Config) (*Driver, error) {
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("runtime: state root %q must be an absolute path", cfg.Root)
	}
	if cfg.Images == nil {
		return nil, errors.New("runtime: an image store is required")
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "/shoal"
	}
	if cfg.Network == nil {
		cfg.Network = LoopbackNetwork{}
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = dns.DefaultResolvConf
	}
	if cfg.ClusterDomain = strings.Trim(cfg.ClusterDomain, "."); cfg.ClusterDomain == "" {
		cfg.ClusterDomain = dns.DefaultDomain
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{"pods", "meta"} {
		if err := os.MkdirAll(filepath.Join(cfg.Root, d), 0o700); err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
	}
	opts := append([]libct.Option{libct.WithShimCgroup(cfg.CgroupParent + "/shims")}, cfg.RunnerOptions...)
	runner, err := libct.NewRunner(filepath.Join(cfg.Root, "containers"), opts...)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	return &Driver{cfg: cfg, runner: runner, log: cfg.Logger, reserved: map[string]time.Time{}, messages: map[string]string{}}, nil
}

func (d *Driver) podDir(uid string) string { return filepath.Join(d.cfg.Root, "pods", uid) }

func (d *Driver) podCgroup(uid string) string { return d.cfg.CgroupParent + "/pods/" + uid }

// validUID keeps pod UIDs usable as file and container names.
func validUID(uid string) error {
	if uid == "" || len(uid) > 64 || strings.Trim(uid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
		return fmt.Errorf("pod UID %q: use up to 64 letters, digits and '-'", uid)
	}
	return nil
}

// CreateSandbox makes the pod's directory, network namespace, cgroup and volumes.
func (d *Driver) CreateSandbox(ctx context.Context, cfg lifecycle.SandboxConfig) (lifecycle.Sandbox, error) {
	if err := validUID(cfg.UID); err != nil {
		return lifecycle.Sandbox{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := d.podDir(cfg.UID)
	if sb, err := readSandbox(dir); err == nil {
		return sb, nil
	}
	fail := func(err error) (lifecycle.Sandbox, error) {
		if cerr := d.removeSandboxLocked(ctx, cfg.UID); cerr != nil {
			d.log.Warn("clean up a sandbox that failed to start", "pod", cfg.Namespace+"/"+cfg.Name, "err", cerr)
		}
		return lifecycle.Sandbox{}, fmt.Errorf("create sandbox of pod %s/%s: %w", cfg.Namespace, cfg.Name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "volumes"), 0o700); err != nil {
		return fail(err)
	}
	sb := lifecycle.Sandbox{UID: cfg.UID, Namespace: cfg.Namespace, Name: cfg.Name, NetNS: filepath.Join(dir, "netns"), StartTime: cfg.StartTime}
	if sb.StartTime.IsZero() {
		sb.StartTime = time.Now()
	}
	ip, err := d.cfg.Network.Setup(ctx, cfg.UID, cfg.Namespace, cfg.Name, sb.NetNS)
	if err != nil {
		return fail(fmt.Errorf("network: %w", err))
	}
	sb.IP = ip
	if err := libct.EnsureCgroup(d.podCgroup(cfg.UID), cfg.PidsLimit); err != nil {
		return fail(err)
	}
	resolv, err := d.resolvConf(cfg)
	if err != nil {
		return fail(err)
	}
	hosts := hostsFile(ip, cfg.Hostname, hostDomain(cfg, d.cfg.ClusterDomain), cfg.HostAliases)
	files := map[string]string{"hosts": hosts, "resolv.conf": resolv, "hostname": cfg.Hostname + "\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fail(err)
		}
	}
	for _, v := range cfg.Volumes {
		if err := makeVolume(filepath.Join(dir, "volumes", v.Name), v); err != nil {
			return fail(fmt.Errorf("volume %q: %w", v.Name, err))
		}
	}
	meta := sandboxFile{Sandbox: sb, Hostname: cfg.Hostname}
	for _, v := range cfg.Volumes {
		if v.HostPath != nil {
			meta.HostPaths = append(meta.HostPaths, hostPathRef{Name: v.Name, Path: v.HostPath.Path})
		}
	}
	if err := writeJSON(filepath.Join(dir, "sandbox.json"), meta); err != nil {
		return fail(err)
	}
	return sb, nil
}

type sandboxFile struct {
	lifecycle.Sandbox
	Hostname  string        `json:"hostname"`
	HostPaths []hostPathRef `json:"hostPaths,omitempty"`
}

type hostPathRef struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

func readSandboxFile(dir string) (sandboxFile, error) {
	var sf sandboxFile
	data, err := os.ReadFile(filepath.Join(dir, "sandbox.json"))
	if err != nil {
		return sf, err
	}
	return sf, json.Unmarshal(data, &sf)
}

func readSandbox(dir string) (lifecycle.Sandbox, error) {
	sf, err := readSandboxFile(dir)
	return sf.Sandbox, err
}

// RemoveSandbox tears the sandbox down.
func (d *Driver) RemoveSandbox(ctx context.Context, uid string) error {
	if err := validUID(uid); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.removeSandboxLocked(ctx, uid)
}

func (d *Driver) removeSandboxLocked(ctx context.Context, uid string) error {
	dir := d.podDir(uid)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	if err := d.cfg.Network.Teardown(ctx, uid, filepath.Join(dir, "netns")); err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "volumes"))
	for _, e := range entries {
		if err := unmountVolume(filepath.Join(dir, "volumes", e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := libct.KillCgroup(d.podCgroup(uid)); err != nil {
		errs = append(errs, err)
	} else if err := libct.RemoveCgroup(d.podCgroup(uid)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove sandbox of pod %s: %w", uid, err)
	}
	return nil
}

// Sandboxes lists the sandboxes on disk.
func (d *Driver) Sandboxes(context.Context) ([]lifecycle.Sandbox, error) {
	entries, err := os.ReadDir(filepath.Join(d.cfg.Root, "pods"))
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var out []lifecycle.Sandbox
	for _, e := range entries {
		sb, err := readSandbox(filepath.Join(d.cfg.Root, "pods", e.Name()))
		if err != nil {
			continue // being created or removed
		}
		out = append(out, sb)
	}
	return out, nil
}

// EnsureImage pulls or finds the image, with the credentials of the pod's image pull secrets
// (kept in memory only) before the node's own.
func (d *Driver) EnsureImage(ctx context.Context, ref string, policy manifests.PullPolicy, secrets lifecycle.PullSecrets) (lifecycle.Image, error) {
	p, err := image.ParsePullPolicy(string(policy))
	if err != nil {
		return lifecycle.Image{}, err
	}
	kr, problems := keyring(secrets)
	img, err := d.cfg.Images.PullWithKeyring(ctx, ref, p, kr)
	if errors.Is(err, image.ErrImageNeverPull) {
		return lifecycle.Image{}, fmt.Errorf("%w: %v", lifecycle.ErrImageNeverPull, err)
	}
	if err != nil {
		if len(problems) > 0 {
			return lifecycle.Image{}, fmt.Errorf("%w; %s", err, strings.Join(problems, "; "))
		}
		return lifecycle.Image{}, err
	}
	d.imu.Lock()
	d.reserved[img.ID] = time.Now()
	d.imu.Unlock()
	return toImage(ref, img), nil
}

// CollectImages removes the images that no container of this node uses (running or exited, as
// an exited container may restart) and that no container is about to use, then the layers only
// they had. The node calls it periodically.
func (d *Driver) CollectImages(ctx context.Context) (image.GCResult, error) {
	ctrs, err := d.Containers(ctx, "")
	if err != nil {
		return image.GCResult{}, fmt.Errorf("image gc: %w", err)
	}
	inUse := map[string]bool{}
	for _, c := range ctrs {
		inUse[c.ImageID] = true
	}
	d.imu.Lock()
	for id, t := range d.reserved {
		if time.Since(t) < reserveFor {
			inUse[id] = true
		} else {
			delete(d.reserved, id)
		}
	}
	d.imu.Unlock()
	return d.cfg.Images.GC(ctx, func(id string) bool { return inUse[id] })
}

func toImage(ref string, img *image.Image) lifecycle.Image {
	return lifecycle.Image{Ref: ref, ID: img.ID, Entrypoint: img.Entrypoint, Cmd: img.Cmd, Env: img.Env, WorkingDir: img.WorkingDir, User: img.User}
}

// containerMeta is stored beside each container.
type containerMeta struct {
	Meta     lifecycle.ContainerMeta `json:"meta"`
	ImageRef string                  `json:"imageRef"`
	ImageID  string                  `json:"imageID"`
	// The termination message: the file on the host, and what to do when it is empty.
	TerminationLog    string                             `json:"terminationLog,omitempty"`
	TerminationPolicy manifests.TerminationMessagePolicy `json:"terminationPolicy,omitempty"`
}

func containerID(m lifecycle.ContainerMeta) string {
	return fmt.Sprintf("%s_%s_%d", m.PodUID, m.Name, m.Attempt)
}

func (d *Driver) metaPath(id string) string { return filepath.Join(d.cfg.Root, "meta", id+".json") }

// StartContainer starts a container of a pod through its shim.
func (d *Driver) StartContainer(ctx context.Context, cfg lifecycle.ContainerConfig) (string, error) {
	if err := validUID(cfg.Meta.PodUID); err != nil {
		return "", err
	}
	img, err := d.cfg.Images.Get(ctx, cfg.Image.Ref)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", cfg.Image.Ref, err)
	}
	dir := d.podDir(cfg.Meta.PodUID)
	sf, err := readSandboxFile(dir)
	if err != nil {
		return "", fmt.Errorf("sandbox of pod %s: %w", cfg.Meta.PodUID, runtime.ErrNotFound)
	}
	id := containerID(cfg.Meta)
	lc := libct.Config{
		ID:                 id,
		Hostname:           sf.Hostname,
		NetNSPath:          sf.NetNS,
		CgroupParent:       d.podCgroup(cfg.Meta.PodUID),
		Lower:              reversed(img.Layers),
		Args:               cfg.Args,
		Env:                cfg.Env,
		Cwd:                cfg.Cwd,
		User:               cfg.User,
		SupplementalGroups: cfg.SupplementalGroups,
		MemoryLimit:        cfg.MemoryLimit,
		CPUQuota:           cfg.CPUQuota,
		CPUPeriod:          cfg.CPUPeriod,
		CPUShares:          cfg.CPUShares,
		PidsLimit:          -1, // the pod's cgroup holds the limit for all its containers
		CapAdd:             cfg.CapAdd,
		CapDrop:            cfg.CapDrop,
		Privileged:         cfg.Privileged,
		NoNewPrivileges:    cfg.NoNewPrivileges,
		ReadonlyRootfs:     cfg.ReadonlyRootfs,
		SeccompUnconfined:  cfg.SeccompUnconfined,
		SeccompProfile:     string(cfg.SeccompProfile),
		LogMaxSize:         d.cfg.LogMaxSize,
		LogMaxFiles:        d.cfg.LogMaxFiles,
	}
	for _, f := range []string{"hosts", "resolv.conf", "hostname"} {
		lc.Mounts = append(lc.Mounts, libct.Mount{Source: filepath.Join(dir, f), Destination: "/etc/" + f, ReadOnly: true})
	}
	for _, m := range cfg.Mounts {
		src, err := d.volumeSource(dir, sf, m)
		if err != nil {
			return "", err
		}
		lc.Mounts = append(lc.Mounts, libct.Mount{Source: src, Destination: m.Destination, ReadOnly: m.ReadOnly})
	}
	meta := containerMeta{Meta: cfg.Meta, ImageRef: cfg.Image.Ref, ImageID: img.ID, TerminationPolicy: cfg.TerminationMessagePolicy}
	if p := cfg.TerminationMessagePath; p != "" {
		if meta.TerminationLog, err = d.terminationLog(dir, id, p); err != nil {
			return "", err
		}
		// Last, so that it lands over any volume mounted above it, as the kubelet's.
		lc.Mounts = append(lc.Mounts, libct.Mount{Source: meta.TerminationLog, Destination: p})
	}
	if err := writeJSON(d.metaPath(id), meta); err != nil {
		return "", err
	}
	if _, err := d.runner.Start(ctx, lc); err != nil {
		if c, lerr := d.runner.Load(ctx, id); lerr == nil {
			if derr := c.Delete(ctx, libct.RemoveLogs()); derr != nil {
				d.log.Warn("clean up a container that failed to start", "container", id, "err", derr)
			}
		}
		os.Remove(d.metaPath(id))
		if meta.TerminationLog != "" {
			os.Remove(meta.TerminationLog)
		}
		return "", err
	}
	return id, nil
}

func reversed(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[len(in)-1-i] = s
	}
	return out
}

// volumeSource returns the host path to bind for a mount, refusing sub-paths that leave the
// volume.
func (d *Driver) volumeSource(podDir string, sf sandboxFile, m lifecycle.Mount) (string, error) {
	base := filepath.Join(podDir, "volumes", m.Volume)
	for _, hp := range sf.HostPaths {
		if hp.Name == m.Volume {
			base = hp.Path
		}
	}
	if m.SubPath == "" {
		return base, nil
	}
	if filepath.IsAbs(m.SubPath) || slices.Contains(strings.Split(filepath.ToSlash(m.SubPath), "/"), "..") {
		return "", fmt.Errorf("volume %q: subPath %q must be a relative path inside the volume", m.Volume, m.SubPath)
	}
	clean := filepath.Clean(m.SubPath)
	src := filepath.Join(base, clean)
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(src, 0o755); err != nil {
				return "", err
			}
			return src, nil
		}
		return "", err
	}
	realBase, err := filepath.EvalSymlinks(base)
	if err != nil {
		return "", err
	}
	if real != realBase && !strings.HasPrefix(real, realBase+"/") {
		return "", fmt.Errorf("volume %q: subPath %q resolves outside the volume", m.Volume, m.SubPath)
	}
	return real, nil
}

// Containers lists the containers of a pod ("": of every pod) with their pod metadata.
func (d *Driver) Containers(ctx context.Context, podUID string) ([]lifecycle.ContainerInfo, error) {
	var ctrs []*libct.Container
	if podUID == "" {
		var err error
		if ctrs, err = d.runner.List(ctx); err != nil {
			return nil, err
		}
	} else {
		if err := validUID(podUID); err != nil {
			return nil, err
		}
		metas, err := filepath.Glob(filepath.Join(d.cfg.Root, "meta", podUID+"_*.json"))
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			c, err := d.runner.Load(ctx, strings.TrimSuffix(filepath.Base(m), ".json"))
			if err != nil {
				continue // half-made or being removed
			}
			ctrs = append(ctrs, c)
		}
	}
	out := make([]lifecycle.ContainerInfo, 0, len(ctrs))
	for _, c := range ctrs {
		info, err := d.info(ctx, c)
		if err != nil {
			continue // half-made or being removed
		}
		out = append(out, info)
	}
	return out, nil
}

func (d *Driver) info(ctx context.Context, c *libct.Container) (lifecycle.ContainerInfo, error) {
	var m containerMeta
	data, err := os.ReadFile(d.metaPath(c.ID()))
	if err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	st, err := c.State(ctx)
	if err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	return d.withMessage(ctx, c, m, toInfo(c.ID(), m, st)), nil
}

func toInfo(id string, m containerMeta, st libct.State) lifecycle.ContainerInfo {
	info := lifecycle.ContainerInfo{ID: id, Meta: m.Meta, ImageRef: m.ImageRef, ImageID: m.ImageID, PID: st.PID,
		StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, ExitCode: int32(st.ExitCode), Signal: int32(st.Signal), OOMKilled: st.OOMKilled}
	switch st.Status {
	case libct.StatusRunning:
		info.Status = lifecycle.ContainerRunning
	case libct.StatusExited:
		info.Status = lifecycle.ContainerExited
	default:
		info.Status = lifecycle.ContainerCreated
	}
	return info
}

func (d *Driver) load(ctx context.Context, id string) (*libct.Container, containerMeta, error) {
	var m containerMeta
	c, err := d.runner.Load(ctx, id)
	if err != nil {
		if errors.Is(err, libct.ErrNotFound) {
			return nil, m, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
		}
		return nil, m, err
	}
	data, err := os.ReadFile(d.metaPath(id))
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	return c, m, err
}

// WaitContainer waits for the container to exit.
func (d *Driver) WaitContainer(ctx context.Context, id string) (lifecycle.ContainerInfo, error) {
	c, m, err := d.load(ctx, id)
	if err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	st, err := c.Wait(ctx)
	if err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	return d.withMessage(ctx, c, m, toInfo(id, m, st)), nil
}

// StopContainer stops the container: SIGTERM, then SIGKILL after grace.
func (d *Driver) StopContainer(ctx context.Context, id string, grace time.Duration) (lifecycle.ContainerInfo, error) {
	c, m, err := d.load(ctx, id)
	if err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	st, err := c.Stop(ctx, grace)
	if err != nil {
		return lifecycle.ContainerInfo{}, err
	}
	return d.withMessage(ctx, c, m, toInfo(id, m, st)), nil
}

// RemoveContainer deletes the container, its logs, termination message and metadata.
func (d *Driver) RemoveContainer(ctx context.Context, id string) error {
	c, m, err := d.load(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		os.Remove(d.metaPath(id))
		return nil
	}
	if c == nil {
		return err
	}
	if err := c.Delete(ctx, libct.RemoveLogs()); err != nil {
		return err
	}
	d.msgMu.Lock()
	delete(d.messages, id)
	d.msgMu.Unlock()
	if m.TerminationLog != "" {
		if err := os.Remove(m.TerminationLog); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Remove(d.metaPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// ContainerUsage reads the container's CPU time and memory working set from its cgroup.
func (d *Driver) ContainerUsage(ctx context.Context, id string) (lifecycle.ContainerUsage, error) {
	c, err := d.runner.Load(ctx, id)
	if err != nil {
		if errors.Is(err, libct.ErrNotFound) {
			return lifecycle.ContainerUsage{}, fmt.Errorf("container %s: %w", id, runtime.ErrNotFound)
		}
		return lifecycle.ContainerUsage{}, err
	}
	u, err := c.Usage(ctx)
	if errors.Is(err, libct.ErrNotRunning) {
		return lifecycle.ContainerUsage{}, fmt.Errorf("container %s: %w", id, runtime.ErrNotRunning)
	}
	if err != nil {
		return lifecycle.ContainerUsage{}, err
	}
	return lifecycle.ContainerUsage{CPUUsageNanos: u.CPUNanos, MemoryWorkingSet: u.MemoryWorkingSet, Time: u.Time}, nil
}

// Exec runs a process in the container.
func (d *Driver) Exec(ctx context.Context, id string, opts runtime.ExecOptions) (int, error) {
	c, _, err := d.load(ctx, id)
	if err != nil {
		return -1, err
	}
	code, err := c.Exec(ctx, libct.ExecConfig{Args: opts.Command, Env: opts.Env, Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr})
	if errors.Is(err, libct.ErrNotRunning) {
		return -1, fmt.Errorf("exec in container %s: %w", id, runtime.ErrNotRunning)
	}
	return code, err
}

// Logs writes the container's log, following it until the container exits if asked.
func (d *Driver) Logs(ctx context.Context, id string, opts runtime.LogOptions, w io.Writer) error {
	c, _, err := d.load(ctx, id)
	if err != nil {
		return err
	}
	lo := libct.LogOptions{Follow: opts.Follow, Tail: opts.Tail, Since: opts.Since, Timestamps: opts.Timestamps}
	if opts.Follow {
		done := make(chan struct{})
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			defer close(done)
			_, _ = c.Wait(wctx) // only its end matters: the log is complete
		}()
		lo.Done = done
	}
	err = libct.ReadLog(ctx, c.LogPath(), lo, w)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
