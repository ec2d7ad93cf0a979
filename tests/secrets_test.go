package tests

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/shoal-dev/shoal/daemon/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// secretDeployment is a Deployment whose pods greet with Secret creds's token (an environment
// variable the example app answers with) and mount it at /etc/creds.
func secretDeployment(name string, replicas int) string {
	return deployment(name, replicas, "v1", `          volumeMounts: [{name: creds, mountPath: /etc/creds}]
      volumes: [{name: creds, secret: {secretName: creds}}]
`)
}

// withGreetingFromSecret adds the GREETING variable, from Secret creds, to a Deployment.
func withGreetingFromSecret(yaml string) string {
	return strings.Replace(yaml, `env: [{name: VERSION, value: "v1"}]`,
		`env: [{name: VERSION, value: "v1"}, {name: GREETING, valueFrom: {secretKeyRef: {name: creds, key: token}}}]`, 1)
}

// storeDumpEnv makes TestStoreDumpHelper, run by the test binary inside a node's network
// namespace, print every key and value of the store under /shoal as JSON: "<endpoint>,<pki dir>".
const storeDumpEnv = "SHOAL_E2E_STORE_DUMP"

type dumpedKV struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// TestStoreDumpHelper is not a test: with storeDumpEnv set it is the test binary reading the
// store as `etcdctl get --prefix /shoal` would, with the node's client certificate.
func TestStoreDumpHelper(t *testing.T) {
	spec := os.Getenv(storeDumpEnv)
	if spec == "" {
		t.Skip("run by TestSecretsAtRest inside a node's network namespace")
	}
	endpoint, dir, _ := strings.Cut(spec, ",")
	tc := nodeTLS(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Connect(ctx, store.Config{Endpoints: []string{endpoint}, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	resp, err := st.Etcd().Get(ctx, "/shoal", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var out []dumpedKV
	for _, kv := range resp.Kvs {
		out = append(out, dumpedKV{Key: string(kv.Key), Value: kv.Value})
	}
	data, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\nDUMP %s\n", data)
}

// nodeTLS is the client TLS of the node whose <data dir>/pki is dir: its certificate, and the
// cluster CA to check servers with.
func nodeTLS(t *testing.T, dir string) *tls.Config {
	t.Helper()
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, pki.NodeCertFile))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, pki.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.ClientTLS(ca, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// runHelper runs the test helper named helper of this test binary inside the node's network
// namespace with env added, and returns the line it printed after "\n<tag> ".
func (n *lanNode) runHelper(t *testing.T, helper, env, tag string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net=/run/netns/"+n.ns, "--", self, "-test.run", "^"+helper+"$", "-test.v")
	cmd.Env = append(os.Environ(), env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in the namespace of %s: %v\n%s", helper, n.name, err, out)
	}
	_, line, ok := strings.Cut(string(out), "\n"+tag+" ")
	if !ok {
		t.Fatalf("%s in the namespace of %s: no %s line in\n%s", helper, n.name, tag, out)
	}
	line, _, _ = strings.Cut(line, "\n")
	return line
}

// storeDump reads every key under /shoal from node n's store member with its certificate.
func (c *lanCluster) storeDump(t *testing.T, n *lanNode) []dumpedKV {
	t.Helper()
	line := n.runHelper(t, "TestStoreDumpHelper", storeDumpEnv+"=https://"+n.addr+":2379,"+filepath.Join(n.dataDir, "pki"), "DUMP")
	var kvs []dumpedKV
	if err := json.Unmarshal([]byte(line), &kvs); err != nil {
		t.Fatalf("dump the store of %s: %v", n.name, err)
	}
	if len(kvs) < 20 {
		t.Fatalf("the dump of %s holds %d keys only", n.name, len(kvs))
	}
	return kvs
}

// encodings are what a stored value may hold of a secret: itself and its base64.
func encodings(secret string) []string {
	return []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), base64.RawStdEncoding.EncodeToString([]byte(secret))}
}

// checkDumpHasNo fails the test if the store holds the secret, in any form, anywhere.
func checkDumpHasNo(t *testing.T, kvs []dumpedKV, secret string) {
	t.Helper()
	placements, sealed := 0, 0
	for _, kv := range kvs {
		for _, enc := range encodings(secret) {
			if bytes.Contains(kv.Value, []byte(enc)) || strings.Contains(kv.Key, enc) {
				t.Errorf("the store holds the secret (%q) at %s: %s", enc, kv.Key, kv.Value)
			}
		}
		if strings.HasPrefix(kv.Key, "/shoal/placements/") {
			placements++
			if bytes.Contains(kv.Value, []byte(`"sealedSecrets"`)) {
				sealed++
			}
		}
	}
	if sealed == 0 {
		t.Errorf("none of %d placements holds sealed Secrets", placements)
	}
}

// podsWithSecret checks every pod of the Deployment, through n1 (which forwards to the pod's
// node): it greets with the secret and its volume holds it. It returns the pods by node.
func (c *lanCluster) podsWithSecret(t *testing.T, name, secret string) map[string]int {
	t.Helper()
	pods, err := c.nodes[0].lanPods()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if !strings.HasPrefix(p.Name, name+"-") || !p.Ready {
			continue
		}
		out, err := c.nodes[0].exec(p.Name, "/app", "get", "http://127.0.0.1:8080/")
		if err != nil || !strings.HasPrefix(out, secret+" from "+p.Name) {
			t.Errorf("pod %s on %s greets %q (%v), want the secret", p.Name, p.Node, out, err)
		}
		out, err = c.nodes[0].exec(p.Name, "/app", "cat", "/etc/creds/token")
		if err != nil || out != secret {
			t.Errorf("pod %s on %s: /etc/creds/token holds %q (%v), want the secret", p.Name, p.Node, out, err)
		}
	}
	return podsByNode(pods, name+"-")
}

// TestSecretsAtRest runs three nodes with a Deployment that uses a Secret as an environment
// variable and as a volume: its pods on every node get the value; the store, read as etcdctl
// would, holds it nowhere; `shoal secrets rotate-key` changes the key while the pods keep
// running, and a new pod still gets the value; and no daemon logs it.
func TestSecretsAtRest(t *testing.T) {
	needRoot(t)
	c := newLANCluster(t, 3)
	c.repo.commit("start", map[string]string{"README.md": "cluster\n"})
	c.startAll()
	secret := "e2e-" + randHex(8) + "-s3cret"
	files := map[string]string{
		"secret.yaml": fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {token: %s}\n", secret),
		"web.yaml":    withGreetingFromSecret(secretDeployment("web", 6)),
	}
	sha := c.repo.commit("web with a Secret", files)
	c.waitAllConverged(t, sha, 3*time.Minute)

	byNode := c.podsWithSecret(t, "web", secret)
	for _, n := range c.nodes {
		if byNode[n.name] == 0 {
			t.Errorf("no pod of web on %s: %v", n.name, byNode)
		}
	}
	kvs := c.storeDump(t, c.nodes[0])
	checkDumpHasNo(t, kvs, secret)
	out, err := c.nodes[1].shoal("get", "secret", "creds", "-o", "json")
	if err != nil || !strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(secret))) {
		t.Errorf("a server's API shows Secret creds as %s (%v)", out, err)
	}

	// Rotation: a new key, every staged Secret encrypted again, the old key gone.
	before, err := c.nodes[1].shoal("secrets", "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var was cluster.SecretsReport
	if err := json.Unmarshal([]byte(before), &was); err != nil || len(was.Keys) != 1 || was.Keys[0].Secrets != 1 {
		t.Fatalf("secrets status before the rotation: %s (%v)", before, err)
	}
	out, err = c.nodes[1].shoal("secrets", "rotate-key")
	t.Logf("shoal secrets rotate-key:\n%s", out)
	if err != nil || !strings.Contains(out, "added key") || !strings.Contains(out, "re-encrypted 1 stored Secrets") || !strings.Contains(out, "removed keys "+was.Primary) {
		t.Fatalf("rotate-key: %v\n%s", err, out)
	}
	after, err := c.nodes[2].shoal("secrets", "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var now cluster.SecretsReport
	if err := json.Unmarshal([]byte(after), &now); err != nil || len(now.Keys) != 1 || now.Primary == was.Primary || now.Keys[0].Secrets != 1 {
		t.Fatalf("secrets status after the rotation: %s (%v)", after, err)
	}
	// The pods keep running, and a pod made after the rotation gets the value.
	pods, err := c.nodes[0].lanPods()
	if err != nil {
		t.Fatal(err)
	}
	victim := firstOn(pods, c.nodes[2].name)
	if _, err := c.nodes[0].shoal("delete", "pod", victim.Name); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "web's pod made again", 2*time.Minute, func() bool {
		pods, err := c.nodes[0].lanPods()
		if err != nil {
			return false
		}
		ready := 0
		for _, p := range pods {
			if p.Name == victim.Name {
				return false
			}
			if strings.HasPrefix(p.Name, "web-") && p.Ready {
				ready++
			}
		}
		return ready == 6
	})
	c.podsWithSecret(t, "web", secret)
	checkDumpHasNo(t, c.storeDump(t, c.nodes[1]), secret)

	for _, n := range c.nodes {
		n.logMu.Lock()
		log := n.log.String()
		n.logMu.Unlock()
		for _, enc := range encodings(secret) {
			if strings.Contains(log, enc) {
				t.Errorf("the daemon log of %s holds the secret (%q)", n.name, enc)
			}
		}
	}
}
