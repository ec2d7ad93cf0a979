package api_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime"
)

type backend struct{}

func (backend) Snapshot(context.Context) (*cluster.Snapshot, error) {
	pod := func(name string, labels map[string]string) cluster.Placement {
		p := &manifests.Pod{ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
			Spec: manifests.PodSpec{Containers: []manifests.Container{{Name: "app", Image: "app:v1"}}}}
		return cluster.Placement{Spec: runtime.PodSpec{UID: "uid-" + name, Pod: p}, Node: "n1", Commit: "abc", Created: time.Now()}
	}
	return &cluster.Snapshot{
		Now: time.Now(), Leader: "n1",
		Nodes:     []cluster.NodeRecord{{Name: "n1", PodsRunning: 2, PodsDesired: 2}},
		Applied:   cluster.AppliedRecord{SHA: "abc"},
		Converged: "abc",
		Commits: []cluster.CommitRecord{{SHA: "abc", Result: cluster.ResultApplied, SeenAt: time.Now().Add(-time.Minute), ConvergedAt: time.Now(),
			Warnings: []string{`rbac.yaml:1: warning: Role "r" has no effect in Shoal`}}},
		Placements: []cluster.Placement{pod("web-1", map[string]string{"app": "web"}), pod("db-1", map[string]string{"app": "db"})},
		Statuses:   map[string]cluster.PodStatusRecord{},
	}, nil
}

func (backend) Events(context.Context) ([]cluster.Event, error) {
	return []cluster.Event{{Time: time.Now(), Type: "Normal", Reason: "Test", Object: "Pod default/web-1", Message: "hi"}}, nil
}

func (backend) Logs(_ context.Context, ns, name, _ string, _ runtime.LogOptions, w io.Writer) error {
	if name != "web-1" {
		return errors.Join(api.ErrNotFound)
	}
	_, err := io.WriteString(w, "line one\nline two\n")
	return err
}

func (backend) Exec(_ context.Context, _, _, _ string, opts runtime.ExecOptions) (int, error) {
	in, _ := io.ReadAll(opts.Stdin)
	io.WriteString(opts.Stdout, "out:"+strings.Join(opts.Command, " ")+":"+string(in))
	io.WriteString(opts.Stderr, "err")
	return 7, nil
}

func (backend) Cordon(_ context.Context, node string, _, _ bool) error {
	if node != "n1" {
		return api.ErrNotFound
	}
	return nil
}

func (backend) StoreLeader(context.Context) string { return "" }

func (backend) RemoveNode(_ context.Context, node string) error {
	switch node {
	case "gone":
		return nil
	case "n1":
		return fmt.Errorf("node %q: %w", node, api.ErrConflict)
	}
	return api.ErrNotFound
}

func (backend) DeletePod(_ context.Context, ns, name string) error {
	if ns == "default" && name == "web-1" {
		return nil
	}
	return fmt.Errorf("pod %s/%s: %w", ns, name, api.ErrNotFound)
}

func serve(t *testing.T, token string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.NewHandler(api.Config{Backend: backend{}, Token: token})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestAPI(t *testing.T) {
	sock := serve(t, "")
	c, err := client.New(client.Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var st cluster.Status
	if err := c.Get(ctx, "/v1/status", nil, &st); err != nil || st.Master != "n1" || len(st.Nodes) != 1 || st.Applied == nil {
		t.Fatalf("status: %v %+v", err, st)
	}
	if len(st.Applied.Warnings) != 1 || !strings.HasPrefix(st.Applied.Warnings[0], "rbac.yaml:1: warning: ") {
		t.Errorf("status lost the applied commit's warnings: %+v", st.Applied)
	}
	var hist []api.HistoryEntry
	if err := c.Get(ctx, "/v1/history", nil, &hist); err != nil || len(hist) != 1 || len(hist[0].Warnings) != 1 || !hist[0].Current {
		t.Errorf("history: %v %+v", err, hist)
	}
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Metadata struct{ Name, UID string }
			Spec     struct{ NodeName string }
		}
	}
	if err := c.Get(ctx, "/v1/pods", url.Values{"selector": {"app=web"}}, &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "List" || len(list.Items) != 1 || list.Items[0].Metadata.Name != "web-1" || list.Items[0].Spec.NodeName != "n1" || list.Items[0].Metadata.UID != "uid-web-1" {
		t.Errorf("pods -l app=web: %+v", list)
	}
	if err := c.Get(ctx, "/v1/pods", url.Values{"selector": {"app in (web"}}, &list); err == nil {
		t.Error("a bad selector was accepted")
	}
	if err := c.Get(ctx, "/v1/widgets", nil, &list); err == nil || !strings.Contains(err.Error(), "unknown resource") {
		t.Errorf("unknown resource: %v", err)
	}

	if err := c.Post(ctx, "/v1/nodes/n1/drain"); err != nil {
		t.Errorf("drain n1: %v", err)
	}
	if err := c.Post(ctx, "/v1/nodes/n9/cordon"); err == nil {
		t.Error("cordon of an unknown node succeeded")
	}
	if err := c.Delete(ctx, "/v1/nodes/gone"); err != nil {
		t.Errorf("remove a stopped node: %v", err)
	}
	if err := c.Delete(ctx, "/v1/nodes/n1"); err == nil || !strings.Contains(err.Error(), "running") {
		t.Errorf("remove a running node: %v", err)
	}
	if err := c.Delete(ctx, "/v1/nodes/n9"); err == nil {
		t.Error("remove of an unknown node succeeded")
	}
	if err := c.Delete(ctx, "/v1/namespaces/default/pods/web-1"); err != nil {
		t.Errorf("delete a pod: %v", err)
	}
	if err := c.Delete(ctx, "/v1/namespaces/default/pods/nowhere"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("delete an unknown pod: %v", err)
	}

	var logs bytes.Buffer
	if err := c.Logs(ctx, "default", "web-1", nil, &logs); err != nil || logs.String() != "line one\nline two\n" {
		t.Errorf("logs: %v %q", err, logs.String())
	}
	var out, errb bytes.Buffer
	code, err := c.Exec(ctx, "default", "web-1", "", []string{"cat", "-"}, strings.NewReader("input"), &out, &errb)
	if err != nil || code != 7 || out.String() != "out:cat -:input" || errb.String() != "err" {
		t.Errorf("exec: code %d err %v out %q stderr %q", code, err, out.String(), errb.String())
	}
}

func TestTokenRequired(t *testing.T) {
	sock := serve(t, "s3cret-token-0123456789")
	var st cluster.Status
	c, _ := client.New(client.Config{Socket: sock})
	if err := c.Get(context.Background(), "/v1/status", nil, &st); err == nil || !strings.Contains(err.Error(), "bearer token") {
		t.Errorf("no token: %v, want a refusal", err)
	}
	c, _ = client.New(client.Config{Socket: sock, Token: "wrong"})
	if err := c.Get(context.Background(), "/v1/status", nil, &st); err == nil {
		t.Error("a wrong token was accepted")
	}
	c, _ = client.New(client.Config{Socket: sock, Token: "s3cret-token-0123456789"})
	if err := c.Get(context.Background(), "/v1/status", nil, &st); err != nil {
		t.Errorf("the right token: %v", err)
	}
}

func TestListenUnixRefusesALiveSocket(t *testing.T) {
	sock := serve(t, "")
	if _, err := api.ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second listener on a live socket: %v", err)
	}
}

func TestTCPWithTLSAndToken(t *testing.T) {
	srv := httptest.NewTLSServer(api.NewHandler(api.Config{Backend: backend{}, Token: "s3cret-token-0123456789"}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	var st cluster.Status
	c, err := client.New(client.Config{Server: srv.URL, CAFile: ca, Token: "s3cret-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), "/v1/status", nil, &st); err != nil || st.Master != "n1" {
		t.Fatalf("status over TLS: %v", err)
	}
	c, _ = client.New(client.Config{Server: srv.URL, CAFile: ca})
	if err := c.Get(context.Background(), "/v1/status", nil, &st); err == nil {
		t.Error("no token accepted over TCP")
	}
	c, _ = client.New(client.Config{Server: srv.URL, Token: "s3cret-token-0123456789"})
	if err := c.Get(context.Background(), "/v1/status", nil, &st); err == nil {
		t.Error("a server certificate from an unknown CA was accepted")
	}
	if _, err := client.New(client.Config{Server: "http://" + strings.TrimPrefix(srv.URL, "https://")}); err == nil {
		t.Error("plain http:// accepted for the TCP API")
	}
}
