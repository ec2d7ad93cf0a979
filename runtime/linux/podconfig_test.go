package linux

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
)

func TestHostsFile(t *testing.T) {
	base := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
	const domain = "web.shop.svc.cluster.local"
	tests := []struct {
		name    string
		ip      string
		domain  string
		aliases []manifests.HostAlias
		want    string
	}{
		{"pod address", "10.244.1.7", "", nil, base + "10.244.1.7\tweb\n"},
		{"loopback only", "", "", nil, base + "127.0.1.1\tweb\n"},
		{"host aliases", "10.244.1.7", "", []manifests.HostAlias{{IP: "127.0.0.1", Hostnames: []string{"foo.local", "bar.local"}}, {IP: "10.1.2.3", Hostnames: []string{"foo.remote"}}},
			base + "10.244.1.7\tweb\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"},
		{"subdomain", "10.244.1.7", domain, nil, base + "10.244.1.7\tweb.web.shop.svc.cluster.local\tweb\n"},
		{"subdomain, loopback only", "", domain, nil, base + "127.0.1.1\tweb.web.shop.svc.cluster.local\tweb\n"},
		{"subdomain and host aliases", "10.244.1.7", domain, []manifests.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"foo.remote"}}},
			base + "10.244.1.7\tweb.web.shop.svc.cluster.local\tweb\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostsFile(tt.ip, "web", tt.domain, tt.aliases); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// A pod with a subdomain is named <hostname>.<subdomain>.<namespace>.svc.<cluster domain>, as
// the kubelet names it; without one it has no fully qualified name.
func TestHostDomain(t *testing.T) {
	tests := []struct {
		name      string
		subdomain string
		domain    string
		want      string
	}{
		{"subdomain", "web", "cluster.local", "web.shop.svc.cluster.local"},
		{"other cluster domain", "db", "k8s.example", "db.shop.svc.k8s.example"},
		{"no subdomain", "", "cluster.local", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := lifecycle.SandboxConfig{Namespace: "shop", Name: "web-0", Hostname: "web-0", Subdomain: tt.subdomain}
			if got := hostDomain(cfg, tt.domain); got != tt.want {
				t.Errorf("hostDomain = %q, want %q", got, tt.want)
			}
		})
	}
}

// clusterNet is a Network whose pods get the cluster DNS server.
type clusterNet struct{ LoopbackNetwork }

func (clusterNet) DNS(ns string) string {
	return "nameserver 10.244.0.1\nsearch " + ns + ".svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
}

func TestResolvConfPolicies(t *testing.T) {
	host := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(host, []byte("nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	two := "2"
	podCfg := &manifests.PodDNSConfig{Nameservers: []string{"192.0.2.99"}, Searches: []string{"extra.example"},
		Options: []manifests.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "edns0"}}}
	tests := []struct {
		name   string
		net    Network
		policy manifests.DNSPolicy
		cfg    *manifests.PodDNSConfig
		want   string
	}{
		{"ClusterFirst", clusterNet{}, "", nil,
			"nameserver 10.244.0.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{"ClusterFirst with dnsConfig", clusterNet{}, manifests.DNSClusterFirst, podCfg,
			"nameserver 10.244.0.1\nnameserver 192.0.2.99\nsearch shop.svc.cluster.local svc.cluster.local cluster.local extra.example\noptions ndots:2 edns0\n"},
		{"ClusterFirstWithHostNet is ClusterFirst", clusterNet{}, manifests.DNSClusterFirstWithHostNet, nil,
			"nameserver 10.244.0.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{"ClusterFirst without a pod network", LoopbackNetwork{}, manifests.DNSClusterFirst, nil, ""},
		{"Default", clusterNet{}, manifests.DNSDefault, nil, "nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n"},
		{"Default with dnsConfig", clusterNet{}, manifests.DNSDefault, podCfg,
			"nameserver 192.0.2.53\nnameserver 192.0.2.99\nsearch corp.example extra.example\noptions timeout:2 ndots:2 edns0\n"},
		{"None", clusterNet{}, manifests.DNSNone, podCfg, "nameserver 192.0.2.99\nsearch extra.example\noptions ndots:2 edns0\n"},
		{"None without dnsConfig", clusterNet{}, manifests.DNSNone, nil, ""},
		{"at most three nameservers", clusterNet{}, manifests.DNSClusterFirst, &manifests.PodDNSConfig{Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}},
			"nameserver 10.244.0.1\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Driver{cfg: Config{Network: tt.net, ResolvConf: host}, log: slog.New(slog.DiscardHandler)}
			got, err := d.resolvConf(lifecycle.SandboxConfig{Namespace: "shop", Name: "web", DNSPolicy: tt.policy, DNSConfig: tt.cfg})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	d := &Driver{cfg: Config{Network: clusterNet{}, ResolvConf: filepath.Join(t.TempDir(), "missing")}, log: slog.New(slog.DiscardHandler)}
	if _, err := d.resolvConf(lifecycle.SandboxConfig{DNSPolicy: manifests.DNSDefault}); err == nil || !strings.Contains(err.Error(), "--resolv-conf") {
		t.Errorf("Default without the node's file: %v", err)
	}
	if _, err := d.resolvConf(lifecycle.SandboxConfig{DNSPolicy: "Custom"}); err == nil {
		t.Errorf("an unknown policy was accepted")
	}
}

func TestKeyringFromSecrets(t *testing.T) {
	kr, problems := keyring(lifecycle.PullSecrets{
		Configs: []lifecycle.DockerConfig{
			{Secret: "good", Data: []byte(`{"auths":{"registry.example.com":{"username":"u","password":"p"}}}`)},
			{Secret: "legacy", Legacy: true, Data: []byte(`{"old.example.com":{"username":"o","password":"p"}}`)},
			{Secret: "broken", Data: []byte(`{"auths":`)},
		},
		Problems: []string{`imagePullSecret "gone" not found in namespace "default"`},
	})
	if kr == nil || len(kr.Lookup("registry.example.com/app")) != 1 || len(kr.Lookup("old.example.com/app")) != 1 {
		t.Fatalf("keyring lost credentials")
	}
	if len(problems) != 2 || !strings.Contains(problems[1], `imagePullSecret "broken"`) {
		t.Errorf("problems %q", problems)
	}
	if kr, _ := keyring(lifecycle.PullSecrets{}); kr != nil {
		t.Errorf("an empty keyring is not nil")
	}
}
