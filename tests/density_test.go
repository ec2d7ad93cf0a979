package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
)

// sleepDeployment is a Deployment of idle pods with the given number of containers, each the
// example app sleeping, with neither probes nor ports.
func sleepDeployment(name string, replicas, containers int) string {
	var cs strings.Builder
	for i := 0; i < containers; i++ {
		fmt.Fprintf(&cs, `        - name: c%d
          image: localhost/e2e/app:v1
          args: ["sleep", "1000000"]
`, i)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
%[3]s`, name, replicas, cs.String())
}

// densityIdle is how long the idle CPU of the daemon and the shims is measured.
const densityIdle = 10 * time.Second

// BenchmarkDensity runs one node (the real daemon in its own network namespace, data directory
// and cgroup subtree, with the embedded store and the bridge pod network) with many idle pods
// and measures what they cost the node: 110 one-container pods (pods=110), then 30 pods of three
// containers more (pods=140: 200 containers). For each it reports the PSS (from
// /proc/PID/smaps_rollup) of the daemon, of all shims together, their total and the shims' per
// pod; the CPU of the shims and of the daemon over 10 idle seconds, in percent of one core; the
// daemon's Go heap in use and goroutines (from its /metrics); and the pod start p50 and p99 of
// the pods of the phase: from the placement's creation by the master (its time in the store,
// in nanoseconds) to the last of its containers' start as its shim recorded it (state.json, in
// nanoseconds). The image is imported and unpacked by a warm-up pod first, so no start pulls.
// Run with -benchtime=1x: each run starts a new node.
//
// $SHOAL_DENSITY_BIN runs that shoal binary instead of one built from the tree (to compare
// builds). A binary built with -tags 'seccomp pprof' and $SHOAL_PPROF_SOCKET set serves
// net/http/pprof there; then the heap and goroutine profiles of each phase are written to the
// directory $SHOAL_DENSITY_PROFILES.
func BenchmarkDensity(b *testing.B) {
	if testing.Short() || os.Geteuid() != 0 {
		b.Skip("needs root and runs containers")
	}
	binaries(b)
	if bin := os.Getenv("SHOAL_DENSITY_BIN"); bin != "" {
		shoalBin = bin
	}
	c := newLANCluster(b, 1)
	n := c.nodes[0]
	files := map[string]string{"warm.yaml": sleepDeployment("d00", 1, 1)}
	sha := c.repo.commit("warm-up", files)
	c.startAll()
	c.waitAllConverged(b, sha, 2*time.Minute)
	waitPodsRunning(b, n, 1, time.Minute)

	// Phase 1: 11 Deployments of 10, the warm-up pod being the first of d00's.
	for i := 0; i < 11; i++ {
		files[fmt.Sprintf("d%02d.yaml", i)] = sleepDeployment(fmt.Sprintf("d%02d", i), 10, 1)
	}
	files["warm.yaml"] = ""
	r1 := densityPhase(b, c, n, "110 one-container pods", files, 110)
	b.Run("pods=110", func(b *testing.B) { r1.report(b) })

	// Phase 2: 30 pods of three containers on top.
	files = map[string]string{}
	for i := 0; i < 3; i++ {
		files[fmt.Sprintf("t%02d.yaml", i)] = sleepDeployment(fmt.Sprintf("t%02d", i), 10, 3)
	}
	r2 := densityPhase(b, c, n, "30 three-container pods", files, 140)
	b.Run("pods=140", func(b *testing.B) { r2.report(b) })
}

// densityResult holds the figures of one phase.
type densityResult struct {
	pods, shims                   int
	daemonPSS, shimsPSS           int64 // KiB
	daemonCPU, shimsCPU           float64
	heapInuse, heapSys, goroutine float64
	startP50, startP99            time.Duration
	started                       int
	raftPerMin, dbMiB             float64 // the store's raft entries a minute while idle, its database
}

func (r densityResult) report(b *testing.B) {
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(r.daemonPSS)/1024, "daemon-pss-MiB")
	b.ReportMetric(float64(r.shimsPSS)/1024, "shims-pss-MiB")
	b.ReportMetric(float64(r.daemonPSS+r.shimsPSS)/1024, "total-pss-MiB")
	b.ReportMetric(float64(r.shimsPSS)/float64(r.pods), "shim-pss-per-pod-KiB")
	b.ReportMetric(float64(r.shims), "shims")
	b.ReportMetric(r.shimsCPU, "shims-idle-cpu-pct")
	b.ReportMetric(r.daemonCPU, "daemon-idle-cpu-pct")
	b.ReportMetric(r.heapInuse/(1<<20), "daemon-heap-inuse-MiB")
	b.ReportMetric(r.heapSys/(1<<20), "daemon-heap-sys-MiB")
	b.ReportMetric(r.goroutine, "daemon-goroutines")
	b.ReportMetric(r.raftPerMin, "store-idle-entries/min")
	b.ReportMetric(r.dbMiB, "store-db-MiB")
	b.ReportMetric(float64(r.startP50.Microseconds())/1000, "start-p50-ms")
	b.ReportMetric(float64(r.startP99.Microseconds())/1000, "start-p99-ms")
}

// densityPhase commits files, waits until total pods run and measures.
func densityPhase(b *testing.B, c *lanCluster, n *lanNode, what string, files map[string]string, total int) densityResult {
	b.Helper()
	committed := time.Now()
	sha := c.repo.commit(what, files)
	c.waitAllConverged(b, sha, 5*time.Minute)
	waitPodsRunning(b, n, total, 5*time.Minute)
	b.Logf("%s: %d pods run %v after the commit", what, total, time.Since(committed).Round(time.Millisecond))

	r := densityResult{pods: total}
	r.startP50, r.startP99, r.started = podStarts(b, n, committed)
	daemon := n.cmd.Process.Pid
	shims := shimPIDs(b, n.dataDir)
	r.shims = len(shims)
	r.daemonPSS = pssKiB(b, daemon)
	for _, p := range shims {
		r.shimsPSS += pssKiB(b, p)
	}
	m := daemonMetrics(b, n.sock)
	r.heapInuse, r.heapSys, r.goroutine = m["go_memstats_heap_inuse_bytes"], m["go_memstats_heap_sys_bytes"], m["go_goroutines"]

	var st0, st1 storeStatus
	storeHelper(b, n, "TestStoreStatusHelper", storeStatusEnv, "STATUS", &st0)
	d0, s0 := cpuTicks(b, daemon), sumTicks(b, shims)
	start := time.Now()
	time.Sleep(densityIdle)
	d1, s1 := cpuTicks(b, daemon), sumTicks(b, shims)
	storeHelper(b, n, "TestStoreStatusHelper", storeStatusEnv, "STATUS", &st1)
	r.raftPerMin = float64(st1.RaftIndex-st0.RaftIndex) / time.Since(start).Minutes()
	r.dbMiB = float64(st1.DBSize) / (1 << 20)
	pct := func(ticks int64) float64 {
		return float64(ticks) / clockTicks / time.Since(start).Seconds() * 100
	}
	r.daemonCPU, r.shimsCPU = pct(d1-d0), pct(s1-s0)
	saveProfiles(b, fmt.Sprintf("pods%d", total))
	b.Logf("%s: the daemon's PSS by mapping (KiB): %v", what, pssByMapping(b, daemon))
	b.Logf("%s: %d shims, daemon PSS %d KiB, shims PSS %d KiB; idle CPU daemon %.2f%%, shims %.2f%%; "+
		"start p50 %v p99 %v over %d pods", what, r.shims, r.daemonPSS, r.shimsPSS, r.daemonCPU, r.shimsCPU,
		r.startP50, r.startP99, r.started)
	return r
}

// waitPodsRunning waits until the node reports want pods, every one ready (these pods have no
// probes: ready is running).
func waitPodsRunning(b *testing.B, n *lanNode, want int, timeout time.Duration) {
	b.Helper()
	waitUntil(b, fmt.Sprintf("%d pods running", want), timeout, func() bool {
		pods, err := n.lanPods()
		if err != nil || len(pods) != want {
			return false
		}
		for _, p := range pods {
			if !p.Ready {
				return false
			}
		}
		return true
	})
}

// podStarts returns the p50 and p99, over the pods placed after since, of the time from the
// placement's creation to the start of its last container, and how many pods it saw.
func podStarts(b *testing.B, n *lanNode, since time.Time) (p50, p99 time.Duration, pods int) {
	b.Helper()
	created := placementTimes(b, n)
	started := map[string]time.Time{} // by pod UID: its last container's start
	dir := filepath.Join(n.dataDir, "runtime", "containers", "containers")
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		var st struct {
			StartedAt time.Time `json:"startedAt"`
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "state.json"))
		if err != nil || json.Unmarshal(data, &st) != nil {
			continue
		}
		uid, _, _ := strings.Cut(e.Name(), "_") // <pod uid>_<container>_<attempt>
		if st.StartedAt.After(started[uid]) {
			started[uid] = st.StartedAt
		}
	}
	var lat []time.Duration
	for uid, at := range created {
		s, ok := started[uid]
		if !ok || at.Before(since) {
			continue
		}
		lat = append(lat, s.Sub(at))
	}
	if len(lat) == 0 {
		b.Fatalf("no pod placed after %v has a started container", since)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1)+0.5)] }
	return pct(0.5), pct(0.99), len(lat)
}

// placementTimes reads the creation time of every placement of the node from its store, by pod
// UID.
func placementTimes(b *testing.B, n *lanNode) map[string]time.Time {
	b.Helper()
	var kvs []dumpedKV
	storeHelper(b, n, "TestStoreDumpHelper", storeDumpEnv, "DUMP", &kvs)
	prefix := "/shoal/placements/" + n.name + "/"
	times := map[string]time.Time{}
	var total int
	for _, kv := range kvs {
		total += len(kv.Value)
		if kv.Key == "/shoal/metrics/"+n.name {
			b.Logf("the node's metrics record (rewritten every 15 s): %d bytes", len(kv.Value))
		}
	}
	b.Logf("the store holds %d keys, %d bytes of values", len(kvs), total)
	for _, kv := range kvs {
		uid, ok := strings.CutPrefix(kv.Key, prefix)
		if !ok {
			continue
		}
		var pl struct {
			Created time.Time `json:"created"`
		}
		if err := json.Unmarshal(kv.Value, &pl); err != nil {
			b.Fatalf("placement %s: %v", kv.Key, err)
		}
		times[uid] = pl.Created
	}
	return times
}

// storeHelper runs the test helper of this binary named helper inside the node's network
// namespace, with env set to the node's store endpoint and PKI directory, and decodes the JSON
// it printed after "\n<tag> " into v.
func storeHelper(b *testing.B, n *lanNode, helper, env, tag string, v any) {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+n.ns, "--", self, "-test.run", "^"+helper+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"=https://"+n.addr+":2379,"+filepath.Join(n.dataDir, "pki"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s for %s: %v\n%s", helper, n.name, err, out)
	}
	_, line, ok := strings.Cut(string(out), "\n"+tag+" ")
	if !ok {
		b.Fatalf("%s for %s: no %s line in\n%s", helper, n.name, tag, out)
	}
	line, _, _ = strings.Cut(line, "\n")
	if err := json.Unmarshal([]byte(line), v); err != nil {
		b.Fatalf("%s for %s: %v", helper, n.name, err)
	}
}

// storeStatusEnv makes TestStoreStatusHelper print the status of the store member at
// "<endpoint>,<pki dir>".
const storeStatusEnv = "SHOAL_E2E_STORE_STATUS"

// storeStatus is what TestStoreStatusHelper prints.
type storeStatus struct {
	RaftIndex   uint64 `json:"raftIndex"`
	Revision    int64  `json:"revision"`
	DBSize      int64  `json:"dbSize"`
	DBSizeInUse int64  `json:"dbSizeInUse"`
}

// TestStoreStatusHelper is not a test: with storeStatusEnv set it is the test binary reading the
// status of a store member (its raft index, revision and database size) with the node's
// certificate, as `etcdctl endpoint status` does.
func TestStoreStatusHelper(t *testing.T) {
	spec := os.Getenv(storeStatusEnv)
	if spec == "" {
		t.Skip("run by BenchmarkDensity inside a node's network namespace")
	}
	endpoint, dir, _ := strings.Cut(spec, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Connect(ctx, store.Config{Endpoints: []string{endpoint}, TLS: nodeTLS(t, dir)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	resp, err := st.Etcd().Status(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(storeStatus{RaftIndex: resp.RaftIndex, Revision: resp.Header.Revision, DBSize: resp.DbSize, DBSizeInUse: resp.DbSizeInUse})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\nSTATUS %s\n", data)
}

// shimPIDs returns the shims of the node's containers, from their state.json, each checked to
// be alive and a shim.
func shimPIDs(b *testing.B, dataDir string) []int {
	b.Helper()
	dir := filepath.Join(dataDir, "runtime", "containers", "containers")
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		var st struct {
			ShimPID int `json:"shimPid"`
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "state.json"))
		if err != nil || json.Unmarshal(data, &st) != nil || st.ShimPID == 0 {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.ShimPID))
		if err != nil || !bytes.Contains(cmdline, []byte("\x00shim\x00")) {
			b.Fatalf("container %s: shim %d is not running (cmdline %q)", e.Name(), st.ShimPID, cmdline)
		}
		pids = append(pids, st.ShimPID)
	}
	return pids
}

// pssKiB is the Pss line of the process's smaps_rollup.
func pssKiB(b *testing.B, pid int) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			kib, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kib
		}
	}
	b.Fatalf("no Pss line in /proc/%d/smaps_rollup", pid)
	return 0
}

// pssByMapping sums the Pss of the process's mappings by kind: the binary (its text and data),
// anonymous memory (the Go heap, stacks, cgo and etcd's buffers), the store's database (bbolt's
// mmap of member/snap/db) and the rest (other files, such as libc, and the vdso).
func pssByMapping(b *testing.B, pid int) map[string]int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		b.Fatal(err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	sums := map[string]int64{}
	kind := "other"
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			path := ""
			if len(f) >= 6 {
				path = f[5]
			}
			switch {
			case path == exe:
				kind = "binary"
			case path == "" || path == "[heap]" || strings.HasPrefix(path, "[stack"):
				kind = "anon"
			case strings.HasSuffix(path, "/member/snap/db"):
				kind = "db"
			default:
				kind = "other"
			}
			continue
		}
		if len(f) >= 2 && f[0] == "Pss:" {
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			sums[kind] += kib
		}
	}
	return sums
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat (100 on every Linux build
// the project runs on).
const clockTicks = 100

// cpuTicks is utime+stime of the process.
func cpuTicks(b *testing.B, pid int) int64 {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// pid (comm) state ppid ...: comm may hold spaces; utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

func sumTicks(b *testing.B, pids []int) int64 {
	var sum int64
	for _, p := range pids {
		sum += cpuTicks(b, p)
	}
	return sum
}

// daemonMetrics reads the plain samples (without labels) of the daemon's /metrics.
func daemonMetrics(b *testing.B, sock string) map[string]float64 {
	b.Helper()
	body, err := unixGet(sock, "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	m := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		name, v, ok := strings.Cut(l, " ")
		if !ok || strings.HasPrefix(l, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			m[name] = f
		}
	}
	return m
}

// saveProfiles writes the daemon's heap and goroutine profiles to $SHOAL_DENSITY_PROFILES when
// it serves them on $SHOAL_PPROF_SOCKET.
func saveProfiles(b *testing.B, name string) {
	b.Helper()
	dir, sock := os.Getenv("SHOAL_DENSITY_PROFILES"), os.Getenv("SHOAL_PPROF_SOCKET")
	if dir == "" || sock == "" {
		return
	}
	for _, p := range []string{"heap", "goroutine?debug=1", "allocs"} {
		body, err := unixGet(sock, "/debug/pprof/"+p)
		if err != nil {
			b.Fatal(err)
		}
		file, _, _ := strings.Cut(p, "?")
		if err := os.WriteFile(filepath.Join(dir, name+"-"+file+".pprof"), body, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// unixGet GETs path from the HTTP server on the unix socket sock.
func unixGet(sock, path string) ([]byte, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := hc.Get("http://shoal" + path)
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", path, sock, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", path, sock, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s on %s: %s", path, sock, resp.Status)
	}
	return body, nil
}
