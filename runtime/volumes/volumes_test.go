package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPrepareKeepsData(t *testing.T) {
	d := Dir{Root: filepath.Join(t.TempDir(), "volumes")}
	path, err := d.Prepare("u1", "default", "data")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o777 {
		t.Fatalf("volume dir: %v %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(path, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := d.Prepare("u1", "default", "data")
	if err != nil || again != path {
		t.Fatalf("prepare again: %q %v", again, err)
	}
	if b, err := os.ReadFile(filepath.Join(path, "f")); err != nil || string(b) != "x" {
		t.Errorf("data after prepare again: %q %v", b, err)
	}
	if uids, err := d.List(); err != nil || !slices.Equal(uids, []string{"u1"}) {
		t.Errorf("list: %v %v", uids, err)
	}
}

func TestMissingVolumeIsNotRemade(t *testing.T) {
	d := Dir{Root: t.TempDir()}
	path, err := d.Prepare("u1", "default", "data")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Prepare("u1", "default", "data"); !errors.Is(err, ErrMissing) {
		t.Errorf("prepare after the directory was removed: %v, want ErrMissing", err)
	}
	if err := d.Remove("u1"); err != nil {
		t.Fatal(err)
	}
	if uids, _ := d.List(); len(uids) != 0 {
		t.Errorf("after remove: %v", uids)
	}
	if _, err := d.Prepare("u1", "default", "data"); err != nil {
		t.Errorf("prepare after remove: %v", err)
	}
}

func TestInvalidUID(t *testing.T) {
	d := Dir{Root: t.TempDir()}
	for _, uid := range []string{"", "..", "a/b"} {
		if _, err := d.Prepare(uid, "default", "data"); err == nil {
			t.Errorf("Prepare(%q) accepted", uid)
		}
		if err := d.Remove(uid); err == nil {
			t.Errorf("Remove(%q) accepted", uid)
		}
	}
}
