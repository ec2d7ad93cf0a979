package dns

import (
	"net/netip"
	"strings"
)

// nameKind says how a query name relates to the cluster domain.
type nameKind int

const (
	// outside: the name is not in the cluster domain; the query is forwarded.
	outside nameKind = iota
	// inZone: the name is in the cluster domain; its records come from the service table.
	inZone
	// podName: <a-b-c-d>.<ns>.pod.<domain>; the address is in the name itself.
	podName
	// emptyName: a name that exists in the domain without records of its own (<ns>.pod.<domain>).
	emptyName
)

// parsedName is a query name sorted against the cluster domain.
type parsedName struct {
	kind nameKind
	// key is the lowercase fully qualified name, the key of the service table (inZone only).
	key string
	// addr is the pod address of a podName.
	addr netip.Addr
}

// parseName sorts qname (presentation format, as a decoded message holds it) against domain (lowercase,
// fully qualified, without escapes). Matching is case-insensitive. It never fails: names that are
// not in the domain, or that carry escapes the table cannot hold, come back as outside or as an
// inZone key that matches nothing.
func parseName(qname, domain string) parsedName {
	key := lowerFQDN(qname)
	if !inDomain(key, domain) {
		return parsedName{kind: outside}
	}
	rel := ""
	if len(key) > len(domain) {
		rel = key[:len(key)-len(domain)-1] // labels below the domain, without the joining dot
	}
	// <a-b-c-d>.<ns>.pod or <ns>.pod
	if rest, ok := strings.CutSuffix(rel, ".pod"); ok && rest != "" {
		dashed, ns, found := strings.Cut(rest, ".")
		switch {
		case !found && !strings.Contains(dashed, `\`):
			return parsedName{kind: emptyName}
		case found && validLabel(ns) && !strings.Contains(ns, "."):
			if addr, ok := parseDashed(dashed); ok {
				return parsedName{kind: podName, addr: addr}
			}
		}
	}
	return parsedName{kind: inZone, key: key}
}

// inDomain reports whether the lowercase fully qualified name is domain or a name below it.
func inDomain(name, domain string) bool {
	if name == domain {
		return true
	}
	if len(name) <= len(domain) || !strings.HasSuffix(name, domain) || name[len(name)-len(domain)-1] != '.' {
		return false
	}
	// The dot before the domain must separate labels, not be an escaped dot inside a label.
	backslashes := 0
	for i := len(name) - len(domain) - 2; i >= 0 && name[i] == '\\'; i-- {
		backslashes++
	}
	return backslashes%2 == 0
}

// lowerFQDN returns name in lowercase (ASCII letters only) with a trailing dot. It returns name
// itself, without allocating, when it is already in that form.
func lowerFQDN(name string) string {
	fqdn := strings.HasSuffix(name, ".") && !escapedFinalDot(name)
	upper := false
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			upper = true
			break
		}
	}
	if !upper && fqdn {
		return name
	}
	b := make([]byte, len(name), len(name)+1)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	if !fqdn {
		b = append(b, '.')
	}
	return string(b)
}

// escapedFinalDot reports whether the final character of name is a dot escaped with a backslash.
func escapedFinalDot(name string) bool {
	backslashes := 0
	for i := len(name) - 2; i >= 0 && name[i] == '\\'; i-- {
		backslashes++
	}
	return backslashes%2 == 1
}

// validLabel reports whether s is a non-empty label of at most 63 letters, digits and hyphens,
// which is what Kubernetes allows for namespaces, Service names and port names.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// dashed writes addr the way pod and endpoint names carry it: 10-244-1-5, fd00--5.
func dashed(addr netip.Addr) string {
	if addr.Is4() {
		return strings.ReplaceAll(addr.String(), ".", "-")
	}
	return strings.ReplaceAll(addr.WithZone("").String(), ":", "-")
}

// parseDashed reads an address written with dashes (10-244-1-5 or fd00--5).
func parseDashed(s string) (netip.Addr, bool) {
	if s == "" || len(s) > 63 {
		return netip.Addr{}, false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isHex(c) && c != '-' {
			return netip.Addr{}, false
		}
	}
	if addr, err := netip.ParseAddr(strings.ReplaceAll(s, "-", ".")); err == nil && addr.Is4() {
		return addr, true
	}
	addr, err := netip.ParseAddr(strings.ReplaceAll(s, "-", ":"))
	if err != nil || !addr.Is6() || addr.Is4In6() {
		return netip.Addr{}, false
	}
	return addr, true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isHex reports whether c is a digit or a lowercase hex letter (names are lowercased first).
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
}
