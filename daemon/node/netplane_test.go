package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/netplane/lb"
	"github.com/shoal-dev/shoal/netplane/nodeport"
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

// A LoadBalancer Service is programmed on its virtual IP, on its node ports and, with the same
// backends, on its own ports of the node's address; a port the daemon listens on is left out.
func TestWantServicesLoadBalancer(t *testing.T) {
	eps := []cluster.EndpointRecord{
		{IP: "10.244.1.3", Node: "n2", Pod: "default/web-b", Ports: map[string]int32{"http": 8080, "admin": 9090}},
		{IP: "10.244.0.2", Node: "n1", Pod: "default/web-a", Ports: map[string]int32{"http": 8080, "admin": 9090}},
	}
	svcs := map[string]cluster.ServiceRecord{
		"/shoal/services/default/front": {Namespace: "default", Name: "front", ClusterIP: "10.96.0.5", Type: "LoadBalancer",
			Ports:     []cluster.ServicePort{{Name: "http", Protocol: "TCP", Port: 8081, NodePort: 30001}, {Name: "admin", Protocol: "TCP", Port: 7443, NodePort: 30002}},
			Endpoints: eps},
		"/shoal/services/default/np": {Namespace: "default", Name: "np", ClusterIP: "10.96.0.6", Type: "NodePort",
			Ports: []cluster.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, NodePort: 30003}}, Endpoints: eps},
		"/shoal/services/default/plain": {Namespace: "default", Name: "plain", ClusterIP: "10.96.0.7", Type: "ClusterIP",
			Ports: []cluster.ServicePort{{Name: "http", Protocol: "TCP", Port: 8082}}, Endpoints: eps},
	}
	want, wantNP, skipped := wantServices(svcs, []uint16{2379, 2380, 7443})
	backends := []netip.AddrPort{netip.MustParseAddrPort("10.244.0.2:8080"), netip.MustParseAddrPort("10.244.1.3:8080")}
	if got := want[lbKey{netip.MustParseAddr("10.96.0.5"), 8081, lb.TCP}]; !slices.Equal(got.Backends, backends) {
		t.Errorf("virtual IP of front: %+v, want backends %v", got, backends)
	}
	if len(want) != 4 {
		t.Errorf("load balancer: %d services, want 4 (two of front, np, plain)", len(want))
	}
	var ports []uint16
	for k, s := range wantNP {
		ports = append(ports, k.port)
		if k.port != 30002 && !slices.Equal(s.Backends, backends) {
			t.Errorf("port %d: backends %v, want %v", k.port, s.Backends, backends)
		}
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []uint16{8081, 30001, 30002, 30003}) {
		t.Errorf("node's address: ports %v, want front's 8081 and the node ports, not plain's 8082 nor the daemon's 7443", ports)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], "default/front 7443/TCP: the daemon listens on it") {
		t.Errorf("skipped = %q, want front's 7443", skipped)
	}
}

// A LoadBalancer Service the master left pending opens nothing on the node's address but its
// node ports; its virtual IP still works.
func TestWantServicesPendingLoadBalancer(t *testing.T) {
	svcs := map[string]cluster.ServiceRecord{
		"/shoal/services/default/admin": {Namespace: "default", Name: "admin", ClusterIP: "10.96.0.8", Type: "LoadBalancer", Pending: true,
			Ports:     []cluster.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, NodePort: 30004}},
			Endpoints: []cluster.EndpointRecord{{IP: "10.244.0.9", Node: "n1", Pod: "default/admin", Ports: map[string]int32{"http": 8080}}}},
	}
	want, wantNP, skipped := wantServices(svcs, nil)
	if len(want) != 1 || len(skipped) != 0 {
		t.Errorf("load balancer %v, skipped %q: want the virtual IP and nothing skipped", want, skipped)
	}
	if _, ok := wantNP[npKey{30004, nodeport.TCP}]; !ok || len(wantNP) != 1 {
		t.Errorf("node's address: %v, want only the node port 30004", wantNP)
	}
}

func TestDaemonPorts(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		member bool
		want   []uint16
	}{
		{name: "defaults, store member", cfg: Config{Addresses: []string{"10.0.0.1"}}, member: true, want: []uint16{2379, 2380, 7443}},
		{name: "store client", cfg: Config{Addresses: []string{"10.0.0.1"}, ClusterPort: 8443}, want: []uint16{8443}},
		{name: "listeners on the node's address and everywhere", cfg: Config{Addresses: []string{"10.0.0.1"}, APIListen: "10.0.0.1:6443",
			WebhookListen: ":9000"}, want: []uint16{6443, 7443, 9000}},
		{name: "listeners elsewhere", cfg: Config{Addresses: []string{"10.0.0.1"}, APIListen: "127.0.0.1:6443",
			WebhookListen: "192.168.1.1:9000"}, want: []uint16{7443}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := daemonPorts(tc.cfg, tc.member); !slices.Equal(got, tc.want) {
				t.Errorf("daemonPorts = %v, want %v", got, tc.want)
			}
		})
	}
}
