// Package revision holds what the daemon knows of a commit of the repository it follows, shared
// by the git syncer (package gitsync), which finds commits, and the master (package cluster),
// which applies them: a Commit's description and the Head a node saw its ref point to. It
// depends on nothing but the standard library, so that neither side links the other.
package revision

import "time"

// Commit describes one commit.
type Commit struct {
	SHA     string
	Author  string
	Email   string
	Message string // first line of the message
	Time    time.Time
	Parents []string
}

// Head is a commit the followed ref pointed to.
type Head struct {
	// SHA is the full hex name of the commit (a tag is peeled to its commit).
	SHA string
	// SeenAt is when this node first saw the ref at this commit.
	SeenAt time.Time
}
