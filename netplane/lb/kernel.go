package lb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/shoal-dev/shoal/netplane/internal/bpffs"
	"github.com/shoal-dev/shoal/netplane/internal/slots"
	"golang.org/x/sys/unix"
)

const flagAffinityClientIP = 1

// hook is one cgroup program and where it attaches.
type hook struct {
	name   string
	attach ebpf.AttachType
	prog   func(*lbObjects) *ebpf.Program
}

var hooks = []hook{
	{"connect4", ebpf.AttachCGroupInet4Connect, func(o *lbObjects) *ebpf.Program { return o.Lb4Connect }},
	{"sendmsg4", ebpf.AttachCGroupUDP4Sendmsg, func(o *lbObjects) *ebpf.Program { return o.Lb4Sendmsg }},
	{"recvmsg4", ebpf.AttachCGroupUDP4Recvmsg, func(o *lbObjects) *ebpf.Program { return o.Lb4Recvmsg }},
	{"getpeername4", ebpf.AttachCgroupInet4GetPeername, func(o *lbObjects) *ebpf.Program { return o.Lb4Getpeername }},
}

// pinnedMaps are the names of the maps pinned in Config.PinDir.
var pinnedMaps = []string{"lb4_services", "lb4_backends", "lb4_rr", "lb4_revnat", "lb4_affinity"}

type linkCloser interface {
	Close() error
	Unpin() error
}

// Open loads the programs, opens the maps pinned in cfg.PinDir (creating
// them on first use), and attaches the programs to cfg.CgroupPath, reusing
// links pinned by an earlier Open: the pinned programs are replaced
// atomically by the ones of this binary, so translation never stops. The
// services already in the maps are kept.
func Open(cfg Config) (*LB, error) {
	if !filepath.IsAbs(cfg.CgroupPath) || !filepath.IsAbs(cfg.PinDir) {
		return nil, fmt.Errorf("open load balancer: cgroup path %q and pin dir %q must be absolute paths", cfg.CgroupPath, cfg.PinDir)
	}
	cgID, err := cgroupID(cfg.CgroupPath)
	if err != nil {
		return nil, err
	}
	if err := bpffs.EnsurePinDir(cfg.PinDir); err != nil {
		return nil, fmt.Errorf("open load balancer: %w", err)
	}
	spec, err := loadLb()
	if err != nil {
		return nil, fmt.Errorf("open load balancer: load embedded programs: %w", err)
	}
	l := &LB{cfg: cfg, links: make(map[string]linkCloser)}
	err = spec.LoadAndAssign(&l.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: cfg.PinDir}})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return nil, fmt.Errorf("open load balancer: maps pinned in %s come from an incompatible version: remove the directory (connections through services will be rebalanced): %w", cfg.PinDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open load balancer: load programs (needs root and Linux 6.5 or newer): %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = l.closeHandles() // the error that got us here is the one to report
		}
	}()
	for _, h := range hooks {
		lk, err := attach(cfg, cgID, h, h.prog(&l.objs))
		if err != nil {
			return nil, err
		}
		l.links[h.name] = lk
	}
	if l.destroy, err = newDestroyer(l.objs.Lb4SockDestroy, l.objs.Lb4Destroy); err != nil {
		return nil, err
	}
	l.tab = table(&l.objs)
	if err := l.tab.AdoptIDs(); err != nil {
		return nil, fmt.Errorf("open load balancer: %w", err)
	}
	ok = true
	return l, nil
}

// attach re-adopts the pinned link of h or creates and pins a new one.
func attach(cfg Config, cgID uint64, h hook, prog *ebpf.Program) (linkCloser, error) {
	pin := linkPin(cfg.PinDir, h.name)
	if _, err := os.Stat(pin); err == nil {
		lk, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			return nil, fmt.Errorf("open load balancer: load pinned link %s: %w", pin, err)
		}
		id := uint64(0)
		if info, err := lk.Info(); err == nil && info.Cgroup() != nil {
			id = info.Cgroup().CgroupId
		}
		switch id {
		case cgID:
			if err := lk.Update(prog); err != nil {
				_ = lk.Close()
				return nil, fmt.Errorf("open load balancer: replace program of %s: %w", pin, err)
			}
			return lk, nil
		case 0:
			// The cgroup the link was attached to is gone; start afresh.
			_ = lk.Unpin()
			_ = lk.Close()
		default:
			_ = lk.Close()
			return nil, fmt.Errorf("open load balancer: %s is attached to another cgroup than %s: use another pin dir or remove this one", pin, cfg.CgroupPath)
		}
	}
	lk, err := link.AttachCgroup(link.CgroupOptions{Path: cfg.CgroupPath, Attach: h.attach, Program: prog})
	if err != nil {
		return nil, fmt.Errorf("open load balancer: attach %s to %s: %w", h.name, cfg.CgroupPath, err)
	}
	if err := lk.Pin(pin); err != nil {
		_ = lk.Close()
		return nil, fmt.Errorf("open load balancer: pin %s: %w", pin, err)
	}
	return lk, nil
}

// cgroupID checks that path is a cgroup v2 directory and returns its id.
func cgroupID(path string) (uint64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("open load balancer: cgroup %s: %w (create it in the cgroup v2 hierarchy first)", path, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("open load balancer: %s is not in a cgroup v2 file system: use a directory under the cgroup2 mount (/sys/fs/cgroup, or /sys/fs/cgroup/unified in the hybrid layout)", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("open load balancer: cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// Close releases the handles of this process. Pinned maps and links stay:
// the programs keep translating until the next Open or Remove.
func (l *LB) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.closeHandles()
}

func (l *LB) closeHandles() error {
	var errs []error
	for _, lk := range l.links {
		errs = append(errs, lk.Close())
	}
	l.links = nil
	if l.destroy != nil {
		errs = append(errs, l.destroy.Close())
	}
	errs = append(errs, l.objs.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close load balancer: %w", err)
	}
	return nil
}

// Remove detaches the programs, unpins the maps and links and removes the
// pin directory. Sockets connected through a service keep their backend. To
// remove what a closed instance left pinned, Open it again and Remove.
func (l *LB) Remove() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	var errs []error
	for _, lk := range l.links {
		errs = append(errs, lk.Unpin())
	}
	maps := map[string]*ebpf.Map{
		"lb4_services": l.objs.Lb4Services, "lb4_backends": l.objs.Lb4Backends, "lb4_rr": l.objs.Lb4Rr,
		"lb4_revnat": l.objs.Lb4Revnat, "lb4_affinity": l.objs.Lb4Affinity,
	}
	for _, name := range pinnedMaps {
		errs = append(errs, maps[name].Unpin())
	}
	l.closed = true
	errs = append(errs, l.closeHandles())
	if err := os.Remove(l.cfg.PinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove load balancer: %w", err)
	}
	return nil
}

// Upsert adds or updates a service. New backend slots are written before the
// service's backend count grows, the count shrinks before slots are deleted,
// and removed backends are overwritten in place first, so a connect() never
// sees a half-written service. Clients stuck to a removed backend by
// affinity are rebalanced, and UDP sockets still connected to it through the
// service are destroyed (their owner gets ECONNABORTED and reconnects).
func (l *LB) Upsert(ctx context.Context, svc Service) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := normalize(svc)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	ch, err := l.tab.Upsert(n.key, n.backends, func(id, count uint32) lbLb4Service {
		return lbLb4Service{Id: id, Count: count, Flags: n.flags, AffinityTimeout: n.timeout}
	})
	if err != nil {
		return fmt.Errorf("upsert service %s: %w", svc, err)
	}
	if ch.New {
		return nil
	}
	// Only a service that had affinity has entries (turning it off purges
	// them); walking the affinity map costs tens of microseconds.
	hadAffinity := ch.Old.Flags&flagAffinityClientIP != 0
	flagsOff := hadAffinity && n.flags&flagAffinityClientIP == 0
	if hadAffinity && (len(ch.Removed) > 0 || flagsOff) {
		if err := l.purgeAffinity(ch.Old.Id, ch.Removed, flagsOff); err != nil {
			return fmt.Errorf("upsert service %s: %w", svc, err)
		}
	}
	if len(ch.Removed) > 0 && svc.Proto == UDP {
		if err := l.destroySockets(ctx, ch.Old.Id, ch.Removed); err != nil {
			return fmt.Errorf("upsert service %s: %w", svc, err)
		}
	}
	return nil
}

// Delete removes the service VIP:port/proto; deleting a missing service is
// no error. UDP sockets connected through it are destroyed.
func (l *LB) Delete(ctx context.Context, vip netip.Addr, port uint16, proto Proto) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	svc := Service{VIP: vip, Port: port, Proto: proto}
	n, err := normalize(svc)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	old, backends, found, err := l.tab.Delete(n.key)
	if err != nil {
		return fmt.Errorf("delete service %s: %w", svc, err)
	}
	if !found {
		return nil
	}
	if old.Flags&flagAffinityClientIP != 0 {
		if err := l.purgeAffinity(old.Id, nil, true); err != nil {
			return fmt.Errorf("delete service %s: %w", svc, err)
		}
	}
	if proto == UDP && len(backends) > 0 {
		if err := l.destroySockets(ctx, old.Id, backends); err != nil {
			return fmt.Errorf("delete service %s: %w", svc, err)
		}
	}
	return nil
}

// Services returns the services the kernel maps hold, sorted by address.
func (l *LB) Services() ([]Service, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	entries, err := l.tab.List()
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := make([]Service, 0, len(entries))
	for _, e := range entries {
		s := Service{
			VIP:   slots.Addr4(e.Key.Vip),
			Port:  slots.Ntohs(e.Key.Port),
			Proto: Proto(e.Key.Proto),
		}
		if e.Value.Flags&flagAffinityClientIP != 0 {
			s.Affinity = ClientIP
			s.AffinityTimeout = time.Duration(e.Value.AffinityTimeout) * time.Second
		}
		for _, b := range e.Backends {
			s.Backends = append(s.Backends, b.AddrPort())
		}
		out = append(out, s)
	}
	sortServices(out)
	return out, nil
}

// purgeAffinity forgets the clients of service id stuck to one of removed
// (or all of them).
func (l *LB) purgeAffinity(id uint32, removed []slots.Backend, all bool) error {
	gone := make(map[slots.Backend]bool, len(removed))
	for _, b := range removed {
		gone[b] = true
	}
	var (
		key  lbLb4AffinityKey
		val  lbLb4Affinity
		dels []lbLb4AffinityKey
	)
	it := l.objs.Lb4Affinity.Iterate()
	for it.Next(&key, &val) {
		if key.Id == id && (all || gone[slots.Backend{IP: val.Backend.Ip, Port: val.Backend.Port}]) {
			dels = append(dels, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read affinity: %w", err)
	}
	for _, k := range dels {
		if err := l.objs.Lb4Affinity.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete affinity: %w", err)
		}
	}
	return nil
}
