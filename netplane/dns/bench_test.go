package dns

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
)

const benchServices = 10000

// BenchmarkQuery measures A queries for cluster names against a set of 10,000 Services: answered
// in process (lookup, answer, pack) and over UDP on the loopback (the whole server path).
func BenchmarkQuery(b *testing.B) {
	svcs := manyServices(benchServices)
	names := make([]string, 256)
	for i := range names {
		n := (i * 7919) % benchServices
		names[i] = fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local.", n, n%10)
	}

	b.Run("inprocess", func(b *testing.B) {
		s, err := New(Config{Listen: []string{"127.0.0.1:0"}, ResolvConf: "/nonexistent/shoal-resolv.conf"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		s.Update(svcs)
		reqs := make([]*miekg.Msg, len(names))
		for i, n := range names {
			reqs[i] = new(miekg.Msg).SetQuestion(n, miekg.TypeA)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 512)
			i := 0
			for pb.Next() {
				m := s.reply(context.Background(), reqs[i%len(reqs)], false)
				m.Compress = true
				if _, err := m.PackBuffer(buf); err != nil || len(m.Answer) != 1 {
					b.Errorf("answer %v: %v", m, err)
					return
				}
				i++
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	})

	b.Run("udp", func(b *testing.B) {
		ts := startServer(b, Config{})
		ts.Update(svcs)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			conn, err := net.Dial("udp", ts.udp)
			if err != nil {
				b.Error(err)
				return
			}
			defer conn.Close()
			co := &miekg.Conn{Conn: conn}
			req := new(miekg.Msg)
			i := 0
			for pb.Next() {
				req.SetQuestion(names[i%len(names)], miekg.TypeA)
				i++
				if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
					b.Error(err)
					return
				}
				if err := co.WriteMsg(req); err != nil {
					b.Error(err)
					return
				}
				r, err := co.ReadMsg()
				if err != nil || len(r.Answer) != 1 {
					b.Errorf("answer %v: %v", r, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	})
}

// BenchmarkUpdate measures building and swapping in a set of 10,000 Services.
func BenchmarkUpdate(b *testing.B) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, ResolvConf: "/nonexistent/shoal-resolv.conf"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	svcs := manyServices(benchServices)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Update(svcs)
	}
}
