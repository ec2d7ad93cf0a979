// Package gitsync keeps a node's copy of the desired-state Git repository
// up to date and reads commits from it.
//
// A Syncer fetches one ref (a branch or a tag) of one repository into a bare
// clone on disk (Config.CacheDir). It fetches on a timer (Config.Poll with
// ±10 % jitter), when Trigger is called (webhooks, see WebhookHandler), and,
// for repositories on the local file system, as soon as the repository's refs
// change (fsnotify). Every change of the ref's commit is announced on Heads.
//
// A failed fetch is retried with exponential backoff (1 s up to 5 min) and
// never changes the last head: the daemon keeps what it has. Fetches are
// bounded: only the configured ref is fetched (no tags), a pack larger than
// Config.MaxPackSize is refused before it reaches the cache, and blobs larger
// than Config.MaxObjectSize cannot be opened.
//
// Commits are read from git objects, never from a worktree: Tree returns an
// fs.FS over a commit's tree in which symbolic links stay symbolic links (so
// the manifests loader refuses them) and submodules cannot be read. Commit,
// IsAncestor and Between describe history, so that the caller can accept only
// commits that move the applied state forward, and Verify checks the OpenPGP
// signature of every new commit.
//
// Signatures made with SSH keys (gpg.format=ssh) are not verified: the Git
// library Shoal uses verifies OpenPGP signatures only, so such commits are
// reported as not verifiable. Sign the desired-state commits with an OpenPGP
// key when signature checking is on.
package gitsync
