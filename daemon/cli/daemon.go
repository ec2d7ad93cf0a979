package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/node"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/spf13/cobra"
)

func newDaemonCmd(s Streams) *cobra.Command {
	var cfg node.Config
	var labels, taints []string
	var logLevel, serviceCIDR, clusterCIDR, joinTokenFile, role string
	var noStoreMember bool
	var sopsKeys sopsFlags
	cmd := &cobra.Command{
		Use:   "daemon --repo URL",
		Short: "Run this node: follow the repository and converge the cluster to it",
		Long: `Daemon runs a Shoal node. It pulls the desired state from the Git repository, takes part
in the election of the master through the shared store (an embedded etcd by default), and runs
the pods placed on this node. Pods keep running when the daemon stops; a restarted daemon takes
them over again.`,
		Example: `  shoal daemon --repo file:///srv/cluster.git
  shoal daemon --repo git://git.example.com/cluster.git --node-address 10.0.0.1
  shoal daemon --repo git://git.example.com/cluster.git --node-address 10.0.0.2 \
      --join 10.0.0.1 --join-token-file /etc/shoal/join-token --role agent
  shoal daemon --repo https://git.example.com/ops/cluster.git --branch prod --path clusters/eu \
      --token-file /etc/shoal/git-token --verify-signatures /etc/shoal/keyring.asc`,
		Args: cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return fmt.Errorf("shoal daemon runs containers and needs root")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErrorf("--log-level %q: use debug, info, warn or error", logLevel)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: level}))
			cidr, err := netip.ParsePrefix(serviceCIDR)
			if err != nil {
				return usageErrorf("--service-cidr %q: %v", serviceCIDR, err)
			}
			cfg.Net.ServiceCIDR = cidr
			if cfg.Net.ClusterCIDR, err = netip.ParsePrefix(clusterCIDR); err != nil {
				return usageErrorf("--cluster-cidr %q: %v", clusterCIDR, err)
			}
			if cfg.Net.NodeInterface != "" {
				if len(cfg.Addresses) == 0 {
					return usageErrorf("--node-interface needs --node-address: the address NodePorts answer on")
				}
				if cfg.Net.NodeIP, err = netip.ParseAddr(cfg.Addresses[0]); err != nil {
					return usageErrorf("--node-address %q: %v", cfg.Addresses[0], err)
				}
			}
			switch cfg.Net.Mode {
			case "bridge", "none":
			default:
				return usageErrorf("--pod-network %q: use bridge or none", cfg.Net.Mode)
			}
			if cfg.Join != "" && cfg.Store != "" {
				return usageErrorf("--join joins the cluster's embedded store, --store uses an external one: pass only one of them")
			}
			if joinTokenFile != "" {
				b, err := os.ReadFile(joinTokenFile)
				if err != nil {
					return usageErrorf("--join-token-file: %v", err)
				}
				cfg.JoinToken = strings.TrimSpace(string(b))
			}
			if cfg.JoinToken == "" {
				cfg.JoinToken = os.Getenv("SHOAL_JOIN_TOKEN")
			}
			if cfg.Join != "" && cfg.JoinToken == "" {
				return usageErrorf("--join needs a join token of the cluster: --join-token-file FILE (from \"shoal token create\" on a server node, " +
					"or the first node's <data dir>/token) or $SHOAL_JOIN_TOKEN")
			}
			if role != "" {
				r, err := join.ParseRole(role)
				if err != nil {
					return usageErrorf("--role: %v", err)
				}
				cfg.Role = r
			}
			if noStoreMember {
				if cfg.Role == join.RoleServer {
					return usageErrorf("--no-store-member is --role agent: pass only --role")
				}
				fmt.Fprintln(s.Err, "shoal: warning: --no-store-member is deprecated and will be removed: use --role agent (an agent also never becomes master)")
				cfg.Role = join.RoleAgent
			}
			if isTerminal(s.Err) {
				cfg.Console = s.Err // the first join token is shown there, never logged
			}
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return usageErrorf("--node-label %q: use KEY=VALUE", l)
				}
				cfg.Labels[k] = v
			}
			if cfg.Taints, err = parseTaints(taints); err != nil {
				return err
			}
			if cfg.Socket == "" {
				cfg.Socket = os.Getenv("SHOAL_SOCKET")
			}
			if cfg.Socket == "" {
				cfg.Socket = client.DefaultSocket
			}
			// The keys of SOPS-encrypted manifests are read once, at start, and kept in memory.
			if cfg.Decryptor, err = sopsKeys.decryptor(); err != nil {
				return err
			}
			return node.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "node-name", "", "this node's name (default: the host name)")
	f.StringVar(&cfg.DataDir, "data-dir", DefaultDataDir, "where the node keeps its state")
	f.StringArrayVar(&labels, "node-label", nil, "a label of this node, KEY=VALUE (repeatable)")
	f.StringArrayVar(&taints, "node-taint", nil, "a taint of this node, KEY[=VALUE]:EFFECT with EFFECT NoSchedule, PreferNoSchedule or NoExecute (repeatable)")
	f.StringVar(&cfg.Repo, "repo", "", "the Git repository: file:///path, https://..., ssh://..., git://...")
	f.StringVar(&cfg.Ref, "branch", "main", `branch to follow, or "tag:NAME"`)
	f.StringVar(&cfg.Path, "path", "", "directory of the repository that holds the manifests")
	f.DurationVar(&cfg.Poll, "poll", 30*time.Second, "how often to fetch (webhooks and local repositories are seen at once)")
	f.StringVar(&cfg.TokenFile, "token-file", "", "file with an HTTPS access token for the repository")
	f.StringVar(&cfg.SSHKeyFile, "ssh-key", "", "SSH private key for ssh:// repositories")
	f.StringVar(&cfg.KnownHosts, "known-hosts", "", "known_hosts file for ssh:// repositories")
	f.BoolVar(&cfg.AllowHTTP, "allow-insecure-http", false, "allow plain http:// repositories that are not on loopback")
	f.StringVar(&cfg.VerifyKeyring, "verify-signatures", "", "armored OpenPGP keyring: refuse every new commit not signed by it")
	sopsKeys.register(f, "the master")
	f.StringVar(&cfg.Store, "store", "", "an external etcd: etcd://host:2379,... or etcds://... (default: embedded)")
	f.StringVar(&cfg.Join, "join", "", "join the cluster of the node at HOST[:PORT] (its --node-address); needs the join token")
	f.StringVar(&joinTokenFile, "join-token-file", "", "file with a join token of the cluster, from \"shoal token create\" (default $SHOAL_JOIN_TOKEN)")
	f.StringVar(&role, "role", "", "when joining: server (may run a store member, holds the CA key, campaigns for master) or agent (runs pods only); default: what the token admits")
	f.BoolVar(&noStoreMember, "no-store-member", false, "deprecated: use --role agent")
	f.IntVar(&cfg.ClusterPort, "cluster-port", 7443, "port of the cluster endpoint other nodes join through, on the first --node-address")
	f.StringVar(&cfg.StoreCA, "store-ca", "", "CA of the external etcd")
	f.StringVar(&cfg.StoreCert, "store-cert", "", "client certificate for the external etcd")
	f.StringVar(&cfg.StoreKey, "store-key", "", "client key for the external etcd")
	f.DurationVar(&cfg.LeaseTTL, "lease-ttl", 5*time.Second, "TTL of the node's lease and the master's election session")
	f.DurationVar(&cfg.NodeLostGrace, "node-lost-grace", 10*time.Second, "how long a node may be gone before its pods are rescheduled")
	f.StringVar(&cfg.Socket, "socket", "", "the API's unix socket (default $SHOAL_SOCKET, then "+client.DefaultSocket+")")
	f.StringVar(&cfg.APIListen, "api-listen", "", "also serve the API on HOST:PORT over TLS with a bearer token")
	f.StringVar(&cfg.APICert, "api-tls-cert", "", "certificate for --api-listen")
	f.StringVar(&cfg.APIKey, "api-tls-key", "", "key for --api-listen")
	f.StringVar(&cfg.APITokenFile, "api-token-file", "", "file with the bearer token for --api-listen")
	f.StringVar(&cfg.WebhookListen, "webhook-listen", "", "serve Git webhooks (GitHub, Gitea, GitLab, generic HMAC) on HOST:PORT")
	f.StringVar(&cfg.WebhookSecret, "webhook-secret-file", "", "file with the webhooks' shared secret")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry reached over plain HTTP (repeatable)")
	f.BoolVar(&cfg.AllowPrivileged, "allow-privileged", false, "allow privileged containers")
	f.StringSliceVar(&cfg.AllowHostPaths, "allow-host-path", nil, "allow hostPath volumes under this directory (repeatable)")
	f.BoolVar(&cfg.AllowUnconfined, "allow-unconfined-seccomp", false, "allow seccompProfile Unconfined")
	f.StringVar(&cfg.SeccompProfileRoot, "seccomp-profile-root", "", "directory of the seccomp profiles that pods name with seccompProfile Localhost (default <data dir>/seccomp)")
	f.StringVar(&cfg.Net.ResolvConf, "resolv-conf", "/etc/resolv.conf", "the node's resolver configuration: pods with dnsPolicy Default get it, the cluster DNS server forwards to its name servers")
	f.DurationVar(&cfg.EvictionInterval, "eviction-interval", 10*time.Second, "how often pods' local storage is checked against their ephemeral-storage limits and emptyDir sizeLimits")
	f.DurationVar(&cfg.CrashLoopBase, "crash-loop-base", 10*time.Second, "first delay of the crash-loop backoff (doubles up to 30×)")
	f.StringVar(&cfg.CgroupParent, "cgroup-parent", "", "cgroup of this node's pods (default /shoal/<node>)")
	f.Int64Var(&cfg.ReservedCPU, "reserved-cpu", 100, "millicores kept from pods for the system")
	f.Int64Var(&cfg.ReservedMemory, "reserved-memory", 256<<20, "bytes of memory kept from pods for the system")
	f.StringVar(&serviceCIDR, "service-cidr", "10.96.0.0/16", "where Services get their virtual IPs (the same on every node)")
	f.StringVar(&clusterCIDR, "cluster-cidr", "10.244.0.0/16", "where nodes get their pod CIDRs, a /24 each (the same on every node)")
	f.StringVar(&cfg.Net.Mode, "pod-network", "bridge", "bridge: pods get addresses on a bridge and Services work; none: pods have only loopback")
	f.StringVar(&cfg.Net.Domain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	f.StringVar(&cfg.Net.LBCgroup, "lb-cgroup", "", "cgroup v2 directory the service load balancer attaches to (default: the root, so every process of the machine reaches Services)")
	f.StringSliceVar(&cfg.Net.Upstreams, "dns-upstream", nil, "name servers for names outside the cluster, HOST:PORT (default: the host's resolv.conf)")
	f.StringSliceVar(&cfg.Addresses, "node-address", nil, "an address other nodes reach this node on (repeatable)")
	f.StringVar(&cfg.Net.NodeInterface, "node-interface", "", "the interface NodePort and LoadBalancer Services are served on, with the first --node-address (default: neither)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// taintName is the name part of a taint key, and a taint value: what Kubernetes allows in
// label keys and values.
var taintName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)

// parseTaints parses --node-taint flags, KEY[=VALUE]:EFFECT as kubectl taint writes them, and
// refuses the same key and effect twice.
func parseTaints(specs []string) ([]manifests.Taint, error) {
	var out []manifests.Taint
	seen := map[string]bool{}
	for _, spec := range specs {
		t, err := parseTaint(spec)
		if err != nil {
			return nil, usageErrorf("--node-taint %q: %v", spec, err)
		}
		k := t.Key + ":" + string(t.Effect)
		if seen[k] {
			return nil, usageErrorf("--node-taint %q: the node has a taint %s already; give each key and effect once", spec, k)
		}
		seen[k] = true
		out = append(out, t)
	}
	return out, nil
}

func parseTaint(spec string) (manifests.Taint, error) {
	kv, effect, ok := strings.Cut(spec, ":")
	if !ok {
		return manifests.Taint{}, errors.New("no effect: use KEY[=VALUE]:EFFECT, such as dedicated=db:NoSchedule")
	}
	t := manifests.Taint{Effect: manifests.TaintEffect(effect)}
	switch t.Effect {
	case manifests.TaintEffectNoSchedule, manifests.TaintEffectPreferNoSchedule, manifests.TaintEffectNoExecute:
	default:
		return manifests.Taint{}, fmt.Errorf("effect %q is not one of NoSchedule, PreferNoSchedule, NoExecute", effect)
	}
	t.Key, t.Value, _ = strings.Cut(kv, "=")
	if err := checkTaintKey(t.Key); err != nil {
		return manifests.Taint{}, err
	}
	if t.Value != "" && (len(t.Value) > 63 || !taintName.MatchString(t.Value)) {
		return manifests.Taint{}, fmt.Errorf("value %q: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", t.Value)
	}
	return t, nil
}

// checkTaintKey checks a key as Kubernetes checks label keys: an optional DNS subdomain
// prefix and '/', then a name of at most 63 characters.
func checkTaintKey(key string) error {
	prefix, name, hasPrefix := strings.Cut(key, "/")
	if !hasPrefix {
		prefix, name = "", key
	}
	if hasPrefix {
		if err := manifests.CheckDNSSubdomain(prefix); err != nil {
			return fmt.Errorf("key %q: prefix %v", key, err)
		}
	}
	if name == "" {
		return fmt.Errorf("key %q: no name: use KEY[=VALUE]:EFFECT", key)
	}
	if len(name) > 63 || !taintName.MatchString(name) {
		return fmt.Errorf("key %q: the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", key)
	}
	return nil
}
