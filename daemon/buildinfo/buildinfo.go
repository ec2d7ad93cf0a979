// Package buildinfo reports which build of shoal is running: the release version, the git commit
// it was built from and the Go toolchain.
//
// Version and Commit are set at link time by the Makefile:
//
//	go build -ldflags "-X github.com/shoal-dev/shoal/daemon/buildinfo.Version=v0.1.0 \
//	    -X github.com/shoal-dev/shoal/daemon/buildinfo.Commit=$(git rev-parse HEAD)"
//
// A plain `go build` falls back to the VCS information the Go toolchain embeds, if any.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time; see the package documentation.
var (
	Version = "v0.0.0-dev"
	Commit  = ""
)

// Info describes one build of shoal.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build information of the running binary.
func Get() Info {
	info := Info{
		Version:   Version,
		Commit:    Commit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if info.Commit == "" {
		info.Commit = vcsRevision()
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// String renders the information the way `shoal version` prints it.
func (i Info) String() string {
	return fmt.Sprintf("shoal %s\ncommit: %s\ngo: %s %s\n", i.Version, i.Commit, i.GoVersion, i.Platform)
}

func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" && modified == "true" {
		rev += "-dirty"
	}
	return rev
}
