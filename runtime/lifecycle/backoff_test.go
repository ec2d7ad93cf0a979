package lifecycle

import (
	"testing"
	"time"
)

func TestBackoffKubernetesCurve(t *testing.T) {
	var b Backoff // zero value: Kubernetes' defaults
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second}
	var prev time.Duration
	for i, w := range want {
		prev = b.Next(prev, time.Second)
		if prev != w {
			t.Fatalf("restart %d: delay %v, want %v", i+1, prev, w)
		}
	}
	if got := b.Next(prev, 10*time.Minute); got != 10*time.Second {
		t.Errorf("after a 10 min run: delay %v, want the base 10s", got)
	}
	if got := b.Next(prev, 9*time.Minute); got != 300*time.Second {
		t.Errorf("after a 9 min run: delay %v, want the cap 5m", got)
	}
}

func TestBackoffScaledBase(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond}
	if got := b.Next(0, 0); got != 100*time.Millisecond {
		t.Fatalf("first delay %v, want 100ms", got)
	}
	if got := b.Next(2*time.Second, 0); got != 3*time.Second {
		t.Errorf("cap: %v, want 3s (5 min scaled by base/10s)", got)
	}
	if got := b.Next(time.Second, 6*time.Second); got != 100*time.Millisecond {
		t.Errorf("reset: %v, want base after a run of ResetAfter (6s)", got)
	}
}
