package podnet

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/internal/atomicfile"
)

// ErrExhausted is returned by Setup when every address of the node's pod CIDR is taken.
var ErrExhausted = errors.New("no free address in the pod CIDR")

// allocation is what one address file holds.
type allocation struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// NetNS is the pod's network namespace path; Reconcile frees the address when it is gone.
	NetNS string `json:"netns"`
}

// parseAllocation decodes an address file.
func parseAllocation(data []byte) (allocation, error) {
	var a allocation
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return allocation{}, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return allocation{}, errors.New("decode: trailing data")
	}
	if a.UID == "" {
		return allocation{}, errors.New("no pod uid")
	}
	return a, nil
}

// ipam hands out the addresses of one prefix and keeps them in dir, one file per address named
// after it. Reserving an address is one link(2) of a fully written temporary file to the
// address's name, so a file is either absent or complete, and two writers cannot take the same
// address. ipam is not safe for concurrent use; Net serialises calls.
type ipam struct {
	dir          string
	first, last  netip.Addr // usable range: network+2 .. broadcast-1
	byUID        map[string]netip.Addr
	byAddr       map[netip.Addr]allocation
	next         netip.Addr // where the next search starts, so freed addresses rest a while
	nextFilePath string
}

const tmpPrefix = ".tmp-"

// usableRange returns the addresses pods may get in prefix: the network address, the gateway
// (network+1) and the broadcast address are left out.
func usableRange(prefix netip.Prefix) (first, last netip.Addr, err error) {
	prefix = prefix.Masked()
	if !prefix.Addr().Is4() || prefix.Bits() > 29 {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("pod CIDR %s: need an IPv4 prefix of /29 or larger", prefix)
	}
	network := prefix.Addr()
	a4 := network.As4()
	n := uint32(a4[0])<<24 | uint32(a4[1])<<16 | uint32(a4[2])<<8 | uint32(a4[3])
	size := uint32(1) << (32 - prefix.Bits())
	return u32Addr(n + 2), u32Addr(n + size - 2), nil
}

func u32Addr(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// gateway returns the address the bridge holds: the first after the network address.
func gateway(prefix netip.Prefix) netip.Addr {
	return prefix.Masked().Addr().Next()
}

// openIPAM loads the allocations in dir (created when missing). Leftover temporary files,
// files that do not parse, addresses outside the prefix and second addresses of one UID are
// removed: none of them can belong to a working pod.
func openIPAM(dir string, prefix netip.Prefix) (*ipam, error) {
	first, last, err := usableRange(prefix)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open address store %s: %w", dir, err)
	}
	a := &ipam{
		dir:          dir,
		first:        first,
		last:         last,
		byUID:        map[string]netip.Addr{},
		byAddr:       map[netip.Addr]allocation{},
		next:         first,
		nextFilePath: filepath.Join(filepath.Dir(dir), "next-address"),
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open address store %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		addr, perr := netip.ParseAddr(e.Name())
		if perr != nil || !a.inRange(addr) {
			if err := os.Remove(p); err != nil {
				return nil, fmt.Errorf("open address store: remove stale %s: %w", p, err)
			}
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("open address store: %w", err)
		}
		al, perr := parseAllocation(data)
		if _, dup := a.byUID[al.UID]; perr != nil || dup {
			if err := os.Remove(p); err != nil {
				return nil, fmt.Errorf("open address store: remove stale %s: %w", p, err)
			}
			continue
		}
		a.byUID[al.UID] = addr
		a.byAddr[addr] = al
	}
	if data, err := os.ReadFile(a.nextFilePath); err == nil {
		if addr, err := netip.ParseAddr(strings.TrimSpace(string(data))); err == nil && a.inRange(addr) {
			a.next = addr
		}
	}
	return a, syncDir(dir)
}

func (a *ipam) inRange(addr netip.Addr) bool {
	return addr.Is4() && addr.Compare(a.first) >= 0 && addr.Compare(a.last) <= 0
}

func (a *ipam) path(addr netip.Addr) string { return filepath.Join(a.dir, addr.String()) }

// lookup returns the address of uid.
func (a *ipam) lookup(uid string) (netip.Addr, bool) {
	addr, ok := a.byUID[uid]
	return addr, ok
}

// allocate returns the address of al.UID, reserving a free one if it has none. The second
// result reports whether the address is new.
func (a *ipam) allocate(al allocation) (netip.Addr, bool, error) {
	data, err := json.Marshal(al)
	if err != nil {
		return netip.Addr{}, false, err
	}
	if addr, ok := a.byUID[al.UID]; ok {
		if a.byAddr[addr].NetNS != al.NetNS {
			// The pod's namespace moved: record the new path, or Reconcile would judge the
			// pod by the old one.
			if err := writeFileAtomic(a.path(addr), data); err != nil {
				return netip.Addr{}, false, fmt.Errorf("update address %s of pod %s: %w", addr, al.UID, err)
			}
			a.byAddr[addr] = al
		}
		return addr, false, nil
	}
	tmp, err := writeTemp(a.dir, data)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("reserve address: %w", err)
	}
	defer os.Remove(tmp)
	addr := a.next
	for range a.size() {
		if _, taken := a.byAddr[addr]; !taken {
			err := os.Link(tmp, a.path(addr))
			if err == nil {
				if err := syncDir(a.dir); err != nil {
					_ = os.Remove(a.path(addr))
					return netip.Addr{}, false, fmt.Errorf("reserve address %s: %w", addr, err)
				}
				a.byUID[al.UID] = addr
				a.byAddr[addr] = al
				a.next = a.after(addr)
				// The cursor only spreads reuse out; losing it costs nothing.
				_ = writeFileAtomic(a.nextFilePath, []byte(a.next.String()+"\n"))
				return addr, true, nil
			}
			if !errors.Is(err, os.ErrExist) {
				return netip.Addr{}, false, fmt.Errorf("reserve address %s: %w", addr, err)
			}
			// Taken by a writer this process does not know about: skip it.
		}
		addr = a.after(addr)
	}
	return netip.Addr{}, false, fmt.Errorf("allocate an address for pod %s: %w (%d addresses in use; remove pods or give the node a larger pod CIDR)", al.UID, ErrExhausted, len(a.byAddr))
}

func (a *ipam) size() int {
	f, l := a.first.As4(), a.last.As4()
	return int(uint32(l[0])<<24|uint32(l[1])<<16|uint32(l[2])<<8|uint32(l[3])) -
		int(uint32(f[0])<<24|uint32(f[1])<<16|uint32(f[2])<<8|uint32(f[3])) + 1
}

func (a *ipam) after(addr netip.Addr) netip.Addr {
	if addr.Compare(a.last) >= 0 {
		return a.first
	}
	return addr.Next()
}

// release frees the address of uid. Releasing an unknown UID does nothing.
func (a *ipam) release(uid string) error {
	addr, ok := a.byUID[uid]
	if !ok {
		return nil
	}
	if err := os.Remove(a.path(addr)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release address %s of pod %s: %w", addr, uid, err)
	}
	if err := syncDir(a.dir); err != nil {
		return fmt.Errorf("release address %s of pod %s: %w", addr, uid, err)
	}
	delete(a.byUID, uid)
	delete(a.byAddr, addr)
	return nil
}

// all returns a copy of the allocations.
func (a *ipam) all() map[netip.Addr]allocation {
	m := make(map[netip.Addr]allocation, len(a.byAddr))
	for k, v := range a.byAddr {
		m[k] = v
	}
	return m
}

// writeTemp writes data to a new temporary file in dir, synced to disk, and returns its path.
func writeTemp(dir string, data []byte) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	p := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(p)
		return "", err
	}
	return p, nil
}

// writeFileAtomic replaces path with data durably: readers see the old or the new content,
// never a mix (see package atomicfile).
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o600)
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
