package reconcile

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

func TestHPARateLimits(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	maxSel, minSel, off := manifests.MaxChangePolicySelect, manifests.MinChangePolicySelect, manifests.DisabledPolicySelect
	up := []manifests.HPAScalingPolicy{{Type: manifests.PodsScalingPolicy, Value: 4, PeriodSeconds: 15}, {Type: manifests.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}
	down := []manifests.HPAScalingPolicy{{Type: manifests.PodsScalingPolicy, Value: 1, PeriodSeconds: 60}, {Type: manifests.PercentScalingPolicy, Value: 50, PeriodSeconds: 60}}
	recent := []HPAScaleEvent{{Time: now.Add(-10 * time.Second), Change: 3}, {Time: now.Add(-30 * time.Second), Change: -2}}
	tests := []struct {
		name   string
		sel    *manifests.ScalingPolicySelect
		events []HPAScaleEvent
		upWant int32
		dnWant int32
	}{
		// From 10 replicas: up by 4 pods or 100% -> max 20; down by 1 pod or 50% -> max change 5.
		{"max", &maxSel, nil, 20, 5},
		{"min", &minSel, nil, 14, 9},
		{"disabled", &off, nil, 10, 10},
		// 3 added 10 s ago: the period started at 7 (up to 14); 2 removed 30 s ago: at 12 (down to 6).
		{"events in the period", &maxSel, recent, 14, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scaleUpLimit(&manifests.HPAScalingRules{SelectPolicy: tt.sel, Policies: up}, tt.events, 10, now); got != tt.upWant {
				t.Errorf("scale-up limit %d, want %d", got, tt.upWant)
			}
			if got := scaleDownLimit(&manifests.HPAScalingRules{SelectPolicy: tt.sel, Policies: down}, tt.events, 10, now); got != tt.dnWant {
				t.Errorf("scale-down limit %d, want %d", got, tt.dnWant)
			}
		})
	}
}

// An autoscaler whose target is not in the commit says so once, not on every pass.
func TestHPAMissingTargetReportedOnce(t *testing.T) {
	objs, errs := manifests.DecodeFile("hpa.yaml", []byte("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\n"+
		"spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 3\n"), manifests.LoadOptions{})
	if errs != nil {
		t.Fatal(errs)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	count := func(p Plan) int {
		n := 0
		for _, e := range p.Events {
			if e.Reason == "FailedGetScale" {
				n++
			}
		}
		return n
	}
	var ids seqIDs
	first := Reconcile(State{Objects: objs, Now: now}, &ids)
	if count(first) != 1 || len(first.Autoscalers) != 1 || first.Autoscalers[0].Conditions[0].Reason != "FailedGetScale" {
		t.Fatalf("first pass: events %+v, autoscalers %+v", first.Events, first.Autoscalers)
	}
	second := Reconcile(State{Objects: objs, Now: now.Add(time.Second),
		Autoscalers: map[string]HPAStatus{"default/web": first.Autoscalers[0]}}, &ids)
	if count(second) != 0 {
		t.Errorf("second pass reported the missing target again: %+v", second.Events)
	}
}
