package libct

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSeccomp(t *testing.T) {
	present := filepath.Join(t.TempDir(), "actions_avail")
	if err := os.WriteFile(present, []byte("kill_process\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		built     bool
		kernel    string
		wantError string
	}{
		{"built with seccomp", true, present, ""},
		{"built without seccomp", false, present, "make build"},
		{"kernel without seccomp filters", true, filepath.Join(t.TempDir(), "missing"), "CONFIG_SECCOMP_FILTER"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setSeccomp(t, tc.built, tc.kernel)
			err := CheckSeccomp()
			if tc.wantError == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNoSeccomp) || !strings.Contains(err.Error(), tc.wantError) {
				t.Fatalf("CheckSeccomp() = %v, want ErrNoSeccomp saying %q", err, tc.wantError)
			}
		})
	}
}

func setSeccomp(t *testing.T, built bool, kernelFile string) {
	oldBuilt, oldFile := seccompAvailable, kernelSeccompFile
	seccompAvailable, kernelSeccompFile = built, kernelFile
	t.Cleanup(func() { seccompAvailable, kernelSeccompFile = oldBuilt, oldFile })
}

// Without seccomp support a container that would get a profile fails at once with the reason,
// before anything is made; one that runs unconfined or privileged is not affected by it.
func TestStartWithoutSeccompFailsAtOnce(t *testing.T) {
	setSeccomp(t, false, kernelSeccompFile)
	state := t.TempDir()
	r, err := NewRunner(state)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: "noseccomp", Args: []string{"/testapp"}, Lower: []string{t.TempDir()}}
	_, err = r.Start(context.Background(), cfg)
	if !errors.Is(err, ErrNoSeccomp) || !strings.Contains(err.Error(), "-tags seccomp") {
		t.Fatalf("Start = %v, want ErrNoSeccomp with how to build", err)
	}
	if _, err := os.Stat(r.dir(cfg.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start left %s: %v", r.dir(cfg.ID), err)
	}
}
