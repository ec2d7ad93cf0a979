package podnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// masqueradeComment is the comment on the masquerade rule, shown by `nft list table`.
const masqueradeComment = "shoal: masquerade pod traffic leaving the cluster"

// TableName returns the nftables table (family ip) the node's rules live in.
func TableName(node string) string { return "shoal-" + node }

func (n *Net) nft() (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(n.nodeNS)))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// ensureMasquerade writes the table "ip shoal-<node>" with one NAT rule in postrouting:
//
//	ip saddr <pod CIDR> ip daddr != <cluster CIDR> counter masquerade
//
// The table is replaced in one nftables transaction (add, delete, add), so running New again
// never leaves a moment without the rule and never duplicates it. Other tables are untouched.
func (n *Net) ensureMasquerade() error {
	c, err := n.nft()
	if err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName(n.cfg.Node)}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
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
	c.AddRule(&nftables.Rule{
		Table:    t,
		Chain:    ch,
		Exprs:    exprs,
		UserData: userdata.AppendString(nil, userdata.TypeComment, masqueradeComment),
	})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table ip %s: %w", t.Name, err)
	}
	return nil
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

func (n *Net) deleteMasquerade() error {
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
