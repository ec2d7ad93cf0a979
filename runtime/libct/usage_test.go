package libct

import (
	"testing"

	"github.com/opencontainers/cgroups"
)

// The working set is the usage less the inactive file pages, as cAdvisor computes it: v1 counts
// the cgroup's tree (total_inactive_file), v2 is always hierarchical (inactive_file).
func TestWorkingSet(t *testing.T) {
	tests := []struct {
		name  string
		usage uint64
		stats map[string]uint64
		v2    bool
		want  int64
	}{
		{"v1", 100 << 20, map[string]uint64{"total_inactive_file": 30 << 20, "inactive_file": 10 << 20}, false, 70 << 20},
		{"v2", 100 << 20, map[string]uint64{"inactive_file": 30 << 20, "total_inactive_file": 10 << 20}, true, 70 << 20},
		{"no stat", 5 << 20, map[string]uint64{}, false, 5 << 20},
		{"more inactive than usage", 10 << 20, map[string]uint64{"total_inactive_file": 20 << 20}, false, 0},
		{"nothing", 0, nil, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := cgroups.MemoryStats{Usage: cgroups.MemoryData{Usage: tt.usage}, Stats: tt.stats}
			if got := workingSet(m, tt.v2); got != tt.want {
				t.Errorf("working set = %d, want %d", got, tt.want)
			}
		})
	}
}
