package node

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifests"
)

func TestStorageCapacity(t *testing.T) {
	got, err := storageCapacity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 {
		t.Errorf("capacity = %d, want the size of the temporary directory's filesystem", got)
	}
	if _, err := storageCapacity(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("no error for a missing directory")
	}
}

func TestNodeTaints(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	evict := manifests.Taint{Key: "maintenance", Value: "true", Effect: manifests.TaintEffectNoExecute}
	keep := manifests.Taint{Key: "dedicated", Value: "db", Effect: manifests.TaintEffectNoSchedule}

	got, err := nodeTaints(dir, []manifests.Taint{keep, evict}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Taint != keep || !got[0].TimeAdded.IsZero() || got[1].Taint != evict || !got[1].TimeAdded.Equal(t0) {
		t.Fatalf("first start: %+v; want the NoExecute taint stamped %s and the other not", got, t0)
	}

	// A restart with the same taint keeps its time; a new one starts now.
	other := manifests.Taint{Key: "drain", Effect: manifests.TaintEffectNoExecute}
	t1 := t0.Add(time.Hour)
	got, err = nodeTaints(dir, []manifests.Taint{evict, other}, t1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].TimeAdded.Equal(t0) || !got[1].TimeAdded.Equal(t1) {
		t.Fatalf("restart: %+v; want %s kept and %s for the new taint", got, t0, t1)
	}

	// A changed value is another taint.
	changed := evict
	changed.Value = "false"
	got, err = nodeTaints(dir, []manifests.Taint{changed}, t1.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].TimeAdded.Equal(t1.Add(time.Hour)) {
		t.Errorf("changed value: added %s, want now", got[0].TimeAdded)
	}

	// No taints: the record goes away.
	if got, err = nodeTaints(dir, nil, t1); err != nil || got != nil {
		t.Fatalf("no taints: %+v, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, taintsFile)); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", taintsFile, err)
	}

	// A damaged record counts as none.
	if err := os.WriteFile(filepath.Join(dir, taintsFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = nodeTaints(dir, []manifests.Taint{evict}, t1)
	if err != nil || !got[0].TimeAdded.Equal(t1) {
		t.Fatalf("damaged record: %+v, %v; want the taint stamped now", got, err)
	}
}
