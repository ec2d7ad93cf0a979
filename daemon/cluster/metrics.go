package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
)

// Metrics are the daemon's Prometheus metrics.
type Metrics struct {
	ReconcileDuration prometheus.Histogram
	CommitToConverged prometheus.Histogram
	CommitsApplied    prometheus.Counter
	CommitsRejected   prometheus.Counter
	GitFetchErrors    prometheus.Counter
	GitFetchDuration  prometheus.Histogram
	Pods              *prometheus.GaugeVec
	// StoreWrites counts the keys the master's passes write or delete.
	StoreWrites prometheus.Counter
}

// NewMetrics makes the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ReconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shoal_reconcile_duration_seconds", Help: "Time of one pass of the master's controllers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		CommitToConverged: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shoal_commit_to_converged_seconds", Help: "Time from a commit being seen to every pod of it Ready.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		CommitsApplied:  prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_commits_applied_total", Help: "Commits accepted by the master."}),
		CommitsRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_commits_rejected_total", Help: "Commits refused by the master."}),
		GitFetchErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_git_fetch_errors_total", Help: "Failed fetches of the repository."}),
		GitFetchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shoal_git_fetch_duration_seconds", Help: "Time of a fetch of the repository.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		StoreWrites: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_master_store_writes_total",
			Help: "Keys written or deleted by the master's controller passes."}),
		Pods: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shoal_pods", Help: "Pods of the cluster by phase, as the master sees them."}, []string{"phase"}),
	}
	if reg != nil {
		reg.MustRegister(m.ReconcileDuration, m.CommitToConverged, m.CommitsApplied, m.CommitsRejected,
			m.GitFetchErrors, m.GitFetchDuration, m.Pods, m.StoreWrites)
	}
	return m
}

func (m *Metrics) setPods(pods []reconcile.Pod) {
	counts := map[manifests.PodPhase]float64{manifests.PodPending: 0, manifests.PodRunning: 0, manifests.PodSucceeded: 0, manifests.PodFailed: 0, manifests.PodUnknown: 0}
	for _, p := range pods {
		counts[p.Phase]++
	}
	for phase, n := range counts {
		m.Pods.WithLabelValues(string(phase)).Set(n)
	}
}
