package slots

import (
	"errors"
	"maps"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
)

func TestIDs(t *testing.T) {
	a := IDs{Max: 3, What: "test"}
	a.Mark(2)
	var got []uint32
	for range 2 {
		id, err := a.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if got[0] != 3 || got[1] != 1 {
		t.Errorf("ids %v, want 3 then 1 (round-robin after the marked 2)", got)
	}
	if _, err := a.Alloc(); err == nil {
		t.Error("a fourth id out of three")
	}
	a.Free(3)
	if id, err := a.Alloc(); err != nil || id != 3 {
		t.Errorf("after freeing 3: %d, %v", id, err)
	}
}

func be(n byte) Backend { return Backend{IP: uint32(n), Port: 1} }

func TestLayout(t *testing.T) {
	a, b, c, d := be(1), be(2), be(3), be(4)
	tests := []struct {
		name       string
		old, want  []Backend
		wantSlots  []Backend
		wantWrites []int
	}{
		{"new", nil, []Backend{a, b}, []Backend{a, b}, []int{0, 1}},
		{"unchanged", []Backend{a, b}, []Backend{b, a}, []Backend{a, b}, nil},
		{"grow", []Backend{a, b}, []Backend{a, b, c}, []Backend{a, b, c}, []int{2}},
		{"remove middle: tail moves into the hole", []Backend{a, b, c}, []Backend{a, c}, []Backend{a, c}, []int{1}},
		{"remove last", []Backend{a, b, c}, []Backend{a, b}, []Backend{a, b}, nil},
		{"replace", []Backend{a, b}, []Backend{a, d}, []Backend{a, d}, []int{1}},
		{"empty", []Backend{a, b}, nil, []Backend{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			slots, writes := Layout(tc.old, tc.want)
			if !slices.Equal(slots, tc.wantSlots) || !slices.Equal(writes, tc.wantWrites) {
				t.Fatalf("layout = %v, %v; want %v, %v", slots, writes, tc.wantSlots, tc.wantWrites)
			}
		})
	}
}

// FuzzLayout checks Layout's invariants: the slots hold exactly the wanted
// backends, and every slot that changes is written.
func FuzzLayout(f *testing.F) {
	f.Add([]byte{1, 2, 3}, []byte{1, 3})
	f.Add([]byte{}, []byte{4, 5})
	f.Add([]byte{1, 2, 3, 4}, []byte{4, 3, 2, 1, 5})
	f.Fuzz(func(t *testing.T, oldB, wantB []byte) {
		var old, want []Backend
		seen := map[byte]bool{}
		for _, x := range oldB {
			if !seen[x] {
				seen[x] = true
				old = append(old, be(x))
			}
		}
		seen = map[byte]bool{}
		for _, x := range wantB {
			if !seen[x] {
				seen[x] = true
				want = append(want, be(x))
			}
		}
		slots, writes := Layout(old, want)
		if len(slots) != len(want) {
			t.Fatalf("%d slots for %d backends", len(slots), len(want))
		}
		a, b := slices.Clone(slots), slices.Clone(want)
		cmp := func(x, y Backend) int { return int(x.IP) - int(y.IP) }
		slices.SortFunc(a, cmp)
		slices.SortFunc(b, cmp)
		if !slices.Equal(a, b) {
			t.Fatalf("slots %v do not hold %v", slots, want)
		}
		for i := range slots {
			if (i >= len(old) || old[i] != slots[i]) && !slices.Contains(writes, i) {
				t.Fatalf("slot %d changes to %v but is not written", i, slots[i])
			}
		}
	})
}

func TestBackends(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:80")
	got, err := Backends([]netip.AddrPort{b, a, b, netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), 80)}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Backend{BackendOf(b), BackendOf(a)}; !slices.Equal(got, want) {
		t.Errorf("Backends = %v, want %v (duplicates and the mapped form of a dropped, order kept)", got, want)
	}
	if got[1].AddrPort() != a {
		t.Errorf("%v does not round-trip to %s", got[1], a)
	}
	for _, tc := range []struct {
		name  string
		addrs []netip.AddrPort
		limit int
	}{
		{"IPv6", []netip.AddrPort{netip.MustParseAddrPort("[fd00::1]:80")}, 4},
		{"no port", []netip.AddrPort{netip.AddrPortFrom(a.Addr(), 0)}, 4},
		{"too many", []netip.AddrPort{a, b}, 1},
	} {
		if _, err := Backends(tc.addrs, tc.limit); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestByteOrder(t *testing.T) {
	a := netip.MustParseAddr("192.168.251.1")
	if got := Addr4(IP4(a)); got != a {
		t.Errorf("Addr4(IP4(%s)) = %s", a, got)
	}
	if got := Ntohs(Htons(30080)); got != 30080 {
		t.Errorf("Ntohs(Htons(30080)) = %d", got)
	}
}

type testKey struct{ Port uint32 }

type testValue struct{ ID, Count uint32 }

func (v testValue) Slots() (id, count uint32) { return v.ID, v.Count }

// newTable makes a Table over fresh, unpinned maps.
func newTable(t *testing.T) *Table[testKey, testValue] {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates BPF maps")
	}
	mk := func(typ ebpf.MapType, key, val uint32) *ebpf.Map {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: typ, KeySize: key, ValueSize: val, MaxEntries: 16})
		if errors.Is(err, ebpf.ErrNotSupported) {
			t.Skipf("BPF maps: %v", err)
		}
		if err != nil {
			t.Fatalf("create map: %v", err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	return &Table[testKey, testValue]{Services: mk(ebpf.Hash, 4, 8), Backends: mk(ebpf.Hash, 8, 8), RR: mk(ebpf.Array, 4, 4),
		IDs: IDs{Max: 15, What: "test"}}
}

func TestTable(t *testing.T) {
	tab := newTable(t)
	a, b, c := BackendOf(netip.MustParseAddrPort("10.0.0.1:80")), BackendOf(netip.MustParseAddrPort("10.0.0.2:80")),
		BackendOf(netip.MustParseAddrPort("10.0.0.3:80"))
	val := func(id, count uint32) testValue { return testValue{id, count} }
	ch, err := tab.Upsert(testKey{80}, []Backend{a, b, c}, val)
	if err != nil || !ch.New {
		t.Fatalf("insert: %+v, %v", ch, err)
	}
	ch, err = tab.Upsert(testKey{80}, []Backend{a, c}, val)
	if err != nil || ch.New || !slices.Equal(ch.Removed, []Backend{b}) {
		t.Fatalf("update: %+v, %v; want b removed", ch, err)
	}
	// Slots left behind by an interrupted grow (after the count) go with the next update.
	for _, slot := range []uint32{2, 3} {
		if err := tab.Backends.Update(Key{ch.Old.ID, slot}, b, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tab.Upsert(testKey{81}, nil, val); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Upsert(testKey{80}, []Backend{c, a}, val); err != nil {
		t.Fatal(err)
	}
	var stale Backend
	for _, slot := range []uint32{2, 3} {
		if err := tab.Backends.Lookup(Key{ch.Old.ID, slot}, &stale); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("stale slot %d: %v, want it deleted", slot, err)
		}
	}
	entries, err := tab.List()
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[testKey][]Backend{}
	for _, e := range entries {
		byKey[e.Key] = e.Backends
	}
	if len(byKey) != 2 || !slices.Equal(byKey[testKey{80}], []Backend{a, c}) || len(byKey[testKey{81}]) != 0 {
		t.Errorf("List = %+v, want 80 with a and c kept in their slots, 81 without backends", entries)
	}
	// On a kernel without batch lookups List reads the maps one entry at a time, alike.
	batched, err := readAll[Key, Backend](tab.Backends)
	if err != nil {
		t.Fatal(err)
	}
	oneByOne, err := iterate[Key, Backend](tab.Backends)
	if err != nil || len(oneByOne) != 2 || !maps.Equal(batched, oneByOne) {
		t.Errorf("iterate = %v, %v; readAll = %v", oneByOne, err, batched)
	}
	// Another Table over the same maps (a restart) does not hand out the ids in use.
	again := &Table[testKey, testValue]{Services: tab.Services, Backends: tab.Backends, RR: tab.RR, IDs: IDs{Max: 15, What: "test"}}
	if err := again.AdoptIDs(); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Upsert(testKey{82}, []Backend{b}, val); err != nil {
		t.Fatal(err)
	}
	ids := map[uint32]bool{}
	entries, _ = again.List()
	for _, e := range entries {
		ids[e.Value.ID] = true
	}
	if len(ids) != 3 {
		t.Errorf("ids %v: want three distinct ids after adopting", ids)
	}
	old, bs, found, err := again.Delete(testKey{80})
	if err != nil || !found || old.Count != 2 || len(bs) != 2 {
		t.Fatalf("Delete = %+v, %v, %v, %v", old, bs, found, err)
	}
	if _, _, found, err := again.Delete(testKey{80}); err != nil || found {
		t.Errorf("second Delete: found=%v, %v; want nothing", found, err)
	}
	if err := again.Backends.Lookup(Key{old.ID, 0}, &stale); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("slot 0 of the deleted service: %v, want it deleted", err)
	}
}
