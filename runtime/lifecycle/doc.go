// Package lifecycle runs a node's pods the way the kubelet does, over a container driver: init
// containers to completion in order, then the app containers; restart policies with Kubernetes'
// crash-loop backoff; liveness, readiness and startup probes with Kubernetes' timing; graceful
// stop; and a truthful status per pod. The driver does the work on the machine (libcontainer in
// production, an in-memory simulation in tests), so this package holds no kernel code.
package lifecycle
