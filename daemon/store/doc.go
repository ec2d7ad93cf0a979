// Package store is Shoal's shared cluster store: an embedded etcd server that lives in the
// node's data directory, a client for it or for an external etcd cluster, typed JSON helpers,
// leases that keep a node's registration alive, and the master election with fenced writes.
//
// The package is generic: it knows nothing of Shoal's key schema, which the daemon defines on
// top of it (see docs/store.md).
//
// Every value a [Client] starts in the background (registrations, leaderships, watches, leader
// observers) is stopped by its own Close or context and, at the latest, by [Client.Close].
package store
