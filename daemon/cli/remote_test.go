package cli

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/runtime"
)

// commitsBackend serves a cluster with one applied commit that has warnings
// and a rejected one before it.
type commitsBackend struct{}

func (commitsBackend) Snapshot(context.Context) (*cluster.Snapshot, error) {
	now := time.Now()
	return &cluster.Snapshot{
		Now: now, Leader: "n1",
		Nodes:   []cluster.NodeRecord{{Name: "n1", Heartbeat: now}},
		Applied: cluster.AppliedRecord{SHA: "bbbbbbbbbb"}, Converged: "bbbbbbbbbb",
		Commits: []cluster.CommitRecord{
			{SHA: "aaaaaaaaaa", Result: cluster.ResultRejected, Message: "bad", SeenAt: now.Add(-2 * time.Minute), Reasons: []string{"x.yaml:1: kind: missing"}},
			{SHA: "bbbbbbbbbb", Result: cluster.ResultApplied, Message: "rbac", SeenAt: now.Add(-time.Minute),
				Warnings: []string{`rbac.yaml:1: warning: Role "reader" has no effect in Shoal`}},
		},
		Statuses: map[string]cluster.PodStatusRecord{},
	}, nil
}

func (commitsBackend) Events(context.Context) ([]cluster.Event, error) { return nil, nil }
func (commitsBackend) Logs(context.Context, string, string, string, runtime.LogOptions, io.Writer) error {
	return api.ErrNotFound
}
func (commitsBackend) Exec(context.Context, string, string, string, runtime.ExecOptions) (int, error) {
	return 0, api.ErrNotFound
}
func (commitsBackend) Cordon(context.Context, string, bool, bool) error { return api.ErrNotFound }
func (commitsBackend) StoreLeader(context.Context) string               { return "" }
func (commitsBackend) RemoveNode(context.Context, string) error         { return api.ErrNotFound }
func (commitsBackend) DeletePod(context.Context, string, string) error  { return api.ErrNotFound }

func TestStatusAndHistoryShowWarnings(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.NewHandler(api.Config{Backend: commitsBackend{}})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	warning := `rbac.yaml:1: warning: Role "reader" has no effect in Shoal`
	code, out, errOut := run(t, "status", "--socket", sock)
	if code != ExitOK {
		t.Fatalf("status: exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "Warnings of the applied commit bbbbbbb:\n  "+warning+"\n") {
		t.Errorf("status does not show the warnings:\n%s", out)
	}
	code, out, errOut = run(t, "history", "--socket", sock)
	if code != ExitOK {
		t.Fatalf("history: exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(out, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "bbbbbbb") })
	if i < 0 || i+1 >= len(lines) || !strings.Contains(lines[i+1], warning) {
		t.Errorf("history does not show the warning under its commit:\n%s", out)
	}
	if j := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "aaaaaaa") }); j < 0 || !strings.Contains(lines[j+1], "x.yaml:1: kind: missing") {
		t.Errorf("history does not show the reasons under the rejected commit:\n%s", out)
	}
}
