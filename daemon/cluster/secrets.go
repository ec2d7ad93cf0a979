package cluster

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/sealing"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Keys are what a node holds to keep the cluster's Secrets encrypted in the store
// (docs/store.md, "Secrets at rest"). A cluster on an external store has no CA, and its nodes no
// Keys: there the Secrets are stored as they are.
type Keys struct {
	// CA is the cluster CA's certificate: the master seals a pod's Secrets only to a node
	// certificate it signed.
	CA *x509.Certificate
	// CAKey is the CA's private key on the nodes that hold it (those that run a store member),
	// nil on the others. It opens the keyring: without it a node can be no master, and its API
	// shows Secrets by name only.
	CAKey crypto.Signer
	// NodeKey is the node's private key, NodeCert (PEM) its certificate, which the node publishes
	// for the master to seal its pods' Secrets to.
	NodeKey  *ecdsa.PrivateKey
	NodeCert string
}

// LoadKeys reads the keys of a node from its PKI directory (<data dir>/pki): the CA certificate,
// the CA key when the node holds it, and the node's key and certificate.
func LoadKeys(pkiDir string) (*Keys, error) {
	ca, err := pki.LoadCA(pkiDir)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(pkiDir, pki.NodeCertFile))
	if err != nil {
		return nil, fmt.Errorf("the node certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(pkiDir, pki.NodeKeyFile))
	if err != nil {
		return nil, fmt.Errorf("the node key: %w", err)
	}
	key, err := sealing.ParseNodeKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(pkiDir, pki.NodeKeyFile), err)
	}
	return &Keys{CA: ca.Cert, CAKey: ca.Key, NodeKey: key, NodeCert: string(certPEM)}, nil
}

// CanLead reports whether a node with these keys can be master: it must open the keyring. A
// node without Keys (an external store) keeps no keyring and can.
func (k *Keys) CanLead() bool { return k == nil || k.CAKey != nil }

// Errors of the keyring's API.
var (
	// ErrNotEncrypted: the cluster keeps no keyring (an external store, which has no CA).
	ErrNotEncrypted = errors.New("this cluster keeps its Secrets unencrypted: on an external store it has no CA to derive a key from")
	// ErrNoCAKey: this node does not hold the CA key, which opens the keyring.
	ErrNoCAKey = errors.New("this node does not hold the cluster CA key, which opens the keyring: run the command on a server node (one that runs a store member)")
)

// errKeyringChanged is returned by a write of encrypted values that a change of the keyring
// (a rotation) fenced off: the write is made again with the new keyring.
var errKeyringChanged = errors.New("the keyring changed while Secrets were written with it (a key rotation): writing them again")

// keyringCache opens the stored keyring once per change of it. Safe for concurrent use; the
// keyring it returns is shared and must not be changed (clone it).
type keyringCache struct {
	mu  sync.Mutex
	rev int64
	kr  *sealing.Keyring
}

// open returns the keyring stored as value at modification revision rev.
func (c *keyringCache) open(caKey crypto.Signer, value []byte, rev int64) (*sealing.Keyring, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kr != nil && c.rev == rev {
		return c.kr, nil
	}
	kr, err := sealing.OpenKeyring(caKey, value, []byte(keyringKey))
	if err != nil {
		return nil, err
	}
	c.kr, c.rev = kr, rev
	return kr, nil
}

// readKeyring reads the keyring as it was at revision rev (0: now) and opens it; found is false
// when there is none.
func readKeyring(ctx context.Context, st *store.Client, keys *Keys, cache *keyringCache, rev int64) (kr *sealing.Keyring, modRev int64, found bool, err error) {
	var opts []clientv3.OpOption
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := st.Etcd().Get(ctx, keyringKey, opts...)
	if err != nil {
		return nil, 0, false, fmt.Errorf("read the keyring: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, false, nil
	}
	kv := resp.Kvs[0]
	kr, err = cache.open(keys.CAKey, kv.Value, kv.ModRevision)
	return kr, kv.ModRevision, true, err
}

func cloneKeyring(k *sealing.Keyring) *sealing.Keyring {
	return &sealing.Keyring{Primary: k.Primary, Keys: slices.Clone(k.Keys)}
}

// sealValue is the stored envelope of v (a Secret of the desired state) under key.
func sealValue(kr *sealing.Keyring, key string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", key, err)
	}
	e, err := kr.Seal(plain, []byte(key))
	if err != nil {
		return "", fmt.Errorf("encrypt %s: %w", key, err)
	}
	return string(e.Marshal()), nil
}

// AnnotationEncrypted is set on a Secret that the node answering cannot decrypt (it does not
// hold the CA key): the Secret is shown by its name alone, and the annotation says why.
const AnnotationEncrypted = "shoal.dev/encrypted"

// decodeObjects decodes stored desired objects (JSON written by the master), opening the
// Secrets the master encrypted with kr; noKeyring says why kr is nil. A Secret that does not
// open is an error, unless redact is set: then it is decoded as its kind, namespace and name
// alone, annotated with why.
func decodeObjects(kvs []store.KV[json.RawMessage], kr *sealing.Keyring, noKeyring error, redact bool) ([]manifests.Object, error) {
	var objs []manifests.Object
	for _, kv := range kvs {
		data := []byte(kv.Value)
		if e, ok, err := sealing.ParseEnvelope(data); ok {
			if err == nil {
				if kr == nil {
					err = noKeyring
				} else {
					data, err = kr.Open(e, []byte(kv.Key))
				}
			}
			if err != nil {
				if !redact {
					return nil, fmt.Errorf("stored object %s: %w", kv.Key, err)
				}
				objs = append(objs, redactedObject(kv.Key, err))
				continue
			}
		}
		got, errs := manifests.DecodeFile(kv.Key, data, manifests.LoadOptions{})
		if errs != nil {
			return nil, fmt.Errorf("stored object %s: %w", kv.Key, errs)
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// desiredParts splits a desired key (/shoal/desired/<sha>/<kind>/<ns>/<name>).
func desiredParts(key string) (sha, kind, ns, name string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(key, desiredPrefix), "/")
	if len(parts) != 4 || !strings.HasPrefix(key, desiredPrefix) {
		return "", "", "", "", false
	}
	return parts[0], parts[1], parts[2], parts[3], true
}

// redactedObject is an encrypted object this node cannot open, as the API shows it.
func redactedObject(key string, why error) manifests.Object {
	_, _, ns, name, _ := desiredParts(key)
	msg := "the Secret is encrypted in the store and this node cannot open it: ask a server node (one that runs a store member)"
	if !errors.Is(why, ErrNoCAKey) {
		msg = "the Secret does not decrypt: " + why.Error()
	}
	return &manifests.Secret{TypeMeta: manifests.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: manifests.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{AnnotationEncrypted: msg}}}
}

// fencedTxn is lead.Txn with more conditions: it commits ops only while this master leads and
// cmps hold. ok is false, with no error, when the master still leads and a condition failed;
// err is store.ErrNotLeader when it no longer leads.
func fencedTxn(ctx context.Context, st *store.Client, lead *store.Leadership, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, bool, error) {
	all := append([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(lead.Key), "=", lead.Rev)}, cmps...)
	resp, err := st.Etcd().Txn(ctx).If(all...).Then(ops...).Commit()
	if err != nil {
		return nil, false, fmt.Errorf("fenced write as leader %s: %w", lead.Key, err)
	}
	if resp.Succeeded {
		return resp, true, nil
	}
	// The leadership's own write says whether it still holds, and ends it when it does not.
	if _, err := lead.Txn(ctx); err != nil {
		return nil, false, err
	}
	return resp, false, nil
}

// masterKeyring returns the keyring new Secrets are encrypted with and its modification
// revision, which the writes of encrypted values compare against (a rotation fences them off).
// The first master creates the keyring, with a write fenced by its leadership and by the
// keyring's absence.
func (m *Master) masterKeyring(ctx context.Context, lead *store.Leadership) (*sealing.Keyring, int64, error) {
	keys := m.cfg.Keys
	// The view follows the keyring: a commit costs no read of it. A view behind a rotation's
	// write only makes the staging compare fail, and the commit is staged again.
	if kv, ok := m.view.keyring.Get(keyringKey); ok {
		kr, err := m.keyrings.open(keys.CAKey, kv.Value, kv.ModRev)
		if err != nil {
			return nil, 0, fmt.Errorf("%w; a keyring sealed under another CA's key cannot be opened here", err)
		}
		return kr, kv.ModRev, nil
	}
	for range 3 {
		kr, rev, found, err := readKeyring(ctx, m.cfg.Store, keys, &m.keyrings, 0)
		if err != nil {
			return nil, 0, fmt.Errorf("%w; a keyring sealed under another CA's key cannot be opened here", err)
		}
		if found {
			return kr, rev, nil
		}
		kr, err = sealing.NewKeyring(time.Now())
		if err != nil {
			return nil, 0, err
		}
		val, err := sealing.SealKeyring(keys.CAKey, kr, []byte(keyringKey))
		if err != nil {
			return nil, 0, err
		}
		resp, ok, err := fencedTxn(ctx, m.cfg.Store, lead, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(keyringKey), "=", 0)},
			clientv3.OpPut(keyringKey, string(val)))
		if err != nil {
			return nil, 0, err
		}
		if ok {
			m.log.Info("created the keyring that encrypts the Secrets in the store", "key", kr.Primary)
			return kr, resp.Header.Revision, nil
		}
		// Made meanwhile (by `shoal secrets rotate-key`): read it.
	}
	return nil, 0, errors.New("the keyring changes under the master: trying again")
}

// nodeKeyEntry is a node's checked certificate key, kept while the node publishes the same
// certificate.
type nodeKeyEntry struct {
	cert    string
	pub     sealing.PublicKey
	err     error
	checked time.Time
}

// errNoNodeKey: the node published no certificate to seal to.
var errNoNodeKey = errors.New("it has published no certificate to seal them to (a node of a Shoal version before encrypted Secrets?)")

// nodeKey returns the key to seal a node's Secrets to: that of the certificate the node
// publishes in its known record, once checked (signed by the cluster CA, for that node, valid
// now). The check is kept while the node publishes the same certificate, for an hour.
func (m *Master) nodeKey(node string) (sealing.PublicKey, error) {
	kv, ok := m.view.known.Get(knownKey(node))
	if !ok || kv.Value.Certificate == "" {
		return sealing.PublicKey{}, errNoNodeKey
	}
	cert := kv.Value.Certificate
	if e, ok := m.nodeKeys[node]; ok && e.cert == cert && time.Since(e.checked) < time.Hour {
		return e.pub, e.err
	}
	pub, err := sealing.CheckNodeCert(m.cfg.Keys.CA, []byte(cert), node, time.Now())
	if err != nil {
		m.log.Warn("node certificate refused: no pod with Secrets is placed on the node", "node", node, "err", err)
	}
	m.nodeKeys[node] = nodeKeyEntry{cert: cert, pub: pub, err: err, checked: time.Now()}
	return pub, err
}

// placementOp is the write of a placement the pass creates or binds, and the placement as it is
// written (its node and reason; its sealed Secrets are not filled in yet). With Keys, the
// Secrets in pl.Spec.Secrets are sealed to the node's key as the write is sent, and Spec.Secrets
// is stored empty: a pending placement keeps none (they are found again when it is bound), and
// a pod whose node has no key to seal to is kept pending (node "") with the reason.
func (m *Master) placementOp(pl Placement) (pendingOp, Placement) {
	if m.cfg.Keys == nil || len(pl.Spec.Secrets) == 0 {
		return lazyPut(placementKey(nodeOrPending(pl.Node), pl.Spec.UID), pl), pl
	}
	secrets := pl.Spec.Secrets
	pl.Spec.Secrets, pl.SealedSecrets, pl.SealedTo = nil, nil, ""
	if pl.Node == "" {
		return lazyPut(placementKey(nodeOrPending(""), pl.Spec.UID), pl), pl
	}
	pub, err := m.nodeKey(pl.Node)
	if err != nil {
		pl.Reason = fmt.Sprintf("node %s cannot get the pod's Secrets: %v", pl.Node, err)
		pl.Node = ""
		return lazyPut(placementKey(nodeOrPending(""), pl.Spec.UID), pl), pl
	}
	key := placementKey(pl.Node, pl.Spec.UID)
	return func() (clientv3.Op, error) {
		if err := sealPlacement(&pl, key, pub, secrets); err != nil {
			return clientv3.Op{}, err
		}
		return putOp(key, pl), nil
	}, pl
}

// sealPlacement seals secrets to pub into the placement stored under key.
func sealPlacement(pl *Placement, key string, pub sealing.PublicKey, secrets map[string]*manifests.Secret) error {
	plain, err := json.Marshal(secrets)
	if err != nil {
		return fmt.Errorf("encode the Secrets of %s: %w", key, err)
	}
	ct, err := sealing.Seal(pub, []byte(key), plain)
	if err != nil {
		return fmt.Errorf("seal the Secrets of %s: %w", key, err)
	}
	pl.Spec.Secrets, pl.SealedSecrets, pl.SealedTo = nil, ct, pub.Fingerprint
	return nil
}

// resealOps seals again what is stored with a node key that is no longer the node's, or not
// sealed at all: the placements of the nodes whose published certificate changed since the last
// pass (all of them in a term's first pass), whose Secrets are in plain text (written before
// encryption) or sealed to another key (the node's certificate was renewed). The master cannot
// open what was sealed: those get the Secrets of the desired state. Pending placements lose the
// plain Secrets they hold (they are found again when bound). Each write compares the placement's
// revision, so that none undoes a change made since the view read it (a node deleting the
// placement of a pod it stopped, or this pass's own writes).
func (m *Master) resealOps(objs []manifests.Object) (ops []clientv3.Op, cmps []clientv3.Cmp, err error) {
	if m.cfg.Keys == nil {
		return nil, nil, nil
	}
	dirty := m.view.reseal.take()
	all := m.resealAll
	if len(dirty) == 0 && !all {
		return nil, nil, nil
	}
	m.resealAll = false
	for _, key := range m.view.pods.withSecrets(dirty, all) {
		kv, ok := m.view.placements.Get(key)
		if !ok {
			continue
		}
		pl := kv.Value
		var pub sealing.PublicKey
		secrets := pl.Spec.Secrets
		switch {
		case pl.Node == "":
			if secrets == nil {
				continue
			}
			pl.Spec.Secrets = nil
		case secrets == nil && pl.SealedSecrets == nil:
			continue
		default:
			if pub, err = m.nodeKey(pl.Node); err != nil {
				continue // no key to seal to: left as it is
			}
			if secrets == nil && pl.SealedTo == pub.Fingerprint {
				continue
			}
			if secrets == nil {
				secrets = reconcile.PodSecrets(objs, pl.Spec.Pod)
			}
			if err := sealPlacement(&pl, kv.Key, pub, secrets); err != nil {
				return nil, nil, err
			}
			if len(secrets) == 0 {
				pl.SealedSecrets, pl.SealedTo = nil, ""
			}
		}
		m.log.Debug("sealing a pod's Secrets again", "pod", podName(pl), "node", pl.Node, "key", pl.SealedTo)
		ops = append(ops, putOp(kv.Key, pl))
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(kv.Key), "=", kv.ModRev))
	}
	if len(ops) > 0 {
		m.log.Info("sealing pods' Secrets again to their nodes' keys (plain, or sealed to a key the node no longer has)", "placements", len(ops))
	}
	return ops, cmps, nil
}

// writeReseals sends the writes of resealOps, 64 at a time, each batch only if none of its
// placements changed since the view read them; after a batch that found one changed, the next
// pass looks at every placement again.
func (m *Master) writeReseals(ctx context.Context, lead *store.Leadership, objs []manifests.Object) error {
	ops, cmps, err := m.resealOps(objs)
	if err != nil {
		return err
	}
	for len(ops) > 0 {
		n := min(len(ops), 64)
		resp, ok, err := fencedTxn(ctx, m.cfg.Store, lead, cmps[:n], ops[:n]...)
		if err != nil {
			return err
		}
		if !ok {
			m.resealAll = true
			return nil
		}
		m.wrote = max(m.wrote, resp.Header.Revision)
		m.cfg.Metrics.StoreWrites.Add(float64(n))
		ops, cmps = ops[n:], cmps[n:]
	}
	return nil
}
