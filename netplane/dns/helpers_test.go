package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
)

// testServer is a running Server on 127.0.0.1 with its UDP and TCP addresses.
type testServer struct {
	*Server
	udp, tcp string
}

// startServer starts a Server on 127.0.0.1:0 and stops it when the test ends.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.Upstreams == nil && cfg.ResolvConf == "" {
		cfg.ResolvConf = "/nonexistent/shoal-resolv.conf" // no forwarding unless the test asks for it
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after its context ended")
		}
	})
	addrs := s.Addrs()
	return &testServer{Server: s, udp: addrs[0].String(), tcp: addrs[1].String()}
}

// addr returns the server address for network "udp" or "tcp".
func (ts *testServer) addr(network string) string {
	if network == "tcp" {
		return ts.tcp
	}
	return ts.udp
}

// query sends one question and returns the answer.
func query(t testing.TB, network, addr, name string, qtype uint16, edns uint16) *miekg.Msg {
	t.Helper()
	r, err := tryQuery(network, addr, name, qtype, edns)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, miekg.TypeToString[qtype], network, err)
	}
	return r
}

func tryQuery(network, addr, name string, qtype uint16, edns uint16) (*miekg.Msg, error) {
	m := new(miekg.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &miekg.Client{Net: network, Timeout: 10 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// fakeUpstream is a DNS server on 127.0.0.1 that answers from a function and counts queries.
type fakeUpstream struct {
	addr    string // the same port serves UDP and TCP
	queries atomic.Int64
}

// startUpstream starts a fake upstream server on UDP and TCP. Its UDP answers are truncated to
// the client's buffer size, as a real server does.
func startUpstream(t testing.TB, answer func(req *miekg.Msg) *miekg.Msg) *fakeUpstream {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		if attempt == 10 {
			t.Fatalf("listen tcp: %v", err)
		}
	}
	up := &fakeUpstream{addr: pc.LocalAddr().String()}
	h := miekg.HandlerFunc(func(w miekg.ResponseWriter, req *miekg.Msg) {
		up.queries.Add(1)
		m := answer(req)
		if m == nil {
			return
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncate(udpLimit(req))
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*miekg.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-done
		})
	}
	return up
}

// blackhole returns the address of a UDP socket and a TCP listener on 127.0.0.1 (the same port)
// that never answer: the listener's connections complete in the kernel but are never served.
func blackhole(t testing.TB) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if attempt == 10 {
				t.Fatalf("listen tcp: %v", err)
			}
			continue
		}
		t.Cleanup(func() {
			pc.Close()
			ln.Close()
		})
		return pc.LocalAddr().String()
	}
}

// aRecords returns the addresses of the A and AAAA records of rrs.
func aRecords(rrs []miekg.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *miekg.A:
			out = append(out, rr.A.String())
		case *miekg.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// manyServices returns n ClusterIP Services svc-<i> in namespace ns-<i%10>.
func manyServices(n int) []Service {
	svcs := make([]Service, n)
	for i := range svcs {
		svcs[i] = Service{
			Namespace: fmt.Sprintf("ns-%d", i%10),
			Name:      fmt.Sprintf("svc-%d", i),
			ClusterIP: netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}),
			Ports:     []Port{{Name: "http", Protocol: "TCP", Port: 80}},
		}
	}
	return svcs
}
