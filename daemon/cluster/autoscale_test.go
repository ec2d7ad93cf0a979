package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

const autoscaledYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: registry.local/app:v1
          args: ["serve", "8080"]
          resources: {requests: {cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
`

// TestAutoscaler: without usage samples an autoscaler says why it does not scale; with its
// pods at twice the target it scales the Deployment up, up to maxReplicas, from what the node
// measures; the replicas it set are shown in its status.
func TestAutoscaler(t *testing.T) {
	c := newTestCluster(t, func(m *MasterConfig) { m.AutoscalerSync = 300 * time.Millisecond })
	one := c.git.commit("", "web autoscaled", map[string]string{"web.yaml": autoscaledYAML})
	c.push(one)
	c.waitFor("the autoscaler waiting for metrics", func(s *Snapshot) bool {
		st := s.Status()
		return len(st.Autoscalers) == 1 && strings.HasPrefix(st.Autoscalers[0].Problem, "FailedGetResourceMetric") && len(s.Placements) == 1
	})
	// Every pod of web uses 100m, twice the target of 50% of its 100m request.
	busy := func(s *Snapshot) {
		for _, pl := range s.Placements {
			c.driver.SetUsage(pl.Spec.UID, "app", 100, 32<<20)
		}
	}
	s := c.waitForWithin("web scaled to maxReplicas", 30*time.Second, func(s *Snapshot) bool {
		busy(s)
		return len(s.Pods()) == 3 && s.Autoscalers["default/web"].DesiredReplicas == 3
	})
	h := s.Autoscalers["default/web"]
	if h.LastScaleTime == nil || len(h.CurrentMetrics) != 1 || *h.CurrentMetrics[0].Resource.Current.AverageUtilization != 100 {
		t.Errorf("status %+v, want a scale time and cpu at 100%%", h.HorizontalPodAutoscalerStatus)
	}
	limited := false
	for _, cond := range h.Conditions {
		if cond.Type == "ScalingLimited" && cond.Status == manifests.ConditionTrue && cond.Reason == "TooManyReplicas" {
			limited = true
		}
	}
	if !limited {
		t.Errorf("conditions %+v, want ScalingLimited TooManyReplicas", h.Conditions)
	}
	if st := s.Status(); st.Autoscalers[0].Desired != 3 || st.Autoscalers[0].Metrics != "cpu: 100%/50%" {
		t.Errorf("status summary %+v", st.Autoscalers[0])
	}
}
