package libct

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cyphar/filepath-securejoin"
	"github.com/moby/profiles/seccomp"
	"github.com/moby/sys/capability"
	"github.com/moby/sys/user"
	"github.com/opencontainers/runc/libcontainer/capabilities"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultCapabilities is containerd's default capability set for containers.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// extraMaskedPaths are masked by Kubernetes in addition to runc's example list.
var extraMaskedPaths = []string{"/sys/devices/virtual/powercap", "/sys/devices/virtual/tpm"}

func normCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" || strings.HasPrefix(c, "CAP_") {
		return c
	}
	return "CAP_" + c
}

// capabilitySet applies drop then add to the default set. "ALL" in drop removes everything,
// "ALL" in add grants every capability the kernel knows.
func capabilitySet(add, drop []string) ([]string, error) {
	known := map[string]bool{}
	for _, c := range capabilities.KnownCapabilities() {
		known[c] = true
	}
	set := map[string]bool{}
	for _, c := range DefaultCapabilities {
		set[c] = true
	}
	for _, c := range drop {
		c = normCap(c)
		if c == "ALL" {
			set = map[string]bool{}
			continue
		}
		if !known[c] {
			return nil, fmt.Errorf("%w: unknown capability %q in CapDrop", ErrInvalidConfig, c)
		}
		delete(set, c)
	}
	for _, c := range add {
		c = normCap(c)
		if c == "ALL" {
			for k := range known {
				set[k] = true
			}
			continue
		}
		if !known[c] {
			return nil, fmt.Errorf("%w: unknown capability %q in CapAdd", ErrInvalidConfig, c)
		}
		set[c] = true
	}
	out := make([]string, 0, len(set))
	for _, c := range capabilities.KnownCapabilities() { // stable order
		if set[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// boundingCapabilities lists the capabilities in this process's bounding set: "all
// capabilities" for a privileged container are those the runtime itself may pass on.
func boundingCapabilities() ([]string, error) {
	supported, err := capability.ListSupported()
	if err != nil {
		return nil, fmt.Errorf("list capabilities: %w", err)
	}
	var out []string
	for _, c := range supported {
		ok, err := capability.GetBound(c)
		if err != nil {
			return nil, fmt.Errorf("read bounding set: %w", err)
		}
		if ok {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out, nil
}

// execUser is the resolved identity of a container process.
type execUser struct {
	UID, GID int
	Groups   []int
	Home     string
}

// resolveUser resolves spec ("", "uid[:gid]", "name[:group]") against the rootfs's
// /etc/passwd and /etc/group, never following links out of the rootfs.
func resolveUser(rootfs, spec string, extra []uint32) (execUser, error) {
	passwd, err := securejoin.SecureJoin(rootfs, "/etc/passwd")
	if err != nil {
		return execUser{}, err
	}
	group, err := securejoin.SecureJoin(rootfs, "/etc/group")
	if err != nil {
		return execUser{}, err
	}
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	eu, err := user.GetExecUserPath(spec, defaults, passwd, group)
	if err != nil {
		return execUser{}, fmt.Errorf("%w: resolve user %q in the image: %v", ErrInvalidConfig, spec, err)
	}
	u := execUser{UID: eu.Uid, GID: eu.Gid, Home: eu.Home}
	seen := map[int]bool{}
	for _, g := range eu.Sgids {
		if !seen[g] {
			seen[g] = true
			u.Groups = append(u.Groups, g)
		}
	}
	for _, g := range extra {
		if !seen[int(g)] {
			seen[int(g)] = true
			u.Groups = append(u.Groups, int(g))
		}
	}
	return u, nil
}

// withDefaultEnv adds PATH and HOME when the caller did not set them.
func withDefaultEnv(env []string, home string) []string {
	has := func(k string) bool {
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	out := append([]string(nil), env...)
	if !has("PATH") {
		out = append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if !has("HOME") && home != "" {
		out = append(out, "HOME="+home)
	}
	return out
}

// buildSpec turns cfg into an OCI runtime spec for the rootfs, starting from runc's example
// spec (its masked and read-only paths, default mounts and devices).
func buildSpec(cfg *Config, rootfs string, u execUser) (*specs.Spec, error) {
	s := specconv.Example()
	s.Root = &specs.Root{Path: rootfs, Readonly: cfg.ReadonlyRootfs}
	s.Hostname = cfg.Hostname
	s.Process.Terminal = false
	s.Process.Args = cfg.Args
	s.Process.Env = withDefaultEnv(cfg.Env, u.Home)
	s.Process.Cwd = cfg.Cwd
	s.Process.NoNewPrivileges = cfg.NoNewPrivileges
	s.Process.User = specs.User{UID: uint32(u.UID), GID: uint32(u.GID)}
	for _, g := range u.Groups {
		s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
	}
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1048576, Soft: 1048576}}

	caps, err := capabilitySet(cfg.CapAdd, cfg.CapDrop)
	if err != nil {
		return nil, err
	}
	if cfg.Privileged {
		if caps, err = boundingCapabilities(); err != nil {
			return nil, err
		}
	}
	lc := &specs.LinuxCapabilities{Bounding: caps}
	if u.UID == 0 || cfg.Privileged {
		lc.Effective, lc.Permitted = caps, caps
	}
	// Non-root users get empty effective and permitted sets and no ambient capabilities,
	// as containerd does: file capabilities still work within the bounding set.
	s.Process.Capabilities = lc

	// Namespaces: runc's example has pid, net, ipc, uts, mount (+cgroup on v2).
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			s.Linux.Namespaces[i].Path = cfg.NetNSPath
		}
	}
	s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, extraMaskedPaths...)
	s.Linux.CgroupsPath = strings.TrimRight(cfg.CgroupParent, "/") + "/" + cfg.ID

	res := s.Linux.Resources
	if cfg.MemoryLimit > 0 {
		limit := cfg.MemoryLimit
		res.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit} // no swap on top
	}
	if cfg.CPUQuota > 0 || cfg.CPUShares > 0 {
		res.CPU = &specs.LinuxCPU{}
		if cfg.CPUQuota > 0 {
			q, p := cfg.CPUQuota, uint64(cfg.CPUPeriod)
			res.CPU.Quota, res.CPU.Period = &q, &p
		}
		if cfg.CPUShares > 0 {
			sh := cfg.CPUShares
			res.CPU.Shares = &sh
		}
	}
	if cfg.PidsLimit > 0 {
		res.Pids = &specs.LinuxPids{Limit: &cfg.PidsLimit}
	}

	for _, m := range cfg.Mounts {
		opts := []string{"rbind", "nosuid", "nodev", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}

	if cfg.Privileged {
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
		for i, m := range s.Mounts {
			if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
				s.Mounts[i].Options = withoutOpt(m.Options, "ro")
			}
		}
		hostDevs, err := hostDevices()
		if err != nil {
			return nil, fmt.Errorf("list host devices: %w", err)
		}
		s.Linux.Devices = append(s.Linux.Devices, hostDevs...)
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	} else if !cfg.SeccompUnconfined {
		prof, err := seccompProfile(cfg.SeccompProfile, s)
		if err != nil {
			return nil, err
		}
		s.Linux.Seccomp = prof
	}
	return s, nil
}

// seccompProfile turns a profile in the Docker/containerd JSON format into the spec's filter
// (syscalls that depend on capabilities, architectures or kernel versions resolved for this
// container); an empty profile is Docker's default.
func seccompProfile(profile string, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	if profile == "" {
		prof, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return nil, fmt.Errorf("default seccomp profile: %w", err)
		}
		return prof, nil
	}
	prof, err := seccomp.LoadProfile(profile, s)
	if err != nil {
		return nil, fmt.Errorf("%w: seccomp profile: %v", ErrInvalidConfig, err)
	}
	if prof == nil {
		return nil, fmt.Errorf("%w: the seccomp profile has no defaultAction and no syscalls, so it filters nothing", ErrInvalidConfig)
	}
	return prof, nil
}

func withoutOpt(opts []string, o string) []string {
	var out []string
	for _, x := range opts {
		if x != o {
			out = append(out, x)
		}
	}
	return out
}

// libcontainerConfig converts the spec with runc's own converter.
func libcontainerConfig(id string, s *specs.Spec) (*configs.Config, error) {
	c, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: id,
		Spec:       s,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: convert spec: %v", ErrInvalidConfig, err)
	}
	return c, nil
}

// checkMountSources rejects bind-mount sources that do not exist, with a message that
// names the path.
func checkMountSources(ms []Mount) error {
	for _, m := range ms {
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("%w: mount source %s: %v", ErrInvalidConfig, m.Source, err)
		}
	}
	return nil
}

// hostDevices lists the host's character and block devices under /dev (not in its
// sub-mounts such as /dev/pts, /dev/shm and /dev/mqueue) for privileged containers.
func hostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // devices come and go; skip what we cannot read
		}
		if d.IsDir() {
			switch path {
			case "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.lxc", "/dev/.udev":
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return nil //nolint:nilerr // vanished
		}
		var typ string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = "c"
		case unix.S_IFBLK:
			typ = "b"
		default:
			return nil
		}
		if path == "/dev/console" {
			return nil
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{
			Path: path, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
			FileMode: &mode, UID: &uid, GID: &gid,
		})
		return nil
	})
	return out, err
}
