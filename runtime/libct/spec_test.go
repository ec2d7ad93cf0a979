package libct

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCapabilitySet(t *testing.T) {
	tests := []struct {
		name      string
		add, drop []string
		want      int
		has, not  string
		err       bool
	}{
		{"default", nil, nil, 14, "CAP_CHOWN", "CAP_SYS_ADMIN", false},
		{"drop one", nil, []string{"net_raw"}, 13, "CAP_KILL", "CAP_NET_RAW", false},
		{"drop all add one", []string{"CAP_NET_ADMIN"}, []string{"ALL"}, 1, "CAP_NET_ADMIN", "CAP_CHOWN", false},
		{"unknown", []string{"NOT_A_CAP"}, nil, 0, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := capabilitySet(tt.add, tt.drop)
			if tt.err {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil || len(got) != tt.want || !slices.Contains(got, tt.has) || slices.Contains(got, tt.not) {
				t.Fatalf("got %v (%v)", got, err)
			}
		})
	}
}

func TestCPUConversions(t *testing.T) {
	tests := []struct {
		milli  int64
		quota  int64
		shares uint64
	}{
		{500, 50000, 512},
		{1000, 100000, 1024},
		{1, 1000, 2},
		{0, 0, 2},
	}
	for _, tt := range tests {
		if q := CPUQuotaFromMilli(tt.milli, 0); q != tt.quota {
			t.Errorf("quota(%d) = %d, want %d", tt.milli, q, tt.quota)
		}
		if s := CPUSharesFromMilli(tt.milli); s != tt.shares {
			t.Errorf("shares(%d) = %d, want %d", tt.milli, s, tt.shares)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{ID: "a", Args: []string{"/x"}, Lower: []string{"/l"}}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"bad id", func(c *Config) { c.ID = "../x" }},
		{"no args", func(c *Config) { c.Args = nil }},
		{"no layers", func(c *Config) { c.Lower = nil }},
		{"relative layer", func(c *Config) { c.Lower = []string{"l"} }},
		{"relative mount", func(c *Config) { c.Mounts = []Mount{{Source: "a", Destination: "/b"}} }},
		{"relative cgroup", func(c *Config) { c.CgroupParent = "x" }},
		{"seccomp profile not JSON", func(c *Config) { c.SeccompProfile = "{" }},
		{"NUL in env", func(c *Config) { c.Env = []string{"A=1", "TOKEN=hunter2\x00"} }},
	}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("err = %v: it shows an environment value", err)
			}
		})
	}
}

func TestSeccompProfile(t *testing.T) {
	spec := func() *specs.Spec {
		return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: DefaultCapabilities}}}
	}
	def, err := seccompProfile("", spec())
	if err != nil || def.DefaultAction != specs.ActErrno {
		t.Fatalf("default profile: %+v %v", def, err)
	}
	p, err := seccompProfile(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO","errnoRet":95}]}`, spec())
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != specs.ActAllow || len(p.Syscalls) != 1 || p.Syscalls[0].Names[0] != "unshare" || *p.Syscalls[0].ErrnoRet != 95 {
		t.Errorf("loaded profile %+v", p)
	}
	for _, bad := range []string{`{}`, `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}`, `[`} {
		if _, err := seccompProfile(bad, spec()); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("profile %s: err %v, want ErrInvalidConfig", bad, err)
		}
	}
}

func TestDirUsage(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 100<<10)
	for i := range data {
		data[i] = byte(i)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "sub", "f"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sparse"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "sparse"), 1<<30); err != nil {
		t.Fatal(err)
	}
	got, err := DirUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The file once (hard links are one inode), the sparse file's holes not at all, plus the
	// directories' own blocks.
	if got < 100<<10 || got > 100<<10+64<<10 {
		t.Errorf("usage %d, want about 100 KiB", got)
	}
	if n, err := DirUsage(filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Errorf("missing path: %d %v", n, err)
	}
}
