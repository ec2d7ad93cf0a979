// Package daemon is the home of the shoal program: the command line (package cli), the binary's
// entry point (cmd/shoal) and build information (package buildinfo). Later parts of the node daemon
// — the shared store, git synchronisation and the HTTP API — live in subpackages beside them.
package daemon
