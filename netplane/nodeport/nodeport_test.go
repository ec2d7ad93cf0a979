package nodeport

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/netplane/internal/bpffs"
	"github.com/shoal-dev/shoal/netplane/internal/slots"
)

const nodePort = 30080

var (
	backend1 = netip.MustParseAddrPort(fmt.Sprintf("%s:%d", pod1IP, podPort))
	backend2 = netip.MustParseAddrPort(fmt.Sprintf("%s:%d", pod2IP, podPort))
	node1    = netip.MustParseAddr(node1IP)
)

// openNode1 opens NodePort on node1's external interface.
func openNode1(t *testing.T, tp *topo, pinDir string) *NodePort {
	t.Helper()
	np, err := Open(Config{Interface: extIf, NodeIP: node1, PinDir: pinDir, NetNS: tp.node1})
	if err != nil {
		t.Fatal(err)
	}
	return np
}

// dialTCP opens a client connection to node1:port from the client's
// namespace.
func dialTCP(t *testing.T, tp *topo, port int, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := inNetNS(tp.client, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", net.JoinHostPort(node1IP, strconv.Itoa(port)), timeout)
		return err
	})
	return c, err
}

// tcpFlow opens a connection and does rounds round-trips on it.
func tcpFlow(t *testing.T, tp *topo, port, rounds int) ([]reply, error) {
	t.Helper()
	c, err := dialTCP(t, tp, port, 3*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	var out []reply
	for i := 0; i < rounds; i++ {
		if _, err := fmt.Fprintf(c, "hello %d\n", i); err != nil {
			return out, err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return out, err
		}
		rep, err := parseReply(line)
		if err != nil {
			return out, err
		}
		out = append(out, rep)
	}
	return out, nil
}

// udpSocket is an unconnected UDP socket in the client's namespace.
func udpSocket(t *testing.T, tp *topo) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	do(t, tp.client, func() error {
		var err error
		pc, err = net.ListenPacket("udp4", clientIP+":0")
		return err
	})
	t.Cleanup(func() { pc.Close() })
	return pc
}

// udpAsk sends one datagram to node1:port and returns the answer and the
// address it came from.
func udpAsk(pc net.PacketConn, port int, timeout time.Duration) (reply, string, error) {
	to := &net.UDPAddr{IP: net.ParseIP(node1IP), Port: port}
	if _, err := pc.WriteTo([]byte("q"), to); err != nil {
		return reply{}, "", err
	}
	_ = pc.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 512)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		return reply{}, "", err
	}
	rep, err := parseReply(string(buf[:n]))
	return rep, from.String(), err
}

// wantPeer is the client address a backend must see: the client's own for
// a pod on node1, node1's (source NAT) for a pod on node2.
func wantPeer(id string) string {
	if id == "pod2" {
		return node1IP
	}
	return clientIP
}

// checkTCP makes n connections of several round trips each and checks that
// each sticks to one backend and that they alternate between both.
func checkTCP(t *testing.T, tp *topo, n int) {
	t.Helper()
	count := map[string]int{}
	for i := 0; i < n; i++ {
		reps, err := tcpFlow(t, tp, nodePort, 3)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		for _, r := range reps {
			if r.ID != reps[0].ID {
				t.Fatalf("connection %d switched backends: %v", i, reps)
			}
			if r.Peer != wantPeer(r.ID) {
				t.Errorf("connection %d: %s saw the client as %s, want %s", i, r.ID, r.Peer, wantPeer(r.ID))
			}
		}
		count[reps[0].ID]++
	}
	if count["pod1"] != n/2 || count["pod2"] != n/2 {
		t.Errorf("connections per backend = %v, want %d each (round-robin)", count, n/2)
	}
}

func TestNodePort(t *testing.T) {
	requireRoot(t)
	tp := newTopo(t)
	pinDir := filepath.Join(bpffs.Root, fmt.Sprintf("shoal-test-nodeport-%d", os.Getpid()))
	t.Cleanup(func() { _ = os.RemoveAll(pinDir) })
	np := openNode1(t, tp, pinDir)
	t.Cleanup(func() {
		if np.closed {
			var err error
			if np, err = Open(Config{Interface: extIf, NodeIP: node1, PinDir: pinDir, NetNS: tp.node1}); err != nil {
				t.Errorf("cleanup: %v", err)
				return
			}
		}
		if err := np.Remove(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
			t.Errorf("pin dir %s still there after Remove: %v", pinDir, err)
		}
	})
	ctx := context.Background()
	svcs := []Service{
		{NodePort: nodePort, Proto: TCP, Backends: []netip.AddrPort{backend1, backend2}},
		{NodePort: nodePort, Proto: UDP, Backends: []netip.AddrPort{backend1, backend2}},
		{NodePort: nodePort + 1, Proto: TCP},
		{NodePort: nodePort + 1, Proto: UDP},
	}
	for _, s := range svcs {
		if err := np.Upsert(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("services", func(t *testing.T) {
		got, err := np.Services()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, svcs) {
			t.Errorf("Services() = %v, want %v", got, svcs)
		}
	})

	t.Run("tcp round-robin and sticky", func(t *testing.T) {
		checkTCP(t, tp, 6)
	})

	t.Run("tcp long-lived connections keep their backend", func(t *testing.T) {
		// Two connections open at once, interleaved.
		var conns []net.Conn
		var readers []*bufio.Reader
		for i := 0; i < 2; i++ {
			c, err := dialTCP(t, tp, nodePort, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			conns = append(conns, c)
			readers = append(readers, bufio.NewReader(c))
		}
		first := make([]string, 2)
		for round := 0; round < 5; round++ {
			for i, c := range conns {
				if _, err := fmt.Fprintln(c, "ping"); err != nil {
					t.Fatal(err)
				}
				line, err := readers[i].ReadString('\n')
				if err != nil {
					t.Fatalf("connection %d round %d: %v", i, round, err)
				}
				rep, err := parseReply(line)
				if err != nil {
					t.Fatal(err)
				}
				if round == 0 {
					first[i] = rep.ID
				} else if rep.ID != first[i] {
					t.Fatalf("connection %d moved from %s to %s", i, first[i], rep.ID)
				}
			}
		}
		if first[0] == first[1] {
			t.Errorf("two consecutive connections both went to %s, want one per backend", first[0])
		}
	})

	t.Run("udp", func(t *testing.T) {
		count := map[string]int{}
		for i := 0; i < 4; i++ {
			pc := udpSocket(t, tp)
			var id string
			for j := 0; j < 3; j++ {
				rep, from, err := udpAsk(pc, nodePort, 3*time.Second)
				if err != nil {
					t.Fatalf("flow %d datagram %d: %v", i, j, err)
				}
				if want := fmt.Sprintf("%s:%d", node1IP, nodePort); from != want {
					t.Errorf("reply came from %s, want %s", from, want)
				}
				if rep.Peer != wantPeer(rep.ID) {
					t.Errorf("%s saw the client as %s, want %s", rep.ID, rep.Peer, wantPeer(rep.ID))
				}
				if j == 0 {
					id = rep.ID
				} else if rep.ID != id {
					t.Fatalf("flow %d moved from %s to %s", i, id, rep.ID)
				}
			}
			count[id]++
		}
		if count["pod1"] != 2 || count["pod2"] != 2 {
			t.Errorf("flows per backend = %v, want 2 each", count)
		}
	})

	t.Run("no backends: dropped", func(t *testing.T) {
		_, err := dialTCP(t, tp, nodePort+1, 1500*time.Millisecond)
		if err == nil || !isTimeout(err) {
			t.Errorf("TCP connect to a NodePort without backends: %v, want a timeout (packets dropped)", err)
		}
		pc := udpSocket(t, tp)
		if _, _, err := udpAsk(pc, nodePort+1, time.Second); err == nil || !isTimeout(err) {
			t.Errorf("UDP to a NodePort without backends: %v, want no answer", err)
		}
	})

	t.Run("backend removed", func(t *testing.T) {
		if err := np.Upsert(ctx, Service{NodePort: nodePort, Proto: UDP, Backends: []netip.AddrPort{backend2}}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			rep, _, err := udpAsk(udpSocket(t, tp), nodePort, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if rep.ID != "pod2" {
				t.Errorf("answer from %s after it was removed", rep.ID)
			}
		}
		if err := np.Upsert(ctx, svcs[1]); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("source NAT port clash", func(t *testing.T) {
		// Two clients use the same source port towards a backend on node2:
		// node1 cannot give both its own address and that port.
		const port = nodePort + 2
		svc := Service{NodePort: port, Proto: TCP, Backends: []netip.AddrPort{backend2}}
		if err := np.Upsert(ctx, svc); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := np.Delete(ctx, port, TCP); err != nil {
				t.Error(err)
			}
		}()
		const client2IP = "192.168.251.101"
		setupLink(t, tp.client, extIf, client2IP+"/24", "")
		var conns []net.Conn
		for _, src := range []string{clientIP, client2IP} {
			var c net.Conn
			do(t, tp.client, func() error {
				d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src), Port: 40000}}
				var err error
				c, err = d.Dial("tcp4", net.JoinHostPort(node1IP, strconv.Itoa(port)))
				return err
			})
			defer c.Close()
			conns = append(conns, c)
		}
		for round := 0; round < 3; round++ {
			for i, c := range conns {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := fmt.Fprintln(c, "ping"); err != nil {
					t.Fatal(err)
				}
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					t.Fatalf("client %d round %d: %v", i, round, err)
				}
				if rep, err := parseReply(line); err != nil || rep.ID != "pod2" || rep.Peer != node1IP {
					t.Fatalf("client %d round %d: reply %q (%v), want pod2 seeing %s", i, round, line, err, node1IP)
				}
			}
		}
		snat := map[uint16]bool{}
		var (
			key nodeportNp4Tuple
			val nodeportNp4Ct
		)
		it := np.objs.Np4Ct.Iterate()
		for it.Next(&key, &val) {
			if slots.Ntohs(key.Dport) == port && val.Flags&flagSNAT != 0 {
				snat[slots.Ntohs(val.SnatPort)] = true
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if len(snat) != 2 || !snat[40000] {
			t.Errorf("source NAT ports = %v, want 40000 and one other", snat)
		}
	})

	t.Run("close and open keep translating", func(t *testing.T) {
		if err := np.Close(); err != nil {
			t.Fatal(err)
		}
		if err := np.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := np.Services(); err != ErrClosed {
			t.Errorf("Services after Close: %v, want ErrClosed", err)
		}
		// The pinned programs work without any process holding them.
		if _, err := tcpFlow(t, tp, nodePort, 2); err != nil {
			t.Fatalf("while closed: %v", err)
		}
		np = openNode1(t, tp, pinDir)
		got, err := np.Services()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(svcs) {
			t.Fatalf("after reopen: %d services, want %d", len(got), len(svcs))
		}
		// The round-robin position moved on; six more connections still
		// split evenly.
		checkTCP(t, tp, 6)
	})

	t.Run("delete stops translation", func(t *testing.T) {
		if err := np.Delete(ctx, nodePort, TCP); err != nil {
			t.Fatal(err)
		}
		if err := np.Delete(ctx, nodePort, TCP); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		_, err := dialTCP(t, tp, nodePort, 2*time.Second)
		if err == nil {
			t.Fatal("connected to a deleted NodePort")
		}
		if !strings.Contains(err.Error(), "refused") {
			t.Errorf("connect to a deleted NodePort: %v, want connection refused (node1 has no listener)", err)
		}
		// UDP still works.
		if _, _, err := udpAsk(udpSocket(t, tp), nodePort, 3*time.Second); err != nil {
			t.Errorf("UDP NodePort after deleting the TCP one: %v", err)
		}
	})
}
