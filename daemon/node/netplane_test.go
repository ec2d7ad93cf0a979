package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/netplane/podnet"
	"github.com/shoal-dev/shoal/runtime/libct"
)

func TestToPodnetHostPort(t *testing.T) {
	tests := []struct {
		name    string
		in      cluster.HostPort
		want    podnet.HostPort
		wantErr string
	}{
		{name: "every address", in: cluster.HostPort{UID: "u", Pod: "default/a", Protocol: "TCP", HostPort: 8080, ContainerPort: 80},
			want: podnet.HostPort{UID: "u", Pod: "default/a", Protocol: "TCP", HostPort: 8080, PodPort: 80}},
		{name: "one address", in: cluster.HostPort{UID: "u", Protocol: "UDP", HostIP: "10.0.0.1", HostPort: 53, ContainerPort: 5353},
			want: podnet.HostPort{UID: "u", Protocol: "UDP", HostIP: netip.MustParseAddr("10.0.0.1"), HostPort: 53, PodPort: 5353}},
		{name: "bad host IP", in: cluster.HostPort{UID: "u", Protocol: "TCP", HostIP: "node", HostPort: 1, ContainerPort: 1}, wantErr: "not an IP address"},
		{name: "port out of range", in: cluster.HostPort{UID: "u", Protocol: "TCP", HostPort: 70000, ContainerPort: 1}, wantErr: "1..65535"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toPodnetHostPort(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// Before the node has its pod CIDR the declared ports are kept for the network plane to apply.
func TestSetHostPortsBeforeThePodNetwork(t *testing.T) {
	n := newNetwork(NetConfig{}, "n1", t.TempDir(), nil, slog.New(slog.DiscardHandler))
	refused, err := n.SetHostPorts(context.Background(), []cluster.HostPort{
		{UID: "a", Protocol: "TCP", HostPort: 80, ContainerPort: 80},
		{UID: "b", Protocol: "TCP", HostIP: "x", HostPort: 81, ContainerPort: 80},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 1 || refused["b"] == "" {
		t.Errorf("refused = %v, want b's bad host IP", refused)
	}
	if len(n.hostPorts) != 1 || n.hostPorts[0].UID != "a" {
		t.Errorf("kept %v, want a's port", n.hostPorts)
	}
}

// A daemon that cannot give containers their seccomp profile refuses to start, before it makes
// anything.
func TestRunRefusesWithoutSeccomp(t *testing.T) {
	old := checkSeccomp
	checkSeccomp = func() error {
		return fmt.Errorf("%w: built without it; build shoal with `make build`", libct.ErrNoSeccomp)
	}
	t.Cleanup(func() { checkSeccomp = old })
	dataDir := filepath.Join(t.TempDir(), "data")
	err := Run(context.Background(), Config{Name: "n1", Repo: "file:///nonexistent", DataDir: dataDir})
	if !errors.Is(err, libct.ErrNoSeccomp) || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("Run = %v, want the seccomp refusal", err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Run made %s before refusing: %v", dataDir, err)
	}
}
