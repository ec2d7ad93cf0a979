package membership

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestClusterState(t *testing.T) {
	dir := t.TempDir()
	if st, err := loadState(dir); err != nil || st != nil {
		t.Fatalf("a new node: %+v, %v; want no state", st, err)
	}
	want := &clusterState{Member: true, Joined: true, InitialCluster: "a=https://10.0.0.1:2380", Endpoints: []string{"https://10.0.0.1:2379"}}
	if err := saveState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(dir)
	if err != nil || got == nil || got.Member != want.Member || got.Joined != want.Joined ||
		got.InitialCluster != want.InitialCluster || !slices.Equal(got.Endpoints, want.Endpoints) || got.Promoted {
		t.Fatalf("loaded %+v, %v; want %+v", got, err, want)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFileName+".tmp")); !os.IsNotExist(err) {
		t.Errorf("the temporary file is left behind: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateFileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadState(dir); err == nil || !strings.Contains(err.Error(), "join it again with an empty data dir") {
		t.Errorf("a damaged %s: %v, want an error that says what to do", stateFileName, err)
	}
}

// A node that had a store member refuses to start a new, empty one when its store directory is
// gone, and refuses to join another cluster.
func TestStoreMarker(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	if err := checkStoreDir(dir, storeDir); err != nil {
		t.Fatalf("a new node: %v", err)
	}
	if err := markStore(dir); err != nil {
		t.Fatal(err)
	}
	if err := checkStoreDir(dir, storeDir); err == nil || !strings.Contains(err.Error(), "restore it from a backup") {
		t.Errorf("missing store dir: %v, want the refusal", err)
	}
	if err := os.Mkdir(storeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := checkStoreDir(dir, storeDir); err != nil {
		t.Errorf("store dir present: %v", err)
	}

	c := Config{Name: "n1", DataDir: dir, Addresses: []string{"127.0.0.1"}, Join: "127.0.0.1", JoinToken: "unused",
		Logger: slog.New(slog.DiscardHandler)}
	if _, err := Setup(context.Background(), c); err == nil || !strings.Contains(err.Error(), "shoal node reset") {
		t.Errorf("join with a store of its own: %v, want the refusal", err)
	}
	c.Addresses = nil
	if _, err := Setup(context.Background(), c); err == nil || !strings.Contains(err.Error(), "--join needs --node-address") {
		t.Errorf("join without an address: %v", err)
	}
}
