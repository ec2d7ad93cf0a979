package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/daemon/sealing"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// SecretsReport is what `shoal secrets status` and `shoal secrets rotate-key` show: the keys of
// the keyring and what uses them, and what a rotation did.
type SecretsReport struct {
	Primary string   `json:"primary"`
	Keys    []KeyUse `json:"keys"`
	// Plain counts the Secrets of the desired state stored in plain text (staged before the
	// cluster encrypted them); a rotation encrypts them.
	Plain int `json:"plain"`

	// What a rotation did: the key it added (none when it finished one cut short, Resumed), the
	// Secrets it encrypted again and the keys it removed.
	Added       string   `json:"added,omitempty"`
	Resumed     bool     `json:"resumed,omitempty"`
	Reencrypted int      `json:"reencrypted,omitempty"`
	Removed     []string `json:"removed,omitempty"`
}

// KeyUse is one key of the keyring and how many stored Secrets it encrypts.
type KeyUse struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Primary bool      `json:"primary,omitempty"`
	Secrets int       `json:"secrets"`
}

// stored is one value under the desired prefix as a rotation reads it.
type stored struct {
	key    string
	value  []byte
	modRev int64
}

// keyringState is the keyring and the desired state's values, read at one revision.
type keyringState struct {
	kr      *sealing.Keyring
	krRev   int64 // the keyring's modification revision, 0 when there is none
	secrets []stored
}

// secretsKeys checks that this backend can open the keyring.
func (b *Backend) secretsKeys() error {
	switch {
	case b.Keys == nil:
		return ErrNotEncrypted
	case b.Keys.CAKey == nil:
		return ErrNoCAKey
	}
	return nil
}

// readKeyringState reads the keyring and every Secret of the desired state at one revision.
func (b *Backend) readKeyringState(ctx context.Context) (keyringState, error) {
	resp, err := b.Store.Etcd().Get(ctx, desiredPrefix, clientv3.WithPrefix())
	if err != nil {
		return keyringState{}, fmt.Errorf("read the desired state: %w", err)
	}
	var st keyringState
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		if _, kind, _, _, ok := desiredParts(key); ok && (kind == "Secret" || sealing.IsEnvelope(kv.Value)) {
			st.secrets = append(st.secrets, stored{key: key, value: kv.Value, modRev: kv.ModRevision})
		}
	}
	kr, rev, found, err := readKeyring(ctx, b.Store, b.Keys, &b.keyrings, resp.Header.Revision)
	if err != nil {
		return keyringState{}, err
	}
	if found {
		st.kr, st.krRev = kr, rev
	}
	return st, nil
}

// report counts what uses each key.
func (st keyringState) report() SecretsReport {
	var rep SecretsReport
	uses := map[string]int{}
	for _, s := range st.secrets {
		if e, ok, err := sealing.ParseEnvelope(s.value); !ok {
			rep.Plain++
		} else if err == nil {
			uses[e.Key]++
		}
	}
	if st.kr == nil {
		return rep
	}
	rep.Primary = st.kr.Primary
	for _, k := range st.kr.Keys {
		rep.Keys = append(rep.Keys, KeyUse{ID: k.ID, Created: k.Created, Primary: k.ID == st.kr.Primary, Secrets: uses[k.ID]})
	}
	return rep
}

// SecretsStatus reports the keyring's keys and how many of the stored Secrets each encrypts.
func (b *Backend) SecretsStatus(ctx context.Context) (SecretsReport, error) {
	if err := b.secretsKeys(); err != nil {
		return SecretsReport{}, err
	}
	st, err := b.readKeyringState(ctx)
	if err != nil {
		return SecretsReport{}, err
	}
	return st.report(), nil
}

// RotateSecretsKey rotates the keyring's key: it adds a new primary key (one write), encrypts
// every stored Secret of the desired state again with it (and those stored in plain text), then
// removes the other keys once nothing uses them. Every write compares what it replaces, so a
// master staging a commit meanwhile, or another rotation, is never overwritten; and since keys
// are removed only once unused, the keyring and every Secret stay readable wherever the
// rotation stops (a crash, kill -9). A rotation that finds more than one key finishes the one
// cut short instead of adding another key.
func (b *Backend) RotateSecretsKey(ctx context.Context) (SecretsReport, error) {
	if err := b.secretsKeys(); err != nil {
		return SecretsReport{}, err
	}
	var rep SecretsReport
	if err := b.addPrimary(ctx, &rep); err != nil {
		return rep, err
	}
	if err := b.step("keyring"); err != nil {
		return rep, err
	}
	for attempt := 0; ; attempt++ {
		if attempt == 50 {
			return rep, errors.New("the stored Secrets change under the rotation (commits staged meanwhile): run it again")
		}
		st, err := b.readKeyringState(ctx)
		if err != nil {
			return rep, err
		}
		if st.kr == nil {
			return rep, errors.New("the keyring is gone from the store: run the rotation again")
		}
		done, err := b.reencrypt(ctx, st, &rep)
		if err != nil {
			return rep, err
		}
		if !done {
			continue
		}
		if err := b.step("reencrypted"); err != nil {
			return rep, err
		}
		// Nothing uses the other keys: they go, if the keyring is still the one read.
		if len(st.kr.Keys) > 1 {
			kept := cloneKeyring(st.kr)
			kept.Retain(func(string) bool { return false })
			val, err := sealing.SealKeyring(b.Keys.CAKey, kept, []byte(keyringKey))
			if err != nil {
				return rep, err
			}
			resp, err := b.Store.Etcd().Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(keyringKey), "=", st.krRev)).
				Then(clientv3.OpPut(keyringKey, string(val))).Commit()
			if err != nil {
				return rep, fmt.Errorf("remove the old keys: %w", err)
			}
			if !resp.Succeeded {
				continue // the keyring changed (another rotation): look again
			}
			for _, id := range st.kr.IDs() {
				if id != st.kr.Primary {
					rep.Removed = append(rep.Removed, id)
				}
			}
		}
		final, err := b.readKeyringState(ctx)
		if err != nil {
			return rep, err
		}
		now := final.report()
		rep.Primary, rep.Keys, rep.Plain = now.Primary, now.Keys, now.Plain
		return rep, nil
	}
}

// addPrimary adds a new primary key to the keyring, creating it when there is none, unless a
// rotation cut short left more than one key.
func (b *Backend) addPrimary(ctx context.Context, rep *SecretsReport) error {
	for range 10 {
		kr, rev, found, err := readKeyring(ctx, b.Store, b.Keys, &b.keyrings, 0)
		if err != nil {
			return err
		}
		cmp := clientv3.Compare(clientv3.ModRevision(keyringKey), "=", rev)
		var next *sealing.Keyring
		switch {
		case !found:
			if next, err = sealing.NewKeyring(time.Now()); err != nil {
				return err
			}
			cmp = clientv3.Compare(clientv3.CreateRevision(keyringKey), "=", 0)
		case len(kr.Keys) > 1:
			rep.Resumed = true
			return nil
		default:
			next = cloneKeyring(kr)
			if _, err := next.AddPrimary(time.Now()); err != nil {
				return err
			}
		}
		val, err := sealing.SealKeyring(b.Keys.CAKey, next, []byte(keyringKey))
		if err != nil {
			return err
		}
		resp, err := b.Store.Etcd().Txn(ctx).If(cmp).Then(clientv3.OpPut(keyringKey, string(val))).Commit()
		if err != nil {
			return fmt.Errorf("write the keyring: %w", err)
		}
		if resp.Succeeded {
			rep.Added = next.Primary
			return nil
		}
	}
	return errors.New("the keyring changes under the rotation (another rotation?): run it again")
}

// reencrypt encrypts again with the primary key every Secret read in st that another key (or
// none) encrypts, 64 to a write, each write only if none of its values changed since. done
// reports that every Secret was under the primary key already.
func (b *Backend) reencrypt(ctx context.Context, st keyringState, rep *SecretsReport) (done bool, err error) {
	var ops []clientv3.Op
	var cmps []clientv3.Cmp
	for _, s := range st.secrets {
		plain := s.value
		e, ok, err := sealing.ParseEnvelope(s.value)
		if err != nil {
			return false, fmt.Errorf("stored Secret %s: %w", s.key, err)
		}
		if ok {
			if e.Key == st.kr.Primary {
				continue
			}
			if plain, err = st.kr.Open(e, []byte(s.key)); err != nil {
				return false, fmt.Errorf("stored Secret %s: %w", s.key, err)
			}
		}
		ne, err := st.kr.Seal(plain, []byte(s.key))
		if err != nil {
			return false, err
		}
		ops = append(ops, clientv3.OpPut(s.key, string(ne.Marshal())))
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.key), "=", s.modRev))
	}
	if len(ops) == 0 {
		return true, nil
	}
	for i := 0; i < len(ops); i += 64 {
		j := min(i+64, len(ops))
		resp, err := b.Store.Etcd().Txn(ctx).If(cmps[i:j]...).Then(ops[i:j]...).Commit()
		if err != nil {
			return false, fmt.Errorf("write the Secrets encrypted again: %w", err)
		}
		if resp.Succeeded {
			rep.Reencrypted += j - i
		}
		if err := b.step("batch"); err != nil {
			return false, err
		}
	}
	return false, nil // read again: what changed meanwhile, and to check that nothing is left
}

// step reports a rotation step to the test hook.
func (b *Backend) step(name string) error {
	if b.rotateStep == nil {
		return nil
	}
	return b.rotateStep(name)
}
