package podnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// podIfName is the pod's interface name inside its namespace.
const podIfName = "eth0"

// Setup gives the pod uid a network namespace at netnsPath and an address, and returns the
// address. The namespace is created when netnsPath does not hold one. Setup is idempotent: for
// a pod already set up it checks the interface, repairs what is missing and returns the same
// address. On failure it undoes what this call made.
func (n *Net) Setup(ctx context.Context, uid, namespace, name, netnsPath string) (ip string, retErr error) {
	if uid == "" {
		return "", errors.New("set up pod network: empty pod uid")
	}
	if !filepath.IsAbs(netnsPath) {
		return "", fmt.Errorf("set up network of pod %s/%s: namespace path %q is not absolute", namespace, name, netnsPath)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", fmt.Errorf("set up network of pod %s/%s: the pod network is closed", namespace, name)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("set up network of pod %s/%s: %w", namespace, name, err)
	}
	addr, fresh, err := n.ipam.allocate(allocation{UID: uid, Namespace: namespace, Name: name, NetNS: netnsPath})
	if err != nil {
		return fail(err)
	}
	if fresh {
		defer func() {
			if retErr != nil {
				_ = n.ipam.release(uid)
			}
		}()
	}
	if !isNetNS(netnsPath) {
		if err := createNetNS(netnsPath); err != nil {
			return fail(err)
		}
		defer func() {
			if retErr != nil {
				_ = removeNetNS(netnsPath)
			}
		}()
	}
	podNS, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fail(fmt.Errorf("open network namespace %s: %w", netnsPath, err))
	}
	defer podNS.Close()
	pod, err := netlink.NewHandleAt(podNS, unix.NETLINK_ROUTE)
	if err != nil {
		return fail(fmt.Errorf("netlink in pod network namespace: %w", err))
	}
	defer pod.Close()

	hostName := hostVethName(uid)
	podAddr := netip.PrefixFrom(addr, n.cfg.PodCIDR.Bits())
	if !n.podReady(pod, hostName, podAddr) {
		if err := n.makeVeth(pod, podNS, hostName, podAddr); err != nil {
			return fail(err)
		}
	}
	if err := n.ensureHairpin(hostName); err != nil {
		return fail(err)
	}
	// The pod's host ports (declared by SetHostPorts, maybe before the pod existed) work from
	// now on.
	if err := n.writeTableIfChanged(); err != nil {
		return fail(fmt.Errorf("host ports: %w", err))
	}
	return addr.String(), nil
}

// makeVeth makes the pod's veth pair again from scratch.
func (n *Net) makeVeth(pod *netlink.Handle, podNS netns.NsHandle, hostName string, podAddr netip.Prefix) error {
	// Something is missing (a crash in the middle of an earlier Setup, or a pod interface that
	// was deleted): start the pair over.
	if err := n.deleteLink(n.nl, hostName); err != nil {
		return err
	}
	if err := n.deleteLink(pod, podIfName); err != nil {
		return err
	}
	if err := n.addVeth(pod, podNS, hostName, podAddr); err != nil {
		_ = n.deleteLink(n.nl, hostName)
		return err
	}
	return nil
}

// podReady reports whether the pod's veth pair is complete: the host end up on the bridge, the
// pod end up with the address and the default route through the gateway.
func (n *Net) podReady(pod *netlink.Handle, hostName string, podAddr netip.Prefix) bool {
	host, err := n.nl.LinkByName(hostName)
	if err != nil || host.Attrs().Flags&net.FlagUp == 0 {
		return false
	}
	br, err := n.nl.LinkByName(n.cfg.Bridge)
	if err != nil || host.Attrs().MasterIndex != br.Attrs().Index {
		return false
	}
	eth, err := pod.LinkByName(podIfName)
	if err != nil || eth.Attrs().Flags&net.FlagUp == 0 || eth.Type() != "veth" {
		return false
	}
	addrs, err := pod.AddrList(eth, unix.AF_INET)
	if err != nil {
		return false
	}
	hasAddr := false
	for _, a := range addrs {
		if a.IPNet.String() == podAddr.String() {
			hasAddr = true
		}
	}
	if !hasAddr {
		return false
	}
	routes, err := pod.RouteList(eth, unix.AF_INET)
	if err != nil {
		return false
	}
	gw := gateway(n.cfg.PodCIDR)
	for _, r := range routes {
		if isDefault(r.Dst) && net.IP(gw.AsSlice()).Equal(r.Gw) {
			return true
		}
	}
	return false
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

func (n *Net) addVeth(pod *netlink.Handle, podNS netns.NsHandle, hostName string, podAddr netip.Prefix) error {
	br, err := n.nl.LinkByName(n.cfg.Bridge)
	if err != nil {
		return fmt.Errorf("find bridge %s: %w (was the pod network removed? restart the daemon to make it again)", n.cfg.Bridge, err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: n.cfg.MTU, MasterIndex: br.Attrs().Index},
		PeerName:      podIfName,
		PeerNamespace: netlink.NsFd(podNS),
	}
	if err := n.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth pair %s/%s: %w", hostName, podIfName, err)
	}
	host, err := n.nl.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("find %s: %w", hostName, err)
	}
	if err := n.nl.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", hostName, err)
	}
	eth, err := pod.LinkByName(podIfName)
	if err != nil {
		return fmt.Errorf("find %s in the pod: %w", podIfName, err)
	}
	if err := pod.AddrReplace(eth, &netlink.Addr{IPNet: ipNet(podAddr)}); err != nil {
		return fmt.Errorf("add address %s to the pod: %w", podAddr, err)
	}
	if err := pod.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set %s up in the pod: %w", podIfName, err)
	}
	if lo, err := pod.LinkByName("lo"); err == nil && lo.Attrs().Flags&net.FlagUp == 0 {
		if err := pod.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set loopback up in the pod: %w", err)
		}
	}
	def := &netlink.Route{
		LinkIndex: eth.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)},
		Gw:        gateway(n.cfg.PodCIDR).AsSlice(),
	}
	if err := pod.RouteReplace(def); err != nil {
		return fmt.Errorf("add default route via %s in the pod: %w", gateway(n.cfg.PodCIDR), err)
	}
	return nil
}

// ensureHairpin lets the bridge send a frame back out of the pod's port it came from. When the
// bridge's traffic goes through netfilter (br_netfilter, bridge-nf-call-iptables=1), a pod that
// reaches itself through one of its host ports is translated at the bridge and its packet
// must go back to the same port; without br_netfilter the packet is routed and this changes
// nothing. The CNI bridge plugin's hairpinMode does the same.
func (n *Net) ensureHairpin(hostName string) error {
	l, err := n.nl.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("find %s: %w", hostName, err)
	}
	if p := l.Attrs().Protinfo; p != nil && p.Hairpin {
		return nil
	}
	if err := n.nl.LinkSetHairpin(l, true); err != nil {
		return fmt.Errorf("set hairpin mode on %s: %w", hostName, err)
	}
	return nil
}

// deleteLink deletes the interface name through h; a missing interface is not an error.
func (n *Net) deleteLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// Teardown removes the pod's veth pair and the namespace mount at netnsPath, releases the
// pod's address and stops forwarding its host ports. It is idempotent: what is already gone is
// skipped.
func (n *Net) Teardown(ctx context.Context, uid, netnsPath string) error {
	if uid == "" {
		return errors.New("tear down pod network: empty pod uid")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("tear down network of pod %s: the pod network is closed", uid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Delete the pair from the node side: a namespace kept alive by a process would keep
	// the pod end, and with it the host end, after the unmount.
	if err := n.deleteLink(n.nl, hostVethName(uid)); err != nil {
		return fmt.Errorf("tear down network of pod %s: %w", uid, err)
	}
	if netnsPath != "" {
		if err := removeNetNS(netnsPath); err != nil {
			return fmt.Errorf("tear down network of pod %s: %w", uid, err)
		}
	}
	// The address goes last: if anything above fails, the allocation stays and a later
	// Teardown or Reconcile finishes the job.
	if err := n.ipam.release(uid); err != nil {
		return fmt.Errorf("tear down network of pod %s: %w", uid, err)
	}
	if err := n.writeTableIfChanged(); err != nil {
		return fmt.Errorf("tear down network of pod %s: host ports: %w", uid, err)
	}
	return nil
}

// Reconcile frees the addresses of pods whose network namespace no longer exists (a reboot,
// a crash between steps, a runtime that removed the pod without Teardown) and deletes pod
// interfaces on the bridge that belong to no allocated pod. It returns the UIDs it freed.
// New calls it; the daemon may call it again at any time.
func (n *Net) Reconcile(ctx context.Context) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reconcileLocked(ctx)
}

func (n *Net) reconcileLocked(ctx context.Context) ([]string, error) {
	if n.closed {
		return nil, errors.New("reconcile pod network: the pod network is closed")
	}
	var (
		freed []string
		errs  []error
	)
	keep := map[string]bool{}
	for _, al := range n.ipam.all() {
		if err := ctx.Err(); err != nil {
			return freed, err
		}
		if isNetNS(al.NetNS) {
			keep[hostVethName(al.UID)] = true
			// Pods set up by an older version lack it; a missing veth is Setup's to repair.
			_ = n.ensureHairpin(hostVethName(al.UID))
			continue
		}
		if err := n.deleteLink(n.nl, hostVethName(al.UID)); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := n.ipam.release(al.UID); err != nil {
			errs = append(errs, err)
			continue
		}
		freed = append(freed, al.UID)
	}
	if br, err := n.nl.LinkByName(n.cfg.Bridge); err == nil {
		links, err := n.nl.LinkList()
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			errs = append(errs, fmt.Errorf("list interfaces: %w", err))
		}
		if err == nil {
			for _, l := range links {
				a := l.Attrs()
				if a.MasterIndex == br.Attrs().Index && l.Type() == "veth" && !keep[a.Name] {
					if err := n.nl.LinkDel(l); err != nil && !isNotFound(err) {
						errs = append(errs, fmt.Errorf("delete orphaned %s: %w", a.Name, err))
					}
				}
			}
		}
	}
	if n.tableWritten { // New writes the table itself after this
		if err := n.writeTableIfChanged(); err != nil {
			errs = append(errs, fmt.Errorf("host ports: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return freed, fmt.Errorf("reconcile pod network: %w", err)
	}
	return freed, nil
}
