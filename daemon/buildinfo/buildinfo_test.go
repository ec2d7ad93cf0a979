package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	old := Commit
	t.Cleanup(func() { Commit = old })

	Commit = "0123abcd"
	info := Get()
	if info.Commit != "0123abcd" {
		t.Errorf("Commit = %q, want the link-time value", info.Commit)
	}
	if info.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", info.GoVersion, runtime.Version())
	}
	out := info.String()
	for _, want := range []string{"shoal " + Version, "commit: 0123abcd", "go: " + runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("String() = %q, missing %q", out, want)
		}
	}

	Commit = ""
	if got := Get().Commit; got == "" {
		t.Error("Commit is empty without a link-time value; want a VCS revision or \"unknown\"")
	}
}
