package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
)

func testServices() []Service {
	return []Service{
		{
			Namespace: "default", Name: "web",
			ClusterIP: netip.MustParseAddr("10.96.0.10"),
			Ports: []Port{
				{Name: "http", Protocol: "TCP", Port: 80},
				{Name: "dns", Protocol: "UDP", Port: 53},
				{Protocol: "TCP", Port: 8080}, // unnamed: no SRV
			},
			Endpoints: []netip.Addr{netip.MustParseAddr("10.244.1.5")},
		},
		{
			Namespace: "db", Name: "pg",
			Headless: true,
			Ports:    []Port{{Name: "postgres", Port: 5432}},
			Endpoints: []netip.Addr{
				netip.MustParseAddr("10.244.1.7"),
				netip.MustParseAddr("10.244.2.8"),
				netip.MustParseAddr("10.244.3.9"),
			},
		},
		{Namespace: "db", Name: "empty", Headless: true},
		{
			// A StatefulSet's governing Service: web-0 and web-1 have hostnames, 10.244.4.3 has
			// none, two pods share the hostname "twin".
			Namespace: "sts", Name: "web",
			Headless: true,
			Ports:    []Port{{Name: "http", Port: 80}},
			Endpoints: []netip.Addr{
				netip.MustParseAddr("10.244.4.1"),
				netip.MustParseAddr("10.244.4.2"),
				netip.MustParseAddr("10.244.4.3"),
				netip.MustParseAddr("10.244.4.5"),
				netip.MustParseAddr("10.244.4.4"),
			},
			Hostnames: []Hostname{
				{Name: "web-1", Addr: netip.MustParseAddr("10.244.4.2")},
				{Name: "Web-0", Addr: netip.MustParseAddr("10.244.4.1")},
				{Name: "twin", Addr: netip.MustParseAddr("10.244.4.5")},
				{Name: "twin", Addr: netip.MustParseAddr("10.244.4.4")},
				{Name: "gone", Addr: netip.MustParseAddr("10.244.4.9")}, // not an endpoint
				{Name: "bad_label", Addr: netip.MustParseAddr("10.244.4.3")},
			},
		},
		{
			// A Service with a virtual IP: its pods' hostnames get no names.
			Namespace: "sts", Name: "api",
			ClusterIP: netip.MustParseAddr("10.96.0.20"),
			Ports:     []Port{{Name: "http", Port: 80}},
			Endpoints: []netip.Addr{netip.MustParseAddr("10.244.5.1")},
			Hostnames: []Hostname{{Name: "api-0", Addr: netip.MustParseAddr("10.244.5.1")}},
		},
	}
}

func TestClusterNames(t *testing.T) {
	up := startUpstream(t, func(req *miekg.Msg) *miekg.Msg { return new(miekg.Msg).SetReply(req) })
	ts := startServer(t, Config{Upstreams: []string{up.addr}})
	ts.Update(testServices())

	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		rcode   int
		answers []string // addresses of A/AAAA answers, any order
		srv     []string // "port target" of SRV answers, any order
		extra   []string // addresses in the additional section, any order
	}{
		{name: "clusterIP A", qname: "web.default.svc.cluster.local.", qtype: miekg.TypeA, answers: []string{"10.96.0.10"}},
		{name: "mixed case", qname: "WeB.DeFault.SVC.Cluster.LOCAL.", qtype: miekg.TypeA, answers: []string{"10.96.0.10"}},
		{name: "clusterIP AAAA is NODATA", qname: "web.default.svc.cluster.local.", qtype: miekg.TypeAAAA},
		{name: "clusterIP SRV", qname: "_http._tcp.web.default.svc.cluster.local.", qtype: miekg.TypeSRV,
			srv: []string{"80 web.default.svc.cluster.local."}, extra: []string{"10.96.0.10"}},
		{name: "SRV udp port", qname: "_dns._udp.web.default.svc.cluster.local.", qtype: miekg.TypeSRV,
			srv: []string{"53 web.default.svc.cluster.local."}, extra: []string{"10.96.0.10"}},
		{name: "SRV wrong protocol", qname: "_http._udp.web.default.svc.cluster.local.", qtype: miekg.TypeSRV, rcode: miekg.RcodeNameError},
		{name: "headless A", qname: "pg.db.svc.cluster.local.", qtype: miekg.TypeA,
			answers: []string{"10.244.1.7", "10.244.2.8", "10.244.3.9"}},
		{name: "headless SRV", qname: "_postgres._tcp.pg.db.svc.cluster.local.", qtype: miekg.TypeSRV,
			srv: []string{
				"5432 10-244-1-7.pg.db.svc.cluster.local.",
				"5432 10-244-2-8.pg.db.svc.cluster.local.",
				"5432 10-244-3-9.pg.db.svc.cluster.local.",
			},
			extra: []string{"10.244.1.7", "10.244.2.8", "10.244.3.9"}},
		{name: "headless endpoint name", qname: "10-244-2-8.pg.db.svc.cluster.local.", qtype: miekg.TypeA, answers: []string{"10.244.2.8"}},
		{name: "pod hostname", qname: "web-0.web.sts.svc.cluster.local.", qtype: miekg.TypeA, answers: []string{"10.244.4.1"}},
		{name: "pod hostname, mixed case", qname: "WEB-1.web.sts.svc.cluster.local.", qtype: miekg.TypeA, answers: []string{"10.244.4.2"}},
		{name: "pod hostname AAAA is NODATA", qname: "web-0.web.sts.svc.cluster.local.", qtype: miekg.TypeAAAA},
		{name: "shared pod hostname", qname: "twin.web.sts.svc.cluster.local.", qtype: miekg.TypeA,
			answers: []string{"10.244.4.4", "10.244.4.5"}},
		{name: "pod with a hostname keeps its dashed name", qname: "10-244-4-1.web.sts.svc.cluster.local.", qtype: miekg.TypeA,
			answers: []string{"10.244.4.1"}},
		{name: "hostname of no endpoint", qname: "gone.web.sts.svc.cluster.local.", qtype: miekg.TypeA, rcode: miekg.RcodeNameError},
		{name: "hostname under another Service", qname: "web-0.api.sts.svc.cluster.local.", qtype: miekg.TypeA, rcode: miekg.RcodeNameError},
		{name: "no hostname names for a ClusterIP Service", qname: "api-0.api.sts.svc.cluster.local.", qtype: miekg.TypeA, rcode: miekg.RcodeNameError},
		{name: "headless with hostnames A", qname: "web.sts.svc.cluster.local.", qtype: miekg.TypeA,
			answers: []string{"10.244.4.1", "10.244.4.2", "10.244.4.3", "10.244.4.4", "10.244.4.5"}},
		{name: "headless SRV targets hostnames", qname: "_http._tcp.web.sts.svc.cluster.local.", qtype: miekg.TypeSRV,
			srv: []string{
				"80 web-0.web.sts.svc.cluster.local.",
				"80 web-1.web.sts.svc.cluster.local.",
				"80 10-244-4-3.web.sts.svc.cluster.local.",
				"80 twin.web.sts.svc.cluster.local.",
				"80 twin.web.sts.svc.cluster.local.",
			},
			extra: []string{"10.244.4.1", "10.244.4.2", "10.244.4.3", "10.244.4.4", "10.244.4.5"}},
		{name: "ClusterIP SRV ignores hostnames", qname: "_http._tcp.api.sts.svc.cluster.local.", qtype: miekg.TypeSRV,
			srv: []string{"80 api.sts.svc.cluster.local."}, extra: []string{"10.96.0.20"}},
		{name: "headless without endpoints is NODATA", qname: "empty.db.svc.cluster.local.", qtype: miekg.TypeA},
		{name: "pod name", qname: "10-244-9-9.default.pod.cluster.local.", qtype: miekg.TypeA, answers: []string{"10.244.9.9"}},
		{name: "pod name AAAA is NODATA", qname: "10-244-9-9.default.pod.cluster.local.", qtype: miekg.TypeAAAA},
		{name: "bad pod name", qname: "10-244-9-999.default.pod.cluster.local.", qtype: miekg.TypeA, rcode: miekg.RcodeNameError},
		{name: "namespace is NODATA", qname: "db.svc.cluster.local.", qtype: miekg.TypeA},
		{name: "svc is NODATA", qname: "svc.cluster.local.", qtype: miekg.TypeA},
		{name: "pod namespace is NODATA", qname: "default.pod.cluster.local.", qtype: miekg.TypeA},
		{name: "unknown service", qname: "nope.default.svc.cluster.local.", qtype: miekg.TypeA, rcode: miekg.RcodeNameError},
		{name: "unknown namespace", qname: "web.nope.svc.cluster.local.", qtype: miekg.TypeA, rcode: miekg.RcodeNameError},
		{name: "ndots search storm", qname: "api.example.com.default.svc.cluster.local.", qtype: miekg.TypeA, rcode: miekg.RcodeNameError},
		{name: "ndots search storm, domain", qname: "api.example.com.cluster.local.", qtype: miekg.TypeAAAA, rcode: miekg.RcodeNameError},
		{name: "unknown type is NODATA", qname: "web.default.svc.cluster.local.", qtype: miekg.TypeMX},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				r := query(t, network, ts.addr(network), tc.qname, tc.qtype, 0)
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode = %s, want %s", miekg.RcodeToString[r.Rcode], miekg.RcodeToString[tc.rcode])
				}
				if !r.Authoritative {
					t.Errorf("AA not set on a cluster name")
				}
				if r.Question[0].Name != tc.qname {
					t.Errorf("question = %q, want %q", r.Question[0].Name, tc.qname)
				}
				var srv []string
				for _, rr := range r.Answer {
					if rr.Header().Name != tc.qname {
						t.Errorf("answer owner %q, want the name as asked %q", rr.Header().Name, tc.qname)
					}
					if rr.Header().Ttl != DefaultTTL {
						t.Errorf("ttl = %d, want %d", rr.Header().Ttl, DefaultTTL)
					}
					if s, ok := rr.(*miekg.SRV); ok {
						srv = append(srv, fmt.Sprintf("%d %s", s.Port, s.Target))
					}
				}
				sortedEqual(t, "answers", aRecords(r.Answer), tc.answers)
				sortedEqual(t, "srv", srv, tc.srv)
				sortedEqual(t, "additional", aRecords(r.Extra), tc.extra)
				if len(r.Answer) == 0 {
					if len(r.Ns) != 1 {
						t.Fatalf("negative answer without SOA: %v", r.Ns)
					}
					soa, ok := r.Ns[0].(*miekg.SOA)
					if !ok || soa.Hdr.Name != "cluster.local." || soa.Minttl != negativeTTL || soa.Hdr.Ttl > negativeTTL {
						t.Errorf("authority = %v, want the cluster.local. SOA with minimum %d", r.Ns[0], negativeTTL)
					}
				}
			})
		}
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("cluster names caused %d upstream queries, want 0", n)
	}
}

func sortedEqual(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestApexSOAAndCustomDomain(t *testing.T) {
	ts := startServer(t, Config{Domain: "Shoal.Example.", TTL: 30})
	ts.Update(testServices())
	r := query(t, "udp", ts.udp, "shoal.example.", miekg.TypeSOA, 0)
	if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != miekg.TypeSOA || !r.Authoritative {
		t.Fatalf("apex SOA answer = %v", r)
	}
	r = query(t, "udp", ts.udp, "web.default.svc.shoal.example.", miekg.TypeA, 0)
	if got := aRecords(r.Answer); len(got) != 1 || got[0] != "10.96.0.10" || r.Answer[0].Header().Ttl != 30 {
		t.Fatalf("answer = %v, want 10.96.0.10 with ttl 30", r.Answer)
	}
	r = query(t, "udp", ts.udp, "web.default.svc.cluster.local.", miekg.TypeA, 0)
	if r.Rcode != miekg.RcodeServerFailure || r.Authoritative {
		t.Fatalf("cluster.local outside the domain without upstreams: rcode %s, AA %v; want SERVFAIL, not authoritative",
			miekg.RcodeToString[r.Rcode], r.Authoritative)
	}
}

func TestServFailBeforeFirstUpdate(t *testing.T) {
	ts := startServer(t, Config{})
	r := query(t, "udp", ts.udp, "web.default.svc.cluster.local.", miekg.TypeA, 0)
	if r.Rcode != miekg.RcodeServerFailure {
		t.Fatalf("rcode before the first Update = %s, want SERVFAIL", miekg.RcodeToString[r.Rcode])
	}
	ts.Update(nil)
	r = query(t, "udp", ts.udp, "web.default.svc.cluster.local.", miekg.TypeA, 0)
	if r.Rcode != miekg.RcodeNameError {
		t.Fatalf("rcode after an empty Update = %s, want NXDOMAIN", miekg.RcodeToString[r.Rcode])
	}
	ts.Update(testServices())
	r = query(t, "udp", ts.udp, "web.default.svc.cluster.local.", miekg.TypeA, 0)
	if got := aRecords(r.Answer); len(got) != 1 {
		t.Fatalf("answer after Update = %v", r)
	}
}

func TestUpdateEdgeCases(t *testing.T) {
	ts := startServer(t, Config{})
	ts.Update([]Service{
		{Namespace: "default", Name: "dup", ClusterIP: netip.MustParseAddr("10.96.0.1")},
		{Namespace: "default", Name: "dup", ClusterIP: netip.MustParseAddr("10.96.0.2")},
		{Namespace: "default", Name: "bad_name", ClusterIP: netip.MustParseAddr("10.96.0.3")},
		{Namespace: "default", Name: "v6", ClusterIP: netip.MustParseAddr("fd00::10")},
		{Namespace: "default", Name: "dupeps", Headless: true, Endpoints: []netip.Addr{
			netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("10.244.0.1"), {},
		}},
		{Namespace: "default", Name: "named", Headless: true, Endpoints: []netip.Addr{
			netip.MustParseAddr("10.244.0.6"), netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("fd00::7"),
		}, Hostnames: []Hostname{
			{Name: "10-244-0-5", Addr: netip.MustParseAddr("10.244.0.5")}, // its own dashed name
			{Name: "10-244-0-5", Addr: netip.MustParseAddr("10.244.0.6")}, // another pod's dashed name
			{Name: "h", Addr: netip.MustParseAddr("::ffff:10.244.0.6")},
			{Name: "h", Addr: netip.MustParseAddr("10.244.0.6")},
			{Name: "v6", Addr: netip.MustParseAddr("fd00::7")},
		}},
	})
	tests := []struct {
		qname string
		qtype uint16
		want  []string
		rcode int
	}{
		{"dup.default.svc.cluster.local.", miekg.TypeA, []string{"10.96.0.2"}, miekg.RcodeSuccess},
		{"bad_name.default.svc.cluster.local.", miekg.TypeA, nil, miekg.RcodeNameError},
		{"v6.default.svc.cluster.local.", miekg.TypeAAAA, []string{"fd00::10"}, miekg.RcodeSuccess},
		{"v6.default.svc.cluster.local.", miekg.TypeA, nil, miekg.RcodeSuccess},
		{"dupeps.default.svc.cluster.local.", miekg.TypeA, []string{"10.244.0.1"}, miekg.RcodeSuccess},
		{"10-244-0-5.named.default.svc.cluster.local.", miekg.TypeA, []string{"10.244.0.5", "10.244.0.6"}, miekg.RcodeSuccess},
		{"h.named.default.svc.cluster.local.", miekg.TypeA, []string{"10.244.0.6"}, miekg.RcodeSuccess},
		{"v6.named.default.svc.cluster.local.", miekg.TypeAAAA, []string{"fd00::7"}, miekg.RcodeSuccess},
		{"v6.named.default.svc.cluster.local.", miekg.TypeA, nil, miekg.RcodeSuccess},
	}
	for _, tc := range tests {
		t.Run(tc.qname+"/"+miekg.TypeToString[tc.qtype], func(t *testing.T) {
			r := query(t, "udp", ts.udp, tc.qname, tc.qtype, 0)
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode = %s, want %s", miekg.RcodeToString[r.Rcode], miekg.RcodeToString[tc.rcode])
			}
			sortedEqual(t, "answers", aRecords(r.Answer), tc.want)
		})
	}
}

// The zone holds the addresses of a hostname sorted, whatever the order of the endpoints, so
// that every snapshot of the same Services is the same.
func TestHostnameRecordsSorted(t *testing.T) {
	svc := Service{Namespace: "default", Name: "web", Headless: true, Endpoints: []netip.Addr{
		netip.MustParseAddr("10.244.0.9"), netip.MustParseAddr("10.244.0.3"), netip.MustParseAddr("10.244.0.5"),
	}}
	for _, ep := range svc.Endpoints {
		svc.Hostnames = append(svc.Hostnames, Hostname{Name: "web-0", Addr: ep})
	}
	z, _ := buildZone("cluster.local.", 1, []Service{svc})
	e := z.lookup("web-0.web.default.svc.cluster.local.")
	want := []netip.Addr{netip.MustParseAddr("10.244.0.3"), netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("10.244.0.9")}
	if e == nil || !slices.Equal(e.a, want) {
		t.Fatalf("entry of web-0 = %+v, want A %v", e, want)
	}
}

// Services reads back what Update kept: one per name, the later wins, sorted, bad names out.
func TestServicesReadBack(t *testing.T) {
	ts := startServer(t, Config{})
	if got := ts.Services(); got != nil {
		t.Errorf("Services before the first Update = %v, want nil", got)
	}
	in := []Service{
		{Namespace: "web", Name: "b", ClusterIP: netip.MustParseAddr("10.96.0.1")},
		{Namespace: "default", Name: "Z", ClusterIP: netip.MustParseAddr("10.96.0.2")},
		{Namespace: "default", Name: "bad_name"},
		{Namespace: "default", Name: "z", ClusterIP: netip.MustParseAddr("10.96.0.3")},
		{Namespace: "default", Name: "a", Headless: true},
	}
	ts.Update(in)
	got := ts.Services()
	want := []Service{in[4], in[3], in[0]}
	if len(got) != len(want) {
		t.Fatalf("Services = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Namespace != want[i].Namespace || got[i].Name != want[i].Name || got[i].ClusterIP != want[i].ClusterIP {
			t.Errorf("Services[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	kept, skipped := Normalize(in)
	if len(kept) != 3 || len(skipped) != 1 || skipped[0].Name != "bad_name" {
		t.Errorf("Normalize = %v, %v; want three kept and bad_name skipped", kept, skipped)
	}
}

func TestHeadlessAnswersRotate(t *testing.T) {
	ts := startServer(t, Config{})
	ts.Update(testServices())
	firsts := map[string]bool{}
	for i := 0; i < 12; i++ {
		r := query(t, "udp", ts.udp, "pg.db.svc.cluster.local.", miekg.TypeA, 0)
		firsts[aRecords(r.Answer)[0]] = true
	}
	if len(firsts) < 2 {
		t.Errorf("the first address of a headless answer never changed: %v", firsts)
	}
}

// TestUpdateWhileQuerying swaps between two sets while queries run; every answer must come whole
// from one of the two sets.
func TestUpdateWhileQuerying(t *testing.T) {
	ts := startServer(t, Config{})
	setA, setB := manyServices(200), manyServices(200)
	for i := range setB {
		setB[i].ClusterIP = netip.AddrFrom4([4]byte{10, 97, byte(i >> 8), byte(i)})
		setB[i].Headless = i%2 == 0
		setB[i].Endpoints = []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)})}
	}
	ts.Update(setA)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				n := (i*7 + w) % 200
				name := fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local.", n, n%10)
				network := "udp"
				if i%5 == 0 {
					network = "tcp"
				}
				r, err := tryQuery(network, ts.addr(network), name, miekg.TypeA, 0)
				if err != nil {
					errs <- err
					return
				}
				got := aRecords(r.Answer)
				want1 := setA[n].ClusterIP.String()
				want2 := setB[n].ClusterIP.String()
				if setB[n].Headless {
					want2 = setB[n].Endpoints[0].String()
				}
				if len(got) != 1 || got[0] != want1 && got[0] != want2 {
					errs <- fmt.Errorf("%s: got %v, want %s or %s", name, got, want1, want2)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		if i%2 == 0 {
			ts.Update(setB)
		} else {
			ts.Update(setA)
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestTruncation: a headless Service with many endpoints does not fit in 512 bytes: UDP gets TC
// and the full answer comes over TCP.
func TestTruncation(t *testing.T) {
	ts := startServer(t, Config{})
	eps := make([]netip.Addr, 100)
	for i := range eps {
		eps[i] = netip.AddrFrom4([4]byte{10, 244, 1, byte(i + 1)})
	}
	ts.Update([]Service{{Namespace: "default", Name: "big", Headless: true, Endpoints: eps,
		Ports: []Port{{Name: "http", Port: 80}}}})
	const name = "big.default.svc.cluster.local."

	r := query(t, "udp", ts.udp, name, miekg.TypeA, 0)
	if !r.Truncated {
		t.Fatalf("UDP answer with %d records not truncated", len(r.Answer))
	}
	r.Compress = true
	if n := r.Len(); n > miekg.MinMsgSize {
		t.Errorf("UDP answer is %d bytes, more than %d", n, miekg.MinMsgSize)
	}
	if len(r.Answer) >= len(eps) {
		t.Errorf("truncated answer holds all %d records", len(r.Answer))
	}

	r = query(t, "tcp", ts.tcp, name, miekg.TypeA, 0)
	if r.Truncated || len(r.Answer) != len(eps) {
		t.Fatalf("TCP answer: TC=%v with %d records, want all %d", r.Truncated, len(r.Answer), len(eps))
	}

	// A client announcing a large EDNS0 buffer gets everything over UDP.
	r = query(t, "udp", ts.udp, name, miekg.TypeA, 4096)
	if r.Truncated || len(r.Answer) != len(eps) {
		t.Fatalf("UDP answer with EDNS0 4096: TC=%v with %d records, want all %d", r.Truncated, len(r.Answer), len(eps))
	}
	if opt := r.IsEdns0(); opt == nil || opt.UDPSize() != advertisedUDPSize {
		t.Errorf("EDNS0 answer without our OPT record: %v", opt)
	}

	// SRV: the additional records are dropped before the answers are, and the full set comes over TCP.
	r = query(t, "udp", ts.udp, "_http._tcp."+name, miekg.TypeSRV, 0)
	if !r.Truncated || len(r.Extra) != 0 {
		t.Fatalf("UDP SRV answer: TC=%v, %d additional records; want TC and none", r.Truncated, len(r.Extra))
	}
	r = query(t, "tcp", ts.tcp, "_http._tcp."+name, miekg.TypeSRV, 0)
	if len(r.Answer) != len(eps) || len(r.Extra) != len(eps) {
		t.Fatalf("TCP SRV answer: %d answers, %d additional; want %d each", len(r.Answer), len(r.Extra), len(eps))
	}
}

func TestForward(t *testing.T) {
	up := startUpstream(t, func(req *miekg.Msg) *miekg.Msg {
		m := new(miekg.Msg).SetReply(req)
		m.RecursionAvailable = true
		q := req.Question[0]
		switch {
		case q.Qtype == miekg.TypeA && miekg.CanonicalName(q.Name) == "example.com.":
			m.Answer = append(m.Answer, &miekg.A{
				Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 300},
				A:   net.IPv4(192, 0, 2, 1),
			})
		case miekg.CanonicalName(q.Name) == "big.example.":
			for i := 0; i < 60; i++ {
				m.Answer = append(m.Answer, &miekg.A{
					Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 300},
					A:   net.IPv4(192, 0, 2, byte(i)),
				})
			}
		default:
			m.Rcode = miekg.RcodeNameError
			m.Ns = append(m.Ns, &miekg.SOA{
				Hdr: miekg.RR_Header{Name: "example.", Rrtype: miekg.TypeSOA, Class: miekg.ClassINET, Ttl: 3600},
				Ns:  "ns.example.", Mbox: "h.example.", Minttl: 900,
			})
		}
		return m
	})
	ts := startServer(t, Config{Upstreams: []string{up.addr}})
	ts.Update(testServices())

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			before := up.queries.Load()
			r := query(t, network, ts.addr(network), "Example.COM.", miekg.TypeA, 0)
			if r.Rcode != miekg.RcodeSuccess || r.Authoritative || !r.RecursionAvailable {
				t.Fatalf("forwarded answer: %v", r)
			}
			if got := aRecords(r.Answer); len(got) != 1 || got[0] != "192.0.2.1" {
				t.Fatalf("answers = %v, want 192.0.2.1", got)
			}
			if r.Question[0].Name != "Example.COM." {
				t.Errorf("question = %q, want the spelling asked", r.Question[0].Name)
			}
			// The same question again, spelled differently, comes from the cache.
			r = query(t, network, ts.addr(network), "eXample.com.", miekg.TypeA, 0)
			if got := aRecords(r.Answer); len(got) != 1 || got[0] != "192.0.2.1" {
				t.Fatalf("cached answers = %v, want 192.0.2.1", got)
			}
			if r.Answer[0].Header().Name != "eXample.com." || r.Answer[0].Header().Ttl > 30 {
				t.Errorf("cached answer %v: want the spelling asked and a ttl of at most 30", r.Answer[0])
			}
			if n := up.queries.Load() - before; n > 1 {
				t.Errorf("%d upstream queries for two identical questions, want at most 1", n)
			}
			// Negative answers are cached too, but briefly.
			r = query(t, network, ts.addr(network), "nope.example.", miekg.TypeA, 0)
			if r.Rcode != miekg.RcodeNameError {
				t.Fatalf("rcode = %s, want NXDOMAIN", miekg.RcodeToString[r.Rcode])
			}
		})
	}

	// A truncated upstream answer reaches the client with TC; the retry over TCP gets all of it.
	r := query(t, "udp", ts.udp, "big.example.", miekg.TypeA, 0)
	if !r.Truncated {
		t.Fatalf("large forwarded answer over UDP without TC: %d records", len(r.Answer))
	}
	r = query(t, "tcp", ts.tcp, "big.example.", miekg.TypeA, 0)
	if r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("forwarded answer over TCP: TC=%v, %d records; want 60", r.Truncated, len(r.Answer))
	}
}

func TestForwardTimeout(t *testing.T) {
	t.Run("all upstreams silent", func(t *testing.T) {
		ts := startServer(t, Config{Upstreams: []string{blackhole(t), blackhole(t)}, UpstreamTimeout: 300 * time.Millisecond})
		for _, network := range []string{"udp", "tcp"} {
			start := time.Now()
			r, err := tryQuery(network, ts.addr(network), "example.com.", miekg.TypeA, 0)
			if err != nil {
				t.Fatalf("%s: no answer at all: %v (want SERVFAIL after the upstream timeout)", network, err)
			}
			if r.Rcode != miekg.RcodeServerFailure {
				t.Fatalf("%s: rcode = %s, want SERVFAIL", network, miekg.RcodeToString[r.Rcode])
			}
			t.Logf("%s: SERVFAIL after %v", network, time.Since(start))
		}
	})
	t.Run("failover to the next upstream", func(t *testing.T) {
		up := startUpstream(t, func(req *miekg.Msg) *miekg.Msg {
			m := new(miekg.Msg).SetReply(req)
			m.Answer = append(m.Answer, &miekg.A{
				Hdr: miekg.RR_Header{Name: req.Question[0].Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 0},
				A:   net.IPv4(192, 0, 2, 7),
			})
			return m
		})
		ts := startServer(t, Config{Upstreams: []string{blackhole(t), up.addr}, UpstreamTimeout: 2 * time.Second})
		for i := 0; i < 3; i++ {
			r := query(t, "udp", ts.udp, "example.org.", miekg.TypeA, 0)
			if got := aRecords(r.Answer); len(got) != 1 || got[0] != "192.0.2.7" {
				t.Fatalf("answer %d = %v, want 192.0.2.7 from the second upstream", i, r)
			}
		}
		// TTL 0 answers are not cached, and the working upstream is now tried first.
		if n := up.queries.Load(); n != 3 {
			t.Errorf("upstream saw %d queries, want 3", n)
		}
	})
}

func TestNoUpstream(t *testing.T) {
	ts := startServer(t, Config{})
	r := query(t, "udp", ts.udp, "example.com.", miekg.TypeA, 0)
	if r.Rcode != miekg.RcodeServerFailure {
		t.Fatalf("rcode = %s, want SERVFAIL", miekg.RcodeToString[r.Rcode])
	}
}

func TestNotImplementedOpcode(t *testing.T) {
	ts := startServer(t, Config{})
	ts.Update(nil)
	m := new(miekg.Msg)
	m.SetNotify("cluster.local.")
	r, err := miekg.Exchange(m, ts.udp)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != miekg.RcodeNotImplemented {
		t.Fatalf("rcode = %s, want NOTIMP", miekg.RcodeToString[r.Rcode])
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no listen address", Config{}},
		{"bad listen address", Config{Listen: []string{"127.0.0.1"}}},
		{"bad domain", Config{Listen: []string{"127.0.0.1:0"}, Domain: "bad_domain.local"}},
		{"root domain", Config{Listen: []string{"127.0.0.1:0"}, Domain: "."}},
		{"bad upstream", Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{"dns.example:53"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New(%+v) succeeded, want an error", tc.cfg)
			}
		})
	}
	t.Run("port in use", func(t *testing.T) {
		s1, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{"127.0.0.1:1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer s1.Close()
		s2, err := New(Config{Listen: []string{s1.Addrs()[0].String()}, Upstreams: []string{"127.0.0.1:1"}})
		if err == nil {
			s2.Close()
			t.Fatal("second server on the same port: no error")
		}
	})
}

func TestLifecycle(t *testing.T) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0", "127.0.0.1:0"}, Upstreams: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	addrs := s.Addrs()
	if len(addrs) != 4 {
		t.Fatalf("Addrs = %v, want UDP and TCP for two listen addresses", addrs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.Update(testServices())
	for i, a := range addrs {
		network := "udp"
		if i%2 == 1 {
			network = "tcp"
		}
		r := query(t, network, a.String(), "web.default.svc.cluster.local.", miekg.TypeA, 0)
		if len(r.Answer) != 1 {
			t.Errorf("%s %s: %v", network, a, r)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	// The sockets are released: the same addresses can be bound again.
	for i, a := range addrs {
		if i%2 == 0 {
			pc, err := net.ListenPacket("udp", a.String())
			if err != nil {
				t.Errorf("UDP %s still bound after Run returned: %v", a, err)
				continue
			}
			pc.Close()
		} else {
			ln, err := net.Listen("tcp", a.String())
			if err != nil {
				t.Errorf("TCP %s still bound after Run returned: %v", a, err)
				continue
			}
			ln.Close()
		}
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}

	s2, err := New(Config{Listen: []string{"127.0.0.1:0"}, Upstreams: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s2.Run(context.Background()); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestDropLoops(t *testing.T) {
	bound := []net.Addr{
		&net.UDPAddr{IP: net.IPv4(10, 244, 1, 1), Port: 53},
		&net.TCPAddr{IP: net.IPv4(10, 244, 1, 1), Port: 53},
	}
	wildcard := []net.Addr{&net.UDPAddr{IP: net.IPv4zero, Port: 53}}
	tests := []struct {
		name    string
		ups     []string
		bound   []net.Addr
		kept    []string
		dropped []string
	}{
		{"own address", []string{"10.244.1.1:53", "192.0.2.53:53"}, bound, []string{"192.0.2.53:53"}, []string{"10.244.1.1:53"}},
		{"other port", []string{"10.244.1.1:5353"}, bound, []string{"10.244.1.1:5353"}, nil},
		{"wildcard and loopback", []string{"127.0.0.1:53", "192.0.2.53:53"}, wildcard, []string{"192.0.2.53:53"}, []string{"127.0.0.1:53"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, dropped := dropLoops(tc.ups, tc.bound)
			if !slices.Equal(kept, tc.kept) || !slices.Equal(dropped, tc.dropped) {
				t.Errorf("dropLoops = %v, %v; want %v, %v", kept, dropped, tc.kept, tc.dropped)
			}
		})
	}
}
