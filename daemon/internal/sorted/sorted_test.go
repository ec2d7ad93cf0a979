package sorted

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// A Map behaves as a Go map whose keys are listed sorted, through any mix of sets, deletes,
// updates, resets and listings.
func TestMapMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var m Map[int]
	want := map[string]int{}
	for step := range 20000 {
		key := fmt.Sprint("k", rng.IntN(200))
		switch op := rng.IntN(20); {
		case op < 8:
			m.Set(key, step)
			want[key] = step
		case op < 14:
			m.Delete(key)
			delete(want, key)
		case op < 16:
			ok := m.Update(key, func(v *int) { *v = -step })
			if _, had := want[key]; had != ok {
				t.Fatalf("step %d: Update(%s) = %v, the key is there: %v", step, key, ok, had)
			}
			if ok {
				want[key] = -step
			}
		case op == 16 && rng.IntN(20) == 0:
			next := map[string]int{}
			for range rng.IntN(50) {
				next[fmt.Sprint("k", rng.IntN(200))] = step
			}
			m.Reset(maps.All(next))
			want = next
		default:
			var keys []string
			for k, v := range m.All() {
				keys = append(keys, k)
				if want[k] != v {
					t.Fatalf("step %d: %s = %d, want %d", step, k, v, want[k])
				}
			}
			if !slices.Equal(keys, slices.Sorted(maps.Keys(want))) {
				t.Fatalf("step %d: listed %v, want %v", step, keys, slices.Sorted(maps.Keys(want)))
			}
		}
		if m.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", step, m.Len(), len(want))
		}
		if _, had := want[key]; had {
			if v, ok := m.Get(key); !ok || v != want[key] {
				t.Fatalf("step %d: Get(%s) = %d, %v, want %d", step, key, v, ok, want[key])
			}
		} else if _, ok := m.Get(key); ok {
			t.Fatalf("step %d: Get(%s) found a deleted key", step, key)
		}
	}
}

func TestResetKeepsTheLastValueOfAKey(t *testing.T) {
	var m Map[int]
	m.Reset(func(yield func(string, int) bool) {
		_ = yield("b", 1) && yield("a", 2) && yield("b", 3)
	})
	got := maps.Collect(m.All())
	if len(got) != 2 || got["a"] != 2 || got["b"] != 3 {
		t.Fatalf("got %v, want a=2 b=3", got)
	}
}

// Building a map of n keys one at a time and listing it after each change of one key costs a
// merge per listing, not an insertion into a sorted slice per key.
func BenchmarkBuildAndList(b *testing.B) {
	for _, n := range []int{1000, 30000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			for b.Loop() {
				var m Map[[256]byte]
				for i := range n {
					m.Set(fmt.Sprintf("%08x", uint32(i)*2654435761), [256]byte{})
				}
				for range m.All() {
				}
			}
		})
	}
}
