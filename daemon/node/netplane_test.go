package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/netplane"
	"github.com/shoal-dev/shoal/reconcile"
	"github.com/shoal-dev/shoal/runtime/libct"
)

func TestToHostPort(t *testing.T) {
	tests := []struct {
		name    string
		in      cluster.HostPort
		want    netplane.HostPort
		wantErr string
	}{
		{name: "every address", in: cluster.HostPort{UID: "u", Pod: "default/a", Protocol: "TCP", HostPort: 8080, ContainerPort: 80},
			want: netplane.HostPort{UID: "u", Pod: "default/a", Proto: netplane.TCP, HostPort: 8080, PodPort: 80}},
		{name: "one address", in: cluster.HostPort{UID: "u", Protocol: "UDP", HostIP: "10.0.0.1", HostPort: 53, ContainerPort: 5353},
			want: netplane.HostPort{UID: "u", Proto: netplane.UDP, HostIP: netip.MustParseAddr("10.0.0.1"), HostPort: 53, PodPort: 5353}},
		{name: "bad host IP", in: cluster.HostPort{UID: "u", Protocol: "TCP", HostIP: "node", HostPort: 1, ContainerPort: 1}, wantErr: "not an IP address"},
		{name: "port out of range", in: cluster.HostPort{UID: "u", Protocol: "TCP", HostPort: 70000, ContainerPort: 1}, wantErr: "1..65535"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toHostPort(tc.in)
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

// Before the network plane exists the declared ports are kept for it to apply.
func TestSetHostPortsBeforeThePlane(t *testing.T) {
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
	if len(n.ap.hosts) != 1 || n.ap.hosts[0].UID != "a" {
		t.Errorf("kept %v, want a's port", n.ap.hosts)
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

// The store's records become one Config: Services converted field by field, a route to each
// other node's pod CIDR through its first IPv4 address.
func TestBuildConfig(t *testing.T) {
	ip := netip.MustParseAddr
	services := map[string]reconcile.ServiceState{
		"/shoal/services/default/web": {Namespace: "default", Name: "web", ClusterIP: ip("10.96.0.5"), Type: manifests.ServiceTypeLoadBalancer, Pending: true,
			SessionAffinity: manifests.ServiceAffinityClientIP, AffinityTimeout: 60,
			Ports: []reconcile.ServicePortState{{Name: "http", Protocol: manifests.ProtocolTCP, Port: 80, NodePort: 30080},
				{Name: "dns", Protocol: manifests.ProtocolUDP, Port: 53}},
			Endpoints: []reconcile.Endpoint{{IP: ip("10.244.1.3"), Node: "n2", Pod: "default/web-b", Ports: map[string]int32{"http": 8080}}, {}}},
		"/shoal/services/default/db": {Namespace: "default", Name: "db", Headless: true, Type: manifests.ServiceTypeClusterIP,
			Ports:     []reconcile.ServicePortState{{Name: "pg", Port: 5432}},
			Endpoints: []reconcile.Endpoint{{IP: ip("10.244.0.7"), Node: "n1", Pod: "default/db-0", Ports: map[string]int32{"pg": 5432}, Hostname: "db-0"}}},
	}
	pfx := netip.MustParsePrefix
	podCIDRs := map[string]netip.Prefix{"n1": pfx("10.244.0.0/24"), "n2": pfx("10.244.1.0/24"), "n3": pfx("10.244.2.0/24"), "n4": {}}
	addrs := map[string]netip.Addr{"n1": netip.MustParseAddr("192.168.1.1"), "n2": netip.MustParseAddr("192.168.1.2"),
		"n4": netip.MustParseAddr("192.168.1.4")} // n3 has no IPv4 address
	hosts := []netplane.HostPort{{UID: "a", Proto: netplane.TCP, HostPort: 80, PodPort: 8080}}
	got := buildConfig("n1", services, podCIDRs, addrs, hosts, []uint16{7443})
	want := netplane.Config{
		Services: []netplane.Service{
			{Namespace: "default", Name: "db", Type: netplane.TypeClusterIP, Headless: true,
				Ports:     []netplane.ServicePort{{Name: "pg", Proto: netplane.TCP, Port: 5432}},
				Endpoints: []netplane.Endpoint{{IP: netip.MustParseAddr("10.244.0.7"), Ports: map[string]uint16{"pg": 5432}, Hostname: "db-0", Local: true}}},
			{Namespace: "default", Name: "web", Type: netplane.TypeLoadBalancer, ClusterIP: netip.MustParseAddr("10.96.0.5"), Pending: true,
				Affinity: netplane.ClientIP, AffinityTimeout: time.Minute,
				Ports:     []netplane.ServicePort{{Name: "http", Proto: netplane.TCP, Port: 80, NodePort: 30080}, {Name: "dns", Proto: netplane.UDP, Port: 53}},
				Endpoints: []netplane.Endpoint{{IP: netip.MustParseAddr("10.244.1.3"), Ports: map[string]uint16{"http": 8080}}}},
		},
		Routes:        []netplane.Route{{CIDR: netip.MustParsePrefix("10.244.1.0/24"), Via: netip.MustParseAddr("192.168.1.2")}},
		HostPorts:     hosts,
		ReservedPorts: []uint16{7443},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("buildConfig =\n\t%+v\nwant\n\t%+v", got, want)
	}
	if a, ok := firstIPv4([]string{"fd00::1", "nonsense", "192.168.1.9"}); !ok || a.String() != "192.168.1.9" {
		t.Errorf("firstIPv4 = %v, %v", a, ok)
	}
}

// testApplier is an applier on a fake plane with a short backoff.
func testApplier(t *testing.T) (*applier, *netplane.Fake, context.Context) {
	t.Helper()
	a := newApplier("n1", []uint16{7443}, slog.New(slog.DiscardHandler))
	a.minRetry, a.maxRetry = 10*time.Millisecond, 40*time.Millisecond
	f := netplane.NewFake(netplane.FakeOptions{NodePorts: true})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	if err := a.start(ctx, f); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.run(ctx)
	}()
	return a, f, ctx
}

func webRecord(endpoints ...string) map[string]reconcile.ServiceState {
	rec := reconcile.ServiceState{Namespace: "default", Name: "web", ClusterIP: netip.MustParseAddr("10.96.0.5"), Type: manifests.ServiceTypeClusterIP,
		Ports: []reconcile.ServicePortState{{Name: "http", Protocol: manifests.ProtocolTCP, Port: 80}}}
	for _, ip := range endpoints {
		rec.Endpoints = append(rec.Endpoints, reconcile.Endpoint{IP: netip.MustParseAddr(ip), Ports: map[string]int32{"http": 8080}})
	}
	return map[string]reconcile.ServiceState{"/shoal/services/default/web": rec}
}

// waitFor polls cond for a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func frontends(t *testing.T, f *netplane.Fake) []string {
	t.Helper()
	st, err := f.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fe := range st.Frontends {
		out = append(out, fmt.Sprintf("%s %v", fe, fe.Backends))
	}
	return out
}

// Nothing is Set before the Services, the pod CIDRs and the nodes have all been listed: a
// restarted daemon must not take away what the kernel holds for want of the store.
func TestApplierWaitsForTheStore(t *testing.T) {
	a, f, _ := testApplier(t)
	a.setServices(webRecord("10.244.0.2"))
	a.setPodCIDRs(map[string]netip.Prefix{"n1": netip.MustParsePrefix("10.244.0.0/24")})
	time.Sleep(50 * time.Millisecond)
	if n := f.Sets(); n != 0 {
		t.Fatalf("%d Sets before the nodes were listed", n)
	}
	a.setNodeAddrs(map[string]netip.Addr{})
	waitFor(t, "the first Set", func() bool { return f.Sets() == 1 })
	if got := frontends(t, f); !slices.Equal(got, []string{"10.96.0.5:80/TCP [10.244.0.2:8080]"}) {
		t.Errorf("frontends %v", got)
	}
}

// Changes that come while a Set runs make one Set after it; a node record rewritten with the
// same address makes none.
func TestApplierCoalesces(t *testing.T) {
	a, f, _ := testApplier(t)
	a.setPodCIDRs(map[string]netip.Prefix{})
	a.setNodeAddrs(map[string]netip.Addr{"n2": netip.MustParseAddr("192.168.1.2")})
	a.setServices(webRecord())
	waitFor(t, "the first Set", func() bool { return f.Sets() >= 1 })
	a.applyMu.Lock() // a Set under way
	for i := 2; i < 50; i++ {
		a.setServices(webRecord(fmt.Sprintf("10.244.0.%d", i)))
	}
	before := f.Sets()
	a.applyMu.Unlock()
	waitFor(t, "the last change", func() bool {
		got := frontends(t, f)
		return len(got) == 1 && got[0] == "10.96.0.5:80/TCP [10.244.0.49:8080]"
	})
	time.Sleep(50 * time.Millisecond)
	if n := f.Sets() - before; n > 2 {
		t.Errorf("%d Sets for 48 changes during a Set, want them coalesced", n)
	}
	sets := f.Sets()
	a.setNodeAddrs(map[string]netip.Addr{"n2": netip.MustParseAddr("192.168.1.2")})
	time.Sleep(50 * time.Millisecond)
	if n := f.Sets(); n != sets {
		t.Errorf("an unchanged node address made %d Sets", n-sets)
	}
}

// A failed Set is tried again after a backoff, without a change, until it succeeds.
func TestApplierRetries(t *testing.T) {
	a, f, _ := testApplier(t)
	f.SetFault(netplane.KindService, errors.New("map full"))
	a.setPodCIDRs(map[string]netip.Prefix{})
	a.setNodeAddrs(map[string]netip.Addr{})
	a.setServices(webRecord("10.244.0.2"))
	waitFor(t, "retries", func() bool { return f.Sets() >= 3 })
	if got := frontends(t, f); len(got) != 0 {
		t.Fatalf("frontends %v while Sets fail", got)
	}
	f.SetFault(netplane.KindService, nil)
	waitFor(t, "a Set that succeeds", func() bool { return len(frontends(t, f)) == 1 })
	sets := f.Sets()
	time.Sleep(100 * time.Millisecond)
	if n := f.Sets(); n != sets {
		t.Errorf("%d more Sets after one succeeded", n-sets)
	}
}

// Host ports: kept as the plane holds them until the agent declares them; then a change is Set
// at once and its refusals come back; the same set again costs no Set.
func TestApplierHostPorts(t *testing.T) {
	a := newApplier("n1", nil, slog.New(slog.DiscardHandler))
	f := netplane.NewFake(netplane.FakeOptions{})
	held := netplane.HostPort{UID: "old", Pod: "default/old", Proto: netplane.TCP, HostPort: 8080, PodPort: 80}
	if _, err := f.Set(context.Background(), netplane.Config{HostPorts: []netplane.HostPort{held}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.start(ctx, f); err != nil {
		t.Fatal(err)
	}
	a.setServices(nil)
	a.setPodCIDRs(nil)
	a.setNodeAddrs(nil)
	if _, err := a.apply(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := f.State(ctx)
	if !slices.Equal(st.HostPorts, []netplane.HostPort{held}) {
		t.Fatalf("host ports %v before the agent declared any, want the held one kept", st.HostPorts)
	}
	clash := netplane.HostPort{UID: "new", Pod: "default/new", Proto: netplane.TCP, HostPort: 8080, PodPort: 81}
	refused, err := a.setHostPorts(ctx, []netplane.HostPort{clash, held})
	if err != nil || len(refused) != 1 || !strings.Contains(refused["new"], "already used by pod default/old") {
		t.Fatalf("setHostPorts = %v, %v; want new refused", refused, err)
	}
	sets := f.Sets()
	again, err := a.setHostPorts(ctx, []netplane.HostPort{clash, held})
	if err != nil || !reflect.DeepEqual(again, refused) || f.Sets() != sets {
		t.Errorf("the same ports again: %v, %v and %d Sets; want the same refusals and no Set", again, err, f.Sets()-sets)
	}
	if _, err := a.setHostPorts(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.State(ctx); len(st.HostPorts) != 0 {
		t.Errorf("host ports %v after the agent declared none", st.HostPorts)
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
