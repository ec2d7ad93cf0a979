package lbbench

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of four", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of hundred", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p100", ms(1, 2, 3), 100, 3 * time.Millisecond},
		{"p0", ms(1, 2, 3), 0, time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// TestLoadLoopback runs the load generator against the echo server on
// the loopback interface (no root needed).
func TestLoadLoopback(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	target := netip.MustParseAddrPort(ln.Addr().String())
	r, err := Load(context.Background(), LoadConfig{Target: target, Workers: 4, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Conns == 0 || r.Errors != 0 {
		t.Fatalf("Load = %+v, want connections and no errors", r)
	}
	if r.P50us <= 0 || r.P99us < r.P50us || r.ConnsPerSecond() <= 0 {
		t.Errorf("Load = %+v: inconsistent figures", r)
	}
}

func TestLoadErrors(t *testing.T) {
	// A port that nobody listens on: every transaction is refused.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddrPort(ln.Addr().String())
	_ = ln.Close()
	r, err := Load(context.Background(), LoadConfig{Target: target, Workers: 2, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Conns != 0 || r.Errors == 0 || r.FirstError == "" {
		t.Errorf("Load = %+v, want only errors", r)
	}
	for _, cfg := range []LoadConfig{
		{Target: netip.MustParseAddrPort("[::1]:80"), Duration: time.Second},
		{Target: target},
	} {
		if _, err := Load(context.Background(), cfg); err == nil {
			t.Errorf("Load(%+v): no error", cfg)
		}
	}
}
