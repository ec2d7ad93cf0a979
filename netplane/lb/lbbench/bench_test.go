package lbbench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/netplane/lb"
)

// Root-only benchmarks comparing Shoal's eBPF load balancer with a direct
// connection and with kube-proxy's iptables mode. Every sub-benchmark runs
// in fresh namespaces (once a nat table has been used, conntrack stays
// loaded in its namespace).

var (
	loadDuration = flag.Duration("lbbench.duration", 3*time.Second, "how long each BenchmarkConnect sub-benchmark generates load")
	restoreCmd   = flag.String("lbbench.iptables-restore", "iptables-restore", "the iptables-restore program (e.g. iptables-legacy-restore)")
	sizes        = []int{1, 1000, 10000}
)

// BenchmarkConnect measures connections per second at concurrency 16
// (connect, 1-byte echo, close) and the p50/p99 latency of one such
// transaction: (direct) to a backend address, (ebpf) to the VIP of the
// last of N services programmed into Shoal's load balancer, (iptables) to
// the VIP of the last of N services in a kube-proxy-style nat table. One
// run of the body is one measurement of -lbbench.duration (longer than the
// default -benchtime, so it runs once); repeat with -count.
func BenchmarkConnect(b *testing.B) {
	modes := []struct {
		name  string
		setup func(b *testing.B, bd *bed, svcs []lb.Service) netip.AddrPort
	}{
		{"direct", func(b *testing.B, bd *bed, svcs []lb.Service) netip.AddrPort {
			return svcs[len(svcs)-1].Backends[0]
		}},
		{"ebpf", func(b *testing.B, bd *bed, svcs []lb.Service) netip.AddrPort {
			l := newLB(b, bd.cgroup)
			for _, s := range svcs {
				if err := l.Upsert(context.Background(), s); err != nil {
					b.Fatal(err)
				}
			}
			last := svcs[len(svcs)-1]
			return netip.AddrPortFrom(last.VIP, last.Port)
		}},
		{"iptables", func(b *testing.B, bd *bed, svcs []lb.Service) netip.AddrPort {
			requireIptables(b, bd.client)
			iptablesRestore(b, bd.client, fullRules(b, svcs), false)
			last := svcs[len(svcs)-1]
			return netip.AddrPortFrom(last.VIP, last.Port)
		}},
	}
	// Size-major order: the three modes of one size run close together in
	// time, so that load from elsewhere on the machine skews them alike.
	for _, n := range sizes {
		for _, m := range modes {
			b.Run(fmt.Sprintf("%s/N=%d", m.name, n), func(b *testing.B) {
				bd := newBed(b)
				target := m.setup(b, bd, services(n))
				// A short first run checks the path and warms up.
				if r := bd.load(b, target, 300*time.Millisecond); r.Conns == 0 || r.Errors > 0 {
					b.Fatalf("%s: %d connections, %d errors (first: %s)", target, r.Conns, r.Errors, r.FirstError)
				}
				b.ResetTimer()
				var r Result
				for range b.N {
					r = bd.load(b, target, *loadDuration)
				}
				b.StopTimer()
				if r.Errors > 0 {
					b.Logf("%s: %d failed transactions, first: %s", target, r.Errors, r.FirstError)
				}
				if r.Errors > r.Conns/1000 {
					b.Errorf("%s: %d of %d transactions failed (first: %s)", target, r.Errors, r.Conns+r.Errors, r.FirstError)
				}
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(r.ConnsPerSecond(), "conn/s")
				b.ReportMetric(r.P50us, "p50-us")
				b.ReportMetric(r.P99us, "p99-us")
				b.ReportMetric(float64(r.Errors), "errors")
			})
		}
	}
}

// reportProgram reports the timed part of the benchmark per operation in
// milliseconds.
func reportProgram(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "program-ms")
}

// BenchmarkProgram measures programming N services into an empty load
// balancer: (ebpf) N Upserts, (iptables) one iptables-restore of the whole
// kube-proxy nat table with N services. Writing the rules is not timed.
func BenchmarkProgram(b *testing.B) {
	for _, n := range sizes {
		svcs := services(n)
		b.Run(fmt.Sprintf("ebpf/N=%d", n), func(b *testing.B) {
			requireRoot(b)
			l := newLB(b, newCgroup(b))
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				for _, s := range svcs {
					if err := l.Upsert(ctx, s); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				for _, s := range svcs {
					if err := l.Delete(ctx, s.VIP, s.Port, s.Proto); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			reportProgram(b)
		})
		b.Run(fmt.Sprintf("iptables/N=%d", n), func(b *testing.B) {
			requireRoot(b)
			ns := newNetns(b)
			requireIptables(b, ns)
			base, rules := fullRules(b, nil), fullRules(b, svcs)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				iptablesRestore(b, ns, base, false)
				b.StartTimer()
				iptablesRestore(b, ns, rules, false)
			}
			reportProgram(b)
		})
	}
}

// BenchmarkProgramOne measures adding one service while N exist: (ebpf) one
// Upsert; (iptables) what kube-proxy's iptables mode does on a full sync,
// one iptables-restore of the whole nat table with N+1 services;
// (iptables-partial) what kube-proxy 1.28+ does on a partial sync,
// KUBE-SERVICES rewritten whole plus the new service's chains.
func BenchmarkProgramOne(b *testing.B) {
	for _, n := range sizes {
		svcs := services(n + 1)
		existing := svcs[:n]
		b.Run(fmt.Sprintf("ebpf/N=%d", n), func(b *testing.B) {
			requireRoot(b)
			l := newLB(b, newCgroup(b))
			ctx := context.Background()
			for _, s := range existing {
				if err := l.Upsert(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			s := svcs[n]
			b.ResetTimer()
			for range b.N {
				if err := l.Upsert(ctx, s); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := l.Delete(ctx, s.VIP, s.Port, s.Proto); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			reportProgram(b)
		})
		b.Run(fmt.Sprintf("iptables/N=%d", n), func(b *testing.B) {
			requireRoot(b)
			ns := newNetns(b)
			requireIptables(b, ns)
			before, after := fullRules(b, existing), fullRules(b, svcs)
			iptablesRestore(b, ns, before, false)
			b.ResetTimer()
			for range b.N {
				iptablesRestore(b, ns, after, false)
				b.StopTimer()
				iptablesRestore(b, ns, before, false)
				b.StartTimer()
			}
			reportProgram(b)
		})
		b.Run(fmt.Sprintf("iptables-partial/N=%d", n), func(b *testing.B) {
			requireRoot(b)
			ns := newNetns(b)
			requireIptables(b, ns)
			iptablesRestore(b, ns, fullRules(b, existing), false)
			var add bytes.Buffer
			if err := KubeProxyAddRules(&add, svcs, clusterCIDR); err != nil {
				b.Fatal(err)
			}
			undo := removeLastRules(b, svcs)
			b.ResetTimer()
			for range b.N {
				iptablesRestore(b, ns, add.Bytes(), true)
				b.StopTimer()
				iptablesRestore(b, ns, undo, true)
				b.StartTimer()
			}
			reportProgram(b)
		})
	}
}

// removeLastRules undoes KubeProxyAddRules(svcs): KUBE-SERVICES without the
// last service, whose chains are emptied and deleted.
func removeLastRules(b *testing.B, svcs []lb.Service) []byte {
	b.Helper()
	var buf bytes.Buffer
	last := svcs[len(svcs)-1]
	chains := []string{svcChain(last)}
	for _, be := range last.Backends {
		chains = append(chains, sepChain(last, be))
	}
	buf.WriteString("*nat\n:" + chainServices + " - [0:0]\n")
	for _, c := range chains {
		buf.WriteString(":" + c + " - [0:0]\n")
	}
	p := func(format string, args ...any) { fmt.Fprintf(&buf, format, args...) }
	for _, s := range svcs[:len(svcs)-1] {
		rw, err := newRuleWriter(p, s)
		if err != nil {
			b.Fatal(err)
		}
		rw.jump(s)
	}
	p(nodePortsRule)
	for _, c := range chains {
		buf.WriteString("-X " + c + "\n")
	}
	buf.WriteString("COMMIT\n")
	return buf.Bytes()
}
