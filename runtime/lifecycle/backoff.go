package lifecycle

import "time"

// Backoff is Kubernetes' crash-loop backoff: a container that exits is restarted at once the
// first time, then after Base, then after twice the previous delay, up to Max; a container that
// ran for ResetAfter starts the count again (its next exit restarts it at once).
type Backoff struct {
	Base       time.Duration // first delay; Kubernetes: 10 s
	Max        time.Duration // cap; Kubernetes: 5 min
	ResetAfter time.Duration // a run this long resets the count; Kubernetes: 10 min
}

// DefaultBackoff is the kubelet's crash-loop backoff.
var DefaultBackoff = Backoff{Base: 10 * time.Second, Max: 5 * time.Minute, ResetAfter: 10 * time.Minute}

// withDefaults fills zero fields from DefaultBackoff, scaled to Base when only Base is set so that
// tests can shrink the whole curve by setting Base alone.
func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		return DefaultBackoff
	}
	scale := float64(b.Base) / float64(DefaultBackoff.Base)
	if b.Max <= 0 {
		b.Max = time.Duration(float64(DefaultBackoff.Max) * scale)
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = time.Duration(float64(DefaultBackoff.ResetAfter) * scale)
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	return b
}

// Delay returns the wait before the n-th consecutive restart (n ≥ 1): none for the first,
// then Base, 2×Base, 4×Base ... up to Max.
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	if n <= 1 {
		return 0
	}
	d := b.Base
	for i := 2; i < n; i++ {
		d *= 2
		if d >= b.Max || d <= 0 {
			return b.Max
		}
	}
	return d
}

// Resets reports whether a run that lasted ran resets the count of consecutive restarts.
func (b Backoff) Resets(ran time.Duration) bool {
	return ran >= b.withDefaults().ResetAfter
}

// Retry returns the wait before the n-th retry (n ≥ 1) of something that failed to start, such as
// an image pull: Base, 2×Base, ... up to Max.
func (b Backoff) Retry(n int) time.Duration {
	return b.Delay(n + 1)
}
