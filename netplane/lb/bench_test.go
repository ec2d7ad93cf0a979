package lb

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
)

// Control-plane benchmarks (make bench-lb): time to program services into
// the kernel maps of an attached instance.

var benchSizes = []int{1, 1000, 10000}

// benchService is service i of a benchmark, with two backends.
func benchService(i int) Service {
	return Service{
		VIP:   netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}),
		Port:  80,
		Proto: TCP,
		Backends: []netip.AddrPort{
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 251, byte(i >> 8), byte(i)}), 8080),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 252, byte(i >> 8), byte(i)}), 8080),
		},
	}
}

func benchLB(b *testing.B) *LB {
	b.Helper()
	requireRoot(b)
	cfg := Config{CgroupPath: newCgroup(b), PinDir: "/sys/fs/bpf/" + randName("shoal-test-")}
	b.Cleanup(func() { _ = os.RemoveAll(cfg.PinDir) })
	l, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Remove() })
	return l
}

// BenchmarkProgramServices programs N services from empty; ns/op is the
// whole batch, ns/service one service.
func BenchmarkProgramServices(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			l := benchLB(b)
			svcs := make([]Service, n)
			for i := range svcs {
				svcs[i] = benchService(i)
			}
			b.ResetTimer()
			for range b.N {
				for _, s := range svcs {
					if err := l.Upsert(testCtx, s); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				for _, s := range svcs {
					if err := l.Delete(testCtx, s.VIP, s.Port, s.Proto); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/service")
		})
	}
}

// BenchmarkAddServiceWithExisting adds one service while N exist.
func BenchmarkAddServiceWithExisting(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			l := benchLB(b)
			for i := range n {
				if err := l.Upsert(testCtx, benchService(i)); err != nil {
					b.Fatal(err)
				}
			}
			s := benchService(n)
			b.ResetTimer()
			for range b.N {
				if err := l.Upsert(testCtx, s); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := l.Delete(testCtx, s.VIP, s.Port, s.Proto); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkUpdateBackends replaces one backend of one service while N exist.
func BenchmarkUpdateBackends(b *testing.B) {
	l := benchLB(b)
	for i := range 1000 {
		if err := l.Upsert(testCtx, benchService(i)); err != nil {
			b.Fatal(err)
		}
	}
	s := benchService(7)
	alt := s
	alt.Backends = []netip.AddrPort{s.Backends[0], netip.MustParseAddrPort("10.253.0.1:8080")}
	b.ResetTimer()
	for i := range b.N {
		next := s
		if i%2 == 0 {
			next = alt
		}
		if err := l.Upsert(testCtx, next); err != nil {
			b.Fatal(err)
		}
	}
}
