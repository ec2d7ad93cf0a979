package dns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	miekg "github.com/miekg/dns"
)

// Defaults of Config.
const (
	DefaultDomain          = "cluster.local"
	DefaultUpstreamTimeout = 2 * time.Second
	DefaultTTL             = 5
	// DefaultResolvConf is where the node's upstream servers are read from when Config.Upstreams is empty.
	DefaultResolvConf = "/etc/resolv.conf"
)

// negativeTTL is the SOA minimum of the cluster zone: how long resolvers may remember that a
// cluster name does not exist.
const negativeTTL = 5

// Config configures a Server.
type Config struct {
	// Domain is the cluster domain. Default: cluster.local.
	Domain string
	// Listen lists the addresses to serve, host:port; each is served over UDP and TCP on the same
	// port. A port of 0 picks a free port (the same one for UDP and TCP); Server.Addrs tells which.
	// Required.
	Listen []string
	// Upstreams are the servers (host:port, or a bare IP for port 53) that names outside the cluster
	// domain are forwarded to. Default: the nameserver lines of ResolvConf.
	Upstreams []string
	// ResolvConf is the file read when Upstreams is empty. Default: /etc/resolv.conf.
	ResolvConf string
	// UpstreamTimeout bounds the time spent on one forwarded query, all upstreams together.
	// Default: 2 s.
	UpstreamTimeout time.Duration
	// TTL is the time to live, in seconds, of the records of cluster names. Default: 5.
	TTL uint32
	// Logger receives warnings and errors. Default: discard.
	Logger *slog.Logger
}

// withDefaults checks cfg and fills in defaults. Upstreams are resolved by New, after binding.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	domain := strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	if domain == "" || strings.Contains(domain, `\`) {
		return cfg, fmt.Errorf("dns domain %q: set a domain such as %q", cfg.Domain, DefaultDomain)
	}
	for _, l := range strings.Split(domain, ".") {
		if !validLabel(l) {
			return cfg, fmt.Errorf("dns domain %q: label %q is not a DNS label (letters, digits, hyphens, at most 63)", cfg.Domain, l)
		}
	}
	cfg.Domain = domain + "."
	if len(cfg.Listen) == 0 {
		return cfg, errors.New("dns: no listen address: set Config.Listen, for example the pod gateway address with port 53")
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = DefaultResolvConf
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ups := make([]string, 0, len(cfg.Upstreams))
	for _, u := range cfg.Upstreams {
		hp, err := normalizeUpstream(u)
		if err != nil {
			return cfg, err
		}
		ups = append(ups, hp)
	}
	cfg.Upstreams = ups
	return cfg, nil
}

// normalizeUpstream turns "1.2.3.4", "1.2.3.4:53", "[fd00::1]:53" or "fd00::1" into host:port.
func normalizeUpstream(s string) (string, error) {
	if addr, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(addr, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("dns upstream %q: write it as ip:port, for example 192.0.2.53:53", s)
	}
	return ap.String(), nil
}

// readResolvConf returns the nameservers of a resolv.conf file as host:port.
func readResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read upstream servers: %w", err)
	}
	defer f.Close()
	ups, err := parseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("read upstream servers from %s: %w", path, err)
	}
	return ups, nil
}

// parseResolvConf returns the nameserver addresses of resolv.conf content, as host:port. Lines that
// are not nameserver lines, and nameserver lines that do not hold an IP address, are skipped.
func parseResolvConf(r io.Reader) ([]string, error) {
	var ups []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		ups = append(ups, netip.AddrPortFrom(addr, 53).String())
	}
	return ups, sc.Err()
}

// dropLoops removes the upstreams that are this server itself: forwarding to them would loop.
func dropLoops(ups []string, bound []net.Addr) (kept, dropped []string) {
	for _, u := range ups {
		ap, err := netip.ParseAddrPort(u)
		if err != nil {
			kept = append(kept, u)
			continue
		}
		loop := false
		for _, b := range bound {
			var ba netip.AddrPort
			switch b := b.(type) {
			case *net.UDPAddr:
				ba = b.AddrPort()
			case *net.TCPAddr:
				ba = b.AddrPort()
			default:
				continue
			}
			if ba.Port() != ap.Port() {
				continue
			}
			bip, uip := ba.Addr().Unmap(), ap.Addr().Unmap()
			if bip == uip || bip.IsUnspecified() && (uip.IsLoopback() || uip.IsUnspecified()) {
				loop = true
			}
		}
		if loop {
			dropped = append(dropped, u)
		} else {
			kept = append(kept, u)
		}
	}
	return kept, dropped
}

// soa returns the SOA record of the zone with the given owner name.
func (z *zone) soa(ttl uint32) *miekg.SOA {
	return &miekg.SOA{
		Hdr:     miekg.RR_Header{Name: z.domain, Rrtype: miekg.TypeSOA, Class: miekg.ClassINET, Ttl: ttl},
		Ns:      "ns.dns." + z.domain,
		Mbox:    "hostmaster." + z.domain,
		Serial:  z.serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  negativeTTL,
	}
}

// Limits of a pod's resolv.conf that the kubelet enforces (glibc reads at most three name
// servers; the search line is capped in entries and length).
const (
	MaxNameservers     = 3
	MaxSearchPaths     = 32
	MaxSearchListChars = 2048
	maxSearchPathLen   = 253
	maxResolvConfSize  = 10 << 20
)

// ResolvConf is the content of a resolv.conf file: what the node's says and what a pod's gets.
type ResolvConf struct {
	Nameservers []string
	Searches    []string
	// Options are "name" or "name:value", such as "ndots:5".
	Options []string
}

// ParseResolvConf reads resolv.conf content as the kubelet does: nameserver lines add up, the
// last search line and the last options line win, trailing dots of search domains are dropped
// and lines starting with # or ; are comments.
func ParseResolvConf(r io.Reader) (ResolvConf, error) {
	var c ResolvConf
	sc := bufio.NewScanner(io.LimitReader(r, maxResolvConfSize))
	sc.Buffer(make([]byte, 0, 4096), maxResolvConfSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			c.Nameservers = append(c.Nameservers, fields[1])
		case "search":
			c.Searches = c.Searches[:0]
			for _, s := range fields[1:] {
				if s = strings.TrimSuffix(s, "."); s != "" {
					c.Searches = append(c.Searches, s)
				}
			}
		case "options":
			c.Options = slices.Clone(fields[1:])
		}
	}
	return c, sc.Err()
}

// ReadResolvConf parses the resolv.conf file at path.
func ReadResolvConf(path string) (ResolvConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return ResolvConf{}, err
	}
	defer f.Close()
	c, err := ParseResolvConf(f)
	if err != nil {
		return ResolvConf{}, fmt.Errorf("read %s: %w", path, err)
	}
	return c, nil
}

// String writes the configuration in resolv.conf syntax.
func (c ResolvConf) String() string {
	var b strings.Builder
	for _, ns := range c.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(c.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.Searches, " "))
	}
	if len(c.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(c.Options, " "))
	}
	return b.String()
}

// PodOption is one option of a pod's dnsConfig: Name, or Name:Value when Value is set.
type PodOption struct {
	Name  string
	Value *string
}

// WithPodConfig adds a pod's dnsConfig to c as the kubelet does: its name servers and search
// domains come after c's, duplicates dropped, and its options are merged into c's, a pod's
// option replacing c's of the same name. c is not changed.
func (c ResolvConf) WithPodConfig(nameservers, searches []string, options []PodOption) ResolvConf {
	out := ResolvConf{
		Nameservers: uniq(slices.Concat(c.Nameservers, nameservers)),
		Searches:    uniq(slices.Concat(c.Searches, searches)),
	}
	var names []string
	values := map[string]string{}
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			names = append(names, name)
		}
		values[name] = value
	}
	for _, o := range c.Options {
		name, value, _ := strings.Cut(o, ":")
		set(name, value)
	}
	for _, o := range options {
		value := ""
		if o.Value != nil {
			value = *o.Value
		}
		set(o.Name, value)
	}
	for _, n := range names {
		if v := values[n]; v != "" {
			out.Options = append(out.Options, n+":"+v)
		} else {
			out.Options = append(out.Options, n)
		}
	}
	return out
}

// FitLimits cuts c to what a pod's resolv.conf may hold, as the kubelet does: the first
// MaxNameservers name servers; at most MaxSearchPaths search domains, none longer than 253
// characters, and a search line of at most MaxSearchListChars. It says what it left out.
func (c ResolvConf) FitLimits() (ResolvConf, []string) {
	var warnings []string
	out := ResolvConf{Nameservers: slices.Clone(c.Nameservers), Searches: slices.Clone(c.Searches), Options: slices.Clone(c.Options)}
	if len(out.Nameservers) > MaxNameservers {
		out.Nameservers = out.Nameservers[:MaxNameservers]
		warnings = append(warnings, fmt.Sprintf("nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: %s", strings.Join(out.Nameservers, " ")))
	}
	cut := false
	if len(out.Searches) > MaxSearchPaths {
		out.Searches, cut = out.Searches[:MaxSearchPaths], true
	}
	kept := out.Searches[:0]
	for _, s := range out.Searches {
		if len(s) > maxSearchPathLen {
			cut = true
			continue
		}
		kept = append(kept, s)
	}
	out.Searches = kept
	for len(strings.Join(out.Searches, " ")) > MaxSearchListChars {
		out.Searches, cut = out.Searches[:len(out.Searches)-1], true
	}
	if cut {
		warnings = append(warnings, fmt.Sprintf("search line limits were exceeded, some search paths have been omitted, the applied search line is: %s", strings.Join(out.Searches, " ")))
	}
	return out, warnings
}

func uniq(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
