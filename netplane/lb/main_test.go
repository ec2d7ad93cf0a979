package lb

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const clientEnv = "SHOAL_LB_TEST_CLIENT"

func TestMain(m *testing.M) {
	if mode := os.Getenv(clientEnv); mode != "" {
		os.Exit(clientMain(mode))
	}
	os.Exit(m.Run())
}

// clientMain is the child process of env.startClient. It enters the
// namespace, talks to SHOAL_LB_TEST_ADDR with raw socket calls and prints
// one JSON result per exchange.
func clientMain(mode string) int {
	runtime.LockOSThread()
	ns, err := netns.GetFromPath(os.Getenv("SHOAL_LB_TEST_NETNS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := netns.Set(ns); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	target, err := netip.ParseAddrPort(os.Getenv("SHOAL_LB_TEST_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	n, _ := strconv.Atoi(os.Getenv("SHOAL_LB_TEST_N"))
	sa := &unix.SockaddrInet4{Addr: target.Addr().As4(), Port: int(target.Port())}
	enc := json.NewEncoder(os.Stdout)
	stdin := bufio.NewReader(os.Stdin)
	switch mode {
	case "tcp":
		for i := 0; i < n; i++ {
			_ = enc.Encode(streamOnce(sa))
		}
	case "udp":
		for i := 0; i < n; i++ {
			fd, r := dial(unix.SOCK_DGRAM, sa)
			if fd >= 0 {
				r = exchange(fd, r)
				unix.Close(fd)
			}
			_ = enc.Encode(r)
		}
	case "udp-unconnected":
		fd, err := socket(unix.SOCK_DGRAM)
		if err != nil {
			_ = enc.Encode(fail(result{Op: "socket"}, err))
			return 0
		}
		for i := 0; i < n; i++ {
			_ = enc.Encode(sendTo(fd, sa))
		}
		unix.Close(fd)
	case "udp-hold", "tcp-hold":
		typ := unix.SOCK_DGRAM
		if mode == "tcp-hold" {
			typ = unix.SOCK_STREAM
		}
		fd, r := dial(typ, sa)
		if fd < 0 {
			_ = enc.Encode(r)
			return 0
		}
		r = exchange(fd, r)
		_ = enc.Encode(r)
		if _, err := stdin.ReadString('\n'); err != nil {
			return 0
		}
		if typ == unix.SOCK_STREAM {
			_ = enc.Encode(echo(fd))
		} else {
			_ = enc.Encode(exchange(fd, result{}))
		}
		unix.Close(fd)
	default:
		fmt.Fprintln(os.Stderr, "unknown client mode", mode)
		return 2
	}
	return 0
}

func fail(r result, err error) result {
	r.Err = err.Error()
	var errno unix.Errno
	if errors.As(err, &errno) {
		r.Errno = int(errno)
	}
	return r
}

func socket(typ int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	tv := unix.NsecToTimeval(int64(3 * time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	return fd, nil
}

func sockaddrString(sa unix.Sockaddr) string {
	if s, ok := sa.(*unix.SockaddrInet4); ok {
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(s.Port)).String()
	}
	return fmt.Sprint(sa)
}

// dial connects a new socket and records getpeername and the time taken.
func dial(typ int, sa *unix.SockaddrInet4) (int, result) {
	fd, err := socket(typ)
	if err != nil {
		return -1, fail(result{Op: "socket"}, err)
	}
	start := time.Now()
	err = unix.Connect(fd, sa)
	r := result{MS: time.Since(start).Milliseconds()}
	if err != nil {
		unix.Close(fd)
		r.Op = "connect"
		return -1, fail(r, err)
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		unix.Close(fd)
		r.Op = "getpeername"
		return -1, fail(r, err)
	}
	r.Peer = sockaddrString(peer)
	return fd, r
}

// exchange reads the backend id over a connected socket (UDP: after a
// request; TCP: the line sent on accept).
func exchange(fd int, r result) result {
	var typ int
	typ, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if typ == unix.SOCK_DGRAM {
		if _, err := unix.Write(fd, []byte("q")); err != nil {
			r.Op = "send"
			return fail(r, err)
		}
	}
	buf := make([]byte, 512)
	m, err := unix.Read(fd, buf)
	if err != nil {
		r.Op = "recv"
		return fail(r, err)
	}
	r.ID = strings.TrimSpace(string(buf[:m]))
	return r
}

func streamOnce(sa *unix.SockaddrInet4) result {
	fd, r := dial(unix.SOCK_STREAM, sa)
	if fd < 0 {
		return r
	}
	defer unix.Close(fd)
	return exchange(fd, r)
}

// echo checks that an established TCP connection still carries data.
func echo(fd int) result {
	if _, err := unix.Write(fd, []byte("ping\n")); err != nil {
		return fail(result{Op: "send"}, err)
	}
	buf := make([]byte, 64)
	m, err := unix.Read(fd, buf)
	if err != nil {
		return fail(result{Op: "recv"}, err)
	}
	return result{ID: strings.TrimSpace(string(buf[:m]))}
}

func sendTo(fd int, sa *unix.SockaddrInet4) result {
	if err := unix.Sendto(fd, []byte("q"), 0, sa); err != nil {
		return fail(result{Op: "sendto"}, err)
	}
	buf := make([]byte, 512)
	m, from, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fail(result{Op: "recvfrom"}, err)
	}
	return result{ID: string(buf[:m]), From: sockaddrString(from)}
}
