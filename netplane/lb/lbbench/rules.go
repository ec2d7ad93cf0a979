package lbbench

import (
	"bufio"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"github.com/shoal-dev/shoal/netplane/lb"
)

// Chains that kube-proxy's iptables mode owns in the nat table besides the
// per-service KUBE-SVC-* and KUBE-SEP-* chains.
const (
	chainServices    = "KUBE-SERVICES"
	chainMarkMasq    = "KUBE-MARK-MASQ"
	chainPostrouting = "KUBE-POSTROUTING"
	chainNodePorts   = "KUBE-NODEPORTS"
)

// svcChain and sepChain name a service's and an endpoint's chain the way
// kube-proxy does: a prefix and 16 base32 characters of a SHA-256 hash.
func svcChain(s lb.Service) string {
	return "KUBE-SVC-" + hashName(s.String())
}

func sepChain(s lb.Service, b netip.AddrPort) string {
	return "KUBE-SEP-" + hashName(s.String()+"->"+b.String())
}

func hashName(s string) string {
	h := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

// KubeProxyRules writes, in iptables-restore format, the whole nat table
// as kube-proxy's iptables mode programs it in a full sync for svcs, for a
// network namespace whose nat table kube-proxy owns alone: load it with a
// plain iptables-restore, which replaces the table in one transaction.
// (kube-proxy itself uses --noflush and declares only its own chains, so
// that rules of others survive; the kernel ends up with the same table.)
//
// KUBE-SERVICES is jumped to from PREROUTING and OUTPUT. A service's rule
// there matches its VIP and port and jumps to its KUBE-SVC chain, which
// picks one of the backends' KUBE-SEP chains with "-m statistic --mode
// random --probability 1/k"; KUBE-SEP DNATs. Connections from outside
// clusterCIDR are marked for masquerading in POSTROUTING. Services appear
// in KUBE-SERVICES in the order given, so the last one is matched after all
// the others. With no services, the output is kube-proxy's empty table.
func KubeProxyRules(w io.Writer, svcs []lb.Service, clusterCIDR netip.Prefix) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("*nat\n")
	for _, c := range []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"} {
		p(":%s ACCEPT [0:0]\n", c)
	}
	for _, c := range []string{chainServices, chainNodePorts, chainPostrouting, chainMarkMasq} {
		p(":%s - [0:0]\n", c)
	}
	for _, s := range svcs {
		p(":%s - [0:0]\n", svcChain(s))
		for _, b := range s.Backends {
			p(":%s - [0:0]\n", sepChain(s, b))
		}
	}
	p("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j %s\n", chainServices)
	p("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j %s\n", chainServices)
	p("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j %s\n", chainPostrouting)
	p("-A %s -j MARK --or-mark 0x4000\n", chainMarkMasq)
	p("-A %s -m mark ! --mark 0x4000/0x4000 -j RETURN\n", chainPostrouting)
	p("-A %s -j MARK --xor-mark 0x4000\n", chainPostrouting)
	p("-A %s -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n", chainPostrouting)
	for _, s := range svcs {
		rw, err := newRuleWriter(p, s)
		if err != nil {
			return err
		}
		rw.jump(s)
		rw.chains(s, clusterCIDR)
	}
	p(nodePortsRule)
	p("COMMIT\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write kube-proxy rules: %w", err)
	}
	return nil
}

// ruleWriter formats rules for one service.
type ruleWriter struct {
	p     func(string, ...any)
	proto string
	match string
	name  string
}

func newRuleWriter(p func(string, ...any), s lb.Service) (ruleWriter, error) {
	vip := s.VIP.Unmap()
	if !vip.Is4() || s.Port == 0 || s.Proto != lb.TCP && s.Proto != lb.UDP {
		return ruleWriter{}, fmt.Errorf("write kube-proxy rules: service %s: want an IPv4 VIP, a port and TCP or UDP", s)
	}
	proto := "tcp"
	if s.Proto == lb.UDP {
		proto = "udp"
	}
	name := s.String()
	match := fmt.Sprintf("-d %s/32 -p %s -m comment --comment %q -m %s --dport %d", vip, proto, name+" cluster IP", proto, s.Port)
	return ruleWriter{p: p, proto: proto, match: match, name: name}, nil
}

// jump writes the KUBE-SERVICES rule of s.
func (w ruleWriter) jump(s lb.Service) {
	w.p("-A %s %s -j %s\n", chainServices, w.match, svcChain(s))
}

// chains writes the rules of the KUBE-SVC and KUBE-SEP chains of s.
func (w ruleWriter) chains(s lb.Service, clusterCIDR netip.Prefix) {
	svc := svcChain(s)
	w.p("-A %s ! -s %s %s -j %s\n", svc, clusterCIDR, w.match, chainMarkMasq)
	for i, b := range s.Backends {
		left := len(s.Backends) - i
		sep := sepChain(s, b)
		comment := fmt.Sprintf("-m comment --comment %q", w.name+" -> "+b.String())
		if left > 1 {
			prob := strconv.FormatFloat(1/float64(left), 'f', 11, 64)
			w.p("-A %s %s -m statistic --mode random --probability %s -j %s\n", svc, comment, prob, sep)
		} else {
			w.p("-A %s %s -j %s\n", svc, comment, sep)
		}
		w.p("-A %s -s %s/32 %s -j %s\n", sep, b.Addr().Unmap(), comment, chainMarkMasq)
		w.p("-A %s -p %s %s -m %s -j DNAT --to-destination %s\n", sep, w.proto, comment, w.proto, b)
	}
}

const nodePortsRule = "-A " + chainServices + " -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j " + chainNodePorts + "\n"

// KubeProxyAddRules writes what kube-proxy 1.28 and newer loads with
// iptables-restore --noflush when one service (the last of svcs) is added:
// KUBE-SERVICES is rewritten whole, because iptables-restore can only
// replace a chain, and of the per-service chains only the new service's are
// written; the chains of the other services are left untouched.
func KubeProxyAddRules(w io.Writer, svcs []lb.Service, clusterCIDR netip.Prefix) error {
	if len(svcs) == 0 {
		return fmt.Errorf("write kube-proxy rules: no service to add")
	}
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("*nat\n:%s - [0:0]\n", chainServices)
	last := svcs[len(svcs)-1]
	p(":%s - [0:0]\n", svcChain(last))
	for _, b := range last.Backends {
		p(":%s - [0:0]\n", sepChain(last, b))
	}
	for i, s := range svcs {
		rw, err := newRuleWriter(p, s)
		if err != nil {
			return err
		}
		rw.jump(s)
		if i == len(svcs)-1 {
			rw.chains(s, clusterCIDR)
		}
	}
	p(nodePortsRule)
	p("COMMIT\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write kube-proxy rules: %w", err)
	}
	return nil
}
