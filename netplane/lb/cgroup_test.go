package lb

import (
	"errors"
	"strings"
	"testing"
)

// Lines of /proc/self/mountinfo as a pure cgroup v2 machine (systemd's unified layout), a
// hybrid one and a cgroup v1 one show them.
const (
	mountinfoUnified = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:3 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 25 0:25 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:4 - bpf bpf rw,mode=700
`
	mountinfoHybrid = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
31 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
34 31 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
`
	mountinfoV1 = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
31 22 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 31 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
`
	mountinfoElsewhere = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 22 0:40 / /run/cgroup2 rw,relatime shared:20 - cgroup2 none rw
`
	// cgroup2 at /sys/fs/cgroup, then a tmpfs mounted over it.
	mountinfoHidden = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
26 22 0:24 / /sys/fs/cgroup rw,relatime shared:3 - cgroup2 cgroup2 rw
50 26 0:50 / /sys/fs/cgroup rw,relatime shared:30 - tmpfs tmpfs rw
`
)

func TestCgroup2RootFrom(t *testing.T) {
	tests := []struct {
		name, mountinfo, want string
		wantErr               error
	}{
		{"unified", mountinfoUnified, "/sys/fs/cgroup", nil},
		{"hybrid", mountinfoHybrid, "/sys/fs/cgroup/unified", nil},
		{"cgroup v1 only", mountinfoV1, "", ErrNoCgroup2},
		{"mounted elsewhere", mountinfoElsewhere, "/run/cgroup2", nil},
		{"hidden by a later mount", mountinfoHidden, "", ErrNoCgroup2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cgroup2RootFrom(strings.NewReader(tc.mountinfo))
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("cgroup2RootFrom = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// The machine's own layout: whatever it is, the answer is a cgroup v2 file system.
func TestCgroup2RootOfThisMachine(t *testing.T) {
	root, err := Cgroup2Root()
	if errors.Is(err, ErrNoCgroup2) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cgroupID(root); err != nil {
		t.Errorf("Cgroup2Root() = %s: %v", root, err)
	}
}

func FuzzCgroup2RootFrom(f *testing.F) {
	for _, s := range []string{mountinfoUnified, mountinfoHybrid, mountinfoV1, mountinfoElsewhere, mountinfoHidden} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		root, err := cgroup2RootFrom(strings.NewReader(s))
		if err == nil && root == "" {
			t.Fatal("no error and no root")
		}
	})
}
