package libct

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/exeseal"
	"golang.org/x/sys/unix"
)

// BenchmarkStart measures the latency from the call until the container's process runs,
// for a new netns plus one container from an unpacked layer, through the shim, and in the
// same run a bare libcontainer create+start of the same rootfs (same overlay mount, same
// spec, no shim). Run with -benchtime=50x or more.
func BenchmarkStart(b *testing.B) {
	e := newTestEnv(b)
	ctx := context.Background()
	nsDir := b.TempDir()
	var shimLat, bareLat []time.Duration
	var rssKiB []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ns := filepath.Join(nsDir, fmt.Sprintf("shoal-ns-%d", i))
		cfg := e.config(fmt.Sprintf("b%d", i), "sleep", "inf")
		cfg.NetNSPath = ns
		begin := time.Now()
		if err := NewNetNS(ns); err != nil {
			b.Fatal(err)
		}
		c, err := e.r.Start(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		shimLat = append(shimLat, time.Since(begin))
		rssKiB = append(rssKiB, float64(vmRSSKiB(c.st.ShimPID)))
		if err := c.Delete(ctx, RemoveLogs()); err != nil {
			b.Fatal(err)
		}
		if err := RemoveNetNS(ns); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		ns := filepath.Join(nsDir, fmt.Sprintf("shoal-bare-ns-%d", i))
		d, err := bareStart(e, ns, fmt.Sprintf("bare%d", i))
		if err != nil {
			b.Fatal(err)
		}
		bareLat = append(bareLat, d)
	}
	b.StopTimer()
	p50, p99 := percentile(shimLat, 50), percentile(shimLat, 99)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(percentile(bareLat, 50), "bare-p50-ms")
	b.ReportMetric(percentile(bareLat, 99), "bare-p99-ms")
	b.ReportMetric(p50/percentile(bareLat, 50), "ratio-vs-bare")
	sort.Float64s(rssKiB)
	b.ReportMetric(rssKiB[len(rssKiB)/2], "shim-rss-KiB")

	// Exe sealing (CVE-2019-5736): libcontainer clones /proc/self/exe for every start. With
	// a sealed read-only overlayfs nothing is copied; with the memfd fallback the whole
	// binary is copied into memory for the duration of the start.
	f, err := exeseal.CloneSelfExe(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var copied float64
	if exeseal.IsCloned(f) { // a sealed memfd: a full in-memory copy
		if fi, err := f.Stat(); err == nil {
			copied = float64(fi.Size())
		}
	}
	f.Close()
	b.ReportMetric(copied/1024, "seal-copy-KiB")
}

// bareStart is libcontainer alone: netns, overlay rootfs, create + run, timed until the
// process runs; then it tears everything down.
func bareStart(e *testEnv, ns, id string) (time.Duration, error) {
	dir := filepath.Join(e.state, "bare", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cfg := e.config(id, "sleep", "inf")
	cfg.NetNSPath = ns
	cfg.setDefaults(dir)
	begin := time.Now()
	if err := NewNetNS(ns); err != nil {
		return 0, err
	}
	defer RemoveNetNS(ns) //nolint:errcheck // best effort in a benchmark
	rootfs, err := mountRootfs(dir, cfg.Lower)
	if err != nil {
		return 0, err
	}
	defer unmountRootfs(dir) //nolint:errcheck // best effort in a benchmark
	spec, err := buildSpec(&cfg, rootfs, execUser{Home: "/root"})
	if err != nil {
		return 0, err
	}
	lcCfg, err := libcontainerConfig(id, spec)
	if err != nil {
		return 0, err
	}
	ct, err := libcontainer.Create(filepath.Join(e.state, "bare-lc"), id, lcCfg)
	if err != nil {
		return 0, err
	}
	defer ct.Destroy() //nolint:errcheck // best effort in a benchmark
	var out bytes.Buffer
	proc := &libcontainer.Process{Args: cfg.Args, Env: spec.Process.Env, Cwd: "/", Stdout: &out, Stderr: &out, Init: true}
	if err := ct.Run(proc); err != nil {
		return 0, err
	}
	d := time.Since(begin)
	_ = proc.Signal(unix.SIGKILL)
	_, _ = proc.Wait()
	return d, nil
}

func percentile(ds []time.Duration, p int) float64 {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return float64(s[i]) / float64(time.Millisecond)
}

func vmRSSKiB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}
