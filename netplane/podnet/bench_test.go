package podnet

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
)

// BenchmarkSetupTeardown measures a pod's network from nothing to ready and back: namespace,
// address, veth pair, routes, and their removal.
func BenchmarkSetupTeardown(b *testing.B) {
	requireRoot(b)
	nd := newTestNode(b, "bench", "10.244.1.0/24")
	ctx := context.Background()
	p := filepath.Join(b.TempDir(), "shoal-pod")
	b.Cleanup(func() { _ = removeNetNS(p) })
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		uid := fmt.Sprint("uid-", i)
		if _, err := nd.net.Setup(ctx, uid, "default", "p", p); err != nil {
			b.Fatal(err)
		}
		if err := nd.net.Teardown(ctx, uid, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetupExisting measures Setup of a pod that is already set up (the idempotent path a
// restarted daemon takes for every pod).
func BenchmarkSetupExisting(b *testing.B) {
	requireRoot(b)
	nd := newTestNode(b, "bench", "10.244.1.0/24")
	_, p := nd.setupPod(b, "uid")
	ctx := context.Background()
	for b.Loop() {
		if _, err := nd.net.Setup(ctx, "uid", "default", "p", p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIPAMAllocateRelease measures one durable reservation and release of an address.
func BenchmarkIPAMAllocateRelease(b *testing.B) {
	a, err := openIPAM(filepath.Join(b.TempDir(), "addresses"), netip.MustParsePrefix("10.244.1.0/24"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := a.allocate(allocation{UID: "u", NetNS: "/n"}); err != nil {
			b.Fatal(err)
		}
		if err := a.release("u"); err != nil {
			b.Fatal(err)
		}
	}
}
