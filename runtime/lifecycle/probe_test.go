package lifecycle

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestProbeResultThresholds(t *testing.T) {
	timing := ProbeTiming{SuccessThreshold: 2, FailureThreshold: 3}.withDefaults()
	tests := []struct {
		name    string
		initial bool
		seq     []bool
		changes []bool // the held result after each change
	}{
		{"readiness needs two successes", false, []bool{true, true, true}, []bool{true}},
		{"a single success is not enough", false, []bool{true, false, true, false}, nil},
		{"liveness fails after three failures", true, []bool{false, false, false, false}, []bool{false}},
		{"a success resets the failure count", true, []bool{false, false, true, false, false}, nil},
		{"startup never succeeding reports failure at the threshold", false, []bool{false, false, false, false}, []bool{false}},
		{"flap", true, []bool{false, false, false, true, true, false}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probeResult{ok: tt.initial}
			var got []bool
			for _, ok := range tt.seq {
				if r.observe(timing, ok) {
					got = append(got, r.ok)
				}
			}
			if len(got) != len(tt.changes) {
				t.Fatalf("changes %v, want %v", got, tt.changes)
			}
			for i := range got {
				if got[i] != tt.changes[i] {
					t.Fatalf("changes %v, want %v", got, tt.changes)
				}
			}
		})
	}
}

func TestRunProbeHonoursDelayAndTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timing := ProbeTiming{InitialDelay: 50 * time.Millisecond, Period: 10 * time.Millisecond, Timeout: 20 * time.Millisecond, FailureThreshold: 2}
	start := time.Now()
	var mu sync.Mutex
	var first time.Time
	var results []bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		runProbe(ctx, timing, start, true, func(ctx context.Context) error {
			mu.Lock()
			if first.IsZero() {
				first = time.Now()
			}
			mu.Unlock()
			<-ctx.Done() // hangs: only the timeout ends it
			return errors.New("timed out")
		}, func(ok bool) {
			mu.Lock()
			results = append(results, ok)
			mu.Unlock()
			cancel()
		})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("probe loop did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if d := first.Sub(start); d < timing.InitialDelay {
		t.Errorf("first probe after %v, want at least the initial delay %v", d, timing.InitialDelay)
	}
	if len(results) != 1 || results[0] {
		t.Errorf("results %v, want one failure after timeouts", results)
	}
}
