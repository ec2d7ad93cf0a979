package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Member is one member of the store's etcd cluster.
type Member struct {
	ID         uint64
	Name       string // empty until the member has started
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// Started reports whether the member has started and published its name.
func (m Member) Started() bool { return m.Name != "" }

// ErrTooManyLearners is returned by AddLearner while another member is still catching up: try
// again once it has been promoted.
var ErrTooManyLearners = errors.New("another store member is still joining")

// Members lists the store's members, ordered by name.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	resp, err := c.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the store's members: %w", err)
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AddLearner adds a member that does not vote until it is promoted, so that a member which
// never starts or is slow to catch up costs the cluster no quorum. It returns the new member's
// id and the members afterwards.
func (c *Client) AddLearner(ctx context.Context, peerURL string) (uint64, []Member, error) {
	resp, err := c.cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		if errors.Is(err, rpctypes.ErrGRPCTooManyLearners) || strings.Contains(err.Error(), rpctypes.ErrGRPCTooManyLearners.Error()) {
			return 0, nil, ErrTooManyLearners
		}
		return 0, nil, fmt.Errorf("add a store member at %s: %w", peerURL, err)
	}
	var out []Member
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	return resp.Member.ID, out, nil
}

// ErrNotLearner is returned by Promote for a member that votes already.
var ErrNotLearner = errors.New("the store member votes already")

// Promote makes a learner a voting member. etcd refuses while the learner is behind the
// leader's log; callers retry.
func (c *Client) Promote(ctx context.Context, id uint64) error {
	if _, err := c.cli.MemberPromote(ctx, id); err != nil {
		if errors.Is(err, rpctypes.ErrMemberNotLearner) || err.Error() == rpctypes.ErrMemberNotLearner.Error() {
			return ErrNotLearner
		}
		return fmt.Errorf("promote store member %x: %w", id, err)
	}
	return nil
}

// RemoveMember removes a member from the store's cluster.
func (c *Client) RemoveMember(ctx context.Context, id uint64) error {
	if _, err := c.cli.MemberRemove(ctx, id); err != nil {
		return fmt.Errorf("remove store member %x: %w", id, err)
	}
	return nil
}

// UpdatePeerURLs changes where the other members reach member id.
func (c *Client) UpdatePeerURLs(ctx context.Context, id uint64, urls []string) error {
	if _, err := c.cli.MemberUpdate(ctx, id, urls); err != nil {
		return fmt.Errorf("update store member %x: %w", id, err)
	}
	return nil
}

// SyncEndpoints sets the client's endpoints to the client URLs the members advertise, so that
// it follows members that join and leave. It keeps the current endpoints when none are
// advertised.
func (c *Client) SyncEndpoints(ctx context.Context) ([]string, error) {
	if err := c.cli.Sync(ctx); err != nil {
		return nil, fmt.Errorf("sync the store's endpoints: %w", err)
	}
	return c.cli.Endpoints(), nil
}

// MemberHealth is what HandOffLeadership needs to know of a member's node.
type MemberHealth int

const (
	// MemberDown means the member's node is not running.
	MemberDown MemberHealth = iota
	// MemberStarting means the node runs but started moments ago; its member may still be catching
	// up, and a leadership handed to it would stall writes until it has.
	MemberStarting
	// MemberSettled means the node has run for a while.
	MemberSettled
)

// HandOffLeadership makes another voting member lead the store when the member behind the
// client's first endpoint leads it and every other member's node runs, to a member whose node
// has run for a while (health reports both): a leadership handed to a member that is down or
// behind stalls every write until the transfer ends, and any new leader renews every lease,
// those of nodes that are down included. It reports whether it moved
// the leadership. The master's node calls it so that losing that node
// never also costs a store election: a new store leader renews every lease by an election
// timeout, which would delay the failover by that much.
func (c *Client) HandOffLeadership(ctx context.Context, health func(name string) MemberHealth) (bool, error) {
	eps := c.cli.Endpoints()
	if len(eps) == 0 {
		return false, nil
	}
	st, err := c.cli.Status(ctx, eps[0])
	if err != nil {
		return false, fmt.Errorf("store status: %w", err)
	}
	self := st.Header.MemberId
	if st.Leader != self {
		return false, nil
	}
	members, err := c.Members(ctx)
	if err != nil {
		return false, err
	}
	var to *Member
	for i, m := range members {
		if m.ID == self {
			continue
		}
		h := health(m.Name)
		if !m.Started() || m.Learner || h == MemberDown {
			// A member is down or joining: a new store leader would renew the leases of the
			// nodes that are down too, and delay moving their pods. Stay until all are back.
			return false, nil
		}
		if to == nil && h == MemberSettled {
			to = &members[i]
		}
	}
	if to == nil {
		return false, nil
	}
	if _, err := c.cli.MoveLeader(ctx, to.ID); err != nil {
		return false, fmt.Errorf("hand the store's leadership to %s: %w", to.Name, err)
	}
	return true, nil
}

// StoreLeader returns the name of the member that leads the store, as the member behind the
// client's first endpoint sees it ("" while there is none).
func (c *Client) StoreLeader(ctx context.Context) (string, error) {
	eps := c.cli.Endpoints()
	if len(eps) == 0 {
		return "", nil
	}
	st, err := c.cli.Status(ctx, eps[0])
	if err != nil {
		return "", fmt.Errorf("store status: %w", err)
	}
	members, err := c.Members(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if m.ID == st.Leader {
			return m.Name, nil
		}
	}
	return "", nil
}
