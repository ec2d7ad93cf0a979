package libct

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// capBits maps the default capabilities to their bit numbers (linux/capability.h).
var capBits = map[string]uint{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
	"CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
	"CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}

func capField(t *testing.T, log, name string) uint64 {
	t.Helper()
	m := regexp.MustCompile(name + `:\s+([0-9a-f]+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no %s in %q", name, log)
	}
	v, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSecurityDefaults(t *testing.T) {
	e := newTestEnv(t)
	var defaultMask uint64
	for _, c := range DefaultCapabilities {
		defaultMask |= 1 << capBits[c]
	}
	tests := []struct {
		name  string
		args  []string
		mod   func(*Config)
		check func(t *testing.T, st State, log string)
	}{
		{"proc sys read-only", []string{"write", "/proc/sys/kernel/hostname", "evil"}, nil, func(t *testing.T, st State, log string) {
			if st.ExitCode != 1 || !strings.Contains(log, "read-only file system") {
				t.Errorf("exit %d log %q; want the write refused with EROFS", st.ExitCode, log)
			}
		}},
		{"sysrq-trigger read-only", []string{"write", "/proc/sysrq-trigger", "h"}, nil, func(t *testing.T, st State, log string) {
			if st.ExitCode != 1 {
				t.Errorf("exit %d log %q; want the write refused", st.ExitCode, log)
			}
		}},
		{"keys masked", []string{"read", "/proc/keys"}, nil, wantEmptyRead},
		{"timer_list masked", []string{"read", "/proc/timer_list"}, nil, wantEmptyRead},
		{"kcore masked", []string{"read", "/proc/kcore"}, nil, func(t *testing.T, st State, log string) {
			if _, err := os.Stat("/proc/kcore"); err != nil {
				// A kernel without /proc/kcore: the container must not find one either.
				if st.ExitCode != 1 || !strings.Contains(log, "no such file or directory") {
					t.Errorf("exit %d log %q; the host has no /proc/kcore, so reading it must fail", st.ExitCode, log)
				}
				return
			}
			wantEmptyRead(t, st, log)
		}},
		{"unshare refused by seccomp", []string{"unshare"}, nil, func(t *testing.T, st State, log string) {
			if st.ExitCode != 1 || !strings.Contains(log, "operation not permitted") {
				t.Errorf("exit %d log %q; want EPERM", st.ExitCode, log)
			}
		}},
		{"default capabilities", []string{"id"}, nil, func(t *testing.T, st State, log string) {
			for _, f := range []string{"CapEff", "CapPrm", "CapBnd"} {
				if got := capField(t, log, f); got != defaultMask {
					t.Errorf("%s = %#x, want %#x", f, got, defaultMask)
				}
			}
			if !strings.Contains(log, "NoNewPrivs:\t0") || !strings.Contains(log, "Seccomp:\t2") {
				t.Errorf("want no_new_privs off and seccomp filter mode 2 by default: %q", log)
			}
		}},
		{"non-root has no effective caps", []string{"id"}, func(c *Config) { c.User = "65534" }, func(t *testing.T, st State, log string) {
			if got := capField(t, log, "CapEff"); got != 0 {
				t.Errorf("CapEff = %#x, want 0", got)
			}
			if got := capField(t, log, "CapBnd"); got != defaultMask {
				t.Errorf("CapBnd = %#x, want %#x", got, defaultMask)
			}
		}},
		{"cap add and drop", []string{"id"}, func(c *Config) { c.CapDrop = []string{"ALL"}; c.CapAdd = []string{"NET_BIND_SERVICE"} }, func(t *testing.T, st State, log string) {
			if got := capField(t, log, "CapEff"); got != 1<<10 {
				t.Errorf("CapEff = %#x, want only NET_BIND_SERVICE", got)
			}
		}},
		{"no_new_privs when asked", []string{"id"}, func(c *Config) { c.NoNewPrivileges = true }, func(t *testing.T, st State, log string) {
			if !strings.Contains(log, "NoNewPrivs:\t1") {
				t.Errorf("no_new_privs not set: %q", log)
			}
		}},
		{"seccomp unconfined when asked", []string{"id"}, func(c *Config) { c.SeccompUnconfined = true }, func(t *testing.T, st State, log string) {
			if !strings.Contains(log, "Seccomp:\t0") {
				t.Errorf("seccomp filter still set: %q", log)
			}
		}},
		{"no host fds", []string{"fds"}, nil, func(t *testing.T, st State, log string) {
			for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
				fd, target, ok := strings.Cut(line, " ->")
				target = strings.TrimSpace(target)
				if !ok {
					t.Fatalf("bad fds line %q", line)
				}
				switch fd {
				case "0":
					if target != "/dev/null" {
						t.Errorf("stdin -> %s, want /dev/null", target)
					}
				case "1", "2":
					if !strings.HasPrefix(target, "pipe:") {
						t.Errorf("fd %s -> %s, want the log pipe", fd, target)
					}
				default:
					// Only files the program opened itself may be open: the directory
					// listing and the Go runtime's cgroup CPU limit files (inside the
					// container's cgroup namespace). An empty target is an fd closed
					// while listing.
					if target != "" && !regexp.MustCompile(`^(/proc/\d+/fd|/sys/fs/cgroup/.*)$`).MatchString(target) {
						t.Errorf("leaked fd %s -> %s", fd, target)
					}
				}
			}
		}},
		{"readonly rootfs", []string{"write", "/x", "y"}, func(c *Config) { c.ReadonlyRootfs = true }, func(t *testing.T, st State, log string) {
			if st.ExitCode != 1 || !strings.Contains(log, "read-only file system") {
				t.Errorf("exit %d log %q; want EROFS", st.ExitCode, log)
			}
		}},
		{"privileged", []string{"id"}, func(c *Config) { c.Privileged = true }, func(t *testing.T, st State, log string) {
			if got := capField(t, log, "CapEff"); got&(1<<21) == 0 { // CAP_SYS_ADMIN
				t.Errorf("CapEff = %#x, want all capabilities", got)
			}
			if !strings.Contains(log, "Seccomp:\t0") {
				t.Errorf("privileged container has a seccomp filter: %q", log)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(fmt.Sprintf("sec%d", i), tt.args...)
			if tt.mod != nil {
				tt.mod(&cfg)
			}
			st, log := e.run(t, cfg)
			tt.check(t, st, log)
		})
	}
}

func TestLeakedFDCwdRefused(t *testing.T) {
	e := newTestEnv(t)
	for i, cwd := range []string{"/proc/self/fd/3", "/proc/self/fd/7"} {
		cfg := e.config(fmt.Sprintf("cwd%d", i), "id")
		cfg.Cwd = cwd
		c, err := e.r.Start(context.Background(), cfg)
		if err == nil {
			st, _ := c.Wait(context.Background())
			log := readLogText(t, c.LogPath())
			if st.ExitCode == 0 {
				t.Fatalf("cwd %s: container ran: %q", cwd, log)
			}
		}
	}
}

func wantEmptyRead(t *testing.T, st State, log string) {
	if st.ExitCode != 0 || strings.TrimSpace(log) != "" {
		t.Errorf("exit %d log %q; want an empty read", st.ExitCode, log)
	}
}

func TestPidsLimit(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.config("forkbomb", "forkbomb")
	cfg.PidsLimit = 32
	c := e.start(t, cfg)
	eventually(t, "fork bomb stopped by pids.max", func() bool {
		return strings.Contains(readLogText(t, c.LogPath()), "started")
	})
	log := readLogText(t, c.LogPath())
	var n int
	if _, err := fmt.Sscanf(log[strings.Index(log, "started"):], "started %d processes", &n); err != nil || n >= 32 {
		t.Fatalf("fork bomb: %q (n=%d, err=%v); want fewer than 32 processes", log, n, err)
	}
	// The host still forks, and the container is still manageable.
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Stop(ctx, time.Second)
	if err != nil || st.Status != StatusExited {
		t.Fatalf("stop fork bomb: %+v %v", st, err)
	}
}

func TestOOMKilled(t *testing.T) {
	e := newTestEnv(t)
	cfg := e.config("oom", "alloc", "200")
	cfg.MemoryLimit = 64 << 20
	st, log := e.run(t, cfg)
	if !st.OOMKilled || st.Reason != ReasonOOMKilled || st.Signal != 9 {
		t.Fatalf("state %+v log %q; want OOMKilled", st, log)
	}
}
