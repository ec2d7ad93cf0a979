// Package lbbench measures Shoal's eBPF Service load balancer (package
// netplane/lb) against a direct connection and against kube-proxy's
// iptables mode, on one machine, entirely inside network namespaces and a
// cgroup v2 directory that the benchmarks create and remove.
//
// The package holds the parts of the comparison that are worth testing on
// their own: KubeProxyRules writes the nat table that kube-proxy's iptables
// mode programs for a set of services, Serve is the 1-byte echo backend and
// Load is the load generator (concurrent workers that connect, exchange one
// byte and close, recording each transaction's latency). The benchmarks
// themselves (BenchmarkConnect, BenchmarkProgram, BenchmarkProgramOne) need
// root; run them with
//
//	go test -tags seccomp -run '^$' -bench BenchmarkConnect -count 3 ./netplane/lb/lbbench/
//	go test -tags seccomp -run '^$' -bench BenchmarkProgram ./netplane/lb/lbbench/
//
// Each BenchmarkConnect sub-benchmark is one measurement in fresh
// namespaces; -count 3 repeats it so that the spread is visible.
//
// The iptables comparison needs the iptables-restore program (Debian package
// iptables; -lbbench.iptables-restore picks another one, such as
// iptables-legacy-restore); its rules are only ever loaded inside the
// benchmark's own network namespaces. -lbbench.duration sets how long each
// connection measurement runs (3s).
package lbbench
