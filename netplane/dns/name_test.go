package dns

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	miekg "github.com/miekg/dns"
)

const testDomain = "cluster.local."

func TestParseName(t *testing.T) {
	tests := []struct {
		qname string
		kind  nameKind
		key   string
		addr  string
	}{
		{"web.default.svc.cluster.local.", inZone, "web.default.svc.cluster.local.", ""},
		{"WEB.Default.SVC.cluster.LOCAL.", inZone, "web.default.svc.cluster.local.", ""},
		{"web.default.svc.cluster.local", inZone, "web.default.svc.cluster.local.", ""},
		{"cluster.local.", inZone, "cluster.local.", ""},
		{"example.com.", outside, "", ""},
		{"local.", outside, "", ""},
		{"notcluster.local.", outside, "", ""},
		{`a\.cluster.local.`, outside, "", ""},
		{`a\\.cluster.local.`, inZone, `a\\.cluster.local.`, ""},
		{".", outside, "", ""},
		{"10-244-1-5.default.pod.cluster.local.", podName, "", "10.244.1.5"},
		{"fd00--5.default.pod.cluster.local.", podName, "", "fd00::5"},
		{"10-244-1-500.default.pod.cluster.local.", inZone, "10-244-1-500.default.pod.cluster.local.", ""},
		{"10-244-1-5.a.b.pod.cluster.local.", inZone, "10-244-1-5.a.b.pod.cluster.local.", ""},
		{"default.pod.cluster.local.", emptyName, "", ""},
		{"pod.cluster.local.", inZone, "pod.cluster.local.", ""},
	}
	for _, tc := range tests {
		t.Run(tc.qname, func(t *testing.T) {
			p := parseName(tc.qname, testDomain)
			if p.kind != tc.kind || p.key != tc.key {
				t.Fatalf("parseName = %+v, want kind %d key %q", p, tc.kind, tc.key)
			}
			if tc.addr != "" && p.addr != netip.MustParseAddr(tc.addr) {
				t.Fatalf("addr = %v, want %s", p.addr, tc.addr)
			}
		})
	}
}

func TestLowerFQDNDoesNotAllocate(t *testing.T) {
	name := "web.default.svc.cluster.local."
	if n := testing.AllocsPerRun(100, func() { _ = lowerFQDN(name) }); n != 0 {
		t.Errorf("lowerFQDN of a canonical name allocates %v times", n)
	}
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// FuzzParseName checks the name parsing against miekg/dns and itself: it never panics, it agrees
// with IsSubDomain on which names are in the domain, case does not matter, and pod names round-trip.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"web.default.svc.cluster.local.", "WEB.default.svc.Cluster.Local", "example.com.", ".", "",
		`a\.cluster.local.`, `a\\.cluster.local.`, `\\\.cluster.local.`, "10-244-1-5.default.pod.cluster.local.",
		"fd00--5.ns.pod.cluster.local.", "x.pod.cluster.local.", "_http._tcp.web.default.svc.cluster.local.",
		"cluster.local.cluster.local.", "..cluster.local.", `cluster.local\.`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p := parseName(name, testDomain)
		if up := parseName(asciiUpper(name), testDomain); up != p {
			t.Fatalf("parseName(%q) = %+v but parseName of its upper case = %+v", name, p, up)
		}
		if _, ok := miekg.IsDomainName(name); ok && name != "" && !strings.Contains(name, `\`) {
			want := miekg.IsSubDomain(testDomain, miekg.CanonicalName(name))
			if (p.kind != outside) != want {
				t.Fatalf("parseName(%q) kind %d, but IsSubDomain = %v", name, p.kind, want)
			}
		}
		switch p.kind {
		case inZone:
			if p.key != lowerFQDN(p.key) {
				t.Fatalf("key %q is not lowercase and fully qualified", p.key)
			}
		case podName:
			if !p.addr.IsValid() {
				t.Fatalf("pod name %q without address", name)
			}
			if p.addr.Is4() {
				label, _, _ := strings.Cut(strings.ToLower(name), ".")
				if dashed(p.addr) != label {
					t.Fatalf("pod name %q parsed to %v, which writes as %q", name, p.addr, dashed(p.addr))
				}
			}
		}
	})
}

// FuzzReply feeds arbitrary messages to the query path (no upstreams, so nothing leaves the
// process): it must not panic, every answer must pack, and fitted UDP answers must fit.
func FuzzReply(f *testing.F) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, ResolvConf: "/nonexistent/shoal-resolv.conf"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	s.Update(testServices())
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.default.svc.cluster.local.", miekg.TypeA},
		{"_postgres._tcp.pg.db.svc.cluster.local.", miekg.TypeSRV},
		{"pg.db.svc.cluster.local.", miekg.TypeANY},
		{"10-1-2-3.x.pod.cluster.local.", miekg.TypeA},
		{"cluster.local.", miekg.TypeSOA},
		{"example.com.", miekg.TypeA},
	} {
		m := new(miekg.Msg).SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(miekg.Msg)
		if err := req.Unpack(data); err != nil || len(req.Question) != 1 || req.Response {
			return
		}
		m := s.reply(context.Background(), req, false)
		m.Compress = true
		fit(m, udpLimit(req))
		b, err := m.Pack()
		if err != nil {
			t.Fatalf("answer to %v does not pack: %v", req, err)
		}
		if len(b) > udpLimit(req) {
			t.Fatalf("UDP answer is %d bytes, limit %d", len(b), udpLimit(req))
		}
		if m.Id != req.Id {
			t.Fatalf("answer id %d, query id %d", m.Id, req.Id)
		}
	})
}
