package podnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func openTestIPAM(t *testing.T, dir, cidr string) *ipam {
	t.Helper()
	a, err := openIPAM(filepath.Join(dir, "addresses"), netip.MustParsePrefix(cidr))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestUsableRange(t *testing.T) {
	tests := []struct {
		cidr        string
		first, last string
		wantErr     bool
	}{
		{cidr: "10.244.1.0/24", first: "10.244.1.2", last: "10.244.1.254"},
		{cidr: "10.244.1.77/24", first: "10.244.1.2", last: "10.244.1.254"},
		{cidr: "10.244.0.0/16", first: "10.244.0.2", last: "10.244.255.254"},
		{cidr: "10.0.0.8/29", first: "10.0.0.10", last: "10.0.0.14"},
		{cidr: "10.0.0.0/30", wantErr: true},
		{cidr: "fd00::/64", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.cidr, func(t *testing.T) {
			first, last, err := usableRange(netip.MustParsePrefix(tc.cidr))
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if first.String() != tc.first || last.String() != tc.last {
				t.Errorf("range %s..%s, want %s..%s", first, last, tc.first, tc.last)
			}
		})
	}
}

func TestIPAMAllocateIsIdempotentAndPersistent(t *testing.T) {
	dir := t.TempDir()
	a := openTestIPAM(t, dir, "10.244.1.0/24")
	ip1, fresh, err := a.allocate(allocation{UID: "u1", NetNS: "/run/x"})
	if err != nil || !fresh {
		t.Fatalf("allocate = %s, %v, %v", ip1, fresh, err)
	}
	if ip1.String() != "10.244.1.2" {
		t.Errorf("first address %s, want 10.244.1.2", ip1)
	}
	again, fresh, err := a.allocate(allocation{UID: "u1", NetNS: "/run/x"})
	if err != nil || fresh || again != ip1 {
		t.Fatalf("second allocate = %s, %v, %v; want %s, not fresh", again, fresh, err, ip1)
	}
	// A new namespace path for the same pod keeps the address and is recorded.
	if moved, _, err := a.allocate(allocation{UID: "u1", NetNS: "/run/y"}); err != nil || moved != ip1 {
		t.Fatalf("allocate with a new path = %s, %v", moved, err)
	}
	ip2, _, err := a.allocate(allocation{UID: "u2", Namespace: "ns", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "addresses", ip2.String()))
	if err != nil {
		t.Fatal(err)
	}
	al, err := parseAllocation(data)
	if err != nil || al.UID != "u2" || al.Namespace != "ns" || al.Name != "web" {
		t.Errorf("file holds %+v, %v", al, err)
	}

	b := openTestIPAM(t, dir, "10.244.1.0/24")
	if got, _ := b.lookup("u1"); got != ip1 || b.byAddr[got].NetNS != "/run/y" {
		t.Errorf("after reopen u1 = %s (%+v), want %s in /run/y", got, b.byAddr[got], ip1)
	}
	if got, _ := b.lookup("u2"); got != ip2 {
		t.Errorf("after reopen u2 = %s, want %s", got, ip2)
	}
	ip3, _, err := b.allocate(allocation{UID: "u3"})
	if err != nil {
		t.Fatal(err)
	}
	if ip3 == ip1 || ip3 == ip2 {
		t.Errorf("u3 got %s, in use", ip3)
	}
}

func TestIPAMReleaseAndRotation(t *testing.T) {
	a := openTestIPAM(t, t.TempDir(), "10.0.0.0/29") // .2 .. .6
	var got []string
	for i := range 7 {
		uid := fmt.Sprint("u", i)
		ip, _, err := a.allocate(allocation{UID: uid})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip.String())
		if err := a.release(uid); err != nil {
			t.Fatal(err)
		}
	}
	// A freed address rests until the others had their turn.
	want := "[10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.2 10.0.0.3]"
	if fmt.Sprint(got) != want {
		t.Errorf("addresses %v, want %s", got, want)
	}
	if err := a.release("unknown"); err != nil {
		t.Errorf("release of an unknown uid: %v", err)
	}
}

func TestIPAMExhaustion(t *testing.T) {
	a := openTestIPAM(t, t.TempDir(), "10.0.0.0/29")
	for i := range 5 {
		if _, _, err := a.allocate(allocation{UID: fmt.Sprint("u", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := a.allocate(allocation{UID: "one-too-many"})
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("allocate in a full range = %v, want ErrExhausted", err)
	}
	if err := a.release("u3"); err != nil {
		t.Fatal(err)
	}
	ip, _, err := a.allocate(allocation{UID: "one-too-many"})
	if err != nil || ip.String() != "10.0.0.5" {
		t.Errorf("allocate after a release = %s, %v; want 10.0.0.5", ip, err)
	}
}

func TestIPAMSkipsAddressTakenOnDisk(t *testing.T) {
	dir := t.TempDir()
	a := openTestIPAM(t, dir, "10.0.0.0/29")
	// Another writer took .2 after the store was read.
	if err := os.WriteFile(filepath.Join(dir, "addresses", "10.0.0.2"), []byte(`{"uid":"x","netns":"/n"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ip, _, err := a.allocate(allocation{UID: "u"})
	if err != nil || ip.String() != "10.0.0.3" {
		t.Errorf("allocate = %s, %v; want 10.0.0.3", ip, err)
	}
}

func TestIPAMRemovesStaleFiles(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "addresses")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"10.0.0.2":         `{"uid":"good","netns":"/n"}`,
		"10.0.0.3":         `{"uid":"good","netns":"/n"}`, // second address of one pod
		"10.0.0.4":         `{"uid":`,                     // torn write from an old version
		"10.9.9.9":         `{"uid":"outside","netns":"/n"}`,
		tmpPrefix + "abcd": `{"uid":"tmp","netns":"/n"}`,
		"junk":             `x`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(store, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := openTestIPAM(t, dir, "10.0.0.0/29")
	if got := a.all(); len(got) != 1 || got[netip.MustParseAddr("10.0.0.2")].UID != "good" {
		t.Errorf("allocations %v", got)
	}
	entries, err := os.ReadDir(store)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "10.0.0.2" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files left: %v", names)
	}
}

func TestParseAllocation(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{in: `{"uid":"a","netns":"/x"}`},
		{in: `{"uid":"a","namespace":"n","name":"p","netns":"/x"}`},
		{in: `{"netns":"/x"}`, wantErr: true},
		{in: `{"uid":"a","extra":1}`, wantErr: true},
		{in: `{"uid":"a"} {}`, wantErr: true},
		{in: ``, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := parseAllocation([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Errorf("err = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func FuzzParseAllocation(f *testing.F) {
	f.Add([]byte(`{"uid":"a","namespace":"n","name":"p","netns":"/x"}`))
	f.Add([]byte(`{"uid":""}`))
	f.Add([]byte(`{"uid":"a"}{"uid":"b"}`))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		al, err := parseAllocation(data)
		if err != nil {
			return
		}
		if al.UID == "" {
			t.Fatal("accepted an allocation without uid")
		}
		// What parses is written back as the same allocation.
		data, err = json.Marshal(al)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseAllocation(data)
		if err != nil || back != al {
			t.Fatalf("round trip of %+v = %+v, %v", al, back, err)
		}
	})
}
