package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// authzEnv carries an authzRun to TestAuthzHelper, inside a node's network namespace.
const authzEnv = "SHOAL_E2E_AUTHZ"

// authzProbe is one request made with a node's certificate: to the store (put, get, list a
// prefix) or to a cluster endpoint (http).
type authzProbe struct {
	Name   string `json:"name"`
	Op     string `json:"op"` // put, get, list, http
	Key    string `json:"key,omitempty"`
	Method string `json:"method,omitempty"`
	URL    string `json:"url,omitempty"`
}

// authzResult is what a probe got.
type authzResult struct {
	Name   string `json:"name"`
	Denied bool   `json:"denied"` // the store refused it for its user's permissions
	Err    string `json:"err,omitempty"`
	Status int    `json:"status,omitempty"` // of an http probe
	Body   string `json:"body,omitempty"`
}

type authzRun struct {
	PKI    string       `json:"pki"`   // a node's <data dir>/pki
	Store  string       `json:"store"` // a store member's client URL
	Probes []authzProbe `json:"probes"`
}

// TestAuthzHelper is not a test: with authzEnv set it is the test binary making requests with a
// node's certificate, as a thief of the node's key would, from the node's network namespace.
func TestAuthzHelper(t *testing.T) {
	spec := os.Getenv(authzEnv)
	if spec == "" {
		t.Skip("run by TestAuthz inside a node's network namespace")
	}
	var run authzRun
	if err := json.Unmarshal([]byte(spec), &run); err != nil {
		t.Fatal(err)
	}
	tc := nodeTLS(t, run.PKI)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Connect(ctx, store.Config{Endpoints: []string{run.Store}, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	var out []authzResult
	for _, p := range run.Probes {
		r := authzResult{Name: p.Name}
		var err error
		switch p.Op {
		case "put":
			err = store.Put(ctx, st, p.Key, map[string]string{"by": "a thief"})
		case "get":
			_, err = st.Etcd().Get(ctx, p.Key)
		case "list":
			_, err = st.Etcd().Get(ctx, p.Key, clientv3.WithPrefix())
		case "http":
			req, rerr := http.NewRequestWithContext(ctx, p.Method, p.URL, strings.NewReader("{}"))
			if rerr != nil {
				t.Fatal(rerr)
			}
			resp, herr := hc.Do(req)
			if err = herr; herr == nil {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				r.Status, r.Body = resp.StatusCode, strings.TrimSpace(string(body))
			}
		}
		if err != nil {
			r.Err, r.Denied = err.Error(), store.IsPermissionDenied(err)
		}
		out = append(out, r)
	}
	data, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\nAUTHZ %s\n", data)
}

// probe runs the probes with the certificate of node from inside its network namespace, against
// the store member of server.
func (c *lanCluster) probe(t *testing.T, from, server *lanNode, probes ...authzProbe) map[string]authzResult {
	t.Helper()
	spec, err := json.Marshal(authzRun{PKI: filepath.Join(from.dataDir, "pki"), Store: "https://" + server.addr + ":2379", Probes: probes})
	if err != nil {
		t.Fatal(err)
	}
	line := from.runHelper(t, "TestAuthzHelper", authzEnv+"="+string(spec), "AUTHZ")
	var results []authzResult
	if err := json.Unmarshal([]byte(line), &results); err != nil {
		t.Fatal(err)
	}
	byName := map[string]authzResult{}
	for _, r := range results {
		byName[r.Name] = r
	}
	return byName
}

// TestAuthz runs two servers and an agent in network namespaces, and tries with the agent's
// certificate (its key and certificate read from its data dir, as a thief would) what the agent
// may not do: write placements, for itself or another node, the desired state, the applied
// record or an election key straight to the store; read another node's status or placements;
// and, on the servers' cluster endpoints, drain, delete a node, make a token, read Secrets or
// another node's pod logs. Each is refused, while the agent converges: it runs its pods, reports
// their status and serves their Service and DNS, with no request of its refused; a server's
// `shoal logs` and `shoal exec` reach the agent's pods, and the agent's own CLI shows its part
// and says where to see the rest. Once `shoal node remove` removed the agent, its certificate no
// longer opens the store, and its daemon, which was frozen meanwhile, says that it was removed
// and stops.
func TestAuthz(t *testing.T) {
	needRoot(t)
	start := time.Now()
	c := newLANCluster(t, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	c.repo.commit("start", map[string]string{"README.md": "cluster\n"})
	n1.start(t)
	n1.waitAPI(t)
	tok, err := n1.shoal("token", "create", "--role", "agent", "--description", "n3")
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(t.TempDir(), "agent-token")
	if err := os.WriteFile(tokFile, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, a := range n3.args {
		if a == "--join-token-file" {
			n3.args[i+1] = tokFile
		}
	}
	n3.args = append(n3.args, "--role", "agent")
	for _, n := range []*lanNode{n2, n3} {
		n.start(t)
	}
	for _, n := range []*lanNode{n2, n3} {
		n.waitAPI(t)
	}
	waitUntil(t, "every node in the status", 90*time.Second, func() bool {
		st := n1.status()
		return len(st.Nodes) == 3 && st.Master != ""
	})
	t.Logf("three nodes up in %v", time.Since(start).Round(100*time.Millisecond))

	on := func(node string) string { return "      nodeSelector: {kubernetes.io/hostname: " + node + "}\n" }
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {token: s3cret-authz}\n"
	sha := c.repo.commit("web on the agent, db on n2", map[string]string{"web.yaml": deployment("web", 2, "v1", on(n3.name)),
		"web-svc.yaml": webService, "db.yaml": deployment("db", 1, "v1", on(n2.name)), "creds.yaml": secret})
	c.waitAllConverged(t, sha, 2*time.Minute)
	pods, err := n1.lanPods()
	if err != nil {
		t.Fatal(err)
	}
	web, db := firstOn(pods, n3.name), firstOn(pods, n2.name)
	if podsByNode(pods, "web-")[n3.name] != 2 || db.Name == "" {
		t.Fatalf("pods %+v: want 2 web pods on the agent and db on n2", pods)
	}
	t.Logf("converged with 2 pods on the agent %v after the start", time.Since(start).Round(100*time.Millisecond))

	t.Run("AgentServes", func(t *testing.T) {
		// A server's CLI reaches the agent's pods through the agent's cluster endpoint.
		if out, err := n1.shoal("logs", web.Name); err != nil || !strings.Contains(out, "serving on :8080") {
			t.Errorf("logs of %s on the agent, through n1: %v %q", web.Name, err, out)
		}
		// The agent's DNS and Service: a pod on the agent resolves the Service and reaches it.
		vip := n1.serviceIP("web")
		var lookup string
		waitUntil(t, "web resolving on the agent", 30*time.Second, func() bool {
			out, err := n1.exec(web.Name, "/app", "lookup", "web")
			lookup = strings.TrimSpace(out)
			return err == nil
		})
		if lookup != vip || vip == "" {
			t.Errorf("web resolves to %q on the agent, want the virtual IP %q", lookup, vip)
		}
		if out, err := n1.exec(web.Name, "/app", "get", "http://web/"); err != nil || !strings.Contains(out, "from web-") {
			t.Errorf("GET the Service from the agent, through n1's exec: %v %q", err, out)
		}
	})

	t.Run("AgentCLI", func(t *testing.T) {
		st, err := n3.shoal("status")
		if err != nil || !strings.Contains(st, "is an agent") || !strings.Contains(st, "server node") || !strings.Contains(st, n3.name) {
			t.Errorf("shoal status on the agent: %v\n%s", err, st)
		}
		agentPods, err := n3.lanPods()
		if err != nil || len(agentPods) != 2 || podsByNode(agentPods, "web-")[n3.name] != 2 {
			t.Errorf("shoal get pods on the agent: %+v, %v; want its 2 web pods", agentPods, err)
		}
		if vip := n3.serviceIP("web"); vip == "" || vip != n1.serviceIP("web") {
			t.Errorf("shoal get svc web on the agent: %q", vip)
		}
		if out, err := n3.shoal("describe", "pod", web.Name); err != nil || !strings.Contains(out, "name: "+web.Name) ||
			!strings.Contains(out, "events: <") || !strings.Contains(out, "server node") {
			t.Errorf("shoal describe pod %s on the agent: %v\n%s", web.Name, err, out)
		}
		if out, err := n3.shoal("logs", web.Name); err != nil || !strings.Contains(out, "serving on :8080") {
			t.Errorf("shoal logs %s on the agent: %v %q", web.Name, err, out)
		}
		for _, args := range [][]string{{"drain", n2.name}, {"cordon", n2.name}, {"node", "remove", n2.name}, {"get", "secrets"},
			{"logs", db.Name}, {"describe", "pod", db.Name}, {"exec", db.Name, "--", "/app", "cat", "/etc/hostname"}, {"history"}} {
			out, err := n3.shoal(args...)
			if err == nil || !strings.Contains(err.Error(), "server node") || strings.Contains(err.Error(), "etcdserver") {
				t.Errorf("shoal %s on the agent: %v %q; want a refusal that says to run it on a server node", strings.Join(args, " "), err, out)
			}
		}
		if _, err := n3.shoal("token", "create"); err == nil || !strings.Contains(err.Error(), "server node") {
			t.Errorf("token create on the agent: %v", err)
		}
	})

	t.Run("AgentCertificate", func(t *testing.T) {
		ep1, ep2 := "https://"+n1.addr+":7443", "https://"+n2.addr+":7443"
		res := c.probe(t, n3, n1,
			authzProbe{Name: "own placement", Op: "put", Key: "/shoal/placements/" + n3.name + "/stolen"},
			authzProbe{Name: "n2's placement", Op: "put", Key: "/shoal/placements/" + n2.name + "/stolen"},
			authzProbe{Name: "desired state", Op: "put", Key: "/shoal/desired/" + sha + "/Secret/default/creds"},
			authzProbe{Name: "applied record", Op: "put", Key: "/shoal/commits/applied"},
			authzProbe{Name: "master key", Op: "put", Key: "/shoal/master/694d8f2b1c0a"},
			authzProbe{Name: "n2's status", Op: "list", Key: "/shoal/status/" + n2.name + "/"},
			authzProbe{Name: "every placement", Op: "list", Key: "/shoal/placements/"},
			authzProbe{Name: "desired reads", Op: "list", Key: "/shoal/desired/"},
			authzProbe{Name: "own node", Op: "get", Key: "/shoal/nodes/" + n3.name},
			authzProbe{Name: "own placements", Op: "list", Key: "/shoal/placements/" + n3.name + "/"},
			authzProbe{Name: "drain", Op: "http", Method: http.MethodPost, URL: ep1 + "/v1/nodes/" + n2.name + "/drain"},
			authzProbe{Name: "node delete", Op: "http", Method: http.MethodDelete, URL: ep1 + "/v1/nodes/" + n2.name},
			authzProbe{Name: "token create", Op: "http", Method: http.MethodPost, URL: ep1 + "/v1/tokens"},
			authzProbe{Name: "secret", Op: "http", Method: http.MethodGet, URL: ep1 + "/v1/secrets?name=creds"},
			authzProbe{Name: "status", Op: "http", Method: http.MethodGet, URL: ep1 + "/v1/status"},
			authzProbe{Name: "n2's pod logs", Op: "http", Method: http.MethodGet, URL: ep2 + "/v1/namespaces/default/pods/" + db.Name + "/log"},
			authzProbe{Name: "n2's pod exec", Op: "http", Method: http.MethodPost, URL: ep2 + "/v1/namespaces/default/pods/" + db.Name + "/exec?command=/app"},
		)
		for _, name := range []string{"own placement", "n2's placement", "desired state", "applied record", "master key", "n2's status",
			"every placement", "desired reads"} {
			if r := res[name]; !r.Denied {
				t.Errorf("the agent's certificate, %s: %+v; want permission denied", name, r)
			}
		}
		for _, name := range []string{"own node", "own placements"} {
			if r := res[name]; r.Err != "" {
				t.Errorf("the agent's certificate, %s: %+v; want allowed", name, r)
			}
		}
		for _, name := range []string{"drain", "node delete", "token create", "secret", "status", "n2's pod logs", "n2's pod exec"} {
			if r := res[name]; r.Status != http.StatusForbidden || strings.Contains(r.Body, "s3cret") {
				t.Errorf("the agent's certificate on a cluster endpoint, %s: %+v; want 403", name, r)
			}
		}
		t.Logf("agent certificate on n1's endpoint, drain: %d %s", res["drain"].Status, res["drain"].Body)
		// A server's certificate is refused too, for a pod that is not on the node it asks.
		srv := c.probe(t, n1, n1, authzProbe{Name: "web on n2", Op: "http", Method: http.MethodGet,
			URL: ep2 + "/v1/namespaces/default/pods/" + web.Name + "/log"})
		if r := srv["web on n2"]; r.Status != http.StatusForbidden || !strings.Contains(r.Body, "not placed on this node") {
			t.Errorf("n1's certificate asks n2 for the logs of a pod on the agent: %+v; want 403", r)
		}
	})

	if log := strings.ToLower(n3.logSince(0)); strings.Contains(log, "permission denied") || strings.Contains(log, "user name") {
		i := strings.Index(log, "permission denied")
		t.Errorf("the agent's log shows a refused request:\n%s", log[max(0, i-600):min(len(log), i+200)])
	}

	t.Run("Removed", func(t *testing.T) {
		// Frozen until its lease ends, the agent can be removed; it learns it when it wakes.
		n3.pause()
		waitUntil(t, "the agent not ready", 30*time.Second, func() bool {
			for _, ns := range n1.status().Nodes {
				if ns.Name == n3.name {
					return !ns.Ready
				}
			}
			return false
		})
		if out, err := n1.shoal("node", "remove", n3.name); err != nil {
			t.Fatalf("node remove: %v %q", err, out)
		}
		mark := n3.logLen()
		n3.resume()
		done := make(chan error, 1)
		cmd := n3.cmd
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			n3.cmd = nil
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Errorf("the removed agent exited with %v, want an error", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the removed agent still runs 30 s after it woke:\n%s", lastLines(withoutDebug(n3.logSince(mark)), 20))
		}
		log := n3.logSince(mark)
		if !strings.Contains(log, "this node was removed from the cluster") {
			t.Errorf("the removed agent does not say that it was removed:\n%s", lastLines(withoutDebug(log), 20))
		}
		if n := strings.Count(log, "register node; retrying"); n > 1 {
			t.Errorf("the removed agent tried %d times to register again", n)
		}
		res := c.probe(t, n3, n1, authzProbe{Name: "own node", Op: "get", Key: "/shoal/nodes/" + n3.name})
		if r := res["own node"]; !r.Denied {
			t.Errorf("the removed agent's certificate reads the store: %+v", r)
		}
		t.Logf("removed: %s", lastLines(strings.TrimSpace(withoutDebug(log)), 1))
	})
	t.Logf("TestAuthz took %v", time.Since(start).Round(100*time.Millisecond))
}
