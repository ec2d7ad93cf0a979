// Package sorted is a map from string keys that lists its entries in key order at the cost of a
// copy, not a sort: the entries stay in a sorted slice, a change of an existing key is a binary
// search, and new keys wait in a small side list until the next listing merges them in one pass.
// A table of 30,000 entries that changes a few keys between listings thus costs a merge and a
// copy per listing, and building it one key at a time costs O(n log n), not O(n²).
package sorted

import (
	"cmp"
	"iter"
	"slices"
	"strings"
)

// Map is a map from string keys to V, listed in key order. The zero value is an empty map. It
// is not safe for concurrent use.
type Map[V any] struct {
	entries []entry[V] // sorted by key; gone marks a key deleted since the last merge
	gone    int        // how many entries are gone
	added   []entry[V] // keys set since the last merge that entries does not hold, in no order
	// addedAt is the index in added of each of its keys.
	addedAt map[string]int
}

type entry[V any] struct {
	key  string
	v    V
	gone bool
}

func (m *Map[V]) find(key string) (int, bool) {
	return slices.BinarySearchFunc(m.entries, key, func(e entry[V], key string) int { return strings.Compare(e.key, key) })
}

// Set sets the value of key.
func (m *Map[V]) Set(key string, v V) {
	if i, ok := m.find(key); ok {
		if m.entries[i].gone {
			m.entries[i].gone = false
			m.gone--
		}
		m.entries[i].v = v
		return
	}
	if j, ok := m.addedAt[key]; ok {
		m.added[j].v = v
		return
	}
	if m.addedAt == nil {
		m.addedAt = map[string]int{}
	}
	m.addedAt[key] = len(m.added)
	m.added = append(m.added, entry[V]{key: key, v: v})
}

// Delete deletes key, if present.
func (m *Map[V]) Delete(key string) {
	if i, ok := m.find(key); ok {
		if !m.entries[i].gone {
			var zero V
			m.entries[i].gone, m.entries[i].v = true, zero
			m.gone++
		}
		return
	}
	j, ok := m.addedAt[key]
	if !ok {
		return
	}
	last := len(m.added) - 1
	if j != last {
		m.added[j] = m.added[last]
		m.addedAt[m.added[j].key] = j
	}
	m.added = m.added[:last]
	delete(m.addedAt, key)
}

// Get returns the value of key.
func (m *Map[V]) Get(key string) (V, bool) {
	if i, ok := m.find(key); ok && !m.entries[i].gone {
		return m.entries[i].v, true
	}
	if j, ok := m.addedAt[key]; ok {
		return m.added[j].v, true
	}
	var zero V
	return zero, false
}

// Update calls f with a pointer to the value of key, if present, to change it in place.
func (m *Map[V]) Update(key string, f func(*V)) bool {
	if i, ok := m.find(key); ok && !m.entries[i].gone {
		f(&m.entries[i].v)
		return true
	}
	if j, ok := m.addedAt[key]; ok {
		f(&m.added[j].v)
		return true
	}
	return false
}

// Len is the number of keys.
func (m *Map[V]) Len() int { return len(m.entries) - m.gone + len(m.added) }

// Reset replaces the content with the entries of all, which need not be sorted.
func (m *Map[V]) Reset(all iter.Seq2[string, V]) {
	m.entries, m.gone, m.added, m.addedAt = m.entries[:0], 0, nil, nil
	for k, v := range all {
		m.entries = append(m.entries, entry[V]{key: k, v: v})
	}
	slices.SortStableFunc(m.entries, func(a, b entry[V]) int { return cmp.Compare(a.key, b.key) })
	// A key given twice keeps its last value.
	out := m.entries[:0]
	for i, e := range m.entries {
		if i+1 < len(m.entries) && m.entries[i+1].key == e.key {
			continue
		}
		out = append(out, e)
	}
	m.entries = out
}

// All returns the entries in key order. The map must not change during the iteration.
func (m *Map[V]) All() iter.Seq2[string, V] {
	m.merge()
	return func(yield func(string, V) bool) {
		for _, e := range m.entries {
			if !yield(e.key, e.v) {
				return
			}
		}
	}
}

// merge folds the added keys into entries and drops the gone ones, in one pass.
func (m *Map[V]) merge() {
	if len(m.added) == 0 && m.gone == 0 {
		return
	}
	slices.SortFunc(m.added, func(a, b entry[V]) int { return cmp.Compare(a.key, b.key) })
	out := make([]entry[V], 0, m.Len())
	i, j := 0, 0
	for i < len(m.entries) || j < len(m.added) {
		switch {
		case i < len(m.entries) && m.entries[i].gone:
			i++
		case j == len(m.added) || (i < len(m.entries) && m.entries[i].key < m.added[j].key):
			out = append(out, m.entries[i])
			i++
		default:
			out = append(out, m.added[j])
			j++
		}
	}
	m.entries, m.gone, m.added, m.addedAt = out, 0, m.added[:0], nil
}
