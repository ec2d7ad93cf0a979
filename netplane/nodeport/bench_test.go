package nodeport

import (
	"context"
	"fmt"
	"github.com/shoal-dev/shoal/netplane/internal/bpffs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkConnect measures new TCP connections per second through a
// NodePort (connect, one round trip, close) to a backend on the same node
// and to one on another node (source NAT), and, as the baseline, straight
// to the local pod's address from node1's own namespace.
func BenchmarkConnect(b *testing.B) {
	requireRoot(b)
	tp := newTopo(b)
	pinDir := filepath.Join(bpffs.Root, fmt.Sprintf("shoal-bench-nodeport-%d", os.Getpid()))
	b.Cleanup(func() { _ = os.RemoveAll(pinDir) })
	np, err := Open(Config{Interface: extIf, NodeIP: node1, PinDir: pinDir, NetNS: tp.node1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := np.Remove(); err != nil {
			b.Error(err)
		}
	})
	ctx := context.Background()
	for i, be := range []netip.AddrPort{backend1, backend2} {
		if err := np.Upsert(ctx, Service{NodePort: uint16(nodePort + i), Proto: TCP, Backends: []netip.AddrPort{be}}); err != nil {
			b.Fatal(err)
		}
	}
	run := func(b *testing.B, ns, addr string) {
		// The whole loop runs on one thread inside ns, so the figure is
		// not dominated by entering the namespace.
		do(b, ns, func() error {
			buf := make([]byte, 64)
			for i := 0; i < b.N; i++ {
				c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
				if err != nil {
					return err
				}
				_ = c.SetDeadline(time.Now().Add(3 * time.Second))
				if _, err := c.Write([]byte("x\n")); err != nil {
					c.Close()
					return err
				}
				if _, err := c.Read(buf); err != nil {
					c.Close()
					return err
				}
				c.Close()
			}
			return nil
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
	}
	b.Run("local-backend", func(b *testing.B) {
		run(b, tp.client, net.JoinHostPort(node1IP, strconv.Itoa(nodePort)))
	})
	b.Run("remote-backend-snat", func(b *testing.B) {
		run(b, tp.client, net.JoinHostPort(node1IP, strconv.Itoa(nodePort+1)))
	})
	b.Run("direct-from-node1", func(b *testing.B) {
		run(b, tp.node1, backend1.String())
	})
}
