package store

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestParseStoreURL(t *testing.T) {
	tests := []struct {
		in        string
		endpoints string // fmt of Endpoints; "" means an error is expected
		secure    bool
	}{
		{"etcd://127.0.0.1:2379", "[http://127.0.0.1:2379]", false},
		{"etcd://h1:2379,h2:2380", "[http://h1:2379 http://h2:2380]", false},
		{"etcd://h1,h2", "[http://h1:2379 http://h2:2379]", false},
		{"etcd://h1/", "[http://h1:2379]", false},
		{"etcds://10.0.0.1:2379,10.0.0.2", "[https://10.0.0.1:2379 https://10.0.0.2:2379]", true},
		{"etcd://[::1]:2379", "[http://[::1]:2379]", false},
		{"etcd://[::1]", "[http://[::1]:2379]", false},
		{"unix:///var/lib/shoal/store/etcd.sock", "[unix:///var/lib/shoal/store/etcd.sock]", false},
		{"", "", false},
		{"127.0.0.1:2379", "", false},
		{"http://127.0.0.1:2379", "", false},
		{"etcd://", "", false},
		{"etcd://h1,,h2", "", false},
		{"etcd://h1:0", "", false},
		{"etcd://h1:65536", "", false},
		{"etcd://h1:x", "", false},
		{"etcd://::1", "", false},
		{"etcd://user@h1", "", false},
		{"etcd://h1/path", "", false},
		{"etcd://h1?x=1", "", false},
		{"etcd://:2379", "", false},
		{"unix://relative.sock", "", false},
		{"unix:///a.sock,/b.sock", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			cfg, err := ParseStoreURL(tc.in)
			if tc.endpoints == "" {
				if err == nil {
					t.Fatalf("ParseStoreURL(%q) = %v, want an error", tc.in, cfg.Endpoints)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStoreURL(%q): %v", tc.in, err)
			}
			if got := fmt.Sprint(cfg.Endpoints); got != tc.endpoints || cfg.Secure != tc.secure {
				t.Fatalf("ParseStoreURL(%q) = %s secure=%v, want %s secure=%v", tc.in, got, cfg.Secure, tc.endpoints, tc.secure)
			}
		})
	}
}

func FuzzParseStoreURL(f *testing.F) {
	for _, s := range []string{"etcd://h1:2379,h2", "etcds://[::1]:2379", "unix:///x.sock", "etcd://", "etcd://a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ParseStoreURL(s)
		if err != nil {
			return
		}
		if len(cfg.Endpoints) == 0 {
			t.Fatalf("ParseStoreURL(%q) gave no endpoints and no error", s)
		}
		for _, e := range cfg.Endpoints {
			if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") && !strings.HasPrefix(e, "unix") {
				t.Fatalf("ParseStoreURL(%q): endpoint %q", s, e)
			}
			if strings.ContainsAny(e, ", \t\n") {
				t.Fatalf("ParseStoreURL(%q): endpoint %q", s, e)
			}
			if strings.HasPrefix(e, "http") {
				u, err := url.Parse(e)
				if err != nil || u.Port() == "" || u.Hostname() == "" || u.Path != "" {
					t.Fatalf("ParseStoreURL(%q): endpoint %q does not parse as scheme://host:port: %v", s, e, err)
				}
			}
		}
	})
}
