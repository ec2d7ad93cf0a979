package lb

import (
	"bytes"
	"encoding/binary"
	"github.com/shoal-dev/shoal/netplane/internal/slots"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// The translation logic of bpf/lb.h runs here with BPF_PROG_TEST_RUN: cgroup
// sock_addr programs have no test_run in the kernel, so bpf/lb_test.c wraps
// the same inline functions in an XDP program that takes its arguments
// from the packet.

const (
	opFwd = 1
	opRev = 2

	resMiss      = 0
	resXlated    = 1
	resNoBackend = 2
)

type harness struct {
	t    testing.TB
	prog *ebpf.Program
	lb   *LB
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	requireRoot(t)
	spec, err := loadLbtest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	var objs lbtestObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatalf("load harness: %v", err)
	}
	t.Cleanup(func() { _ = objs.Close() })
	l := &LB{objs: lbObjects{lbMaps: lbMaps{
		Lb4Services: objs.Lb4Services, Lb4Backends: objs.Lb4Backends, Lb4Rr: objs.Lb4Rr,
		Lb4Revnat: objs.Lb4Revnat, Lb4Affinity: objs.Lb4Affinity,
	}}}
	l.tab = table(&l.objs)
	return &harness{t: t, prog: objs.Lb4Test, lb: l}
}

func (h *harness) run(io lbtestLbTestIo) lbtestLbTestIo {
	h.t.Helper()
	var in bytes.Buffer
	if err := binary.Write(&in, binary.NativeEndian, io); err != nil {
		h.t.Fatal(err)
	}
	data := make([]byte, 64)
	copy(data, in.Bytes())
	out := make([]byte, len(data))
	ret, err := h.prog.Run(&ebpf.RunOptions{Data: data, DataOut: out})
	if err != nil {
		h.t.Fatalf("test run: %v", err)
	}
	if ret != 2 { // XDP_PASS
		h.t.Fatalf("harness returned %d", ret)
	}
	var res lbtestLbTestIo
	if err := binary.Read(bytes.NewReader(out), binary.NativeEndian, &res); err != nil {
		h.t.Fatal(err)
	}
	return res
}

// fwd translates dst for socket cookie and client at time now.
func (h *harness) fwd(dst netip.AddrPort, proto Proto, cookie, client uint64, now time.Duration) (netip.AddrPort, int32) {
	h.t.Helper()
	r := h.run(lbtestLbTestIo{
		Ip: slots.IP4(dst.Addr()), Port: slots.Htons(dst.Port()), Proto: uint8(proto), Op: opFwd,
		Cookie: cookie, Client: client, Now: uint64(now),
	})
	return netip.AddrPortFrom(slots.Addr4(r.Ip), slots.Ntohs(r.Port)), r.Result
}

func (h *harness) rev(src netip.AddrPort, cookie uint64) (netip.AddrPort, int32) {
	h.t.Helper()
	r := h.run(lbtestLbTestIo{Ip: slots.IP4(src.Addr()), Port: slots.Htons(src.Port()), Op: opRev, Cookie: cookie})
	return netip.AddrPortFrom(slots.Addr4(r.Ip), slots.Ntohs(r.Port)), r.Result
}

var (
	progBackends = []netip.AddrPort{
		netip.MustParseAddrPort("10.250.0.1:8080"),
		netip.MustParseAddrPort("10.250.0.2:8081"),
		netip.MustParseAddrPort("10.250.0.3:8082"),
	}
	progVIP = netip.MustParseAddrPort("10.96.0.10:80")
)

func TestProgForward(t *testing.T) {
	h := newHarness(t)
	upsert(t, h.lb, Service{VIP: progVIP.Addr(), Port: 80, Proto: TCP, Backends: progBackends})
	upsert(t, h.lb, Service{VIP: progVIP.Addr(), Port: 53, Proto: UDP})

	tests := []struct {
		name   string
		dst    netip.AddrPort
		proto  Proto
		want   netip.AddrPort
		result int32
	}{
		{"other address", netip.MustParseAddrPort("10.96.0.11:80"), TCP, netip.MustParseAddrPort("10.96.0.11:80"), resMiss},
		{"other port", netip.MustParseAddrPort("10.96.0.10:81"), TCP, netip.MustParseAddrPort("10.96.0.10:81"), resMiss},
		{"other protocol", progVIP, UDP, progVIP, resMiss},
		{"no backends", netip.MustParseAddrPort("10.96.0.10:53"), UDP, netip.MustParseAddrPort("10.96.0.10:53"), resNoBackend},
		{"round robin 1", progVIP, TCP, progBackends[0], resXlated},
		{"round robin 2", progVIP, TCP, progBackends[1], resXlated},
		{"round robin 3", progVIP, TCP, progBackends[2], resXlated},
		{"round robin 4", progVIP, TCP, progBackends[0], resXlated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, res := h.fwd(tc.dst, tc.proto, 0, 0, 0)
			if res != tc.result || got != tc.want {
				t.Fatalf("fwd(%s/%s) = %s, %d; want %s, %d", tc.dst, tc.proto, got, res, tc.want, tc.result)
			}
		})
	}
}

func TestProgReverse(t *testing.T) {
	h := newHarness(t)
	upsert(t, h.lb, Service{VIP: progVIP.Addr(), Port: 80, Proto: UDP, Backends: progBackends[:1]})
	be, res := h.fwd(progVIP, UDP, 42, 0, 0)
	if res != resXlated || be != progBackends[0] {
		t.Fatalf("fwd = %s, %d", be, res)
	}
	tests := []struct {
		name   string
		src    netip.AddrPort
		cookie uint64
		want   netip.AddrPort
		result int32
	}{
		{"translated socket", be, 42, progVIP, resXlated},
		{"other socket", be, 43, be, resMiss},
		{"other source", progBackends[1], 42, progBackends[1], resMiss},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, res := h.rev(tc.src, tc.cookie)
			if res != tc.result || got != tc.want {
				t.Fatalf("rev(%s, %d) = %s, %d; want %s, %d", tc.src, tc.cookie, got, res, tc.want, tc.result)
			}
		})
	}
	t.Run("no reverse entry without a cookie", func(t *testing.T) {
		upsert(t, h.lb, Service{VIP: progVIP.Addr(), Port: 80, Proto: UDP, Backends: progBackends[1:2]})
		be, _ := h.fwd(progVIP, UDP, 0, 0, 0)
		if got, res := h.rev(be, 0); res != resMiss {
			t.Fatalf("rev = %s, %d", got, res)
		}
	})
	t.Run("deleted service is not translated back", func(t *testing.T) {
		if err := h.lb.Delete(testCtx, progVIP.Addr(), 80, UDP); err != nil {
			t.Fatal(err)
		}
		if got, res := h.rev(be, 42); res != resMiss || got != be {
			t.Fatalf("rev after delete = %s, %d", got, res)
		}
		// The stale entry is gone even when a service comes back under a new id.
		upsert(t, h.lb, Service{VIP: progVIP.Addr(), Port: 80, Proto: UDP, Backends: progBackends[:1]})
		if got, res := h.rev(be, 42); res != resMiss {
			t.Fatalf("rev after re-create = %s, %d", got, res)
		}
	})
}

func TestProgAffinity(t *testing.T) {
	h := newHarness(t)
	upsert(t, h.lb, Service{VIP: progVIP.Addr(), Port: 80, Proto: TCP, Backends: progBackends, Affinity: ClientIP, AffinityTimeout: 10 * time.Second})
	const clientA, clientB = 1, 2
	t0 := time.Hour
	first, _ := h.fwd(progVIP, TCP, 0, clientA, t0)
	steps := []struct {
		name   string
		client uint64
		now    time.Duration
		same   bool // same backend as first
	}{
		{"sticks", clientA, t0 + time.Second, true},
		{"other client is balanced", clientB, t0 + 2*time.Second, false},
		{"idle time is measured from the last use", clientA, t0 + 10*time.Second, true},
		{"sticks until the timeout", clientA, t0 + 20*time.Second, true},
		{"expires", clientA, t0 + 31*time.Second, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			got, res := h.fwd(progVIP, TCP, 0, s.client, s.now)
			if res != resXlated || (got == first) != s.same {
				t.Fatalf("fwd = %s, %d; first was %s, want same=%v", got, res, first, s.same)
			}
		})
	}
}

// BenchmarkProgForward measures one translation in the kernel (map lookups
// and the round-robin step) with BPF_PROG_TEST_RUN's repeat loop.
func BenchmarkProgForward(b *testing.B) {
	h := newHarness(b)
	upsert(b, h.lb, Service{VIP: progVIP.Addr(), Port: 80, Proto: TCP, Backends: progBackends})
	var in bytes.Buffer
	_ = binary.Write(&in, binary.NativeEndian, lbtestLbTestIo{Ip: slots.IP4(progVIP.Addr()), Port: slots.Htons(80), Proto: uint8(TCP), Op: opFwd, Cookie: 1})
	data := make([]byte, 64)
	copy(data, in.Bytes())
	b.ResetTimer()
	_, per, err := h.prog.Benchmark(data, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(per.Nanoseconds()), "ns/xlate")
}
