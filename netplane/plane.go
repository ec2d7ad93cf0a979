package netplane

import "context"

// Plane is a node's network plane, driven declaratively: the caller keeps the whole desired
// state in a Config and hands it to Set whenever any part of it changes. Kernel is the real
// plane, Fake an in-memory one with the same rules; netplanetest checks both.
//
// Set may be called any number of times and is idempotent: it converges the plane to exactly
// the Config (adds, changes, removes), and a Set with the Config it holds changes nothing. What
// it leaves out by rule, refuses as invalid or fails to apply is listed in the Result, and the
// rest is applied; the error is non-nil only when something failed (Result.Failed, or reading
// what the plane holds), and a later Set tries it again. State reads back what the plane holds.
//
// The methods are safe for concurrent use; Sets are serialized. After Close the methods return
// ErrClosed.
type Plane interface {
	Set(ctx context.Context, c Config) (Result, error)
	State(ctx context.Context) (State, error)
	Close() error
}
