package lifecycle

import (
	"context"
	"time"
)

// ProbeTiming holds a probe's timing fields, as Kubernetes defines them.
type ProbeTiming struct {
	InitialDelay     time.Duration // before the first probe, counted from the container's start
	Period           time.Duration // between probes
	Timeout          time.Duration // for one probe
	SuccessThreshold int           // consecutive successes to turn a failed result into success
	FailureThreshold int           // consecutive failures to turn a successful result into failure
}

func (t ProbeTiming) withDefaults() ProbeTiming {
	if t.Period <= 0 {
		t.Period = 10 * time.Second
	}
	if t.Timeout <= 0 {
		t.Timeout = time.Second
	}
	if t.SuccessThreshold <= 0 {
		t.SuccessThreshold = 1
	}
	if t.FailureThreshold <= 0 {
		t.FailureThreshold = 3
	}
	return t
}

// probeResult is the outcome the kubelet holds for one probe of one container.
type probeResult struct {
	ok        bool
	successes int // consecutive
	failures  int // consecutive
}

// observe records one probe outcome and reports whether the held result changed. The result only
// flips after SuccessThreshold consecutive successes or FailureThreshold consecutive failures.
func (r *probeResult) observe(t ProbeTiming, ok bool) (changed bool) {
	if ok {
		r.successes++
		r.failures = 0
		if !r.ok && r.successes >= t.SuccessThreshold {
			r.ok = true
			return true
		}
		return false
	}
	r.failures++
	r.successes = 0
	if r.ok && r.failures >= t.FailureThreshold {
		r.ok = false
		return true
	}
	// A probe that starts out failed (readiness, startup) reports failure once the threshold is met,
	// so the caller can act on a startup probe that never succeeds.
	return !r.ok && r.failures == t.FailureThreshold
}

// runProbe probes every Period, starting InitialDelay after started, until ctx ends. It calls
// onChange with the new result whenever the held result changes (and once when a probe that starts
// failed reaches its failure threshold). initial is the result held before the first probe:
// false for readiness and startup, true for liveness.
func runProbe(ctx context.Context, t ProbeTiming, started time.Time, initial bool,
	check func(ctx context.Context) error, onChange func(ok bool)) {
	t = t.withDefaults()
	res := probeResult{ok: initial}
	wait := time.Until(started.Add(t.InitialDelay))
	if wait < 0 {
		wait = 0
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		pctx, cancel := context.WithTimeout(ctx, t.Timeout)
		err := check(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if res.observe(t, err == nil) {
			onChange(res.ok)
		}
		timer.Reset(t.Period)
	}
}
