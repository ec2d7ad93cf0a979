package dns

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Service is what the DNS server knows of one Service: its name, virtual IP, named ports and the
// addresses of its ready pods.
type Service struct {
	Namespace string
	Name      string
	// ClusterIP is the virtual IP; the zero Addr for headless Services.
	ClusterIP netip.Addr
	// Headless Services (clusterIP: None) resolve to the ready pod IPs instead of a virtual IP.
	Headless bool
	Ports    []Port
	// Endpoints are the IPs of the ready pods.
	Endpoints []netip.Addr
	// Hostnames name some of the Endpoints: those whose pod has a hostname and a subdomain that
	// names the Service. A headless Service answers <hostname>.<svc>.<ns>.svc.<domain> with their
	// addresses and makes it the target of their SRV records; a Service with a virtual IP has no
	// such names, as in CoreDNS. Hostnames that are not DNS labels, or whose address is not one of
	// the Endpoints, are left out.
	Hostnames []Hostname
}

// Hostname is the hostname of one endpoint of a Service.
type Hostname struct {
	// Name is the pod's spec.hostname, a DNS label.
	Name string
	Addr netip.Addr
}

// Port is a port of a Service. Only named ports get SRV records.
type Port struct {
	Name string
	// Protocol is "TCP", "UDP" or "SCTP"; empty means TCP.
	Protocol string
	Port     uint16
}

// zone is one immutable snapshot of the cluster names. Update builds a new one and swaps it in;
// queries read whichever snapshot they loaded, without locks.
type zone struct {
	// domain is the lowercase fully qualified cluster domain.
	domain string
	// serial is the SOA serial: it grows with every Update.
	serial uint32
	// names maps lowercase fully qualified names to their records. Names that exist only as a
	// parent of other names (svc.<domain>, <ns>.svc.<domain>) map to an empty entry.
	names map[string]*entry
	// services are the Services of the snapshot, as Normalize returned them.
	services []Service
}

// entry holds the records of one name.
type entry struct {
	a    []netip.Addr // A records
	aaaa []netip.Addr // AAAA records
	srv  []srvRecord  // SRV records
}

// srvRecord is one SRV answer with the address of its target for the additional section.
type srvRecord struct {
	port   uint16
	weight uint16
	target string // lowercase fully qualified
	addr   netip.Addr
}

// addAddr adds addr to the A or AAAA records of e.
func (e *entry) addAddr(addr netip.Addr) {
	addr = addr.Unmap()
	if addr.Is4() {
		e.a = append(e.a, addr)
	} else if addr.Is6() {
		e.aaaa = append(e.aaaa, addr.WithZone(""))
	}
}

// Normalize returns the Services that Update serves out of services: one per namespace and
// name (names compare without regard to case; of two Services with the same names the later
// wins), sorted by namespace and then name. Services whose namespace or name is not a DNS label
// are left out and returned in skipped.
func Normalize(services []Service) (kept, skipped []Service) {
	type key [2]string
	last := make(map[key]int, len(services))
	for i, svc := range services {
		if !validLabel(svc.Namespace) || !validLabel(svc.Name) {
			skipped = append(skipped, svc)
			continue
		}
		last[key{strings.ToLower(svc.Namespace), strings.ToLower(svc.Name)}] = i
	}
	keys := slices.SortedFunc(maps.Keys(last), func(a, b key) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	})
	kept = make([]Service, 0, len(keys))
	for _, k := range keys {
		kept = append(kept, services[last[k]])
	}
	return kept, skipped
}

// buildZone turns services into a snapshot: the Services of Normalize, whose skipped ones it
// counts in skipped.
func buildZone(domain string, serial uint32, services []Service) (z *zone, skipped int) {
	kept, left := Normalize(services)
	z = &zone{domain: domain, serial: serial, names: make(map[string]*entry, len(kept)*2+8), services: kept}
	z.ensure(domain)
	z.ensure("svc." + domain)
	z.ensure("pod." + domain)
	for _, svc := range kept {
		z.addService(strings.ToLower(svc.Namespace), strings.ToLower(svc.Name), svc)
	}
	return z, len(left)
}

// ensure returns the entry of name, creating it if needed.
func (z *zone) ensure(name string) *entry {
	e, ok := z.names[name]
	if !ok {
		e = &entry{}
		z.names[name] = e
	}
	return e
}

func (z *zone) addService(ns, name string, svc Service) {
	nsName := ns + ".svc." + z.domain
	svcName := name + "." + nsName
	z.ensure(nsName)
	se := z.ensure(svcName)
	// Every endpoint of a headless Service gets a name of its own, the target of its SRV records.
	type target struct {
		name string
		addr netip.Addr
	}
	var targets []target
	switch {
	case svc.Headless:
		hostnames := hostnamesByAddr(svc.Hostnames)
		named := map[string][]netip.Addr{} // <hostname>.<svc>... to its addresses
		seen := make(map[netip.Addr]bool, len(svc.Endpoints))
		for _, ep := range svc.Endpoints {
			ep = ep.Unmap().WithZone("")
			if !ep.IsValid() || seen[ep] {
				continue
			}
			seen[ep] = true
			se.addAddr(ep)
			epName := dashed(ep) + "." + svcName
			z.ensure(epName).addAddr(ep)
			hs := hostnames[ep]
			if len(hs) == 0 {
				targets = append(targets, target{epName, ep})
				continue
			}
			// An endpoint with a hostname is the target of its SRV records under that name, as
			// in CoreDNS; its dashed name keeps answering too.
			for _, h := range hs {
				hostName := h + "." + svcName
				named[hostName] = append(named[hostName], ep)
				targets = append(targets, target{hostName, ep})
			}
		}
		for _, name := range slices.Sorted(maps.Keys(named)) {
			e := z.ensure(name)
			for _, addr := range named[name] {
				e.addAddr(addr)
			}
			// Pods sharing a hostname all answer, in address order; a hostname that spells
			// another endpoint's dashed name shares that name's entry.
			e.a, e.aaaa = sortedAddrs(e.a), sortedAddrs(e.aaaa)
		}
	case svc.ClusterIP.IsValid():
		se.addAddr(svc.ClusterIP)
		targets = []target{{svcName, svc.ClusterIP.Unmap().WithZone("")}}
	}
	for _, p := range svc.Ports {
		if !validLabel(p.Name) {
			continue // unnamed ports have no SRV records
		}
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		if !validLabel(proto) {
			continue
		}
		protoName := "_" + proto + "." + svcName
		z.ensure(protoName)
		pe := z.ensure("_" + strings.ToLower(p.Name) + "." + protoName)
		weight := uint16(1)
		if n := len(targets); n > 0 && n < 100 {
			weight = uint16(100 / n)
		}
		for _, t := range targets {
			pe.srv = append(pe.srv, srvRecord{port: p.Port, weight: weight, target: t.name, addr: t.addr})
		}
	}
}

// hostnamesByAddr maps the addresses of hostnames to their lowercase names, sorted and without
// duplicates, leaving out names that are not DNS labels.
func hostnamesByAddr(hostnames []Hostname) map[netip.Addr][]string {
	if len(hostnames) == 0 {
		return nil
	}
	out := make(map[netip.Addr][]string, len(hostnames))
	for _, h := range hostnames {
		addr := h.Addr.Unmap().WithZone("")
		if !addr.IsValid() || !validLabel(h.Name) {
			continue
		}
		out[addr] = append(out[addr], strings.ToLower(h.Name))
	}
	for addr, names := range out {
		slices.Sort(names)
		out[addr] = slices.Compact(names)
	}
	return out
}

// sortedAddrs sorts addrs in place and drops duplicates.
func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs)
}

// lookup returns the entry of the lowercase fully qualified name, or nil when it does not exist.
func (z *zone) lookup(key string) *entry {
	return z.names[key]
}
