package netplane

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
)

func TestClassify(t *testing.T) {
	missing := fmt.Errorf("attach tcx: %w", ebpf.ErrNotSupported)
	other := errors.New("permission denied")
	tests := []struct {
		name    string
		err     error
		want    bool // a *NotSupportedError
		wantErr error
	}{
		{"nil", nil, false, nil},
		{"not supported", missing, true, nil},
		{"other", other, false, other},
		{"already classified", &NotSupportedError{Feature: "x", Needs: "y", Err: missing}, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.err, "the node port programs", "Linux 6.6 or newer")
			var ns *NotSupportedError
			if got := errors.As(err, &ns); got != tc.want {
				t.Fatalf("classify(%v) = %v: NotSupportedError %v, want %v", tc.err, err, got, tc.want)
			}
			if tc.want {
				if !errors.Is(err, ErrNotSupported) || !errors.Is(err, ebpf.ErrNotSupported) {
					t.Errorf("%v: does not match ErrNotSupported and ebpf.ErrNotSupported", err)
				}
				if !strings.Contains(err.Error(), "--pod-network none") {
					t.Errorf("%q does not say what to do", err)
				}
				return
			}
			if err != tc.wantErr || errors.Is(err, ErrNotSupported) {
				t.Errorf("classify(%v) = %v, want it unchanged", tc.err, err)
			}
		})
	}
	// Wrapped further by Open, it still classifies.
	err := fmt.Errorf("network plane: %w", classify(missing, "the node port programs", "Linux 6.6 or newer"))
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "the node port programs") || !strings.Contains(err.Error(), "Linux 6.6") {
		t.Errorf("%q: want the feature, what it needs, and a match for ErrNotSupported", err)
	}
}

func TestCheckFeatures(t *testing.T) {
	var ran []string
	f := func(name string, err error) feature {
		return feature{name: name, needs: "Linux 9", check: func() error { ran = append(ran, name); return err }}
	}
	err := checkFeatures([]feature{f("a", nil), f("b", syscall.EPERM), f("c", fmt.Errorf("probe: %w", ebpf.ErrNotSupported)), f("d", nil)})
	var ns *NotSupportedError
	if !errors.As(err, &ns) || ns.Feature != "c" || ns.Needs != "Linux 9" {
		t.Fatalf("checkFeatures = %v, want feature c not supported", err)
	}
	if strings.Join(ran, "") != "abc" {
		t.Errorf("checks run: %v, want a, b and c (a check that cannot run is no verdict; the first missing one stops)", ran)
	}
	if err := checkFeatures([]feature{f("a", nil), f("b", syscall.EPERM)}); err != nil {
		t.Errorf("checkFeatures without a missing feature = %v", err)
	}
}
