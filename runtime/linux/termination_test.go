package linux_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/imagetest"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"github.com/shoal-dev/shoal/runtime/linux"
)

// TestStateOnDiskOutlivesTheDriver checks what a new driver over the same state finds of a pod
// whose container exited while no driver ran: its exit code, its termination message (read from
// the file the container wrote) and the pod's start time.
func TestStateOnDiskOutlivesTheDriver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the libcontainer runtime needs root")
	}
	registry := imagetest.StartRegistry(t)
	ref := registry + "/testapp:v1"
	imagetest.Push(t, imagetest.TestAppImage(t), ref)
	n := newNode(t, registry)
	ctx := context.Background()

	spec := testPod(ref, "message", "crash", "3", "4")
	spec.Pod.Spec.RestartPolicy = manifests.RestartPolicyNever
	rt := n.open(t)
	if err := rt.EnsurePod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, rt, spec.UID)
	first, err := rt.PodStatus(ctx, spec.UID)
	if err != nil {
		t.Fatal(err)
	}
	code, err := rt.Exec(ctx, spec.UID, "app", runtime.ExecOptions{Command: []string{"/testapp", "write", "/dev/termination-log", "written before"}})
	if err != nil || code != 0 {
		t.Fatalf("write the termination message: code %d, err %v", code, err)
	}
	rt.Close()

	d, err := linux.New(linux.Config{Root: filepath.Join(n.root, "runtime"), Images: n.images, CgroupParent: n.cgroup})
	if err != nil {
		t.Fatal(err)
	}
	n.driver = d
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctrs, err := d.Containers(ctx, spec.UID)
		if err == nil && len(ctrs) == 1 && ctrs[0].Status == lifecycle.ContainerExited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not exit: %+v, %v", ctrs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	rt2 := n.open(t)
	defer rt2.Close()
	zero := time.Duration(0)
	defer rt2.RemovePod(ctx, spec.UID, &zero)
	if err := rt2.EnsurePod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := rt2.PodStatus(ctx, spec.UID)
		if err == nil && st.Status.Phase == manifests.PodFailed {
			term := st.Status.ContainerStatuses[0].State.Terminated
			if term == nil || term.ExitCode != 4 || term.Message != "written before" {
				t.Errorf("terminated state %+v, want exit code 4 and the message written before", term)
			}
			if !st.Status.StartTime.Equal(first.Status.StartTime.Time) {
				t.Errorf("start time %v, want the pod's first start time %v", st.Status.StartTime, first.Status.StartTime)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not Failed: %+v, %v", st.Status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
