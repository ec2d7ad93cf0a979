package podnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Comments on the rules, shown by `nft list table`.
const (
	masqueradeComment = "shoal: masquerade pod traffic leaving the cluster"
	hairpinComment    = "shoal: masquerade pods and the node's loopback reaching pods through host ports"
	martianComment    = "shoal: drop packets from pods to the node's loopback net (route_localnet is on for host ports)"
	dnsComment        = "shoal: the pods' DNS server is not a host port"
)

// Chains of the node's table besides postrouting.
const (
	hostPortsChain = "hostports"
	preroutingNAT  = "prerouting"
	outputNAT      = "output"
	preroutingRaw  = "prerouting-raw"
)

// ipsDstNAT is IPS_DST_NAT of the conntrack status bits (linux/netfilter/nf_conntrack_common.h).
const ipsDstNAT = 1 << 5

// loopbackNet is 127.0.0.0/8.
var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

// TableName returns the nftables table (family ip) the node's rules live in.
func TableName(node string) string { return "shoal-" + node }

func (n *Net) nft() (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(n.nodeNS)))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// writeTable writes the table "ip shoal-<node>" whole:
//
//	chain postrouting (nat, srcnat):
//	    ip saddr <pod CIDR> ip daddr != <cluster CIDR> counter masquerade
//	    ct status dnat oifname <bridge> ip saddr <pod CIDR> counter masquerade
//	    ct status dnat oifname <bridge> ip saddr 127.0.0.0/8 counter masquerade
//	chain prerouting (nat, dstnat), chain output (nat, dstnat):
//	    ip daddr <DNS server> tcp|udp dport 53 return
//	    fib daddr type local jump hostports
//	chain hostports:
//	    [ip daddr <host IP>] meta l4proto tcp|udp th dport <host port> counter dnat to <pod IP>:<port>
//	chain prerouting-raw (filter, raw):
//	    iifname <bridge> ip daddr 127.0.0.0/8 counter drop
//
// The first rule lets pods reach the outside; the host ports' rules are those of the CNI
// portmap plugin: "fib daddr type local" is every address of the node, and connections from a
// pod (hairpin) or from 127.0.0.1 to a pod through a host port are masqueraded, so that the
// answers come back through the node. Connecting from 127.0.0.1 needs route_localnet on the
// bridge; the raw rule drops what pods could otherwise send to the node's loopback addresses.
//
// The table is replaced in one nftables transaction (add, delete, add), so writing it again
// never leaves a moment without the rules and never duplicates them. Other tables are untouched.
func (n *Net) writeTable(ports []forwardedPort) error {
	c, err := n.nft()
	if err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName(n.cfg.Node)}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	n.addPostrouting(c, t)
	hp := c.AddChain(&nftables.Chain{Name: hostPortsChain, Table: t})
	for _, p := range ports {
		addRule(c, t, hp, hostPortExprs(p), fmt.Sprintf("shoal: hostPort %s (pod %s)", p.Port, p.Port.UID))
	}
	for _, nat := range []struct {
		name string
		hook *nftables.ChainHook
	}{{preroutingNAT, nftables.ChainHookPrerouting}, {outputNAT, nftables.ChainHookOutput}} {
		ch := c.AddChain(&nftables.Chain{Name: nat.name, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nat.hook, Priority: nftables.ChainPriorityNATDest})
		if n.cfg.DNSServer.Is4() {
			for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
				e := append(matchAddr(16, n.cfg.DNSServer), matchL4(proto, 53)...)
				addRule(c, t, ch, append(e, &expr.Verdict{Kind: expr.VerdictReturn}), dnsComment)
			}
		}
		addRule(c, t, ch, []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: hostPortsChain},
		}, "shoal: host ports on the node's addresses")
	}
	raw := c.AddChain(&nftables.Chain{Name: preroutingRaw, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
	addRule(c, t, raw, append(append(matchIfname(expr.MetaKeyIIFNAME, n.cfg.Bridge), matchPrefix(16, loopbackNet, expr.CmpOpEq)...),
		&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}), martianComment)
	if err := c.Flush(); err != nil {
		n.tableWritten = false
		return fmt.Errorf("nftables table ip %s: %w", t.Name, err)
	}
	n.tableWritten, n.tablePorts = true, ports
	return nil
}

func (n *Net) addPostrouting(c *nftables.Conn, t *nftables.Table) {
	ch := c.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	var exprs []expr.Any
	exprs = append(exprs, matchPrefix(12, n.cfg.PodCIDR, expr.CmpOpEq)...)      // ip saddr
	exprs = append(exprs, matchPrefix(16, n.cfg.ClusterCIDR, expr.CmpOpNeq)...) // ip daddr
	exprs = append(exprs, &expr.Counter{}, &expr.Masq{})
	addRule(c, t, ch, exprs, masqueradeComment)
	for _, src := range []netip.Prefix{n.cfg.PodCIDR, loopbackNet} {
		e := matchDNAT()
		e = append(e, matchIfname(expr.MetaKeyOIFNAME, n.cfg.Bridge)...)
		e = append(e, matchPrefix(12, src, expr.CmpOpEq)...)
		addRule(c, t, ch, append(e, &expr.Counter{}, &expr.Masq{}), hairpinComment)
	}
}

func addRule(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, exprs []expr.Any, comment string) {
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: userdata.AppendString(nil, userdata.TypeComment, comment)})
}

// hostPortExprs is one host port's rule: [ip daddr <host IP>] meta l4proto <proto> th dport
// <port> counter dnat to <pod>:<port>.
func hostPortExprs(f forwardedPort) []expr.Any {
	p := f.Port
	var e []expr.Any
	if !p.wildcard() {
		e = append(e, matchAddr(16, p.HostIP)...)
	}
	proto := byte(unix.IPPROTO_TCP)
	if p.Protocol == ProtoUDP {
		proto = unix.IPPROTO_UDP
	}
	e = append(e, matchL4(proto, p.HostPort)...)
	to := f.Addr.As4()
	return append(e,
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: to[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.PodPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
}

// matchL4 is "meta l4proto <proto> th dport <port>".
func matchL4(proto byte, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// matchDNAT is "ct status dnat".
func matchDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// matchIfname is "iifname <name>" or "oifname <name>" (key MetaKeyIIFNAME or MetaKeyOIFNAME).
func matchIfname(key expr.MetaKey, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// matchAddr compares the 4-byte address at offset of the IPv4 header with addr.
func matchAddr(offset uint32, addr netip.Addr) []expr.Any {
	a := addr.As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

// matchPrefix compares the 4-byte address at offset of the IPv4 header with prefix.
func matchPrefix(offset uint32, prefix netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := ipNet(prefix).Mask
	network := prefix.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: 1, Data: network[:]},
	}
}

func (n *Net) deleteTable() error {
	c, err := n.nft()
	if err != nil {
		return err
	}
	name := TableName(n.cfg.Node)
	if _, err := c.ListTableOfFamily(name, nftables.TableFamilyIPv4); err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("nftables table ip %s: %w", name, err)
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: name})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table ip %s: %w", name, err)
	}
	return nil
}
