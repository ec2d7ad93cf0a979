package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/fake"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

func hostPortPlacement(uid, name string, created time.Time, ports ...manifests.ContainerPort) Placement {
	pod := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default"},
		Spec: manifests.PodSpec{Containers: []manifests.Container{{Name: "app", Image: "registry.local/app:v1",
			Args: []string{"serve", "8080"}, Ports: ports}}}}
	manifests.SetDefaults(pod)
	return Placement{Spec: runtime.PodSpec{UID: uid, Pod: pod}, Node: "n1", Created: created}
}

func tcpHostPort(host, container int32) manifests.ContainerPort {
	return manifests.ContainerPort{ContainerPort: container, HostPort: host, Protocol: manifests.ProtocolTCP}
}

func TestAdmitHostPorts(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pod := func(uid string, age int, running, terminating bool, ports ...manifests.ContainerPort) hostPortPod {
		pl := hostPortPlacement(uid, "pod-"+uid, t0.Add(time.Duration(age)*time.Second), ports...)
		pl.Terminating = terminating
		return hostPortPod{pl: pl, ports: podHostPorts(pl.Spec), running: running}
	}
	udp := manifests.ContainerPort{ContainerPort: 53, HostPort: 53, Protocol: manifests.ProtocolUDP}
	onIP := func(ip string, p manifests.ContainerPort) manifests.ContainerPort { p.HostIP = ip; return p }
	tests := []struct {
		name      string
		pods      []hostPortPod
		decided   map[string]string
		noNetwork bool
		admitted  []string
		rejected  []string
		waiting   []string
	}{
		{name: "different ports", pods: []hostPortPod{pod("a", 0, false, false, tcpHostPort(80, 80)), pod("b", 1, false, false, tcpHostPort(81, 80))},
			admitted: []string{"a", "b"}},
		{name: "older pod wins", pods: []hostPortPod{pod("b", 1, false, false, tcpHostPort(80, 80)), pod("a", 0, false, false, tcpHostPort(80, 80))},
			admitted: []string{"a"}, rejected: []string{"b"}},
		{name: "running pod wins over an older new one", pods: []hostPortPod{pod("a", 0, false, false, tcpHostPort(80, 80)), pod("b", 1, true, false, tcpHostPort(80, 80))},
			admitted: []string{"b"}, rejected: []string{"a"}},
		{name: "admitted before wins", pods: []hostPortPod{pod("a", 0, false, false, tcpHostPort(80, 80)), pod("b", 1, false, false, tcpHostPort(80, 80))},
			decided: map[string]string{"b": ""}, admitted: []string{"b"}, rejected: []string{"a"}},
		{name: "refused stays refused", pods: []hostPortPod{pod("a", 0, false, false, tcpHostPort(80, 80))},
			decided: map[string]string{"a": "Pod was rejected: x"}, rejected: []string{"a"}},
		{name: "same port, other protocol", pods: []hostPortPod{pod("a", 0, false, false, tcpHostPort(53, 53)), pod("b", 1, false, false, udp)},
			admitted: []string{"a", "b"}},
		{name: "other host IPs", pods: []hostPortPod{pod("a", 0, false, false, onIP("10.0.0.1", tcpHostPort(80, 80))), pod("b", 1, false, false, onIP("10.0.0.2", tcpHostPort(80, 80)))},
			admitted: []string{"a", "b"}},
		{name: "every address against one", pods: []hostPortPod{pod("a", 0, false, false, onIP("10.0.0.1", tcpHostPort(80, 80))), pod("b", 1, false, false, onIP("0.0.0.0", tcpHostPort(80, 80)))},
			admitted: []string{"a"}, rejected: []string{"b"}},
		{name: "terminating pod: wait", pods: []hostPortPod{pod("old", 0, true, true, tcpHostPort(80, 80)), pod("new", 1, false, false, tcpHostPort(80, 80))},
			waiting: []string{"new"}},
		{name: "no pod network", pods: []hostPortPod{pod("a", 0, false, false, tcpHostPort(80, 80))}, noNetwork: true, rejected: []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.decided == nil {
				tc.decided = map[string]string{}
			}
			d := admitHostPorts("n1", tc.pods, tc.decided, tc.noNetwork)
			var rejected, waiting []string
			for uid, msg := range d.rejected {
				rejected = append(rejected, uid)
				if !strings.HasPrefix(msg, "Pod was rejected: ") {
					t.Errorf("message %q", msg)
				}
			}
			for uid := range d.waiting {
				waiting = append(waiting, uid)
			}
			slices.Sort(rejected)
			slices.Sort(waiting)
			if fmt.Sprint(d.admitted) != fmt.Sprint(tc.admitted) || fmt.Sprint(rejected) != fmt.Sprint(tc.rejected) || fmt.Sprint(waiting) != fmt.Sprint(tc.waiting) {
				t.Errorf("admitted %v rejected %v waiting %v; want %v, %v, %v", d.admitted, rejected, waiting, tc.admitted, tc.rejected, tc.waiting)
			}
		})
	}
}

// recordingForwarder is a network plane that records the host ports declared to it.
type recordingForwarder struct {
	mu   sync.Mutex
	last []HostPort
}

func (f *recordingForwarder) SetHostPorts(_ context.Context, ports []HostPort) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = slices.Clone(ports)
	return nil, nil
}

func (f *recordingForwarder) uids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.last {
		out = append(out, fmt.Sprintf("%s:%d/%s", p.UID, p.HostPort, p.Protocol))
	}
	slices.Sort(out)
	return out
}

// agentEnv is a store and a node agent over the fake runtime, without a master: the test writes
// the placements itself.
type agentEnv struct {
	t   *testing.T
	ctx context.Context
	st  *store.Client
	rt  runtime.Runtime
}

func newAgentEnv(t *testing.T) *agentEnv {
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := store.StartEmbedded(ctx, store.EmbedConfig{Dir: t.TempDir(), Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Connect(ctx, store.Config{Endpoints: emb.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := lifecycle.New(lifecycle.Config{Driver: fake.New(fake.TestAppImage("registry.local/app:v1"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		rt.Close()
		st.Close()
		emb.Close()
	})
	return &agentEnv{t: t, ctx: ctx, st: st, rt: rt}
}

// runAgent runs an agent until the returned stop is called (or the test ends).
func (e *agentEnv) runAgent(fw HostPortForwarder) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	agent := NewAgent(AgentConfig{Node: "n1", Store: e.st, Runtime: e.rt, TTL: time.Second, HostPorts: fw})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = agent.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

func (e *agentEnv) place(pl Placement) {
	e.t.Helper()
	if err := store.Put(e.ctx, e.st, placementKey("n1", pl.Spec.UID), pl); err != nil {
		e.t.Fatal(err)
	}
}

func (e *agentEnv) status(uid string) (PodStatusRecord, bool) {
	rec, _, found, err := store.Get[PodStatusRecord](e.ctx, e.st, statusKey("n1", uid))
	if err != nil {
		e.t.Fatal(err)
	}
	return rec, found
}

func (e *agentEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *agentEnv) running(uid string) bool {
	rec, ok := e.status(uid)
	return ok && rec.Status.Phase == manifests.PodRunning
}

func TestAgentRefusesPodWhoseHostPortIsTaken(t *testing.T) {
	e := newAgentEnv(t)
	fw := &recordingForwarder{}
	stop := e.runAgent(fw)
	t0 := time.Now()
	e.place(hostPortPlacement("uid-a", "a", t0, tcpHostPort(8080, 8080)))
	e.waitFor("pod a running", func() bool { return e.running("uid-a") })
	e.place(hostPortPlacement("uid-b", "b", t0.Add(time.Second), tcpHostPort(8080, 8080)))
	e.place(hostPortPlacement("uid-c", "c", t0.Add(2*time.Second), manifests.ContainerPort{ContainerPort: 8080, HostPort: 8080, Protocol: manifests.ProtocolUDP}))
	e.waitFor("pod b refused", func() bool {
		rec, ok := e.status("uid-b")
		return ok && rec.Status.Phase == manifests.PodFailed
	})
	rec, _ := e.status("uid-b")
	if rec.Status.Reason != ReasonNodePorts || !strings.Contains(rec.Status.Message, "hostPort 8080/TCP on 0.0.0.0 is already used by pod default/a on node n1") {
		t.Errorf("pod b status: reason %q message %q", rec.Status.Reason, rec.Status.Message)
	}
	e.waitFor("pod c running", func() bool { return e.running("uid-c") })
	if got, want := fw.uids(), []string{"uid-a:8080/TCP", "uid-c:8080/UDP"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("declared host ports %v, want %v", got, want)
	}
	if _, err := e.rt.PodStatus(e.ctx, "uid-b"); err == nil {
		t.Error("the refused pod runs")
	}

	// Pod a goes while the agent is down: b was refused and stays so after a restart.
	stop()
	if err := e.rt.RemovePod(e.ctx, "uid-a", nil); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(e.ctx, e.st, placementKey("n1", "uid-a")); err != nil {
		t.Fatal(err)
	}
	fw2 := &recordingForwarder{}
	e.runAgent(fw2)
	e.waitFor("ports declared after restart", func() bool { return len(fw2.uids()) > 0 })
	time.Sleep(1500 * time.Millisecond) // a sync or two more
	if got, want := fw2.uids(), []string{"uid-c:8080/UDP"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("declared host ports after restart %v, want %v", got, want)
	}
	if _, err := e.rt.PodStatus(e.ctx, "uid-b"); err == nil {
		t.Error("the refused pod runs after a restart")
	}
	if rec, _ := e.status("uid-b"); rec.Status.Phase != manifests.PodFailed {
		t.Errorf("pod b phase %s after restart", rec.Status.Phase)
	}
}

func TestAgentWithoutPodNetworkRefusesHostPorts(t *testing.T) {
	e := newAgentEnv(t)
	e.runAgent(nil)
	e.place(hostPortPlacement("uid-a", "a", time.Now(), tcpHostPort(8080, 8080)))
	e.place(hostPortPlacement("uid-b", "b", time.Now()))
	e.waitFor("pod b running", func() bool { return e.running("uid-b") })
	e.waitFor("pod a refused", func() bool {
		rec, ok := e.status("uid-a")
		return ok && rec.Status.Phase == manifests.PodFailed && strings.Contains(rec.Status.Message, "--pod-network none")
	})
}
