// Package slots holds what the network plane's eBPF tables have in common: services numbered by
// an id, and their backends in numbered slots of a map keyed by (id, slot).
package slots

import (
	"errors"
	"fmt"

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

// Read reads the values of slots 0..count-1 of service id; key makes the map key of a slot.
func Read[K, V any](m *ebpf.Map, id, count uint32, key func(id, slot uint32) K) ([]V, error) {
	out := make([]V, count)
	for i := range out {
		if err := m.Lookup(key(id, uint32(i)), &out[i]); err != nil {
			return nil, fmt.Errorf("read backend slot %d of service id %d: %w", i, id, err)
		}
	}
	return out, nil
}

// Delete deletes the slots from..to-1 of service id and any stale slot after them that an
// interrupted update may have left.
func Delete[K any](m *ebpf.Map, id uint32, from, to int, key func(id, slot uint32) K) error {
	for i := from; ; i++ {
		err := m.Delete(key(id, uint32(i)))
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
