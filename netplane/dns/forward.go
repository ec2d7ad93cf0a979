package dns

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	miekg "github.com/miekg/dns"
)

// Limits of the cache of forwarded answers.
const (
	cacheMaxEntries  = 10000
	cacheMaxTTL      = 30 * time.Second
	cacheMaxNegative = 5 * time.Second
)

// forwarder sends the queries for names outside the cluster domain to the upstream servers.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	log       *slog.Logger
	// preferred is the index of the upstream that answered last; queries try it first.
	preferred atomic.Uint32
	cache     *cache
}

func newForwarder(upstreams []string, timeout time.Duration, log *slog.Logger) *forwarder {
	return &forwarder{upstreams: upstreams, timeout: timeout, log: log, cache: newCache(cacheMaxEntries)}
}

// forward answers req from the cache or from the upstreams. It tries the upstreams one after the
// other, starting with the one that answered last, each with an equal share of the time left, and
// answers SERVFAIL when none answered within the timeout. Every attempt uses a fresh socket (a new
// source port), so a lost or late answer cannot poison the next query.
func (f *forwarder) forward(ctx context.Context, req *miekg.Msg, tcp bool) *miekg.Msg {
	if len(f.upstreams) == 0 {
		return servFail(req)
	}
	now := time.Now()
	key, cacheable := newCacheKey(req)
	if cacheable {
		if m := f.cache.get(key, req, now); m != nil {
			return m
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	q := req.Copy()
	q.Id = miekg.Id()
	client := &miekg.Client{Net: "udp"}
	if tcp {
		client.Net = "tcp"
	}
	n := uint32(len(f.upstreams))
	start := f.preferred.Load()
	var fallback *miekg.Msg
	for i := uint32(0); i < n; i++ {
		idx := (start + i) % n
		share := time.Until(deadline) / time.Duration(n-i)
		if share <= 0 || ctx.Err() != nil {
			break
		}
		r, err := exchange(ctx, client, q, f.upstreams[idx], share)
		if err != nil {
			f.log.Debug("dns: upstream did not answer", "upstream", f.upstreams[idx], "name", req.Question[0].Name, "error", err)
			continue
		}
		if r.Rcode == miekg.RcodeServerFailure || r.Rcode == miekg.RcodeRefused {
			fallback = r
			continue
		}
		if idx != start {
			f.preferred.Store(idx)
		}
		if cacheable {
			f.cache.put(key, r, time.Now())
		}
		r.Id = req.Id
		return r
	}
	if fallback != nil {
		fallback.Id = req.Id
		return fallback
	}
	return servFail(req)
}

// exchange sends q to upstream and waits at most d for the answer; it gives up at once when ctx ends.
func exchange(ctx context.Context, client *miekg.Client, q *miekg.Msg, upstream string, d time.Duration) (*miekg.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	conn, err := client.DialContext(ctx, upstream)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := client.ExchangeWithConnContext(ctx, q, conn)
	return r, err
}

func servFail(req *miekg.Msg) *miekg.Msg {
	m := new(miekg.Msg).SetRcode(req, miekg.RcodeServerFailure)
	m.RecursionAvailable = true
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(advertisedUDPSize, opt.Do())
	}
	return m
}

// cacheKey identifies the answers that can be shared between queries.
type cacheKey struct {
	name          string // lowercase
	qtype, qclass uint16
	edns, do, cd  bool
}

func newCacheKey(req *miekg.Msg) (cacheKey, bool) {
	if len(req.Question) != 1 {
		return cacheKey{}, false
	}
	q := req.Question[0]
	k := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, qclass: q.Qclass, cd: req.CheckingDisabled}
	if opt := req.IsEdns0(); opt != nil {
		k.edns, k.do = true, opt.Do()
	}
	return k, true
}

type cacheEntry struct {
	msg     *miekg.Msg
	stored  time.Time
	expires time.Time
}

// cache holds forwarded answers for at most the smallest TTL in them, capped at 30 seconds
// (5 for negative answers). It holds at most max entries.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[cacheKey]cacheEntry
}

func newCache(limit int) *cache {
	return &cache{max: limit, entries: make(map[cacheKey]cacheEntry)}
}

// get returns a copy of the cached answer for req, or nil. The copy carries the question as req
// spelled it, and TTLs aged by the time in the cache and no longer than the cache keeps it.
func (c *cache) get(k cacheKey, req *miekg.Msg, now time.Time) *miekg.Msg {
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !now.Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	m := e.msg.Copy()
	m.Id = req.Id
	m.Question = append([]miekg.Question(nil), req.Question...)
	age := uint32(now.Sub(e.stored) / time.Second)
	left := uint32((e.expires.Sub(now) + time.Second - 1) / time.Second)
	qname := req.Question[0].Name
	for _, sec := range [][]miekg.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == miekg.TypeOPT {
				continue
			}
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
			h.Ttl = min(h.Ttl, left) // not longer than this cache keeps the answer
			if strings.EqualFold(h.Name, qname) {
				h.Name = qname // keep the client's spelling (0x20 case randomization)
			}
		}
	}
	return m
}

// put stores m under k if it may be cached.
func (c *cache) put(k cacheKey, m *miekg.Msg, now time.Time) {
	ttl, ok := cacheTTL(m)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.entries[k]; !exists && len(c.entries) >= c.max {
		for key, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, key)
			}
		}
		for key := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, key) // map order is random: a random eviction
		}
	}
	c.entries[k] = cacheEntry{msg: m.Copy(), stored: now, expires: now.Add(ttl)}
}

// cacheTTL says how long m may be cached: positive answers for their smallest TTL, negative ones
// (NXDOMAIN, NODATA) for the SOA's negative TTL; truncated answers and failures are not cached.
func cacheTTL(m *miekg.Msg) (time.Duration, bool) {
	if m.Truncated || (m.Rcode != miekg.RcodeSuccess && m.Rcode != miekg.RcodeNameError) {
		return 0, false
	}
	if m.Rcode == miekg.RcodeSuccess && len(m.Answer) > 0 {
		lowest := uint32(0)
		first := true
		for _, sec := range [][]miekg.RR{m.Answer, m.Ns} {
			for _, rr := range sec {
				if t := rr.Header().Ttl; first || t < lowest {
					lowest, first = t, false
				}
			}
		}
		ttl := time.Duration(lowest) * time.Second
		if ttl <= 0 {
			return 0, false
		}
		return min(ttl, cacheMaxTTL), true
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*miekg.SOA); ok {
			t := soa.Hdr.Ttl
			if soa.Minttl < t {
				t = soa.Minttl
			}
			ttl := time.Duration(t) * time.Second
			if ttl <= 0 {
				return 0, false
			}
			return min(ttl, cacheMaxNegative), true
		}
	}
	return 0, false
}
