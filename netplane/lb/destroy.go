package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/shoal-dev/shoal/netplane/internal/slots"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

type destroyer interface {
	Close() error
}

// sockDestroyer runs the udp iterator program lb4_sock_destroy.
type sockDestroyer struct {
	iter    *link.Iter
	targets *ebpf.Map
}

func newDestroyer(prog *ebpf.Program, targets *ebpf.Map) (*sockDestroyer, error) {
	it, err := link.AttachIter(link.IterOptions{Program: prog})
	if err != nil {
		return nil, fmt.Errorf("open load balancer: attach udp socket iterator: %w", err)
	}
	return &sockDestroyer{iter: it, targets: targets}, nil
}

func (d *sockDestroyer) Close() error { return d.iter.Close() }

// destroySockets destroys the UDP sockets of the cgroup that are connected
// through service id to one of backends. The udp iterator walks the sockets
// of the network namespace it is opened in, so it is opened once in every
// namespace that a process of the cgroup (or below) lives in.
func (l *LB) destroySockets(ctx context.Context, id uint32, backends []slots.Backend) error {
	d, ok := l.destroy.(*sockDestroyer)
	if !ok {
		return nil
	}
	keys := make([]lbLb4DestroyKey, len(backends))
	for i, b := range backends {
		keys[i] = lbLb4DestroyKey{Id: id, Ip: b.IP, Port: b.Port}
		if err := d.targets.Update(keys[i], uint8(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("destroy sockets: %w", err)
		}
	}
	defer func() {
		for _, k := range keys {
			_ = d.targets.Delete(k)
		}
	}()
	nss, err := namespacesOf(l.cfg.CgroupPath)
	if err != nil {
		return fmt.Errorf("destroy sockets: %w", err)
	}
	var errs []error
	for _, ns := range nss {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.runIn(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy sockets: %w", err)
	}
	return nil
}

// runIn reads the iterator in the network namespace of process file nsPath
// (/proc/PID/ns/net) on a locked OS thread of its own.
func (d *sockDestroyer) runIn(nsPath string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := d.runLocked(nsPath)
		if restored {
			runtime.UnlockOSThread()
		}
		// A thread that could not go back to its namespace stays locked
		// and ends with this goroutine.
		errc <- err
	}()
	return <-errc
}

func (d *sockDestroyer) runLocked(nsPath string) (restored bool, err error) {
	orig, err := netns.Get()
	if err != nil {
		return true, fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(nsPath)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return true, nil // the process is gone
	}
	if err != nil {
		return true, fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return true, fmt.Errorf("enter %s: %w", nsPath, err)
	}
	rc, err := d.iter.Open()
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
	}
	if serr := netns.Set(orig); serr != nil {
		return false, errors.Join(err, fmt.Errorf("return to own network namespace: %w", serr))
	}
	if err != nil {
		return true, fmt.Errorf("run socket iterator in %s: %w", nsPath, err)
	}
	return true, nil
}

// namespacesOf returns one /proc/PID/ns/net path per network namespace that
// the processes of cgroup dir (and its descendants) live in.
func namespacesOf(dir string) ([]string, error) {
	type nsID struct{ dev, ino uint64 }
	seen := make(map[nsID]bool)
	var out []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a child cgroup was removed meanwhile
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		f, err := os.Open(filepath.Join(path, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pid, err := strconv.Atoi(sc.Text())
			if err != nil {
				continue
			}
			p := fmt.Sprintf("/proc/%d/ns/net", pid)
			var st unix.Stat_t
			if unix.Stat(p, &st) != nil {
				continue // exited
			}
			id := nsID{uint64(st.Dev), st.Ino}
			if !seen[id] {
				seen[id] = true
				out = append(out, p)
			}
		}
		return sc.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list processes of cgroup %s: %w", dir, err)
	}
	return out, nil
}
