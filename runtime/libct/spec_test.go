package libct

import (
	"errors"
	"slices"
	"testing"
)

func TestCapabilitySet(t *testing.T) {
	tests := []struct {
		name      string
		add, drop []string
		want      int
		has, not  string
		err       bool
	}{
		{"default", nil, nil, 14, "CAP_CHOWN", "CAP_SYS_ADMIN", false},
		{"drop one", nil, []string{"net_raw"}, 13, "CAP_KILL", "CAP_NET_RAW", false},
		{"drop all add one", []string{"CAP_NET_ADMIN"}, []string{"ALL"}, 1, "CAP_NET_ADMIN", "CAP_CHOWN", false},
		{"unknown", []string{"NOT_A_CAP"}, nil, 0, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := capabilitySet(tt.add, tt.drop)
			if tt.err {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil || len(got) != tt.want || !slices.Contains(got, tt.has) || slices.Contains(got, tt.not) {
				t.Fatalf("got %v (%v)", got, err)
			}
		})
	}
}

func TestCPUConversions(t *testing.T) {
	tests := []struct {
		milli  int64
		quota  int64
		shares uint64
	}{
		{500, 50000, 512},
		{1000, 100000, 1024},
		{1, 1000, 2},
		{0, 0, 2},
	}
	for _, tt := range tests {
		if q := CPUQuotaFromMilli(tt.milli, 0); q != tt.quota {
			t.Errorf("quota(%d) = %d, want %d", tt.milli, q, tt.quota)
		}
		if s := CPUSharesFromMilli(tt.milli); s != tt.shares {
			t.Errorf("shares(%d) = %d, want %d", tt.milli, s, tt.shares)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{ID: "a", Args: []string{"/x"}, Lower: []string{"/l"}}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"bad id", func(c *Config) { c.ID = "../x" }},
		{"no args", func(c *Config) { c.Args = nil }},
		{"no layers", func(c *Config) { c.Lower = nil }},
		{"relative layer", func(c *Config) { c.Lower = []string{"l"} }},
		{"relative mount", func(c *Config) { c.Mounts = []Mount{{Source: "a", Destination: "/b"}} }},
		{"relative cgroup", func(c *Config) { c.CgroupParent = "x" }},
	}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			if err := c.validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
