package cli

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/reconcile"
)

func TestParseTaints(t *testing.T) {
	tests := []struct {
		name  string
		flags []string
		want  []manifests.Taint
		err   string // part of the error, "" for none
	}{
		{"key and value", []string{"dedicated=db:NoSchedule"}, []manifests.Taint{{Key: "dedicated", Value: "db", Effect: "NoSchedule"}}, ""},
		{"key only", []string{"gpu:PreferNoSchedule"}, []manifests.Taint{{Key: "gpu", Effect: "PreferNoSchedule"}}, ""},
		{"prefixed key", []string{"example.com/maintenance=true:NoExecute"},
			[]manifests.Taint{{Key: "example.com/maintenance", Value: "true", Effect: "NoExecute"}}, ""},
		{"empty value", []string{"a=:NoSchedule"}, []manifests.Taint{{Key: "a", Effect: "NoSchedule"}}, ""},
		{"same key, other effects", []string{"a:NoSchedule", "a:NoExecute"},
			[]manifests.Taint{{Key: "a", Effect: "NoSchedule"}, {Key: "a", Effect: "NoExecute"}}, ""},
		{"no effect", []string{"dedicated=db"}, nil, `--node-taint "dedicated=db": no effect: use KEY[=VALUE]:EFFECT`},
		{"unknown effect", []string{"a:NoRun"}, nil, `effect "NoRun" is not one of NoSchedule, PreferNoSchedule, NoExecute`},
		{"lowercase effect", []string{"a:noschedule"}, nil, `effect "noschedule" is not one of`},
		{"no key", []string{"=x:NoSchedule"}, nil, `key "": no name`},
		{"bad key", []string{"a b:NoSchedule"}, nil, `key "a b": the name must be`},
		{"long key", []string{strings.Repeat("k", 64) + ":NoSchedule"}, nil, "the name must be at most 63"},
		{"bad prefix", []string{"Example.com/a:NoSchedule"}, nil, `key "Example.com/a": prefix`},
		{"empty name after prefix", []string{"example.com/:NoSchedule"}, nil, "no name"},
		{"bad value", []string{"a=b=c:NoSchedule"}, nil, `value "b=c"`},
		{"two colons", []string{"a:b:NoSchedule"}, nil, `effect "b:NoSchedule"`},
		{"twice", []string{"a=1:NoSchedule", "a=2:NoSchedule"}, nil, "the node has a taint a:NoSchedule already"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTaints(tt.flags)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("taints = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDaemonRefusesBadTaint runs `shoal daemon` with a malformed taint:
// it stops with a usage error before it starts anything.
func TestDaemonRefusesBadTaint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("shoal daemon checks for root first")
	}
	code, _, stderr := run(t, "daemon", "--data-dir", t.TempDir(), "--node-taint", "dedicated=db")
	if code != ExitUsage || !strings.Contains(stderr, `--node-taint "dedicated=db": no effect`) {
		t.Fatalf("exit %d, stderr %q; want a usage error about the taint", code, stderr)
	}
}

func FuzzParseTaint(f *testing.F) {
	for _, s := range []string{"dedicated=db:NoSchedule", "a:NoExecute", "example.com/x=y:PreferNoSchedule", "", ":", "=:", "a=b=c:d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		taint, err := parseTaint(s)
		if err != nil {
			return
		}
		// What parses renders back to the same flag.
		back := taint.Key
		if taint.Value != "" || strings.Contains(s, "=") {
			back += "=" + taint.Value
		}
		back += ":" + string(taint.Effect)
		if back != s {
			t.Errorf("%q parsed as %+v, which renders as %q", s, taint, back)
		}
	})
}

// TestNodeTaintsShown lists nodes as the API does and prints them as
// `shoal get nodes -o wide`: taints (with the one of a cordoned node) and
// ephemeral storage show.
func TestNodeTaintsShown(t *testing.T) {
	added := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	snap := &cluster.Snapshot{
		Nodes: []cluster.NodeRecord{
			{Name: "n1", Taints: []cluster.NodeTaint{
				{Taint: manifests.Taint{Key: "dedicated", Value: "db", Effect: "NoSchedule"}},
				{Taint: manifests.Taint{Key: "maintenance", Effect: "NoExecute"}, TimeAdded: added},
			}, Allocatable: cluster.Resources{MilliCPU: 1000, Memory: 1 << 30, EphemeralStorage: 10 << 30}},
			{Name: "n2"},
			{Name: "n3"},
		},
		Cordoned: map[string]bool{"n3": true},
	}
	l, err := snap.NodeList(cluster.Filter{Selector: manifests.Everything()})
	if err != nil {
		t.Fatal(err)
	}
	raw := rawItems(t, l.Items)
	if !strings.Contains(string(raw[0]), `"timeAdded":"2026-01-01T00:00:00Z"`) || !strings.Contains(string(raw[0]), `"ephemeral-storage":"10485760Ki"`) {
		t.Errorf("node n1 = %s; want the taint's timeAdded and ephemeral-storage", raw[0])
	}
	var out bytes.Buffer
	if err := printTable(&out, "Node", raw, "wide", false, added); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"TAINTS",
		"dedicated=db:NoSchedule,maintenance:NoExecute",
		"node.kubernetes.io/unschedulable:NoSchedule",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 4 || !strings.HasSuffix(lines[2], "<none>") {
		t.Errorf("want n2 without taints:\n%s", out.String())
	}
}

// `get services` prints EXTERNAL-IP as kubectl does: a LoadBalancer's ingress addresses,
// <pending> while it has none, <none> for other types.
func TestServiceTableExternalIP(t *testing.T) {
	svc := func(name string, typ manifests.ServiceType, port, nodePort int32) *manifests.Service {
		s := &manifests.Service{ObjectMeta: manifests.ObjectMeta{Name: name, Namespace: "default"},
			Spec: manifests.ServiceSpec{Type: typ, Ports: []manifests.ServicePort{{Name: "http", Port: port, NodePort: nodePort, Protocol: manifests.ProtocolTCP}}}}
		s.Kind = "Service"
		return s
	}
	ip := netip.MustParseAddr
	snap := &cluster.Snapshot{
		Objects: []manifests.Object{
			svc("front", manifests.ServiceTypeLoadBalancer, 8081, 0),
			svc("waiting", manifests.ServiceTypeLoadBalancer, 8082, 0),
			svc("web", manifests.ServiceTypeClusterIP, 80, 0),
		},
		Services: map[string]reconcile.ServiceState{
			"default/front": {ClusterIP: ip("10.96.0.3"), Type: manifests.ServiceTypeLoadBalancer,
				Ports:   []reconcile.ServicePortState{{Name: "http", Port: 8081, NodePort: 30000}},
				Ingress: []netip.Addr{ip("10.99.0.1"), ip("10.99.0.2"), ip("10.99.0.3")}},
			"default/waiting": {ClusterIP: ip("10.96.0.4"), Type: manifests.ServiceTypeLoadBalancer,
				Ports: []reconcile.ServicePortState{{Name: "http", Port: 8082, NodePort: 30001}}},
			"default/web": {ClusterIP: ip("10.96.0.2"), Type: manifests.ServiceTypeClusterIP},
		},
	}
	l, err := snap.ObjectList("Service", cluster.Filter{Namespace: "default", Selector: manifests.Everything()})
	if err != nil {
		t.Fatal(err)
	}
	raw := rawItems(t, l.Items)
	var out bytes.Buffer
	if err := printTable(&out, "Service", raw, "", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	want := `NAME      TYPE           CLUSTER-IP   EXTERNAL-IP                     PORT(S)
front     LoadBalancer   10.96.0.3    10.99.0.1,10.99.0.2,10.99.0.3   8081:30000/TCP
waiting   LoadBalancer   10.96.0.4    <pending>                       8082:30001/TCP
web       ClusterIP      10.96.0.2    <none>                          80/TCP
`
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

// rawItems encodes list items as the API sends them to the CLI.
func rawItems[T any](t *testing.T, items []T) []json.RawMessage {
	t.Helper()
	var raw []json.RawMessage
	for _, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	return raw
}
