// Package slots holds what the network plane's eBPF tables have in common: services numbered by
// an id, and their backends in numbered slots of a map keyed by (id, slot). The load balancer
// (lb) and the node ports (nodeport) keep their services in such a Table and change it with the
// same protocol: backend slots are written before the service entry that counts them, and stale
// slots are deleted after it, so that a program never reads a slot the entry does not cover.
package slots

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// IDs hands out service ids from 1 to Max, round-robin from the last one given, so that a freed
// id is not reused at once. The zero value is not usable: set Max. Not safe for concurrent use.
type IDs struct {
	Max  uint32
	What string // named in the error when every id is in use, e.g. "service"
	used map[uint32]bool
	last uint32
}

// Mark records an id found in use (after a restart, from the pinned maps).
func (a *IDs) Mark(id uint32) {
	if a.used == nil {
		a.used = map[uint32]bool{}
	}
	a.used[id] = true
	a.last = max(a.last, id)
}

// Alloc returns a free id and marks it used.
func (a *IDs) Alloc() (uint32, error) {
	if uint32(len(a.used)) >= a.Max {
		return 0, fmt.Errorf("all %d %s slots are in use: delete services first", a.Max, a.What)
	}
	id := a.last
	for {
		id++
		if id > a.Max {
			id = 1
		}
		if !a.used[id] {
			a.Mark(id)
			a.last = id
			return id, nil
		}
	}
}

// Free releases an id.
func (a *IDs) Free(id uint32) { delete(a.used, id) }

// Key is the key of a backend slot: struct lb4_slot_key and struct np4_slot_key.
type Key struct {
	ID   uint32
	Slot uint32
}

// Backend is a backend in kernel form, struct lb4_backend and struct np4_backend: an IPv4
// address and a port in network byte order.
type Backend struct {
	IP   uint32
	Port uint16
	Pad  uint16
}

// BackendOf converts an address and port; it must be IPv4 (an IPv4-mapped IPv6 address is).
func BackendOf(a netip.AddrPort) Backend {
	return Backend{IP: IP4(a.Addr().Unmap()), Port: Htons(a.Port())}
}

// AddrPort converts b back.
func (b Backend) AddrPort() netip.AddrPort { return netip.AddrPortFrom(Addr4(b.IP), Ntohs(b.Port)) }

// Backends checks and converts the backends of a service: each must be an IPv4 address with a
// port, at most limit of them; duplicates are dropped, the order is kept.
func Backends(addrs []netip.AddrPort, limit int) ([]Backend, error) {
	if len(addrs) > limit {
		return nil, fmt.Errorf("%d backends, at most %d are supported", len(addrs), limit)
	}
	seen := make(map[Backend]bool, len(addrs))
	out := make([]Backend, 0, len(addrs))
	for _, a := range addrs {
		if !a.Addr().Unmap().Is4() || a.Port() == 0 {
			return nil, fmt.Errorf("backend %s must be an IPv4 address with a port", a)
		}
		b := BackendOf(a)
		if seen[b] {
			continue
		}
		seen[b] = true
		out = append(out, b)
	}
	return out, nil
}

// Value is the value of a service entry: it holds the service's id and how many backend slots
// it uses (struct lb4_service, struct np4_service).
type Value interface {
	comparable
	Slots() (id, count uint32)
}

// Table is a services map (K -> V), the backend slots map (Key -> Backend), the round-robin
// position of each service (an array indexed by id) and the ids in use. It is not safe for
// concurrent use.
type Table[K comparable, V Value] struct {
	Services *ebpf.Map
	Backends *ebpf.Map
	RR       *ebpf.Map
	IDs      IDs
}

// Entry is a service read from a Table.
type Entry[K comparable, V Value] struct {
	Key      K
	Value    V
	Backends []Backend // in slot order
}

// Change says what Upsert changed.
type Change[V Value] struct {
	// New is set when the service was inserted.
	New bool
	// Old is the entry before the change; the zero value when New.
	Old V
	// Removed are the backends the service held before and no longer holds.
	Removed []Backend
}

// AdoptIDs records the ids of the services already in the map (after a restart).
func (t *Table[K, V]) AdoptIDs() error {
	var (
		key K
		val V
	)
	it := t.Services.Iterate()
	for it.Next(&key, &val) {
		id, _ := val.Slots()
		t.IDs.Mark(id)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	return nil
}

// Upsert makes the service at key hold backends (checked and without duplicates), with the
// entry value(id, len(slots)). A new service gets a fresh id and its round-robin position reset;
// its slots are written before its entry, and a failure leaves nothing behind. An existing
// service keeps its id and the backends that stay keep their slots (Layout); the slots that
// change are written before the entry, and the slots after the new count are deleted after it.
func (t *Table[K, V]) Upsert(key K, backends []Backend, value func(id, count uint32) V) (Change[V], error) {
	var ch Change[V]
	var cur V
	err := t.Services.Lookup(&key, &cur)
	switch {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		ch.New = true
		return ch, t.insert(key, backends, value)
	case err != nil:
		return ch, fmt.Errorf("read service: %w", err)
	}
	ch.Old = cur
	id, count := cur.Slots()
	old, err := t.read(id, count)
	if err != nil {
		return ch, err
	}
	slots, writes := Layout(old, backends)
	for _, i := range writes {
		if err := t.Backends.Update(Key{id, uint32(i)}, slots[i], ebpf.UpdateAny); err != nil {
			return ch, fmt.Errorf("write backend slot %d: %w", i, err)
		}
	}
	if val := value(id, uint32(len(slots))); val != cur {
		if err := t.Services.Update(&key, &val, ebpf.UpdateExist); err != nil {
			return ch, fmt.Errorf("write service: %w", err)
		}
	}
	if err := t.deleteSlots(id, len(slots), len(old)); err != nil {
		return ch, err
	}
	kept := make(map[Backend]bool, len(slots))
	for _, b := range slots {
		kept[b] = true
	}
	for _, b := range old {
		if !kept[b] {
			ch.Removed = append(ch.Removed, b)
			kept[b] = true // once
		}
	}
	return ch, nil
}

func (t *Table[K, V]) insert(key K, backends []Backend, value func(id, count uint32) V) error {
	id, err := t.IDs.Alloc()
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = t.deleteSlots(id, 0, len(backends)) // the error that got us here is the one to report
		t.IDs.Free(id)
		return err
	}
	if err := t.RR.Update(id, uint32(0), ebpf.UpdateAny); err != nil {
		return fail(fmt.Errorf("reset round-robin position: %w", err))
	}
	for i, b := range backends {
		if err := t.Backends.Update(Key{id, uint32(i)}, b, ebpf.UpdateAny); err != nil {
			return fail(fmt.Errorf("write backend slot %d: %w", i, err))
		}
	}
	val := value(id, uint32(len(backends)))
	if err := t.Services.Update(&key, &val, ebpf.UpdateNoExist); err != nil {
		return fail(fmt.Errorf("write service: %w", err))
	}
	return nil
}

// Delete removes the service at key: its entry first, then its slots, then its id. It returns
// the entry and the backends it had; found is false (and nothing happens) when there is none.
func (t *Table[K, V]) Delete(key K) (old V, backends []Backend, found bool, err error) {
	err = t.Services.Lookup(&key, &old)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return old, nil, false, nil
	}
	if err != nil {
		return old, nil, false, fmt.Errorf("read service: %w", err)
	}
	id, count := old.Slots()
	if backends, err = t.read(id, count); err != nil {
		return old, nil, true, err
	}
	if err := t.Services.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return old, nil, true, fmt.Errorf("delete service: %w", err)
	}
	if err := t.deleteSlots(id, 0, len(backends)); err != nil {
		return old, nil, true, err
	}
	t.IDs.Free(id)
	return old, backends, true, nil
}

// List reads every service with its backends, in no particular order. It reads both maps whole
// (in batches where the kernel has them), so that it costs a few system calls, not one per
// backend; the Table's owner must not change them meanwhile.
func (t *Table[K, V]) List() ([]Entry[K, V], error) {
	svcs, err := readAll[K, V](t.Services)
	if err != nil {
		return nil, fmt.Errorf("read services: %w", err)
	}
	slots, err := readAll[Key, Backend](t.Backends)
	if err != nil {
		return nil, fmt.Errorf("read backend slots: %w", err)
	}
	out := make([]Entry[K, V], 0, len(svcs))
	for key, val := range svcs {
		id, count := val.Slots()
		bs := make([]Backend, count)
		for i := range bs {
			b, ok := slots[Key{id, uint32(i)}]
			if !ok {
				return nil, fmt.Errorf("read backend slot %d of service id %d: %w", i, id, ebpf.ErrKeyNotExist)
			}
			bs[i] = b
		}
		out = append(out, Entry[K, V]{Key: key, Value: val, Backends: bs})
	}
	return out, nil
}

// batchSize is how many entries readAll asks the kernel for at once.
const batchSize = 4096

// readAll reads every entry of the hash map m: in batches, or one by one on a kernel without
// batch operations.
func readAll[K comparable, V any](m *ebpf.Map) (map[K]V, error) {
	out := map[K]V{}
	var cursor ebpf.MapBatchCursor
	keys, vals := make([]K, batchSize), make([]V, batchSize)
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			out[keys[i]] = vals[i]
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return out, nil // the end
		case errors.Is(err, ebpf.ErrNotSupported) && len(out) == 0:
			return iterate[K, V](m)
		case err != nil:
			return nil, err
		}
	}
}

// iterate reads every entry of m one by one.
func iterate[K comparable, V any](m *ebpf.Map) (map[K]V, error) {
	out := map[K]V{}
	var (
		key K
		val V
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		out[key] = val
	}
	return out, it.Err()
}

// read reads the backends in slots 0..count-1 of service id.
func (t *Table[K, V]) read(id, count uint32) ([]Backend, error) {
	out := make([]Backend, count)
	for i := range out {
		if err := t.Backends.Lookup(Key{id, uint32(i)}, &out[i]); err != nil {
			return nil, fmt.Errorf("read backend slot %d of service id %d: %w", i, id, err)
		}
	}
	return out, nil
}

// deleteSlots deletes the slots from..to-1 of service id and any stale slot after them that an
// interrupted update may have left.
func (t *Table[K, V]) deleteSlots(id uint32, from, to int) error {
	for i := from; ; i++ {
		err := t.Backends.Delete(Key{id, uint32(i)})
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			if i >= to {
				return nil
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("delete backend slot %d: %w", i, err)
		}
	}
}

// Layout places want into slots 0..len(want)-1, keeping every backend that is already in its
// place so that live slots change as little as possible. It returns the new slots and the
// indexes that must be written. want must hold no duplicates.
func Layout(old, want []Backend) (slots []Backend, writes []int) {
	n := len(want)
	wanted := make(map[Backend]bool, n)
	for _, b := range want {
		wanted[b] = true
	}
	slots = make([]Backend, n)
	filled := make([]bool, n)
	placed := make(map[Backend]bool, n)
	for i, b := range old {
		if i < n && wanted[b] && !placed[b] {
			slots[i], filled[i], placed[b] = b, true, true
		}
	}
	var pending []Backend
	for _, b := range want {
		if !placed[b] {
			pending = append(pending, b)
			placed[b] = true
		}
	}
	for i := range slots {
		if !filled[i] {
			slots[i] = pending[0]
			pending = pending[1:]
			writes = append(writes, i)
		}
	}
	return slots, writes
}

// IP4 returns the IPv4 address a as the kernel holds it (network byte order in memory).
func IP4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// Addr4 converts an address from IP4 back.
func Addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// Htons returns the port p in network byte order.
func Htons(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

// Ntohs converts a port from network byte order.
func Ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}
