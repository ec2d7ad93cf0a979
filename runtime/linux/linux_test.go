package linux_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/image"
	"github.com/shoal-dev/shoal/runtime/imagetest"
	"github.com/shoal-dev/shoal/runtime/libct"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/linux"
	"github.com/shoal-dev/shoal/runtime/runtimetest"
)

const ownerEnv = "SHOAL_LINUX_TEST_OWNER"

var quiet = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) {
	if libct.Main() {
		return
	}
	if cfg := os.Getenv(ownerEnv); cfg != "" {
		os.Exit(runOwner(cfg))
	}
	if err := libct.CheckSeccomp(); err != nil && os.Geteuid() == 0 {
		fmt.Fprintf(os.Stderr, "runtime/linux tests: %v (run the tests with -tags seccomp, as make test does)\n", err) // else every pod test waits out its timeout
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func randomSuffix(t testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// node is one test node: an image store, a driver and its state, all removed at cleanup.
type node struct {
	root, cgroup string
	images       *image.Store
	driver       *linux.Driver
}

func newNode(t testing.TB, registry string) *node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the libcontainer runtime needs root")
	}
	n := &node{root: t.TempDir(), cgroup: "/shoal-test-" + randomSuffix(t)}
	store, err := image.NewStore(context.Background(), image.Config{Root: filepath.Join(n.root, "images"), InsecureRegistries: []string{registry}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	n.images = store
	d, err := linux.New(linux.Config{Root: filepath.Join(n.root, "runtime"), Images: store, CgroupParent: n.cgroup})
	if err != nil {
		t.Fatal(err)
	}
	n.driver = d
	t.Cleanup(func() { n.cleanup(t) })
	return n
}

// cleanup removes every container and sandbox the test left, then the node's cgroups.
func (n *node) cleanup(t testing.TB) {
	ctx := context.Background()
	ctrs, _ := n.driver.Containers(ctx, "")
	for _, c := range ctrs {
		if err := n.driver.RemoveContainer(ctx, c.ID); err != nil {
			t.Errorf("cleanup: remove container %s: %v", c.ID, err)
		}
	}
	sbs, _ := n.driver.Sandboxes(ctx)
	for _, sb := range sbs {
		if err := n.driver.RemoveSandbox(ctx, sb.UID); err != nil {
			t.Errorf("cleanup: remove sandbox %s: %v", sb.UID, err)
		}
	}
	for _, p := range []string{n.cgroup + "/pods", n.cgroup + "/shims", n.cgroup} {
		if err := libct.RemoveCgroup(p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	n.images.Close()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), n.root) {
		t.Errorf("cleanup: mounts left under %s", n.root)
	}
}

func (n *node) open(t *testing.T) runtime.Runtime {
	m, err := lifecycle.New(lifecycle.Config{Driver: n.driver, Backoff: lifecycle.Backoff{Base: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the libcontainer runtime needs root")
	}
	registry := imagetest.StartRegistry(t)
	ref, grpcRef := registry+"/testapp:v1", registry+"/grpchealth:v1"
	imagetest.Push(t, imagetest.TestAppImage(t), ref)
	imagetest.Push(t, imagetest.GRPCHealthImage(t), grpcRef)
	runtimetest.Run(t, func(t *testing.T) *runtimetest.Harness {
		n := newNode(t, registry)
		return &runtimetest.Harness{Open: n.open, Image: ref, MissingImage: registry + "/missing:v1", GRPCImage: grpcRef}
	})
}

// ownerConfig is what the owner process needs to run a pod.
type ownerConfig struct {
	Root, Cgroup, Registry string
	Spec                   runtime.PodSpec
}

// runOwner runs a runtime in this process, ensures one pod, reports its container and waits to be
// killed: it plays a daemon that dies.
func runOwner(raw string) int {
	var cfg ownerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx := context.Background()
	store, err := image.NewStore(ctx, image.Config{Root: filepath.Join(cfg.Root, "images"), InsecureRegistries: []string{cfg.Registry}, Logger: quiet})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	d, err := linux.New(linux.Config{Root: filepath.Join(cfg.Root, "runtime"), Images: store, CgroupParent: cfg.Cgroup})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	m, err := lifecycle.New(lifecycle.Config{Driver: d})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if err := m.EnsurePod(ctx, &cfg.Spec); err != nil {
		fmt.Println("error", err)
		return 1
	}
	for {
		st, err := m.PodStatus(ctx, cfg.Spec.UID)
		if err == nil && len(st.Status.ContainerStatuses) > 0 && st.Status.ContainerStatuses[0].State.Running != nil {
			fmt.Println("running", st.Status.ContainerStatuses[0].ContainerID)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {} // until SIGKILL
}

func testPod(image, name string, args ...string) *runtime.PodSpec {
	pod := &manifests.Pod{
		TypeMeta:   manifests.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       manifests.PodSpec{Containers: []manifests.Container{{Name: "app", Image: image, Args: args}}},
	}
	manifests.SetDefaults(pod)
	return &runtime.PodSpec{UID: name + "-" + fmt.Sprint(time.Now().UnixNano()), Pod: pod}
}

func containerByID(t *testing.T, d *linux.Driver, id string) lifecycle.ContainerInfo {
	t.Helper()
	ctrs, err := d.Containers(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("container %s not found", id)
	return lifecycle.ContainerInfo{}
}

// TestPodsOutliveTheirOwner kills the process that runs the runtime with SIGKILL and checks that
// a new runtime re-adopts the pod: same container, same PID, no restart.
func TestPodsOutliveTheirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the libcontainer runtime needs root")
	}
	registry := imagetest.StartRegistry(t)
	ref := registry + "/testapp:v1"
	imagetest.Push(t, imagetest.TestAppImage(t), ref)
	n := newNode(t, registry)
	n.images.Close() // the owner process opens the store

	spec := testPod(ref, "outlive", "serve", "8080")
	raw, err := json.Marshal(ownerConfig{Root: n.root, Cgroup: n.cgroup, Registry: registry, Spec: *spec})
	if err != nil {
		t.Fatal(err)
	}
	owner := exec.Command(os.Args[0], "-test.run=^$")
	owner.Env = append(os.Environ(), ownerEnv+"="+string(raw))
	out, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	owner.Stderr = os.Stderr
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Process.Kill(); owner.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	var id string
	select {
	case l := <-line:
		var ok bool
		if id, ok = strings.CutPrefix(l, "running "); !ok {
			t.Fatalf("owner: %q", l)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the owner did not start the pod in 60 s")
	}
	if err := owner.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	owner.Wait()

	// A new runtime over the same state: reopen the store, then adopt.
	store, err := image.NewStore(context.Background(), image.Config{Root: filepath.Join(n.root, "images"), InsecureRegistries: []string{registry}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	n.images = store
	d, err := linux.New(linux.Config{Root: filepath.Join(n.root, "runtime"), Images: store, CgroupParent: n.cgroup})
	if err != nil {
		t.Fatal(err)
	}
	n.driver = d
	before := containerByID(t, d, id)
	if before.Status != lifecycle.ContainerRunning || before.PID == 0 {
		t.Fatalf("after SIGKILL of its owner the container is %+v, want it running", before)
	}
	rt := n.open(t)
	defer rt.Close()
	if err := rt.EnsurePod(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := rt.PodStatus(context.Background(), spec.UID)
		if err == nil && len(st.Status.ContainerStatuses) == 1 && st.Status.ContainerStatuses[0].State.Running != nil {
			cs := st.Status.ContainerStatuses[0]
			if cs.ContainerID != id || cs.RestartCount != 0 {
				t.Fatalf("re-adopted as container %s with %d restarts, want %s with none", cs.ContainerID, cs.RestartCount, id)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not running after re-adoption: %+v, %v", st.Status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after := containerByID(t, d, id); after.PID != before.PID {
		t.Errorf("PID changed across re-adoption: %d → %d", before.PID, after.PID)
	}
}

// TestForkBombStopsAtPodPidsLimit runs a fork bomb in a pod: it stops at the pod's pids limit,
// and the node still runs other pods.
func TestForkBombStopsAtPodPidsLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the libcontainer runtime needs root")
	}
	registry := imagetest.StartRegistry(t)
	ref := registry + "/testapp:v1"
	imagetest.Push(t, imagetest.TestAppImage(t), ref)
	n := newNode(t, registry)
	rt, err := lifecycle.New(lifecycle.Config{Driver: n.driver, Policy: lifecycle.Policy{PidsLimit: 64}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	bomb := testPod(ref, "bomb", "forkbomb")
	other := testPod(ref, "other", "serve")
	ctx := context.Background()
	for _, p := range []*runtime.PodSpec{bomb, other} {
		if err := rt.EnsurePod(ctx, p); err != nil {
			t.Fatal(err)
		}
		zero := time.Duration(0)
		defer rt.RemovePod(ctx, p.UID, &zero)
	}
	deadline := time.Now().Add(60 * time.Second)
	var logs strings.Builder
	for !strings.Contains(logs.String(), "started") {
		if time.Now().After(deadline) {
			t.Fatalf("the fork bomb did not report its limit: %q", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
		logs.Reset()
		rt.Logs(ctx, bomb.UID, "app", runtime.LogOptions{}, &logs)
	}
	var started int
	if _, err := fmt.Sscanf(logs.String(), "started %d processes", &started); err != nil || started >= 64 {
		t.Errorf("fork bomb log %q: want fewer than 64 processes started", logs.String())
	}
	for {
		st, err := rt.PodStatus(ctx, other.UID)
		if err == nil && st.Status.Phase == manifests.PodRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another pod did not run beside the fork bomb: %+v", st.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	zero := time.Duration(0)
	if err := rt.RemovePod(ctx, bomb.UID, &zero); err != nil {
		t.Errorf("removing the fork-bombed pod: %v", err)
	}
}

// TestCollectImages removes the image no container uses and keeps the one a pod runs.
func TestCollectImages(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the libcontainer runtime needs root")
	}
	registry := imagetest.StartRegistry(t)
	used, unused := registry+"/testapp:used", registry+"/testapp:unused"
	imagetest.Push(t, imagetest.TestAppImage(t), used)
	imagetest.Push(t, imagetest.TestAppImage(t, imagetest.WithCmd("sleep", "inf")), unused)
	n := newNode(t, registry)
	ctx := context.Background()
	rt := n.open(t)
	defer rt.Close()
	keep, drop := testPod(used, "keep", "serve"), testPod(unused, "drop")
	for _, p := range []*runtime.PodSpec{keep, drop} {
		if err := rt.EnsurePod(ctx, p); err != nil {
			t.Fatal(err)
		}
		waitRunning(t, rt, p.UID)
	}
	zero := time.Duration(0)
	defer rt.RemovePod(ctx, keep.UID, &zero)
	if err := rt.RemovePod(ctx, drop.UID, &zero); err != nil {
		t.Fatal(err)
	}
	// Both images were pulled moments ago: both count as about to be used.
	if res, err := n.driver.CollectImages(ctx); err != nil || len(res.ImagesRemoved) != 0 {
		t.Fatalf("GC right after the pulls removed %v (%v), want nothing", res.ImagesRemoved, err)
	}
	linux.ExpireReservations(n.driver)
	res, err := n.driver.CollectImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ImagesRemoved) != 1 {
		t.Fatalf("GC removed %v, want the unused image only", res.ImagesRemoved)
	}
	if _, err := n.images.Get(ctx, used); err != nil {
		t.Errorf("the image of a running pod was removed: %v", err)
	}
	if _, err := n.images.Get(ctx, unused); err == nil {
		t.Errorf("the unused image is still there")
	}
}
