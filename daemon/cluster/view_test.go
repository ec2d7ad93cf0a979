package cluster

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
	"github.com/shoal-dev/shoal/runtime"
)

// The pod index, fed change by change, holds what joining the placements and the status records
// from scratch gives, through binds (a placement moving from pending to a node), status
// reports (from the pod's node, and records left under another node), deletions and
// placements that come back.
func TestPodIndexMatchesAJoinFromScratch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := newPodIndex()
	placements := map[string]Placement{}   // by key
	status := map[string]PodStatusRecord{} // by key
	nodes := []string{"n1", "n2", "n3"}
	for step := range 3000 {
		uid := fmt.Sprint("uid-", rng.IntN(40))
		var at string // the key of uid's placement, if any
		for k, pl := range placements {
			if pl.Spec.UID == uid {
				at = k
			}
		}
		switch op := rng.IntN(5); {
		case at == "" || op == 0: // place it (pending or bound), or replace it
			pl := Placement{Spec: runtime.PodSpec{UID: uid, Pod: &manifests.Pod{}}, Node: nodes[rng.IntN(3)], Commit: fmt.Sprint(step)}
			if rng.IntN(3) == 0 {
				pl.Node, pl.Reason = "", "no node fits"
			}
			key := placementKey(nodeOrPending(pl.Node), uid)
			if at != "" && at != key { // a bind: the old key goes first, as the master writes it
				old := placements[at]
				delete(placements, at)
				x.placed(at, &old, nil)
			}
			old, had := placements[key]
			placements[key] = pl
			if had {
				x.placed(key, &old, &pl)
			} else {
				x.placed(key, nil, &pl)
			}
		case op == 1: // delete it
			old := placements[at]
			delete(placements, at)
			x.placed(at, &old, nil)
		case op == 2 || op == 3: // its node reports
			pl := placements[at]
			key := statusKey(nodeOrPending(pl.Node), uid)
			rec := PodStatusRecord{UID: uid, Node: pl.Node, Status: manifests.PodStatus{Phase: manifests.PodRunning, PodIP: fmt.Sprint("10.0.0.", step%250),
				Conditions: []manifests.PodCondition{{Type: "Ready", Status: []manifests.ConditionStatus{"True", "False"}[rng.IntN(2)]}}}}
			old, had := status[key]
			status[key] = rec
			if had {
				x.reported(key, &old, &rec)
			} else {
				x.reported(key, nil, &rec)
			}
		case op == 4: // a status record goes
			for _, key := range slices.Sorted(maps.Keys(status)) {
				if status[key].UID == uid {
					old := status[key]
					delete(status, key)
					x.reported(key, &old, nil)
					break
				}
			}
		}
		var want []reconcile.Pod
		for _, key := range slices.Sorted(maps.Keys(placements)) {
			pl := placements[key]
			st, ok := status[statusKey(nodeOrPending(pl.Node), pl.Spec.UID)]
			want = append(want, podOf(pl, st, ok))
		}
		got := x.list()
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: the index holds\n%+v\nthe join\n%+v", step, got, want)
		}
		for _, key := range slices.Sorted(maps.Keys(placements)) {
			if k, ok := x.key(placements[key].Spec.UID); !ok || k != key {
				t.Fatalf("step %d: the index has %s under %q, want %q", step, placements[key].Spec.UID, k, key)
			}
		}
	}
}
