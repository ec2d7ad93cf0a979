package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	miekg "github.com/miekg/dns"
)

const (
	// advertisedUDPSize is the EDNS0 buffer size the server announces (the DNS flag day value that
	// avoids IP fragmentation).
	advertisedUDPSize = 1232
	// readBufferSize is the size of the buffer UDP queries are read into.
	readBufferSize = 4096
	// shutdownGrace bounds how long Run waits for queries in flight after ctx ends.
	shutdownGrace = 5 * time.Second
)

// Server is the DNS server of one node. Create it with New, keep its records current with Update
// and serve with Run. Update, Addrs and the query path are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	zone   atomic.Pointer[zone] // nil until the first Update
	fwd    *forwarder
	rotate atomic.Uint32 // start offset of multi-address answers
	udp    []net.PacketConn
	tcp    []net.Listener
	addrs  []net.Addr

	updateMu sync.Mutex // serializes Update (the build, not the readers)
	serial   uint32     // guarded by updateMu

	mu    sync.Mutex
	state int // guarded by mu: stateNew, stateRunning, stateDone

	// baseCtx is written by Run before the listeners start and only read after: forwarded
	// queries end with it.
	baseCtx context.Context
}

const (
	stateNew = iota
	stateRunning
	stateDone
)

// New binds the listen addresses (UDP and TCP on each) and returns a Server that answers once Run
// is called. Cluster names get SERVFAIL until the first Update, so that clients retry instead of
// remembering a negative answer given before the server knew the Services. When Config.Upstreams
// is empty the nameservers of the node's resolv.conf are used; the server's own addresses are
// removed from the upstreams (forwarding to itself would loop). A Server that is never Run must be
// released with Close.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	for _, addr := range cfg.Listen {
		if err := s.bind(addr); err != nil {
			s.closeSockets()
			return nil, err
		}
	}
	ups := cfg.Upstreams
	if len(ups) == 0 {
		ups, err = readResolvConf(cfg.ResolvConf)
		if err != nil {
			s.log.Warn("dns: cannot read the node's upstream servers", "error", err)
		}
	}
	ups, dropped := dropLoops(ups, s.addrs)
	if len(dropped) > 0 {
		s.log.Warn("dns: not forwarding to this server's own addresses", "dropped", dropped)
	}
	if len(ups) == 0 {
		s.log.Warn("dns: no upstream servers, names outside the cluster domain get SERVFAIL; "+
			"set the upstream servers in the DNS config or add nameserver lines to the resolv.conf", "resolv_conf", cfg.ResolvConf)
	}
	s.fwd = newForwarder(ups, cfg.UpstreamTimeout, s.log)
	return s, nil
}

// bind opens UDP and TCP on addr. With port 0 the TCP socket takes the port UDP got.
func (s *Server) bind(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dns listen address %q: write it as ip:port, for example 10.244.1.1:53: %w", addr, err)
	}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("dns listen udp %s: %w (is another DNS server using the port?)", addr, err)
		}
		tcpAddr := addr
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		ln, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			pc.Close()
			lastErr = err
			if port == "0" {
				continue // another process holds the TCP side of that port: pick another one
			}
			break
		}
		s.udp = append(s.udp, pc)
		s.tcp = append(s.tcp, ln)
		s.addrs = append(s.addrs, pc.LocalAddr(), ln.Addr())
		return nil
	}
	return fmt.Errorf("dns listen tcp %s: %w (is another DNS server using the port?)", addr, lastErr)
}

func (s *Server) closeSockets() {
	for _, pc := range s.udp {
		pc.Close()
	}
	for _, ln := range s.tcp {
		ln.Close()
	}
}

// Addrs returns the bound addresses: for each listen address its UDP and then its TCP address.
func (s *Server) Addrs() []net.Addr {
	return append([]net.Addr(nil), s.addrs...)
}

// Update replaces the whole set of Services. Queries in flight finish with the set they started
// with; the next query sees the new set. Services whose namespace or name is not a DNS label are
// left out (and logged). Update may be called from any goroutine, as often as the set changes.
func (s *Server) Update(services []Service) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	s.serial++
	z, skipped := buildZone(s.cfg.Domain, s.serial, services)
	s.zone.Store(z)
	if skipped > 0 {
		s.log.Warn("dns: services with names that are not DNS labels are not served", "skipped", skipped)
	}
}

// Services returns the Services the server answers for: those of the last Update, as Normalize
// keeps them; nil before the first Update.
func (s *Server) Services() []Service {
	z := s.zone.Load()
	if z == nil {
		return nil
	}
	return slices.Clone(z.services)
}

// Close releases the sockets of a Server that was never Run. Run releases them itself when it
// returns; Close after Run has started does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateNew {
		s.state = stateDone
		s.closeSockets()
	}
	return nil
}

// Run serves queries until ctx ends, then stops accepting queries, waits a few seconds at most for
// the ones in flight and releases the sockets. It returns nil after ctx ends, or the error that
// stopped a listener. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateNew {
		s.mu.Unlock()
		return errors.New("dns: Run called on a server that already ran or was closed; create a new one with New")
	}
	s.state = stateRunning
	baseCtx, cancelBase := context.WithCancel(ctx)
	defer cancelBase()
	s.baseCtx = baseCtx
	s.mu.Unlock()

	handler := miekg.HandlerFunc(s.serveDNS)
	servers := make([]*miekg.Server, 0, len(s.udp)+len(s.tcp))
	for _, pc := range s.udp {
		servers = append(servers, &miekg.Server{PacketConn: pc, Handler: handler, UDPSize: readBufferSize,
			MsgAcceptFunc: acceptMsg})
	}
	for _, ln := range s.tcp {
		servers = append(servers, &miekg.Server{Listener: ln, Handler: handler, MsgAcceptFunc: acceptMsg})
	}

	stop := make(chan struct{})
	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- serveUntil(srv, stop)
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		if runErr != nil {
			runErr = fmt.Errorf("dns serve: %w", runErr)
		}
	}
	cancelBase() // forwarded queries in flight end now
	close(stop)
	wg.Wait()
	s.closeSockets()
	s.mu.Lock()
	s.state = stateDone
	s.mu.Unlock()
	return runErr
}

// serveUntil runs srv until stop is closed or it fails.
func serveUntil(srv *miekg.Server, stop <-chan struct{}) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case err := <-done:
		return err
	case <-started:
	}
	select {
	case err := <-done:
		return err
	case <-stop:
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = srv.ShutdownContext(ctx) // only fails on timeout; the sockets are closed either way
		return <-done
	}
}

// acceptMsg lets queries of any opcode through so that the answer can say NOTIMP; it ignores
// responses and drops messages that are not one question.
func acceptMsg(dh miekg.Header) miekg.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return miekg.MsgIgnore
	}
	if dh.Qdcount != 1 || dh.Ancount > 1 || dh.Nscount > 1 || dh.Arcount > 2 {
		return miekg.MsgReject
	}
	return miekg.MsgAccept
}

// serveDNS answers one query on the wire.
func (s *Server) serveDNS(w miekg.ResponseWriter, req *miekg.Msg) {
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	m := s.reply(s.baseCtx, req, !isUDP)
	m.Compress = true
	if isUDP {
		fit(m, udpLimit(req))
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns: write answer", "to", w.RemoteAddr().String(), "error", err)
	}
}

// reply builds the answer to req. tcp says whether the query came over TCP (forwarded queries use
// the same transport).
func (s *Server) reply(ctx context.Context, req *miekg.Msg, tcp bool) *miekg.Msg {
	if req.Opcode != miekg.OpcodeQuery {
		return new(miekg.Msg).SetRcode(req, miekg.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return new(miekg.Msg).SetRcode(req, miekg.RcodeFormatError)
	}
	q := req.Question[0]
	p := parseName(q.Name, s.cfg.Domain)
	if p.kind == outside {
		return s.fwd.forward(ctx, req, tcp)
	}
	z := s.zone.Load()
	var m *miekg.Msg
	if z == nil {
		m = new(miekg.Msg).SetRcode(req, miekg.RcodeServerFailure)
		m.RecursionAvailable = true
	} else {
		m = s.answer(z, req, q, p)
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(advertisedUDPSize, opt.Do()) // the DO bit is echoed (RFC 3225)
	}
	return m
}

var emptyEntry = &entry{}

// answer answers a question about a cluster name from z.
func (s *Server) answer(z *zone, req *miekg.Msg, q miekg.Question, p parsedName) *miekg.Msg {
	m := new(miekg.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if q.Qclass != miekg.ClassINET && q.Qclass != miekg.ClassANY {
		m.Rcode = miekg.RcodeRefused
		return m
	}
	var e *entry
	switch p.kind {
	case podName:
		e = &entry{}
		e.addAddr(p.addr)
	case emptyName:
		e = emptyEntry
	default:
		e = z.lookup(p.key)
	}
	if e == nil {
		m.Rcode = miekg.RcodeNameError
		m.Ns = []miekg.RR{z.soa(negativeTTL)}
		return m
	}
	ttl := s.cfg.TTL
	switch q.Qtype {
	case miekg.TypeA:
		m.Answer = s.addrRecords(m.Answer, q.Name, e.a, ttl)
	case miekg.TypeAAAA:
		m.Answer = s.addrRecords(m.Answer, q.Name, e.aaaa, ttl)
	case miekg.TypeSRV:
		m.Answer, m.Extra = srvRecords(q.Name, e.srv, ttl)
	case miekg.TypeANY:
		m.Answer = s.addrRecords(m.Answer, q.Name, e.a, ttl)
		m.Answer = s.addrRecords(m.Answer, q.Name, e.aaaa, ttl)
		srv, _ := srvRecords(q.Name, e.srv, ttl)
		m.Answer = append(m.Answer, srv...)
	case miekg.TypeSOA:
		if p.kind == inZone && p.key == z.domain {
			soa := z.soa(ttl)
			soa.Hdr.Name = q.Name
			m.Answer = append(m.Answer, soa)
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []miekg.RR{z.soa(negativeTTL)}
	}
	return m
}

// addrRecords appends A or AAAA records for addrs, starting at a rotating offset so that clients
// that take the first address spread over the pods of a headless Service.
func (s *Server) addrRecords(rrs []miekg.RR, name string, addrs []netip.Addr, ttl uint32) []miekg.RR {
	n := len(addrs)
	if n == 0 {
		return rrs
	}
	start := 0
	if n > 1 {
		start = int(s.rotate.Add(1) % uint32(n))
	}
	for i := 0; i < n; i++ {
		rrs = append(rrs, addrRR(name, addrs[(start+i)%n], ttl))
	}
	return rrs
}

// srvRecords returns the SRV answers and the addresses of their targets.
func srvRecords(name string, srvs []srvRecord, ttl uint32) (answer, extra []miekg.RR) {
	if len(srvs) == 0 {
		return nil, nil
	}
	answer = make([]miekg.RR, 0, len(srvs))
	extra = make([]miekg.RR, 0, len(srvs))
	for _, r := range srvs {
		answer = append(answer, &miekg.SRV{
			Hdr:      miekg.RR_Header{Name: name, Rrtype: miekg.TypeSRV, Class: miekg.ClassINET, Ttl: ttl},
			Priority: 0, Weight: r.weight, Port: r.port, Target: r.target,
		})
		extra = append(extra, addrRR(r.target, r.addr, ttl))
	}
	return answer, extra
}

// addrRR returns the A or AAAA record of addr.
func addrRR(name string, addr netip.Addr, ttl uint32) miekg.RR {
	if addr.Is4() {
		a := addr.As4()
		return &miekg.A{Hdr: miekg.RR_Header{Name: name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: ttl},
			A: net.IP(a[:])}
	}
	a := addr.As16()
	return &miekg.AAAA{Hdr: miekg.RR_Header{Name: name, Rrtype: miekg.TypeAAAA, Class: miekg.ClassINET, Ttl: ttl},
		AAAA: net.IP(a[:])}
}

// udpLimit is the largest answer the client of req accepts over UDP.
func udpLimit(req *miekg.Msg) int {
	if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > miekg.MinMsgSize {
		return int(opt.UDPSize())
	}
	return miekg.MinMsgSize
}

// fit makes m fit in size bytes: it first drops the additional records (they are optional), then
// truncates the answer and sets TC so that the client retries over TCP.
func fit(m *miekg.Msg, size int) {
	if m.Len() <= size {
		return
	}
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == miekg.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	if m.Len() <= size {
		return
	}
	m.Truncate(size)
}
