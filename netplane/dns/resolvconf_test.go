package dns

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParsePodResolvConf(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ResolvConf
	}{
		{"empty", "", ResolvConf{}},
		{"kubelet rules", "# generated\nnameserver 192.0.2.53\n; comment\nsearch old.example\nnameserver 192.0.2.54\nsearch a.example. b.example .\noptions ndots:1\noptions ndots:2 edns0\n",
			ResolvConf{Nameservers: []string{"192.0.2.53", "192.0.2.54"}, Searches: []string{"a.example", "b.example"}, Options: []string{"ndots:2", "edns0"}}},
		{"junk", "nameserver\nsearch\nfoo bar\n  nameserver   2001:db8::53  \n", ResolvConf{Nameservers: []string{"2001:db8::53"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResolvConf(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Nameservers, tt.want.Nameservers) || !slices.Equal(got.Searches, tt.want.Searches) || !slices.Equal(got.Options, tt.want.Options) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWithPodConfig(t *testing.T) {
	two, five := "2", "5"
	cluster := ResolvConf{Nameservers: []string{"10.244.0.1"}, Searches: []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5", "edns0"}}
	tests := []struct {
		name       string
		base       ResolvConf
		ns, search []string
		opts       []PodOption
		want       ResolvConf
	}{
		{"appended, duplicates dropped, options merged with the pod winning", cluster,
			[]string{"192.0.2.53", "10.244.0.1"}, []string{"example.com", "svc.cluster.local"},
			[]PodOption{{Name: "ndots", Value: &two}, {Name: "single-request-reopen"}, {Name: "edns0"}},
			ResolvConf{Nameservers: []string{"10.244.0.1", "192.0.2.53"}, Searches: []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.com"},
				Options: []string{"ndots:2", "edns0", "single-request-reopen"}}},
		{"from nothing (dnsPolicy None)", ResolvConf{}, []string{"192.0.2.53"}, []string{"example.com"}, []PodOption{{Name: "timeout", Value: &five}},
			ResolvConf{Nameservers: []string{"192.0.2.53"}, Searches: []string{"example.com"}, Options: []string{"timeout:5"}}},
		{"an option's value removed", ResolvConf{Options: []string{"ndots:5"}}, nil, nil, []PodOption{{Name: "ndots"}},
			ResolvConf{Options: []string{"ndots"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.base.String()
			got := tt.base.WithPodConfig(tt.ns, tt.search, tt.opts)
			if got.String() != tt.want.String() {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			if tt.base.String() != before {
				t.Errorf("the base changed")
			}
		})
	}
}

func TestFitLimits(t *testing.T) {
	var searches []string
	for i := range 40 {
		searches = append(searches, fmt.Sprintf("d%d.example", i))
	}
	long := strings.Repeat("a", 254)
	c, warnings := ResolvConf{Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, Searches: append([]string{long}, searches...)}.FitLimits()
	if !slices.Equal(c.Nameservers, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}) {
		t.Errorf("nameservers %v, want the first three", c.Nameservers)
	}
	if len(c.Searches) != MaxSearchPaths-1 || c.Searches[0] != "d0.example" {
		t.Errorf("searches %v: want the first 32 less the one longer than 253", c.Searches)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings %q", warnings)
	}
	// The search line is cut from the end to 2048 characters.
	var big []string
	for i := range 20 {
		big = append(big, fmt.Sprintf("%03d%s", i, strings.Repeat("b", 196)))
	}
	c, _ = ResolvConf{Searches: big}.FitLimits()
	if n := len(strings.Join(c.Searches, " ")); n > MaxSearchListChars || len(c.Searches) != 10 || c.Searches[9] != big[9] {
		t.Errorf("search line of %d characters, %d domains", n, len(c.Searches))
	}
	if _, w := (ResolvConf{Nameservers: []string{"192.0.2.1"}, Searches: []string{"a"}}).FitLimits(); len(w) != 0 {
		t.Errorf("warnings for a small config: %q", w)
	}
}

func TestResolvConfString(t *testing.T) {
	c := ResolvConf{Nameservers: []string{"10.244.0.1"}, Searches: []string{"default.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}}
	want := "nameserver 10.244.0.1\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
	if c.String() != want {
		t.Errorf("got %q, want %q", c.String(), want)
	}
	back, err := ParseResolvConf(strings.NewReader(c.String()))
	if err != nil || back.String() != want {
		t.Errorf("round trip: %q %v", back.String(), err)
	}
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add("nameserver 192.0.2.53\nsearch a b.\noptions ndots:2\n")
	f.Add("# x\n;y\nsearch\n\x00nameserver")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseResolvConf(strings.NewReader(in))
		if err != nil {
			return
		}
		fit, _ := c.FitLimits()
		if len(fit.Nameservers) > MaxNameservers || len(fit.Searches) > MaxSearchPaths || len(strings.Join(fit.Searches, " ")) > MaxSearchListChars {
			t.Fatalf("limits not kept: %+v", fit)
		}
		// What String writes parses back to itself.
		again, err := ParseResolvConf(strings.NewReader(fit.String()))
		if err != nil || again.String() != fit.String() {
			t.Fatalf("round trip of %q: %q %v", fit.String(), again.String(), err)
		}
	})
}
