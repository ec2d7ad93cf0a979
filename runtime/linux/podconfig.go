package linux

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/netplane/dns"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/runtime/image"
	"github.com/shoal-dev/shoal/runtime/libct"
	"github.com/shoal-dev/shoal/runtime/lifecycle"
	"golang.org/x/sys/unix"
)

// hostsFile is a pod's /etc/hosts as the kubelet writes it: localhost, the IPv6 names, the
// pod's own name on its address (first fully qualified in domain, when the pod has one), then
// the pod's hostAliases.
func hostsFile(ip, hostname, domain string, aliases []manifests.HostAlias) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\n" +
		"fe00::1\tip6-allnodes\n" +
		"fe00::2\tip6-allrouters\n")
	if ip == "" {
		ip = "127.0.1.1" // a pod with only loopback still resolves its own name
	}
	if domain != "" {
		fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	if len(aliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range aliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.String()
}

// hostDomain is the domain of a pod's fully qualified name, as the kubelet makes it:
// <subdomain>.<namespace>.svc.<clusterDomain> for a pod with a subdomain, else "" (the pod has
// no such name).
func hostDomain(cfg lifecycle.SandboxConfig, clusterDomain string) string {
	if cfg.Subdomain == "" {
		return ""
	}
	return cfg.Subdomain + "." + cfg.Namespace + ".svc." + clusterDomain
}

// resolvConf makes a pod's /etc/resolv.conf as the kubelet does: the cluster's configuration
// (ClusterFirst), the node's (Default) or nothing (None), with the pod's dnsConfig added and
// cut to the resolver's limits.
func (d *Driver) resolvConf(cfg lifecycle.SandboxConfig) (string, error) {
	var base dns.ResolvConf
	var err error
	switch cfg.DNSPolicy {
	case "", manifests.DNSClusterFirst, manifests.DNSClusterFirstWithHostNet:
		// Pods never use the host's network, so ClusterFirstWithHostNet is ClusterFirst.
		base, err = dns.ParseResolvConf(strings.NewReader(d.cfg.Network.DNS(cfg.Namespace)))
	case manifests.DNSDefault:
		if base, err = dns.ReadResolvConf(d.cfg.ResolvConf); err != nil {
			return "", fmt.Errorf("dnsPolicy Default: the node's resolver configuration: %w (choose the file with the daemon's --resolv-conf)", err)
		}
	case manifests.DNSNone:
	default:
		return "", fmt.Errorf("dnsPolicy %q: use ClusterFirst, ClusterFirstWithHostNet, Default or None", cfg.DNSPolicy)
	}
	if err != nil {
		return "", fmt.Errorf("cluster DNS configuration: %w", err)
	}
	if c := cfg.DNSConfig; c != nil {
		opts := make([]dns.PodOption, len(c.Options))
		for i, o := range c.Options {
			opts[i] = dns.PodOption{Name: o.Name, Value: o.Value}
		}
		base = base.WithPodConfig(c.Nameservers, c.Searches, opts)
	}
	out, warnings := base.FitLimits()
	for _, w := range warnings {
		d.log.Warn("pod DNS configuration", "pod", cfg.Namespace+"/"+cfg.Name, "problem", w)
	}
	return out.String(), nil
}

// keyring turns a pod's image pull secrets into registry credentials, and says which could not
// be used.
func keyring(secrets lifecycle.PullSecrets) (*image.Keyring, []string) {
	kr := &image.Keyring{}
	problems := slices.Clone(secrets.Problems)
	for _, c := range secrets.Configs {
		var err error
		if c.Legacy {
			err = kr.AddDockercfg(c.Data)
		} else {
			err = kr.AddConfigJSON(c.Data)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("imagePullSecret %q: %v", c.Secret, err))
		}
	}
	if kr.Len() == 0 {
		return nil, problems
	}
	return kr, problems
}

var _ lifecycle.StorageMeter = (*Driver)(nil)

// PodStorage measures the local disk space of a pod: the writable layer and logs of the latest
// run of each container, and each volume kept on the node's disk (emptyDir, configMap and
// downwardAPI; not tmpfs volumes, nor hostPath).
func (d *Driver) PodStorage(ctx context.Context, uid string) (lifecycle.PodStorage, error) {
	use := lifecycle.PodStorage{Containers: map[string]int64{}, Volumes: map[string]int64{}}
	if err := validUID(uid); err != nil {
		return use, err
	}
	dir := d.podDir(uid)
	sf, err := readSandboxFile(dir)
	if err != nil {
		return use, fmt.Errorf("sandbox of pod %s: %w", uid, runtime.ErrNotFound)
	}
	ctrs, err := d.Containers(ctx, uid)
	if err != nil {
		return use, err
	}
	latest := map[string]lifecycle.ContainerInfo{}
	for _, c := range ctrs {
		if old, ok := latest[c.Meta.Name]; !ok || c.Meta.Attempt > old.Meta.Attempt {
			latest[c.Meta.Name] = c
		}
	}
	for name, info := range latest {
		c, err := d.runner.Load(ctx, info.ID)
		if err != nil {
			continue // removed meanwhile
		}
		u, err := c.DiskUsage()
		if err != nil {
			return use, fmt.Errorf("disk usage of container %s: %w", info.ID, err)
		}
		use.Containers[name] = u.Rootfs + u.Logs
	}
	entries, err := os.ReadDir(filepath.Join(dir, "volumes"))
	if err != nil {
		return use, fmt.Errorf("volumes of pod %s: %w", uid, err)
	}
	for _, e := range entries {
		if slices.ContainsFunc(sf.HostPaths, func(h hostPathRef) bool { return h.Name == e.Name() }) {
			continue
		}
		p := filepath.Join(dir, "volumes", e.Name())
		var fs unix.Statfs_t
		if err := unix.Statfs(p, &fs); err != nil || fs.Type == unix.TMPFS_MAGIC {
			continue
		}
		n, err := libct.DirUsage(p)
		if err != nil {
			return use, fmt.Errorf("disk usage of volume %q: %w", e.Name(), err)
		}
		use.Volumes[e.Name()] = n
	}
	return use, nil
}
