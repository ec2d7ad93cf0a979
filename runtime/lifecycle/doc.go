// Package lifecycle runs a node's pods the way the kubelet does, over a container driver: init
// containers to completion in order, sidecars (init containers with restartPolicy Always) started
// in their turn and kept running beside the app containers, then the app containers; postStart
// and preStop hooks; restart policies with Kubernetes' crash-loop backoff; liveness, readiness
// and startup probes (exec, httpGet, tcpSocket, grpc) with Kubernetes' timing; graceful stop, in
// Kubernetes' order, within the grace period; termination messages; a truthful status per pod;
// and the CPU time and memory working set of the pods' running containers. The driver does the work on the machine (libcontainer in production, an in-memory
// simulation in tests), so this package holds no kernel code.
package lifecycle
