package podnet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Route sends a pod CIDR of another node to that node's address (host-gw).
type Route struct {
	// CIDR is the other node's pod CIDR.
	CIDR netip.Prefix
	// Via is the other node's address; it must be on a network this node is attached to.
	Via netip.Addr
}

// SetRoutes makes the routes to other nodes' pod CIDRs exactly routes: missing ones are added,
// changed ones replaced, and Shoal's routes not in the list deleted. Calling it again with the
// same list changes nothing. Routes not made by Shoal are never touched.
func (n *Net) SetRoutes(ctx context.Context, routes []Route) error {
	want := map[netip.Prefix]netip.Addr{}
	for _, r := range routes {
		if err := n.checkRoute(r); err != nil {
			return fmt.Errorf("set routes: %w", err)
		}
		cidr := r.CIDR.Masked()
		if via, dup := want[cidr]; dup && via != r.Via {
			return fmt.Errorf("set routes: pod CIDR %s is routed twice (via %s and %s); each node needs its own pod CIDR", cidr, via, r.Via)
		}
		want[cidr] = r.Via
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("set routes: the pod network is closed")
	}
	have, err := n.ownRoutes()
	if err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	var errs []error
	for _, r := range have {
		if r.Type != unix.RTN_UNICAST || r.Dst == nil {
			continue // the service CIDR's unreachable route
		}
		dst, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		bits, _ := r.Dst.Mask.Size()
		cidr := netip.PrefixFrom(dst.Unmap(), bits)
		via, keep := want[cidr]
		gw, _ := netip.AddrFromSlice(r.Gw)
		if keep && gw.Unmap() == via {
			delete(want, cidr) // already right
			continue
		}
		if !keep {
			if err := n.nl.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route to %s: %w", cidr, err))
			}
		}
	}
	for cidr, via := range want {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := &netlink.Route{
			Dst:      ipNet(cidr),
			Gw:       via.AsSlice(),
			Protocol: RouteProtocol,
			Table:    unix.RT_TABLE_MAIN,
		}
		if err := n.nl.RouteReplace(r); err != nil {
			hint := ""
			if errors.Is(err, unix.ENETUNREACH) {
				hint = "; the node address must be on a network this node has an address in"
			}
			errs = append(errs, fmt.Errorf("route %s via %s: %w%s", cidr, via, err, hint))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	return nil
}

// Routes returns the routes to other nodes' pod CIDRs that the node's main routing table holds
// with Shoal's mark, as SetRoutes made them, sorted by CIDR.
func (n *Net) Routes() ([]Route, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("routes: the pod network is closed")
	}
	have, err := n.ownRoutes()
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	var out []Route
	for _, r := range have {
		if r.Type != unix.RTN_UNICAST || r.Dst == nil {
			continue // the service CIDR's unreachable route
		}
		dst, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		bits, _ := r.Dst.Mask.Size()
		gw, _ := netip.AddrFromSlice(r.Gw)
		out = append(out, Route{CIDR: netip.PrefixFrom(dst.Unmap(), bits), Via: gw.Unmap()})
	}
	slices.SortFunc(out, func(a, b Route) int {
		return cmp.Or(a.CIDR.Addr().Compare(b.CIDR.Addr()), cmp.Compare(a.CIDR.Bits(), b.CIDR.Bits()))
	})
	return out, nil
}

func (n *Net) checkRoute(r Route) error {
	switch {
	case !r.CIDR.IsValid() || !r.CIDR.Addr().Is4():
		return fmt.Errorf("route %s: the pod CIDR must be an IPv4 prefix", r.CIDR)
	case !r.Via.IsValid() || !r.Via.Is4():
		return fmt.Errorf("route %s: node address %q is not an IPv4 address", r.CIDR, r.Via)
	case r.CIDR.Overlaps(n.cfg.PodCIDR):
		return fmt.Errorf("route %s: overlaps this node's own pod CIDR %s", r.CIDR, n.cfg.PodCIDR)
	case r.CIDR.Overlaps(n.cfg.ServiceCIDR):
		return fmt.Errorf("route %s: overlaps the service CIDR %s", r.CIDR, n.cfg.ServiceCIDR)
	case n.cfg.PodCIDR.Contains(r.Via):
		return fmt.Errorf("route %s: node address %s is inside this node's pod CIDR", r.CIDR, r.Via)
	}
	return nil
}

// ownRoutes lists the IPv4 routes of the main table that carry Shoal's protocol mark.
func (n *Net) ownRoutes() ([]netlink.Route, error) {
	filter := &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	var (
		routes []netlink.Route
		err    error
	)
	for range 5 {
		routes, err = n.nl.RouteListFiltered(unix.AF_INET, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return routes, nil
}
