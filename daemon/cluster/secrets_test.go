package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/sealing"
	"github.com/shoal-dev/shoal/daemon/store"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// nodeKeys makes a key and a certificate the CA signs for node: the keys of a node that holds
// the CA key when ca has it.
func nodeKeys(t testing.TB, ca *pki.CA, node string) *Keys {
	t.Helper()
	keyPEM, csrPEM, err := pki.NewRequest(node)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csrPEM, node, nil, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := sealing.ParseNodeKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &Keys{CA: ca.Cert, CAKey: ca.Key, NodeKey: key, NodeCert: string(certPEM)}
}

// agentKeys are the keys of another node of server's cluster, without the CA key.
func agentKeys(t testing.TB, server *Keys, node string) *Keys {
	t.Helper()
	k := nodeKeys(t, &pki.CA{Cert: server.CA, Key: server.CAKey}, node)
	k.CAKey = nil
	return k
}

// withKeys makes n1 of a test cluster a server of a cluster CA made for the test: the cluster
// keeps its Secrets encrypted.
func withKeys(t testing.TB) func(*MasterConfig) {
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys := nodeKeys(t, ca, "n1")
	return func(m *MasterConfig) { m.Keys = keys }
}

// startMaster runs another master (another server's after a failover) over the cluster's store
// until the returned stop is called.
func (c *testCluster) startMaster(name string, keys *Keys) (stop func()) {
	ctx, cancel := context.WithCancel(c.ctx)
	m := NewMaster(MasterConfig{Node: name, Store: c.st, Git: c.git, Keys: keys})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			lead, err := c.st.Campaign(ctx, "/shoal/master", name, 2*time.Second)
			if err != nil {
				return
			}
			_ = m.Run(ctx, lead)
			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = lead.Resign(rctx)
			rcancel()
		}
	}()
	c.master = m
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	c.t.Cleanup(stop)
	return stop
}

const secretValue = "hunter2-very-s3cret"

func secretYAML(name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s}\nstringData: {token: %q}\n", name, value)
}

// secretAppYAML is a Deployment whose pods read Secret creds as an environment variable (which
// their init container prints) and as a volume.
func secretAppYAML(replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: %d
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      initContainers:
        - name: show
          image: registry.local/app:v1
          args: ["print", "token=$(TOKEN)"]
          env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}]
      containers:
        - name: app
          image: registry.local/app:v1
          args: ["serve", "8080"]
          env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}]
          volumeMounts: [{name: creds, mountPath: /etc/creds}]
      volumes: [{name: creds, secret: {secretName: creds}}]
`, replicas)
}

// rawStore is every key and value under /shoal, as etcdctl get --prefix /shoal shows them.
func (c *testCluster) rawStore() []*store.KV[[]byte] {
	c.t.Helper()
	resp, err := c.st.Etcd().Get(context.Background(), "/shoal", clientv3.WithPrefix())
	if err != nil {
		c.t.Fatal(err)
	}
	out := make([]*store.KV[[]byte], len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = &store.KV[[]byte]{Key: string(kv.Key), Value: kv.Value, ModRev: kv.ModRevision}
	}
	return out
}

// checkNoValue fails the test if a value, or its base64, is anywhere in the store.
func (c *testCluster) checkNoValue(values ...string) {
	c.t.Helper()
	kvs := c.rawStore()
	for _, v := range values {
		for _, enc := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v))} {
			for _, kv := range kvs {
				if bytes.Contains(kv.Value, []byte(enc)) || strings.Contains(kv.Key, enc) {
					c.t.Errorf("the store holds %q (of %q) in plain text at %s: %s", enc, v, kv.Key, kv.Value)
				}
			}
		}
	}
	if len(kvs) < 10 {
		c.t.Fatalf("the store holds only %d keys: nothing to look at", len(kvs))
	}
}

// placementsOf returns the placements of the pods named app-... on node, by key.
func (c *testCluster) placementsOf(node string) map[string]store.KV[Placement] {
	c.t.Helper()
	kvs, _, err := store.List[Placement](context.Background(), c.st, placementPrefix+node+"/")
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]store.KV[Placement]{}
	for _, kv := range kvs {
		if !kv.Value.Terminating {
			out[kv.Key] = kv
		}
	}
	return out
}

// openPlacement opens the Secrets sealed into a placement with a node's key.
func openPlacement(t testing.TB, keys *Keys, key string, pl Placement) (map[string]*manifests.Secret, error) {
	t.Helper()
	r, err := sealing.NewRecipient(keys.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := r.Open([]byte(key), pl.SealedSecrets)
	if err != nil {
		return nil, err
	}
	var out map[string]*manifests.Secret
	if err := json.Unmarshal(plain, &out); err != nil {
		t.Fatal(err)
	}
	return out, nil
}

// checkSealed checks that every running pod of node has Secret creds sealed to keys with the
// token want, and no plain Secret.
func (c *testCluster) checkSealed(node string, keys *Keys, want string) {
	c.t.Helper()
	pls := c.placementsOf(node)
	if len(pls) == 0 {
		c.t.Fatalf("no pod on %s", node)
	}
	for key, kv := range pls {
		pl := kv.Value
		if pl.Spec.Secrets != nil || pl.SealedSecrets == nil {
			c.t.Errorf("placement %s: plain Secrets %v, sealed %d bytes: want them sealed only", key, pl.Spec.Secrets, len(pl.SealedSecrets))
			continue
		}
		got, err := openPlacement(c.t, keys, key, pl)
		if err != nil {
			c.t.Errorf("placement %s does not open with %s's key: %v", key, node, err)
			continue
		}
		if s := got["creds"]; s == nil || string(s.Data["token"]) != want {
			c.t.Errorf("placement %s: Secret creds %+v, want token %q", key, s, want)
		}
	}
}

func secretOf(s *Snapshot, name string) *manifests.Secret {
	sec, _ := s.Object("Secret", "default", name).(*manifests.Secret)
	return sec
}

// TestSecretsEncryptedAtRest: after a commit with a Secret is applied and its pods run with it
// (as a variable and as a volume), no key of the store holds the value; each placement opens with
// its node's key alone; the API of a server shows the Secret, and another node's endpoint shows
// it by name only.
func TestSecretsEncryptedAtRest(t *testing.T) {
	c := newTestCluster(t, withKeys(t))
	ctx := context.Background()
	other := "second-value-also-s3cret"
	one := c.git.commit("", "app", map[string]string{"secret.yaml": secretYAML("creds", secretValue) + "---\n" + secretYAML("other", other),
		"app.yaml": secretAppYAML(2)})
	c.push(one)
	s := c.waitFor("convergence", func(s *Snapshot) bool { return s.Converged == one })

	c.checkNoValue(secretValue, other)
	var sawKeyring, sawEnvelope bool
	for _, kv := range c.rawStore() {
		sawKeyring = sawKeyring || kv.Key == keyringKey
		if _, kind, _, _, ok := desiredParts(kv.Key); ok && kind == "Secret" {
			sawEnvelope = true
			if _, ok, err := sealing.ParseEnvelope(kv.Value); !ok || err != nil {
				t.Errorf("staged Secret %s is no envelope: %s", kv.Key, kv.Value)
			}
		}
	}
	if !sawKeyring || !sawEnvelope {
		t.Errorf("keyring stored %v, staged Secrets seen %v", sawKeyring, sawEnvelope)
	}

	// The pods got the value, and each placement opens with its node's key only.
	c.checkSealed("n1", c.keys, secretValue)
	n2 := agentKeys(t, c.keys, "n2")
	for key, kv := range c.placementsOf("n1") {
		if _, err := openPlacement(t, n2, key, kv.Value); !errors.Is(err, sealing.ErrOpen) {
			t.Errorf("placement %s opens with another node's key: %v", key, err)
		}
	}
	pod := s.Pods()[0].Pod.Name
	var out bytes.Buffer
	if code, err := c.backend.Exec(ctx, "default", pod, "app", runtime.ExecOptions{Command: []string{"/testapp", "read", "/etc/creds/token"}, Stdout: &out}); err != nil || code != 0 || out.String() != secretValue {
		t.Errorf("the Secret's volume in %s: %q (code %d, %v)", pod, out.String(), code, err)
	}
	out.Reset()
	if err := c.backend.Logs(ctx, "default", pod, "show", runtime.LogOptions{}, &out); err != nil || !strings.Contains(out.String(), "token="+secretValue) {
		t.Errorf("the Secret as a variable in %s: log %q, %v", pod, out.String(), err)
	}

	// A server's API shows the Secret; the endpoint for other nodes shows its name alone.
	if sec := secretOf(s, "creds"); sec == nil || string(sec.Data["token"]) != secretValue {
		t.Errorf("the server's snapshot shows Secret creds as %+v", sec)
	}
	rs, err := c.backend.Redacted().Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sec := secretOf(rs, "creds")
	if sec == nil || len(sec.Data) != 0 || !strings.Contains(sec.Annotations[AnnotationEncrypted], "server node") {
		t.Errorf("the redacted snapshot shows Secret creds as %+v", sec)
	}
	if _, err := c.backend.Redacted().SecretsStatus(ctx); !errors.Is(err, ErrNoCAKey) {
		t.Errorf("the keyring's status without the CA key: %v, want ErrNoCAKey", err)
	}
}

// TestSecretsSurviveMasterFailover: another master, which has only the staged state, reads the
// Secrets: a pod it makes again gets the value.
func TestSecretsSurviveMasterFailover(t *testing.T) {
	c := newTestCluster(t, withKeys(t))
	ctx := context.Background()
	one := c.git.commit("", "app", map[string]string{"secret.yaml": secretYAML("creds", secretValue), "app.yaml": secretAppYAML(2)})
	c.push(one)
	s := c.waitFor("convergence", func(s *Snapshot) bool { return s.Converged == one })
	c.stopMaster()
	// Another server of the same cluster: its own node key, the same CA.
	n1b := nodeKeys(t, &pki.CA{Cert: c.keys.CA, Key: c.keys.CAKey}, "n1b")
	c.startMaster("n1b", n1b)
	c.waitFor("the new master", func(s *Snapshot) bool { return s.Leader == "n1b" })
	victim := s.Pods()[0]
	if err := c.backend.DeletePod(ctx, "default", victim.Pod.Name); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the pod made again by the new master", func(s *Snapshot) bool {
		pods := s.Pods()
		return len(pods) == 2 && !slices.ContainsFunc(pods, func(p Pod) bool { return p.UID == victim.UID }) && s.Status().Deployments[0].Ready == 2
	})
	c.checkSealed("n1", c.keys, secretValue)
	c.checkNoValue(secretValue)
}

// TestSecretsKeyRotation: a rotation encrypts every staged Secret with a new key and removes the
// old one; one stopped right after its keyring write leaves everything readable (a commit
// applied meanwhile uses the new key), and run again it finishes. Secrets staged in plain text
// by an earlier version read, and a rotation encrypts them.
func TestSecretsKeyRotation(t *testing.T) {
	c := newTestCluster(t, withKeys(t))
	ctx := context.Background()
	files := map[string]string{"secret.yaml": secretYAML("creds", secretValue) + "---\n" + secretYAML("other", "other-s3cret"), "app.yaml": secretAppYAML(1)}
	one := c.git.commit("", "app", files)
	c.push(one)
	c.waitFor("convergence", func(s *Snapshot) bool { return s.Converged == one })
	rep, err := c.backend.SecretsStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Keys) != 1 || rep.Keys[0].Secrets != 2 || !rep.Keys[0].Primary || rep.Plain != 0 {
		t.Fatalf("status after the first commit: %+v, want one primary key with 2 Secrets", rep)
	}
	first := rep.Primary

	// A Secret staged in plain text, as an earlier version wrote it, reads.
	snap, err := c.backend.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plainKey := desiredKey(one, manifests.ObjectKey{Kind: "Secret", Namespace: "default", Name: "other"})
	data, err := json.Marshal(secretOf(snap, "other"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.Etcd().Put(ctx, plainKey, string(data)); err != nil {
		t.Fatal(err)
	}
	fresh := &Backend{Node: "n1", Store: c.st, Keys: c.keys}
	if s, err := fresh.Snapshot(ctx); err != nil || string(secretOf(s, "other").Data["token"]) != "other-s3cret" {
		t.Fatalf("a plain staged Secret: %v", err)
	}
	if rep, err := c.backend.SecretsStatus(ctx); err != nil || rep.Plain != 1 || rep.Keys[0].Secrets != 1 {
		t.Fatalf("status with a plain Secret: %+v, %v", rep, err)
	}

	// Stopped after its keyring write, as a kill -9 would.
	stopped := errors.New("stopped")
	c.backend.rotateStep = func(step string) error {
		if step == "keyring" {
			return stopped
		}
		return nil
	}
	if _, err := c.backend.RotateSecretsKey(ctx); !errors.Is(err, stopped) {
		t.Fatalf("interrupted rotation: %v", err)
	}
	c.backend.rotateStep = nil
	rep, err = c.backend.SecretsStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Keys) != 2 || rep.Primary == first {
		t.Fatalf("after the interrupted rotation: %+v, want a new primary key beside %s", rep, first)
	}
	second := rep.Primary
	fresh = &Backend{Node: "n1", Store: c.st, Keys: c.keys}
	if s, err := fresh.Snapshot(ctx); err != nil || string(secretOf(s, "creds").Data["token"]) != secretValue {
		t.Fatalf("the Secrets after an interrupted rotation: %v", err)
	}
	// A commit applied meanwhile is encrypted with the new key.
	files["secret.yaml"] = secretYAML("creds", "changed-s3cret") + "---\n" + secretYAML("other", "other-s3cret")
	two := c.git.commit(one, "changed", files)
	c.push(two)
	c.waitFor("the changed Secret", func(s *Snapshot) bool {
		sec := secretOf(s, "creds")
		return s.Applied.SHA == two && sec != nil && string(sec.Data["token"]) == "changed-s3cret"
	})
	if rep, err := c.backend.SecretsStatus(ctx); err != nil || len(rep.Keys) != 2 || rep.Keys[1].Secrets != 2 || rep.Keys[0].Secrets != 0 {
		t.Fatalf("status after a commit staged during the rotation: %+v, %v", rep, err)
	}

	// Run again, it finishes the rotation: nothing to encrypt again, the old key goes.
	rep, err = c.backend.RotateSecretsKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.Added != "" || rep.Primary != second || !slices.Equal(rep.Removed, []string{first}) || len(rep.Keys) != 1 {
		t.Fatalf("the rerun: %+v, want it to finish the rotation to %s and remove %s", rep, second, first)
	}

	// A whole rotation, with a plain Secret staged again.
	data, _ = json.Marshal(secretOf(snap, "other"))
	plainKey = desiredKey(two, manifests.ObjectKey{Kind: "Secret", Namespace: "default", Name: "other"})
	if _, err := c.st.Etcd().Put(ctx, plainKey, string(data)); err != nil {
		t.Fatal(err)
	}
	rep, err = c.backend.RotateSecretsKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed || rep.Added == "" || rep.Reencrypted != 2 || !slices.Equal(rep.Removed, []string{second}) ||
		len(rep.Keys) != 1 || rep.Keys[0].Secrets != 2 || rep.Plain != 0 {
		t.Fatalf("a rotation: %+v, want key %s replaced, 2 Secrets encrypted again", rep, second)
	}
	for _, kv := range c.rawStore() {
		if _, kind, _, _, ok := desiredParts(kv.Key); ok && kind == "Secret" {
			if e, ok, _ := sealing.ParseEnvelope(kv.Value); !ok || e.Key != rep.Added {
				t.Errorf("after the rotation %s is stored %s", kv.Key, kv.Value)
			}
		}
	}
	c.checkNoValue(secretValue, "changed-s3cret", "other-s3cret")
	// The pods keep running, and a new one gets the value.
	s := c.waitFor("the pod", func(s *Snapshot) bool { return len(s.Pods()) == 1 })
	if err := c.backend.DeletePod(ctx, "default", s.Pods()[0].Pod.Name); err != nil {
		t.Fatal(err)
	}
	old := s.Pods()[0].UID
	c.waitFor("a new pod", func(s *Snapshot) bool {
		return len(s.Pods()) == 1 && s.Pods()[0].UID != old && s.Status().Deployments[0].Ready == 1
	})
	c.checkSealed("n1", c.keys, "changed-s3cret")
}

// TestSecretsPendingAndUpgraded: a pending pod's placement holds no Secret and gets them sealed
// once bound; a node that publishes no key gets no pod with Secrets (it stays pending, saying
// why); and a placement an earlier version stored with plain Secrets is sealed by the next master.
func TestSecretsPendingAndUpgraded(t *testing.T) {
	c := newTestCluster(t, withKeys(t))
	ctx := context.Background()
	c.waitFor("n1", func(s *Snapshot) bool { return len(s.Nodes) == 1 })
	if err := c.backend.Cordon(ctx, "n1", true, false); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"secret.yaml": secretYAML("creds", secretValue), "app.yaml": secretAppYAML(1)}
	one := c.git.commit("", "app", files)
	c.push(one)
	c.waitFor("a pending pod", func(s *Snapshot) bool { return s.Applied.SHA == one && s.Status().Pending == 1 })
	for key, kv := range c.placementsOf("-") {
		if kv.Value.Spec.Secrets != nil || kv.Value.SealedSecrets != nil {
			t.Errorf("pending placement %s holds Secrets: %+v", key, kv.Value)
		}
	}
	c.checkNoValue(secretValue)
	if err := c.backend.Cordon(ctx, "n1", false, false); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the pod bound", func(s *Snapshot) bool { return s.Converged == one })
	c.checkSealed("n1", c.keys, secretValue)

	// n2 runs a version that publishes no key: a pod placed there waits, saying why.
	n1Keys := c.keys
	c.keys = nil
	stopN2 := c.addNode("n2")
	c.keys = n1Keys
	c.waitFor("n2", func(s *Snapshot) bool { return len(s.Nodes) == 2 })
	if err := c.backend.Cordon(ctx, "n1", true, false); err != nil {
		t.Fatal(err)
	}
	files["app.yaml"] = secretAppYAML(2)
	two := c.git.commit(one, "app: 2", files)
	c.push(two)
	s := c.waitFor("a pod held for n2's key", func(s *Snapshot) bool {
		for _, p := range s.Pods() {
			if p.Node == "" && strings.Contains(p.Pod.Status.Message, "node n2 cannot get the pod's Secrets") {
				return true
			}
		}
		return false
	})
	if pls := c.placementsOf("n2"); len(pls) != 0 {
		t.Errorf("n2, which has no key, got placements %v", pls)
	}
	for _, p := range s.Pods() {
		if p.Node == "" {
			t.Logf("pending: %s", p.Pod.Status.Message)
		}
	}
	// The scheduler would choose n2 again: it goes, and the pod runs on n1.
	stopN2()
	if err := c.backend.Cordon(ctx, "n1", false, false); err != nil {
		t.Fatal(err)
	}

	// An earlier version's placement: plain Secrets, nothing sealed. The next master seals it.
	c.waitFor("both pods on n1", func(s *Snapshot) bool { return s.Converged == two })
	c.stopMaster()
	for key, kv := range c.placementsOf("n1") {
		pl := kv.Value
		secrets, err := openPlacement(t, c.keys, key, pl)
		if err != nil {
			t.Fatal(err)
		}
		pl.Spec.Secrets, pl.SealedSecrets, pl.SealedTo = secrets, nil, ""
		if err := store.Put(ctx, c.st, key, pl); err != nil {
			t.Fatal(err)
		}
	}
	c.startMaster("n1", c.keys)
	deadline := time.Now().Add(30 * time.Second)
	for {
		sealed := 0
		for _, kv := range c.placementsOf("n1") {
			if kv.Value.SealedSecrets != nil && kv.Value.Spec.Secrets == nil {
				sealed++
			}
		}
		if sealed == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plain placements were not sealed: %d of 2", sealed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.checkSealed("n1", c.keys, secretValue)
	c.checkNoValue(secretValue)
}
