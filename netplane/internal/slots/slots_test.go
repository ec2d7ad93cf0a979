package slots

import "testing"

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
