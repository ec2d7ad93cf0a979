package lifecycle

import "time"

// Backoff is Kubernetes' crash-loop backoff: a container that exits is restarted after Base, then
// after twice the previous delay, up to Max; once a container has run for ResetAfter, its next exit
// starts again from Base.
type Backoff struct {
	Base       time.Duration // first delay; Kubernetes: 10 s
	Max        time.Duration // cap; Kubernetes: 5 min
	ResetAfter time.Duration // a run this long resets the delay; Kubernetes: 10 min
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

// Next returns the delay before the next restart of a container whose previous delay was prev
// (0 for none yet) and whose last run lasted ran.
func (b Backoff) Next(prev, ran time.Duration) time.Duration {
	b = b.withDefaults()
	if prev <= 0 || ran >= b.ResetAfter {
		return b.Base
	}
	next := prev * 2
	if next > b.Max || next <= 0 {
		next = b.Max
	}
	return next
}
