package nodeport

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/netplane/internal/bpffs"
	"github.com/shoal-dev/shoal/netplane/internal/slots"
)

func TestNormalize(t *testing.T) {
	b1 := netip.MustParseAddrPort("10.244.1.2:8080")
	b2 := netip.MustParseAddrPort("10.244.2.2:8080")
	tests := []struct {
		name    string
		svc     Service
		wantErr string
		want    int // backends after normalizing
	}{
		{"ok", Service{NodePort: 30080, Proto: TCP, Backends: []netip.AddrPort{b1, b2}}, "", 2},
		{"duplicates collapse", Service{NodePort: 30080, Proto: UDP, Backends: []netip.AddrPort{b1, b1, b2}}, "", 2},
		{"no backends", Service{NodePort: 30080, Proto: TCP}, "", 0},
		{"mapped IPv4", Service{NodePort: 30080, Proto: TCP, Backends: []netip.AddrPort{netip.MustParseAddrPort("[::ffff:10.0.0.1]:80")}}, "", 1},
		{"port 0", Service{Proto: TCP}, "port must not be 0", 0},
		{"bad proto", Service{NodePort: 30080, Proto: 1}, "TCP or UDP", 0},
		{"IPv6 backend", Service{NodePort: 30080, Proto: TCP, Backends: []netip.AddrPort{netip.MustParseAddrPort("[fd00::1]:80")}}, "IPv4", 0},
		{"backend port 0", Service{NodePort: 30080, Proto: TCP, Backends: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:0")}}, "with a port", 0},
		{"too many", Service{NodePort: 30080, Proto: TCP, Backends: make([]netip.AddrPort, MaxBackendsPerService+1)}, "at most", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := normalize(tt.svc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("normalize() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(n.backends) != tt.want {
				t.Errorf("backends = %d, want %d", len(n.backends), tt.want)
			}
			if got := slots.Ntohs(n.key.Port); got != tt.svc.NodePort {
				t.Errorf("key port = %d, want %d", got, tt.svc.NodePort)
			}
		})
	}
}

func TestOpenConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no interface", Config{NodeIP: netip.MustParseAddr("192.168.1.1"), PinDir: "/sys/fs/bpf/x"}, "Config.Interface"},
		{"no node address", Config{Interface: "eth0", PinDir: "/sys/fs/bpf/x"}, "IPv4"},
		{"IPv6 node address", Config{Interface: "eth0", NodeIP: netip.MustParseAddr("fd00::1"), PinDir: "/sys/fs/bpf/x"}, "IPv4"},
		{"relative pin dir", Config{Interface: "eth0", NodeIP: netip.MustParseAddr("192.168.1.1"), PinDir: "pins"}, "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpenMissingInterface(t *testing.T) {
	requireRoot(t)
	ns := newNetNS(t, "node")
	pinDir := filepath.Join(bpffs.Root, "shoal-test-nodeport-missing")
	_, err := Open(Config{Interface: "shoal-none0", NodeIP: netip.MustParseAddr("192.168.251.1"), PinDir: pinDir, NetNS: ns})
	if err == nil || !strings.Contains(err.Error(), "shoal-none0") {
		t.Fatalf("Open() error = %v, want one naming the interface", err)
	}
}

func TestClosedErrors(t *testing.T) {
	np := &NodePort{closed: true}
	ctx := context.Background()
	if err := np.Upsert(ctx, Service{NodePort: 1, Proto: TCP}); err != ErrClosed {
		t.Errorf("Upsert: %v", err)
	}
	if err := np.Delete(ctx, 1, TCP); err != ErrClosed {
		t.Errorf("Delete: %v", err)
	}
	if _, err := np.Services(); err != ErrClosed {
		t.Errorf("Services: %v", err)
	}
	if err := np.Remove(); err != ErrClosed {
		t.Errorf("Remove: %v", err)
	}
	if err := np.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
