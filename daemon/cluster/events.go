package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/daemon/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// emit records an event, kept one to two hours. An event that cannot be written is logged in
// its place: neither a pass nor a commit fails, or writes again, for the sake of an event.
func (m *Master) emit(ctx context.Context, lead *store.Leadership, e Event) {
	if err := m.writeEvent(ctx, lead, e); err != nil {
		m.log.Warn("record an event; it is only logged", "type", e.Type, "reason", e.Reason, "object", e.Object,
			"message", e.Message, "err", err)
	}
}

func (m *Master) writeEvent(ctx context.Context, lead *store.Leadership, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	// Events share a lease of two hours, renewed each hour: each lives one to two hours.
	if time.Now().After(m.eventLeaseUntil) {
		lease, err := m.cfg.Store.Etcd().Grant(ctx, int64(2*time.Hour/time.Second))
		if err != nil {
			return fmt.Errorf("grant the events' lease: %w", err)
		}
		m.eventLease, m.eventLeaseUntil = lease.ID, time.Now().Add(time.Hour)
	}
	key := fmt.Sprintf("%s%020d-%s", eventsPrefix, e.Time.UnixNano(), randomHex(3))
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode the event: %w", err)
	}
	if _, err := lead.Txn(ctx, clientv3.OpPut(key, string(data), clientv3.WithLease(m.eventLease))); err != nil {
		return fmt.Errorf("write the event: %w", err)
	}
	return nil
}

// objectName turns "Deployment/ns/name" into "Deployment ns/name".
func objectName(o string) string {
	kind, rest, ok := cutFirst(o, "/")
	if !ok {
		return o
	}
	return kind + " " + rest
}

func cutFirst(s, sep string) (string, string, bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
