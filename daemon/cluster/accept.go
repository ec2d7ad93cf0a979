package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shoal-dev/shoal/daemon/sealing"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shoal-dev/shoal/daemon/revision"
)

// accept validates a new head and, when it is good, makes its objects the desired state.
func (m *Master) accept(ctx context.Context, lead *store.Leadership, h revision.Head) error {
	if h.SHA == "" {
		return nil
	}
	applied, _, _, err := store.Get[AppliedRecord](ctx, m.cfg.Store, appliedKey)
	if err != nil {
		return err
	}
	if applied.SHA == h.SHA {
		return nil
	}
	prev, _, found, err := store.Get[CommitRecord](ctx, m.cfg.Store, seenKey(h.SHA))
	if err != nil {
		return fmt.Errorf("read commit %s: %w", short7(h.SHA), err)
	}
	if found && prev.Result == ResultRejected {
		return nil // rejected before; a new commit is needed
	}
	info, err := m.cfg.Git.Commit(ctx, h.SHA)
	if err != nil {
		return err
	}
	rec := CommitRecord{SHA: h.SHA, Author: info.Author, Message: info.Message, Time: info.Time, SeenAt: h.SeenAt}
	reject := func(reasons ...string) error {
		rec.Result, rec.Reasons = ResultRejected, reasons
		m.cfg.Metrics.CommitsRejected.Inc()
		m.log.Warn("commit rejected", "sha", h.SHA, "reasons", len(reasons), "first", reasons[0])
		if _, err := lead.Txn(ctx, putOp(seenKey(h.SHA), rec)); err != nil {
			return err
		}
		m.emit(ctx, lead, Event{Type: "Warning", Reason: "CommitRejected", Object: "Commit " + short7(h.SHA), Message: reasons[0]})
		return nil
	}
	if applied.SHA != "" {
		ok, err := m.cfg.Git.IsAncestor(ctx, applied.SHA, h.SHA)
		if err != nil {
			return err
		}
		if !ok {
			return reject(fmt.Sprintf("commit %s does not descend from the applied commit %s: the branch was rewritten (force-push?). Shoal only moves forward; to go back, push a revert commit", short7(h.SHA), short7(applied.SHA)))
		}
	}
	if m.cfg.Keyring != "" {
		if err := m.cfg.Git.Verify(ctx, applied.SHA, h.SHA, m.cfg.Keyring); err != nil {
			return reject("signature check: " + err.Error())
		}
	}
	tree, dir, err := m.cfg.Git.RepoTree(ctx, h.SHA)
	if err != nil {
		return reject("read the commit's tree: " + err.Error())
	}
	set, err := manifests.LoadFS(ctx, tree, dir, m.cfg.Load)
	if err != nil {
		var list manifests.ErrorList
		if errors.As(err, &list) {
			reasons := make([]string, len(list))
			for i, e := range list {
				reasons[i] = e.Error()
			}
			return reject(reasons...)
		}
		return reject(err.Error())
	}
	// Stage the objects, then flip the applied key: a commit is applied whole or not at all.
	if err := m.stage(ctx, lead, h.SHA, set.Objects); err != nil {
		return err
	}
	rec.Result, rec.Objects, rec.Warnings = ResultApplied, len(set.Objects), set.Warnings.Warnings()
	// The flip deletes the old commit's objects in the same write: once the new commit is
	// applied, a retry would not come back to them.
	flip := []clientv3.Op{
		putOp(appliedKey, AppliedRecord{SHA: h.SHA, AppliedAt: time.Now(), Objects: len(set.Objects)}),
		putOp(seenKey(h.SHA), rec),
	}
	if applied.SHA != "" {
		flip = append(flip, clientv3.OpDelete(desiredPrefix+applied.SHA+"/", clientv3.WithPrefix()))
	}
	resp, err := lead.Txn(ctx, flip...)
	if err != nil {
		return err
	}
	m.wrote = max(m.wrote, resp.Header.Revision) // the next pass reads the new commit
	m.mu.Lock()
	m.objects = map[string][]manifests.Object{h.SHA: set.Objects}
	m.mu.Unlock()
	m.cfg.Metrics.CommitsApplied.Inc()
	m.log.Info("commit applied", "sha", h.SHA, "objects", len(set.Objects), "warnings", len(rec.Warnings), "message", info.Message)
	for _, w := range rec.Warnings {
		m.log.Warn("commit applied with a warning", "sha", h.SHA, "warning", w)
	}
	m.emit(ctx, lead, Event{Type: "Normal", Reason: "CommitApplied", Object: "Commit " + short7(h.SHA), Message: fmt.Sprintf("%d objects: %s", len(set.Objects), info.Message)})
	return nil
}

func short7(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// desired returns the applied commit's objects, from memory or the store.
func (m *Master) desired(ctx context.Context, sha string) ([]manifests.Object, error) {
	m.mu.Lock()
	objs, ok := m.objects[sha]
	m.mu.Unlock()
	if ok {
		return objs, nil
	}
	kvs, rev, err := store.List[json.RawMessage](ctx, m.cfg.Store, desiredPrefix+sha+"/")
	if err != nil {
		return nil, err
	}
	// The keyring as it was when the objects were read: a rotation may have removed a key they
	// used since, and re-encrypted them.
	var kr *sealing.Keyring
	if m.cfg.Keys != nil && slices.ContainsFunc(kvs, func(kv store.KV[json.RawMessage]) bool { return sealing.IsEnvelope(kv.Value) }) {
		if kr, _, _, err = readKeyring(ctx, m.cfg.Store, m.cfg.Keys, &m.keyrings, rev); err != nil {
			return nil, err
		}
	}
	objs, err = decodeObjects(kvs, kr, errors.New("no keyring is stored"), false)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.objects = map[string][]manifests.Object{sha: objs}
	m.mu.Unlock()
	return objs, nil
}

// stage writes the objects of commit sha as the desired state to be (desired/<sha>/...), 64 to
// a write. With Keys, every Secret is written encrypted with the keyring's primary key, and
// every write only while the keyring is the one it was encrypted with: once a rotation has
// changed it, the commit is staged again with the new one, so that no value ever uses a key the
// rotation removes.
func (m *Master) stage(ctx context.Context, lead *store.Leadership, sha string, objs []manifests.Object) error {
	var kr *sealing.Keyring
	var cmps []clientv3.Cmp
	if m.cfg.Keys != nil && slices.ContainsFunc(objs, func(o manifests.Object) bool { _, ok := o.(*manifests.Secret); return ok }) {
		var rev int64
		var err error
		if kr, rev, err = m.masterKeyring(ctx, lead); err != nil {
			return err
		}
		cmps = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(keyringKey), "=", rev)}
	}
	var ops []clientv3.Op
	for _, o := range objs {
		key := desiredKey(sha, manifests.KeyOf(o))
		if _, secret := o.(*manifests.Secret); secret && kr != nil {
			val, err := sealValue(kr, key, o)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(key, val))
			continue
		}
		ops = append(ops, putOp(key, o))
	}
	for len(ops) > 0 {
		n := min(len(ops), 64)
		if _, ok, err := fencedTxn(ctx, m.cfg.Store, lead, cmps, ops[:n]...); err != nil {
			return err
		} else if !ok {
			return errKeyringChanged
		}
		ops = ops[n:]
	}
	return nil
}
