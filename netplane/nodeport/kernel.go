package nodeport

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/shoal-dev/shoal/netplane/internal/bpffs"
	"github.com/shoal-dev/shoal/netplane/internal/slots"
	"github.com/vishvananda/netlink"
)

// hook is one tc program and where it attaches.
type hook struct {
	name   string
	attach ebpf.AttachType
	prog   func(*nodeportObjects) *ebpf.Program
}

var hooks = []hook{
	{"ingress", ebpf.AttachTCXIngress, func(o *nodeportObjects) *ebpf.Program { return o.Np4Ingress }},
	{"egress", ebpf.AttachTCXEgress, func(o *nodeportObjects) *ebpf.Program { return o.Np4Egress }},
}

type linkCloser interface {
	Close() error
	Unpin() error
}

// Open loads the programs, opens the maps pinned in cfg.PinDir (creating
// them on first use), and attaches the programs to cfg.Interface, reusing
// the links pinned by an earlier Open: their programs are replaced
// atomically by the ones of this binary, so translation never stops. The
// NodePorts and tracked flows already in the maps are kept.
func Open(cfg Config) (*NodePort, error) {
	if cfg.Interface == "" {
		return nil, errors.New("open nodeport: no interface: set Config.Interface to the node's external interface")
	}
	if !cfg.NodeIP.Unmap().Is4() {
		return nil, fmt.Errorf("open nodeport: node address %q must be an IPv4 address", cfg.NodeIP)
	}
	cfg.NodeIP = cfg.NodeIP.Unmap()
	if !filepath.IsAbs(cfg.PinDir) {
		return nil, fmt.Errorf("open nodeport: pin dir %q must be an absolute path", cfg.PinDir)
	}
	var ifindex int
	err := inNetNS(cfg.NetNS, func() error {
		l, err := netlink.LinkByName(cfg.Interface)
		if err != nil {
			return fmt.Errorf("find interface %q: %w", cfg.Interface, err)
		}
		ifindex = l.Attrs().Index
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open nodeport: %w", err)
	}
	if err := bpffs.EnsurePinDir(cfg.PinDir); err != nil {
		return nil, fmt.Errorf("open nodeport: %w", err)
	}
	spec, err := loadNodeport()
	if err != nil {
		return nil, fmt.Errorf("open nodeport: load embedded programs: %w", err)
	}
	if err := spec.Variables["node_ip"].Set(slots.IP4(cfg.NodeIP)); err != nil {
		return nil, fmt.Errorf("open nodeport: set node address: %w", err)
	}
	np := &NodePort{cfg: cfg, links: make(map[string]linkCloser)}
	err = spec.LoadAndAssign(&np.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinDir}})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("open nodeport: maps pinned in %s come from an incompatible version: remove the directory (NodePort connections will break): %w", cfg.PinDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open nodeport: load programs (needs root and Linux 6.6 or newer): %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = np.closeHandles()
		}
	}()
	for _, h := range hooks {
		var lk linkCloser
		err := inNetNS(cfg.NetNS, func() error {
			var err error
			lk, err = attach(cfg, ifindex, h, h.prog(&np.objs))
			return err
		})
		if err != nil {
			return nil, err
		}
		np.links[h.name] = lk
	}
	np.tab = table(&np.objs)
	if err := np.tab.AdoptIDs(); err != nil {
		return nil, fmt.Errorf("open nodeport: %w", err)
	}
	ok = true
	return np, nil
}

func linkPin(dir, name string) string { return filepath.Join(dir, "link_"+name) }

// attach re-adopts the pinned link of h or creates and pins a new one. It
// runs in the interface's network namespace.
func attach(cfg Config, ifindex int, h hook, prog *ebpf.Program) (linkCloser, error) {
	pin := linkPin(cfg.PinDir, h.name)
	if _, err := os.Stat(pin); err == nil {
		lk, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			return nil, fmt.Errorf("open nodeport: load pinned link %s: %w", pin, err)
		}
		var idx uint32
		if info, err := lk.Info(); err == nil && info.TCX() != nil {
			idx = info.TCX().Ifindex
		}
		switch idx {
		case uint32(ifindex):
			if err := lk.Update(prog); err != nil {
				_ = lk.Close()
				return nil, fmt.Errorf("open nodeport: replace program of %s: %w", pin, err)
			}
			return lk, nil
		case 0:
			// The interface the link was attached to is gone; start afresh.
			_ = lk.Unpin()
			_ = lk.Close()
		default:
			_ = lk.Close()
			return nil, fmt.Errorf("open nodeport: %s is attached to another interface than %s: use another pin dir or remove this one", pin, cfg.Interface)
		}
	}
	lk, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: h.attach})
	if err != nil {
		return nil, fmt.Errorf("open nodeport: attach %s program to %s (needs Linux 6.6 or newer): %w", h.name, cfg.Interface, err)
	}
	if err := lk.Pin(pin); err != nil {
		_ = lk.Close()
		return nil, fmt.Errorf("open nodeport: pin %s: %w", pin, err)
	}
	return lk, nil
}

// Close releases the handles of this process. Pinned maps and links stay:
// the programs keep translating until the next Open or Remove. Close is
// idempotent.
func (np *NodePort) Close() error {
	np.mu.Lock()
	defer np.mu.Unlock()
	if np.closed {
		return nil
	}
	np.closed = true
	return np.closeHandles()
}

func (np *NodePort) closeHandles() error {
	var errs []error
	for _, lk := range np.links {
		errs = append(errs, lk.Close())
	}
	np.links = nil
	errs = append(errs, np.objs.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close nodeport: %w", err)
	}
	return nil
}

// Remove detaches the programs, unpins the maps and links and removes the
// pin directory: NodePorts stop working, including established flows. To
// remove what a closed instance left pinned, Open it again and Remove.
func (np *NodePort) Remove() error {
	np.mu.Lock()
	defer np.mu.Unlock()
	if np.closed {
		return ErrClosed
	}
	var errs []error
	for _, lk := range np.links {
		errs = append(errs, lk.Unpin())
	}
	for _, m := range []*ebpf.Map{np.objs.Np4Services, np.objs.Np4Backends, np.objs.Np4Rr, np.objs.Np4Ct, np.objs.Np4Rev} {
		errs = append(errs, m.Unpin())
	}
	np.closed = true
	errs = append(errs, np.closeHandles())
	if err := os.Remove(np.cfg.PinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove nodeport: %w", err)
	}
	return nil
}
