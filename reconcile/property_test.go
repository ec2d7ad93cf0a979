package reconcile

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func deploymentYAML(replicas int, image, surge, unavailable string, minReady int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %d
  minReadySeconds: %d
  selector: {matchLabels: {app: web}}
  strategy:
    rollingUpdate: {maxSurge: %s, maxUnavailable: %s}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: example.com/web:%s
        resources: {requests: {cpu: 100m, memory: 64Mi}}
`, replicas, minReady, surge, unavailable, image)
}

// TestRollingUpdateInvariants drives rolling updates through random node
// reports (pods becoming ready or not, stopping, failing, nodes going down
// and coming back, time passing, new templates and replica counts) and
// checks after every plan that no more than replicas+maxSurge pods that are
// not terminating exist when pods are created and that availability never drops below
// replicas-maxUnavailable. Once the nodes behave, the rollout completes.
func TestRollingUpdateInvariants(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5ea1))
			checkRandomRollout(t, int(seed), rng.IntN, 150)
		})
	}
}

// FuzzRollingUpdate is TestRollingUpdateInvariants with the choices taken
// from the fuzzer's bytes.
func FuzzRollingUpdate(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte("\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0"))
	f.Add(uint8(4), []byte("reconcile, report, stop, tick, template, replicas and nodes down"))
	f.Fuzz(func(t *testing.T, bounds uint8, data []byte) {
		next := func(n int) int {
			if len(data) == 0 {
				return 0
			}
			v := int(data[0])
			data = data[1:]
			return v % n
		}
		checkRandomRollout(t, int(bounds), next, min(len(data), 300))
	})
}

// checkRandomRollout plays steps random events, next(n) choosing among n,
// and fails t when an invariant breaks or the rollout does not complete
// once the nodes behave.
func checkRandomRollout(t *testing.T, variant int, next func(n int) int, steps int) {
	t.Helper()
	bounds := [][2]string{{"25%", "25%"}, {"1", "0"}, {"0", "1"}, {"50%", "0"}, {"2", "2"}, {"0", "34%"}}
	b := bounds[variant%len(bounds)]
	replicas := 1 + next(8)
	minReady := []int{0, 0, 5}[next(3)]
	s := newSim()
	for i := 1; i <= 3; i++ {
		s.nodes = append(s.nodes, Node{Name: fmt.Sprintf("n%d", i), Ready: true, Allocatable: Resources{MilliCPU: 4000, Memory: 8 << 30}})
	}
	image := 1
	mustApply := func() {
		if err := s.apply(deploymentYAML(replicas, fmt.Sprint(image), b[0], b[1], minReady)); err != nil {
			t.Fatal(err)
		}
	}
	mustApply()
	s.converge(100)
	var log []string
	pick := func() string {
		if p := next(len(s.pods) + 1); p < len(s.pods) {
			return s.pods[p].Name
		}
		return ""
	}
	for step := range steps {
		var what string
		switch r := next(100); {
		case r < 30:
			s.reconcile()
			what = "reconcile"
		case r < 68:
			report := "ready"
			switch {
			case r >= 65:
				report = "failed"
			case r >= 52:
				report = "stopped"
			case r >= 45:
				report = "notready"
			}
			if name := pick(); name != "" {
				_, _ = s.report(name, report)
				what = report + " " + name
			}
		case r < 78:
			d := time.Duration(1+next(6)) * time.Second
			s.now = s.now.Add(d)
			what = "tick " + d.String()
		case r < 83:
			n := &s.nodes[next(len(s.nodes))]
			if n.Ready {
				n.Ready, n.NotReadySince = false, s.now
				what = "down " + n.Name
			} else {
				n.Ready, n.NotReadySince = true, time.Time{}
				what = "up " + n.Name
			}
		case r < 91:
			image++
			mustApply()
			what = fmt.Sprintf("template %d", image)
		default:
			replicas = 1 + next(8)
			mustApply()
			what = fmt.Sprintf("replicas %d", replicas)
		}
		if what != "" {
			log = append(log, fmt.Sprintf("%d: %s", step, what))
		}
		if len(s.violations) > 0 {
			t.Fatalf("bounds %v, replicas %d: %s\nafter:\n%s", b, replicas,
				strings.Join(s.violations, "\n"), strings.Join(log[max(0, len(log)-30):], "\n"))
		}
	}
	for i := range s.nodes {
		s.nodes[i].Ready, s.nodes[i].NotReadySince = true, time.Time{}
	}
	if s.converge(200) < 0 {
		t.Fatalf("no convergence:\n%s", s.formatPods())
	}
	if len(s.violations) > 0 {
		t.Fatal(strings.Join(s.violations, "\n"))
	}
	st := s.last.Deployments[0]
	if !st.Complete || int(st.Replicas) != replicas {
		t.Fatalf("rollout not complete: %s\n%s", formatStatus(st), s.formatPods())
	}
}
