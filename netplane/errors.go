package netplane

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
)

// ErrNotSupported is matched (errors.Is) by the errors of Open when the kernel lacks a feature
// the network plane needs. The error is a *NotSupportedError that names the feature.
var ErrNotSupported = errors.New("not supported by this kernel")

// ErrClosed is returned by the methods of a plane after Close.
var ErrClosed = errors.New("the network plane is closed")

// NotSupportedError says which kernel feature the network plane is missing.
type NotSupportedError struct {
	// Feature names what is missing, e.g. "eBPF cgroup socket address programs".
	Feature string
	// Needs says what provides it, e.g. "Linux 6.5 or newer".
	Needs string
	// Err is what the check or the kernel reported; it matches ebpf.ErrNotSupported.
	Err error
}

func (e *NotSupportedError) Error() string {
	return fmt.Sprintf("this kernel does not support %s (%v): the network plane needs %s; run the daemon on such a kernel, "+
		"or start it with --pod-network none (pods then have only loopback and Services do not work)", e.Feature, e.Err, e.Needs)
}

// Is makes errors.Is(err, ErrNotSupported) hold.
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }

func (e *NotSupportedError) Unwrap() error { return e.Err }

// feature is a kernel feature and how to check for it.
type feature struct {
	name  string
	needs string
	check func() error
}

// Kernel features the socket load balancer (lb) and the node port programs (nodeport) need.
var (
	lbFeatures = []feature{
		{"eBPF cgroup socket address programs (cgroup/connect4, sendmsg4, recvmsg4, getpeername4)", "Linux 4.17 or newer with CONFIG_CGROUP_BPF",
			func() error { return features.HaveProgramType(ebpf.CGroupSockAddr) }},
		{"eBPF LRU hash maps", "Linux 4.10 or newer", func() error { return features.HaveMapType(ebpf.LRUHash) }},
		{"eBPF tracing programs (the UDP socket iterator)", "Linux 5.8 or newer",
			func() error { return features.HaveProgramType(ebpf.Tracing) }},
		{"BTF type information of the kernel (/sys/kernel/btf/vmlinux)", "a kernel built with CONFIG_DEBUG_INFO_BTF",
			func() error { _, err := btf.LoadKernelSpec(); return err }},
		{"the bpf_sock_destroy kfunc (closing UDP sockets of removed backends)", "Linux 6.5 or newer", haveSockDestroy},
	}
	nodePortFeatures = []feature{
		{"eBPF traffic control programs (sched_cls)", "Linux 6.6 or newer with CONFIG_NET_CLS_BPF",
			func() error { return features.HaveProgramType(ebpf.SchedCLS) }},
		{"eBPF LRU hash maps", "Linux 4.10 or newer", func() error { return features.HaveMapType(ebpf.LRUHash) }},
	}
)

// haveSockDestroy looks for the kfunc bpf_sock_destroy in the kernel's BTF.
func haveSockDestroy() error {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return err
	}
	var fn *btf.Func
	err = spec.TypeByName("bpf_sock_destroy", &fn)
	if errors.Is(err, btf.ErrNotFound) {
		return fmt.Errorf("no bpf_sock_destroy in the kernel's BTF: %w", ebpf.ErrNotSupported)
	}
	return err
}

// checkFeatures returns a *NotSupportedError for the first feature the kernel lacks. A check
// that cannot run (no permission, say) is no verdict: what fails then is reported by Open.
func checkFeatures(fs []feature) error {
	for _, f := range fs {
		if err := f.check(); errors.Is(err, ebpf.ErrNotSupported) {
			return &NotSupportedError{Feature: f.name, Needs: f.needs, Err: err}
		}
	}
	return nil
}

// classify turns an error that says the kernel lacks something (ebpf.ErrNotSupported) into a
// *NotSupportedError for feature; other errors are returned as they are.
func classify(err error, name, needs string) error {
	if err == nil || !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	var ns *NotSupportedError
	if errors.As(err, &ns) {
		return err
	}
	return &NotSupportedError{Feature: name, Needs: needs, Err: err}
}
