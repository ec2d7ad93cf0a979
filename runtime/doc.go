// Package runtime runs a node's pods. It defines the Runtime interface the node agent uses, and
// its subpackages hold the parts:
//
//   - lifecycle: pods as the kubelet runs them (init and sidecar containers, hooks, probes,
//     restarts with backoff, graceful stop, eviction, status, CPU and memory usage) over a
//     container driver.
//   - linux: the production driver: pod sandboxes, volumes, DNS and hosts files, images, and
//     containers through libct.
//   - libct: single containers through runc's libcontainer, each under a small shim process so
//     that containers outlive the daemon.
//   - image: the OCI image store (pulls, archive imports, layers unpacked once, garbage collection).
//   - fake: an in-memory driver for fast tests of everything above the runtime.
//   - runtimetest: the conformance suite that the fake and the real runtime both pass.
//   - imagetest: images and in-process registries built for tests and benchmarks.
package runtime
