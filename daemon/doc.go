// Package daemon is the home of the shoal program. Its subpackages:
//
//   - cmd/shoal: the binary's entry point.
//   - cli: the command line, a cobra command tree over the packages below.
//   - buildinfo: the version, commit and toolchain the binary was built from.
//   - node: the assembly of a node daemon from the parts below.
//   - membership: how a node becomes part of the cluster's store: founding, joining, its store
//     member and its credentials.
//   - store: the shared store (embedded etcd or an external cluster), leases, election and fenced writes.
//   - cluster: the cluster's records and keys, the master (commit acceptance, controllers, scheduling)
//     and the node agent (the pods placed on this node).
//   - gitsync: the node's copy of the desired-state repository, fetched, watched and read by commit.
//   - revision: a commit and a ref's head as gitsync hands them to the master, so that neither
//     links the other.
//   - pki: the cluster's certificate authority, node certificates and the join token.
//   - sealing: the cluster's Secrets encrypted in the store: the keyring the CA's holders open,
//     and Secrets sealed to the one node that runs their pod.
//   - join: admitting new nodes into a cluster and joining one.
//   - api and client: the daemon's HTTP API and the client the CLI talks to it with; api/wire is
//     what the two share, so that the client links nothing of the store.
//   - internal/sorted: a map listed in key order at the cost of a copy, for the store's mirrored
//     tables and the master's pods.
package daemon
