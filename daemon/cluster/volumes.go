package cluster

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

// ReasonFailedMount is the reason of a pod the node holds Pending because the volume of one of
// its claims cannot be made or is missing, as the kubelet's FailedMount event says.
const ReasonFailedMount = "FailedMount"

// claimVolumes is the pod's claims with the directories of their volumes, which the node makes
// for a pod it does not run yet. A pod that runs keeps the volumes it was started with.
func (a *Agent) claimVolumes(pl Placement, running bool) (map[string]runtime.ClaimVolume, error) {
	if a.cfg.Volumes == nil {
		return nil, errors.New("this node keeps no volumes for PersistentVolumeClaims")
	}
	out := maps.Clone(pl.Spec.Claims)
	for name, cv := range out {
		if running {
			cv.Path = a.cfg.Volumes.Path(cv.UID)
		} else {
			path, err := a.cfg.Volumes.Prepare(cv.UID, pl.Spec.Pod.Namespace, name)
			if err != nil {
				return nil, err
			}
			cv.Path = path
		}
		out[name] = cv
	}
	return out, nil
}

// reportHeld writes the status of a pod the node does not start yet: Pending, with reason and
// message.
func (a *Agent) reportHeld(ctx context.Context, pl Placement, reason, msg string) {
	uid := pl.Spec.UID
	digest := "held:" + reason + ":" + msg
	a.mu.Lock()
	done := a.reported[uid] == digest
	a.mu.Unlock()
	if done {
		return
	}
	var ns, name string
	if pl.Spec.Pod != nil {
		ns, name = pl.Spec.Pod.Namespace, pl.Spec.Pod.Name
	}
	a.log.Warn("pod held", "pod", podName(pl), "reason", reason, "message", msg)
	rec := PodStatusRecord{UID: uid, Namespace: ns, Name: name, Node: a.cfg.Node, Reported: time.Now(),
		Status: manifests.PodStatus{Phase: manifests.PodPending, Reason: reason, Message: msg}}
	if err := store.Put(ctx, a.cfg.Store, statusKey(a.cfg.Node, uid), rec); err != nil {
		a.log.Debug("report status", "pod", podName(pl), "err", err)
		return
	}
	a.mu.Lock()
	a.reported[uid] = digest
	delete(a.lastStatus, uid)
	a.mu.Unlock()
}

// reclaim deletes the volumes of released claims that no pod placed here uses any more, then
// their records.
func (a *Agent) reclaim(ctx context.Context, placed map[string]Placement) {
	if a.reclaims == nil || a.cfg.Volumes == nil {
		return
	}
	records := a.reclaims.List()
	if len(records) == 0 {
		return
	}
	inUse := map[string]bool{}
	for _, pl := range placed {
		for _, cv := range pl.Spec.Claims {
			inUse[cv.UID] = true
		}
	}
	for _, kv := range records {
		r := kv.Value
		if inUse[r.UID] {
			continue
		}
		if err := a.cfg.Volumes.Remove(r.UID); err != nil {
			a.log.Warn("delete the volume of a released claim", "claim", r.Namespace+"/"+r.Name, "uid", r.UID, "err", err)
			continue
		}
		if err := store.Delete(ctx, a.cfg.Store, kv.Key); err != nil {
			a.log.Debug("delete reclaim record", "key", kv.Key, "err", err)
			continue
		}
		a.log.Info("deleted the volume of a released claim", "claim", r.Namespace+"/"+r.Name, "uid", r.UID)
	}
}
