package lifecycle

import (
	"testing"
	"time"
)

func TestBackoffKubernetesCurve(t *testing.T) {
	var b Backoff // zero value: Kubernetes' defaults
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("restart %d: delay %v, want %v", i+1, got, w)
		}
	}
	if !b.Resets(10*time.Minute) || b.Resets(9*time.Minute) {
		t.Error("a run of 10 min resets the count; one of 9 min does not")
	}
	if got := b.Retry(1); got != 10*time.Second {
		t.Errorf("first pull retry after %v, want 10s", got)
	}
}

func TestBackoffScaledBase(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond}
	if got := b.Delay(2); got != 100*time.Millisecond {
		t.Fatalf("second restart after %v, want 100ms", got)
	}
	if got := b.Delay(20); got != 3*time.Second {
		t.Errorf("cap: %v, want 3s (5 min scaled by base/10s)", got)
	}
	if !b.Resets(6 * time.Second) {
		t.Errorf("a run of ResetAfter (6s) should reset")
	}
}
