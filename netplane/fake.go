package netplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/shoal-dev/shoal/netplane/podnet"
)

// FakeOptions describe the node a Fake plays.
type FakeOptions struct {
	// PodCIDR and ServiceCIDR are the node's, for checking routes; defaults 10.244.0.0/24 and
	// podnet.DefaultServiceCIDR.
	PodCIDR     netip.Prefix
	ServiceCIDR netip.Prefix
	// NodePorts is set for a node with a node interface: one that opens node ports and
	// LoadBalancer ports.
	NodePorts bool
}

// Fake is an in-memory Plane for tests of its callers. It plans as Kernel does (the same
// normalization, the same rules for what is skipped and refused, the same choice among host
// ports) and holds what it would program; SetFault makes parts of a Set fail. Its methods are
// safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	node   node
	state  State
	hosts  []podnet.HostPort // accepted, in the pod network's form
	faults map[Kind]error
	sets   int
	closed bool
}

var _ Plane = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake(o FakeOptions) *Fake {
	if !o.PodCIDR.IsValid() {
		o.PodCIDR = netip.MustParsePrefix("10.244.0.0/24")
	}
	if !o.ServiceCIDR.IsValid() {
		o.ServiceCIDR = podnet.DefaultServiceCIDR
	}
	return &Fake{node: node{podCIDR: o.PodCIDR.Masked(), serviceCIDR: o.ServiceCIDR.Masked(), nodePorts: o.NodePorts}, faults: map[Kind]error{}}
}

// SetFault makes the following Sets fail to apply the parts of kind (KindService for the
// virtual IPs, KindNodePort for the ports of the node's address, KindRoute, KindHostPort,
// KindDNS) with err, keeping what the plane held of them; a nil err clears the fault.
func (f *Fake) SetFault(kind Kind, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.faults, kind)
		return
	}
	f.faults[kind] = err
}

// Sets returns how many times Set was called.
func (f *Fake) Sets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sets
}

// Set makes the fake hold c (see Plane).
func (f *Fake) Set(ctx context.Context, c Config) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Result{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	f.sets++
	p := plan(c, f.node)
	res := p.res
	var errs []error
	apply := func(kind Kind, set func()) {
		if err := f.faults[kind]; err != nil {
			res.Failed = append(res.Failed, Problem{Kind: kind, Reason: err.Error()})
			errs = append(errs, err)
			return
		}
		set()
	}
	apply(KindDNS, func() { f.state.DNS = p.want.DNS })
	apply(KindService, func() { f.state.Frontends = p.want.Frontends })
	apply(KindNodePort, func() { f.state.NodePorts = p.want.NodePorts })
	apply(KindRoute, func() { f.state.Routes = p.want.Routes })
	apply(KindHostPort, func() {
		accepted, refused := podnet.ResolveHostPorts(f.hosts, toPodnet(c.HostPorts))
		f.hosts = accepted
		f.state.HostPorts = fromPodnet(accepted)
		res.Refused = append(res.Refused, hostPortProblems(refused)...)
	})
	if len(errs) > 0 {
		return res, fmt.Errorf("set network plane: %w", errors.Join(errs...))
	}
	return res, nil
}

// State returns what the fake holds.
func (f *Fake) State(ctx context.Context) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return State{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	st := f.state
	st.Frontends = slices.Clone(st.Frontends)
	st.NodePorts = slices.Clone(st.NodePorts)
	st.Routes = slices.Clone(st.Routes)
	st.HostPorts = slices.Clone(st.HostPorts)
	st.DNS = slices.Clone(st.DNS)
	return st, nil
}

// Close makes the other methods return ErrClosed.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}
