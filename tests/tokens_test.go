package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestJoinTokens runs four nodes in network namespaces. The founder starts alone, and the second
// node joins it with tokens made by `shoal token create`: an expired token, a deleted one and an
// agent token with --role server are each refused with what to do, and the node exits at once
// instead of trying again; with the agent token as an agent it joins. Two servers then join with
// the founding token and run the other store members. The agent runs pods and no store member,
// and never campaigns: the store's candidates for master are the three servers; when the master
// is frozen, a server takes over. The agent starts again after its token is deleted. The founding
// token is never in a daemon's output, and `shoal token list` never shows a secret.
func TestJoinTokens(t *testing.T) {
	needRoot(t)
	c := newLANCluster(t, 4)
	n1, n2, n3, n4 := c.nodes[0], c.nodes[1], c.nodes[2], c.nodes[3]
	c.repo.commit("start", map[string]string{"README.md": "cluster\n"})
	n1.start(t)
	n1.waitAPI(t)

	// The founding token: a server token in <data dir>/token, mode 0600, and nowhere in the
	// daemon's output (its stderr is no terminal, so it is not shown either).
	data, err := os.ReadFile(filepath.Join(n1.dataDir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	founding := strings.TrimSpace(string(data))
	parts := strings.Split(founding, ".")
	if len(parts) != 4 || parts[0] != "shoal2" {
		t.Fatalf("the founding token %q is not shoal2.<CA hash>.<ID>.<secret>", founding)
	}
	foundingID, foundingSecret := parts[2], parts[3]
	if fi, err := os.Stat(filepath.Join(n1.dataDir, "token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the token file: %v, %v; want mode 0600", fi, err)
	}
	if log := n1.logSince(0); strings.Contains(log, foundingSecret) || !strings.Contains(log, "shoal token create") {
		t.Errorf("the founder's output shows the token's secret, or does not name shoal token create:\n%s", lastLines(log, 40))
	}

	tokenDir := t.TempDir()
	create := func(args ...string) string {
		t.Helper()
		out, err := n1.shoal(append([]string{"token", "create"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSpace(out)
		if !strings.HasPrefix(tok, "shoal2.") || strings.Contains(tok, "\n") {
			t.Fatalf("token create printed %q, want the token alone", out)
		}
		return tok
	}
	baseArgs := append([]string(nil), n2.args...)
	// useToken points n2's --join-token-file at a file holding tok, with extra flags.
	useToken := func(tok string, extra ...string) {
		t.Helper()
		f := filepath.Join(tokenDir, "join-token")
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		n2.args = append([]string(nil), baseArgs...)
		for i, a := range n2.args {
			if a == "--join-token-file" {
				n2.args[i+1] = f
			}
		}
		n2.args = append(n2.args, extra...)
	}
	// refused starts n2 with tok and waits for it to exit by itself, with an error naming want.
	refused := func(t *testing.T, tok, want string, extra ...string) {
		t.Helper()
		useToken(tok, extra...)
		mark := n2.logLen()
		start := time.Now()
		n2.start(t)
		done := make(chan error, 1)
		cmd := n2.cmd
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
			n2.cmd = nil
		case <-time.After(60 * time.Second):
			n2.kill()
			t.Fatalf("the node did not exit within 60 s of a refused join:\n%s", lastLines(n2.logSince(mark), 20))
		}
		log := n2.logSince(mark)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("the node exited with %v, want a non-zero exit code", err)
		}
		if !strings.Contains(log, want) {
			t.Errorf("the node's output lacks %q:\n%s", want, lastLines(log, 20))
		}
		if strings.Count(log, "join: trying again") > 0 {
			t.Errorf("the refused join was tried again:\n%s", lastLines(log, 20))
		}
		t.Logf("refused and exited %v after the start: %s", time.Since(start).Round(10*time.Millisecond), lastLines(strings.TrimSpace(log), 1))
	}

	t.Run("Expired", func(t *testing.T) {
		tok := create("--role", "server", "--ttl", "2s", "--description", "expires at once")
		time.Sleep(3 * time.Second)
		refused(t, tok, `expired at`)
		if !strings.Contains(n2.logSince(0), `make a new one on a server node with "shoal token create"`) {
			t.Errorf("the expiry does not say what to do:\n%s", lastLines(n2.logSince(0), 5))
		}
	})
	t.Run("Deleted", func(t *testing.T) {
		tok := create("--role", "server")
		id := strings.Split(tok, ".")[2]
		if out, err := n1.shoal("token", "delete", id); err != nil || !strings.Contains(out, id+" deleted") {
			t.Fatalf("token delete: %q %v", out, err)
		}
		refused(t, tok, "not known to the cluster")
	})
	agentTok := create("--role", "agent", "--description", "agent n2")
	t.Run("AgentTokenAsServer", func(t *testing.T) {
		refused(t, agentTok, "admits agents only", "--role", "server")
	})
	t.Run("OldToken", func(t *testing.T) {
		refused(t, "shoal1."+parts[1]+"."+strings.Repeat("0", 32), "shoal token create")
	})

	t.Run("ListShowsNoSecret", func(t *testing.T) {
		for _, args := range [][]string{{"token", "list"}, {"token", "list", "-o", "json"}} {
			out, err := n1.shoal(args...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, foundingSecret) || strings.Contains(out, strings.Split(agentTok, ".")[3]) {
				t.Errorf("shoal %s shows a secret:\n%s", strings.Join(args, " "), out)
			}
			if !strings.Contains(out, foundingID) || !strings.Contains(out, "agent n2") {
				t.Errorf("shoal %s lacks the founding or the agent token:\n%s", strings.Join(args, " "), out)
			}
		}
		t.Logf("shoal token list:\n%s", func() string { out, _ := n1.shoal("token", "list"); return out }())
	})

	t.Run("Agent", func(t *testing.T) {
		useToken(agentTok, "--role", "agent")
		n2.start(t)
		n2.waitAPI(t)
		// Then two servers, with the founding token: the other two store members.
		for _, n := range []*lanNode{n3, n4} {
			n.start(t)
			n.waitAPI(t)
		}
		waitUntil(t, "every node in the status, n3 and n4 store members", 2*time.Minute, func() bool {
			st := n1.status()
			members := 0
			for _, ns := range st.Nodes {
				if ns.Store == "member" {
					members++
				}
			}
			return len(st.Nodes) == 4 && st.Master != "" && members == 3
		})
		start := time.Now()
		sha := c.repo.commit("web on the agent", map[string]string{"web.yaml": deployment("web", 2, "v1",
			"      nodeSelector: {kubernetes.io/hostname: "+n2.name+"}\n")})
		c.waitAllConverged(t, sha, 3*time.Minute)
		pods, err := n1.lanPods()
		if err != nil {
			t.Fatal(err)
		}
		if on := podsByNode(pods, "web-")[n2.name]; on != 2 {
			t.Errorf("%d ready web pods on the agent, want 2: %+v", on, pods)
		}
		t.Logf("2 web pods ready on the agent %v after the commit", time.Since(start).Round(100*time.Millisecond))
		checkAgent := func(obs *lanNode) {
			t.Helper()
			st := obs.status()
			if st.Master == n2.name || st.Master == "" {
				t.Errorf("master %q: want a server; an agent never is", st.Master)
			}
			for _, ns := range st.Nodes {
				if ns.Name == n2.name && (ns.Store != "client" || ns.Master) {
					t.Errorf("the agent's status: store %q, master %v; want a store client, never master", ns.Store, ns.Master)
				}
			}
		}
		checkAgent(n1)
		log := n2.logSince(0)
		if !strings.Contains(log, "never campaigns for master") {
			t.Errorf("the agent's log does not say that it never campaigns:\n%s", lastLines(withoutDebug(log), 30))
		}
		if _, err := os.Stat(filepath.Join(n2.dataDir, "pki", "ca.key")); err == nil {
			t.Error("the agent holds the CA key")
		}
		if out, err := n2.shoal("token", "create"); err == nil || !strings.Contains(err.Error(), "needs a server node") {
			t.Errorf("token create on the agent: %q %v, want a refusal saying it needs a server node", out, err)
		}

		// The candidates for master, as the store has them: the servers, never the agent.
		var candidates []string
		for _, kv := range c.storeDump(t, n1) {
			if strings.HasPrefix(kv.Key, "/shoal/master/") {
				candidates = append(candidates, string(kv.Value))
			}
		}
		if slices.Contains(candidates, n2.name) || len(candidates) != 3 {
			t.Errorf("the candidates for master are %v, want the three servers and not the agent %s", candidates, n2.name)
		}
		t.Logf("candidates for master: %v", candidates)

		// The master frozen: a server takes over.
		master := c.node(t, n1.status().Master)
		obs := n3
		if master == n3 {
			obs = n4
		}
		master.pause()
		var next string
		waitUntil(t, "another master", time.Minute, func() bool {
			next = obs.status().Master
			return next != "" && next != master.name
		})
		t.Logf("%s froze; %s took over as master", master.name, next)
		checkAgent(obs)
		if log := n2.logSince(0); strings.Contains(log, `msg="acting as master"`) {
			t.Errorf("the agent acted as master:\n%s", lastLines(withoutDebug(log), 30))
		}
		master.resume()

		// A node that joined needs no valid token to start again.
		if _, err := n1.shoal("token", "delete", agentTok); err != nil {
			t.Fatal(err)
		}
		n2.kill()
		mark := n2.logLen()
		n2.start(t)
		n2.waitAPI(t)
		waitUntil(t, "the agent back and ready", 90*time.Second, func() bool {
			for _, ns := range obs.status().Nodes {
				if ns.Name == n2.name {
					return ns.Ready
				}
			}
			return false
		})
		checkAgent(obs)
		if log := n2.logSince(mark); !strings.Contains(log, "not used again") || !strings.Contains(log, "never campaigns for master") {
			t.Errorf("the restarted agent does not say that it does not use --join again, or that it is still an agent:\n%s",
				lastLines(withoutDebug(log), 20))
		}
	})
}
