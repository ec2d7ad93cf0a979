package store

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkPut measures one JSON Put to an embedded member over its unix socket.
func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: b.TempDir() + "/store"})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	c, err := Connect(ctx, Config{Endpoints: e.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	v := nodeInfo{Name: "n1", CPU: 4000, Labels: map[string]string{"zone": "a"}}
	b.ResetTimer()
	for b.Loop() {
		if err := Put(ctx, c, "/shoal/nodes/n1", v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFencedTxn measures one fenced write by the leader.
func BenchmarkFencedTxn(b *testing.B) {
	ctx := context.Background()
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: b.TempDir() + "/store"})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	c, err := Connect(ctx, Config{Endpoints: e.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	l, err := c.Campaign(ctx, "/shoal/master", "n1", DefaultTTL)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Resign(ctx)
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Txn(ctx, clientv3.OpPut("/shoal/commits/applied", `{"sha":"abc"}`)); err != nil {
			b.Fatal(err)
		}
	}
}
