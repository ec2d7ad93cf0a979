package lbbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Serve answers every connection accepted on ln: it reads one byte, writes
// it back and closes once the client has closed, so that the client closes
// first and TIME_WAIT stays on the client's side. Serve returns when ctx
// is done (closing ln) or ln fails, after all its connections are closed.
func Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var (
		mu    sync.Mutex
		conns = make(map[net.Conn]bool)
	)
	defer func() {
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("echo server: accept: %w", err)
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				_ = c.Close()
			}()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			if _, err := c.Write(b[:]); err != nil {
				return
			}
			_, _ = c.Read(b[:]) // until the client closes
		}()
	}
}

// LoadConfig says what Load does.
type LoadConfig struct {
	// Target is the address each transaction connects to.
	Target netip.AddrPort
	// Workers is the number of concurrent transactions (16 if zero).
	Workers int
	// Duration is how long the workers start new transactions.
	Duration time.Duration
	// NetnsPath, if set, is the network namespace (e.g. /run/netns/x) in
	// which the workers' sockets are made. Each worker moves its own
	// locked thread there; the thread ends with the worker.
	NetnsPath string
}

// Result is what Load measured. Latencies are of whole transactions:
// socket, connect, write one byte, read it back, close.
type Result struct {
	Conns      int     `json:"conns"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	FirstError string  `json:"first_error,omitempty"`
}

// ConnsPerSecond is the rate of successful transactions.
func (r Result) ConnsPerSecond() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Conns) / r.Seconds
}

// Load runs cfg.Workers workers that each do transactions back to back
// with blocking socket calls until cfg.Duration has passed or ctx is done.
func Load(ctx context.Context, cfg LoadConfig) (Result, error) {
	if !cfg.Target.Addr().Unmap().Is4() {
		return Result{}, fmt.Errorf("load %s: target must be an IPv4 address and port", cfg.Target)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.Duration <= 0 {
		return Result{}, fmt.Errorf("load %s: duration must be positive", cfg.Target)
	}
	type workerResult struct {
		lat    []time.Duration
		errors int
		first  error
		setup  error
	}
	results := make([]workerResult, cfg.Workers)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The thread is never unlocked: if it changed namespace it
			// must not run other goroutines, and it ends with this one.
			runtime.LockOSThread()
			r := &results[i]
			if cfg.NetnsPath != "" {
				if r.setup = enterNetns(cfg.NetnsPath); r.setup != nil {
					return
				}
			}
			// Connect writes into the sockaddr: one per worker.
			sa := &unix.SockaddrInet4{Addr: cfg.Target.Addr().Unmap().As4(), Port: int(cfg.Target.Port())}
			r.lat = make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				if err := transact(sa); err != nil {
					r.errors++
					if r.first == nil {
						r.first = err
					}
					continue
				}
				r.lat = append(r.lat, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res := Result{Seconds: time.Since(start).Seconds()}
	var all []time.Duration
	for _, r := range results {
		if r.setup != nil {
			return Result{}, fmt.Errorf("load %s: %w", cfg.Target, r.setup)
		}
		all = append(all, r.lat...)
		res.Errors += r.errors
		if r.first != nil && res.FirstError == "" {
			res.FirstError = r.first.Error()
		}
	}
	res.Conns = len(all)
	slices.Sort(all)
	res.P50us = float64(Percentile(all, 50)) / float64(time.Microsecond)
	res.P99us = float64(Percentile(all, 99)) / float64(time.Microsecond)
	return res, nil
}

// Percentile returns the p-th percentile (nearest rank) of sorted, or 0 if
// it is empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func enterNetns(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	return nil
}

var errShortEcho = errors.New("echo: no byte back")

// transact connects, writes one byte, reads it back and closes (the client
// closes first). Calls interrupted by a signal are resumed: with socket
// timeouts set, the kernel does not restart them itself.
func transact(sa *unix.SockaddrInet4) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(3 * time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	if err := connect(fd, sa); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	b := []byte{'x'}
	if _, err := retry(func() (int, error) { return unix.Write(fd, b) }); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	n, err := retry(func() (int, error) { return unix.Read(fd, b) })
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if n != 1 {
		return errShortEcho
	}
	return nil
}

func retry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// connect is a blocking connect that, when interrupted, waits for the
// connection attempt to finish and returns its outcome.
func connect(fd int, sa *unix.SockaddrInet4) error {
	err := unix.Connect(fd, sa)
	if err != unix.EINTR {
		return err
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		n, err := unix.Poll(pfd, 3000)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.ETIMEDOUT
		}
		break
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soerr != 0 {
		return unix.Errno(soerr)
	}
	return nil
}
