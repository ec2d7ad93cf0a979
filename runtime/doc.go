// Package runtime runs a node's pods. Its subpackages hold the parts: image stores OCI images
// content-addressed and unpacks each layer once; libct runs containers through runc's libcontainer,
// each under a small shim process so that containers outlive the daemon.
package runtime
