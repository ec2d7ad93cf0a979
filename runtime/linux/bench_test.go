package linux_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	goruntime "runtime"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/imagetest"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

// rssKiB returns the resident set size of a process in KiB.
func rssKiB(pid string) int64 {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkPodStart measures the pod start latency through the whole runtime — a new sandbox
// (network namespace, cgroup, files) and one container from an already unpacked image — from
// EnsurePod until the container's process runs. It reports p50-ms and p99-ms over b.N pods
// (use -benchtime=50x or more), then keeps 100 pods running and reports the RSS of this process,
// which plays the daemon (daemon-rss-MiB; containers and shims are other processes), and the
// mean RSS of a shim (shim-rss-MiB).
func BenchmarkPodStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the libcontainer runtime needs root")
	}
	registry := imagetest.StartRegistry(b)
	ref := registry + "/testapp:v1"
	imagetest.Push(b, imagetest.TestAppImage(b), ref)
	n := newNode(b, registry)
	rt, err := lifecycle.New(lifecycle.Config{Driver: n.driver})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	ctx := context.Background()
	zero := time.Duration(0)
	// Pull and unpack once.
	warm := testPod(ref, "warm", "sleep", "inf")
	if err := rt.EnsurePod(ctx, warm); err != nil {
		b.Fatal(err)
	}
	waitRunning(b, rt, warm.UID)
	rt.RemovePod(ctx, warm.UID, &zero)

	var lat []time.Duration
	var uids []string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		spec := testPod(ref, "bench", "sleep", "inf")
		start := time.Now()
		if err := rt.EnsurePod(ctx, spec); err != nil {
			b.Fatal(err)
		}
		waitRunning(b, rt, spec.UID)
		lat = append(lat, time.Since(start))
		uids = append(uids, spec.UID)
		if len(uids) > 100 {
			rt.RemovePod(ctx, uids[0], &zero)
			uids = uids[1:]
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")

	for len(uids) < 100 {
		spec := testPod(ref, "bench", "sleep", "inf")
		if err := rt.EnsurePod(ctx, spec); err != nil {
			b.Fatal(err)
		}
		waitRunning(b, rt, spec.UID)
		uids = append(uids, spec.UID)
	}
	goruntime.GC()
	debug.FreeOSMemory()
	time.Sleep(2 * time.Second) // let probes and workers settle
	b.ReportMetric(float64(rssKiB("self"))/1024, "daemon-rss-MiB")
	var shims, sum int64
	ctrs, _ := n.driver.Containers(ctx, "")
	for _, c := range ctrs {
		if pid := shimPID(n.root, c.ID); pid != "" {
			sum += rssKiB(pid)
			shims++
		}
	}
	if shims > 0 {
		b.ReportMetric(float64(sum)/float64(shims)/1024, "shim-rss-MiB")
	}
	for _, uid := range uids {
		rt.RemovePod(ctx, uid, &zero)
	}
}

func waitRunning(tb testing.TB, rt runtime.Runtime, uid string) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := rt.PodStatus(context.Background(), uid)
		if err == nil && len(st.Status.ContainerStatuses) == 1 && st.Status.ContainerStatuses[0].State.Running != nil {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	tb.Fatalf("pod %s not running after 60 s", uid)
}

// shimPID reads the PID of a container's shim from the state the shim writes.
func shimPID(root, id string) string {
	data, err := os.ReadFile(filepath.Join(root, "runtime", "containers", "containers", id, "state.json"))
	if err != nil {
		return ""
	}
	var st struct {
		ShimPID int `json:"shimPid"`
	}
	if json.Unmarshal(data, &st) != nil || st.ShimPID == 0 {
		return ""
	}
	return strconv.Itoa(st.ShimPID)
}
