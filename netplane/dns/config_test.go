package dns

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
)

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"plain", "nameserver 192.0.2.53\n", []string{"192.0.2.53:53"}},
		{"several with options", "# generated\nsearch example.internal\nnameserver 192.0.2.53\n; other\nnameserver 2001:db8::53\noptions ndots:2\n",
			[]string{"192.0.2.53:53", "[2001:db8::53]:53"}},
		{"junk is skipped", "nameserver\nnameserver not-an-ip\nnameservers 192.0.2.1\n  nameserver   192.0.2.2  # trailing\n",
			[]string{"192.0.2.2:53"}},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseResolvConf(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("search example.internal\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, ResolvConf: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want := []string{"192.0.2.53:53", "192.0.2.54:53"}; !slices.Equal(s.fwd.upstreams, want) {
		t.Errorf("upstreams = %v, want %v from %s", s.fwd.upstreams, want, path)
	}
}

func TestNormalizeUpstream(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"192.0.2.1", "192.0.2.1:53", true},
		{"192.0.2.1:5353", "192.0.2.1:5353", true},
		{"2001:db8::1", "[2001:db8::1]:53", true},
		{"[2001:db8::1]:53", "[2001:db8::1]:53", true},
		{"dns.example:53", "", false},
		{"192.0.2.1:0", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := normalizeUpstream(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("normalizeUpstream(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	soa := func(ttl, minttl uint32) miekg.RR {
		return &miekg.SOA{Hdr: miekg.RR_Header{Name: "example.", Rrtype: miekg.TypeSOA, Class: miekg.ClassINET, Ttl: ttl},
			Ns: "ns.example.", Mbox: "h.example.", Minttl: minttl}
	}
	a := func(ttl uint32) miekg.RR {
		rr, _ := miekg.NewRR("x.example. " + strconv.FormatUint(uint64(ttl), 10) + " IN A 192.0.2.1")
		return rr
	}
	tests := []struct {
		name string
		msg  *miekg.Msg
		ttl  time.Duration
		ok   bool
	}{
		{"positive, capped", &miekg.Msg{Answer: []miekg.RR{a(300)}}, 30 * time.Second, true},
		{"positive, short", &miekg.Msg{Answer: []miekg.RR{a(300), a(7)}}, 7 * time.Second, true},
		{"ttl 0", &miekg.Msg{Answer: []miekg.RR{a(0)}}, 0, false},
		{"nxdomain", &miekg.Msg{MsgHdr: miekg.MsgHdr{Rcode: miekg.RcodeNameError}, Ns: []miekg.RR{soa(3600, 900)}}, 5 * time.Second, true},
		{"nodata short", &miekg.Msg{Ns: []miekg.RR{soa(3600, 2)}}, 2 * time.Second, true},
		{"negative without soa", &miekg.Msg{MsgHdr: miekg.MsgHdr{Rcode: miekg.RcodeNameError}}, 0, false},
		{"servfail", &miekg.Msg{MsgHdr: miekg.MsgHdr{Rcode: miekg.RcodeServerFailure}}, 0, false},
		{"truncated", &miekg.Msg{MsgHdr: miekg.MsgHdr{Truncated: true}, Answer: []miekg.RR{a(300)}}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ttl, ok := cacheTTL(tc.msg)
			if ttl != tc.ttl || ok != tc.ok {
				t.Errorf("cacheTTL = %v, %v; want %v, %v", ttl, ok, tc.ttl, tc.ok)
			}
		})
	}

	t.Run("aging, expiry and bound", func(t *testing.T) {
		c := newCache(3)
		req := new(miekg.Msg).SetQuestion("X.example.", miekg.TypeA)
		k, _ := newCacheKey(req)
		c.put(k, &miekg.Msg{Question: req.Question, Answer: []miekg.RR{a(20)}}, now)
		m := c.get(k, req, now.Add(5*time.Second))
		if m == nil || m.Answer[0].Header().Ttl != 15 || m.Answer[0].Header().Name != "X.example." {
			t.Fatalf("after 5 s: %v, want ttl 15 and the asked spelling", m)
		}
		if m := c.get(k, req, now.Add(20*time.Second)); m != nil {
			t.Fatalf("after 20 s still cached: %v", m)
		}
		for i := 0; i < 10; i++ {
			r := new(miekg.Msg).SetQuestion("n"+strconv.Itoa(i)+".example.", miekg.TypeA)
			k, _ := newCacheKey(r)
			c.put(k, &miekg.Msg{Question: r.Question, Answer: []miekg.RR{a(20)}}, now)
		}
		if n := len(c.entries); n > 3 {
			t.Fatalf("cache holds %d entries, bound 3", n)
		}
	})
}
