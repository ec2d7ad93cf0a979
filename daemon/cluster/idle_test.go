package cluster

import (
	"testing"
	"time"
)

// Idle nodes write nothing but their heartbeat, every 10 s (nodes without a store member), and
// read nothing: an unchanged pod's status is not written again, and the converged commit comes
// by a watch. (The usage sample that nodes write every 15 s is off in the simulation.)
func TestIdleNodesWriteOnlyTheirHeartbeat(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated cluster of 10 nodes")
	}
	c := newSimCluster(t, 10, 1)
	c.push(t, "", map[string]int{"bulk": 100}, map[string]string{"bulk": "v0"}, time.Minute)
	time.Sleep(2 * time.Second) // the last status reports and the converged commit settle
	r0 := c.agentRequests()
	time.Sleep(3 * time.Second)
	r := c.agentRequests().Sub(r0)
	writes, reads := r.Writes, r.Reads
	t.Logf("10 nodes with 100 pods, idle for 3 s: %d writes, %d reads", writes, reads)
	if writes > 10 || reads != 0 {
		t.Errorf("idle for 3 s, 10 nodes wrote %d times (want at most one heartbeat each) and read %d times (want 0)", writes, reads)
	}
}
