package libct

import (
	"os"

	// The device controller support of the cgroup managers (device rules).
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	// nsenter runs before the Go runtime in "init" re-executions to join namespaces.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// Main handles the re-executions of the current binary that this package makes:
// "<binary> init" (libcontainer's container init) and "<binary> shim <dir>" (the
// per-container shim). Call it first thing in main, and in TestMain of tests that start
// containers; it never returns for those invocations. For every other invocation it
// returns false at once and the program continues normally.
func Main() (handled bool) {
	if len(os.Args) < 2 {
		return false
	}
	switch os.Args[1] {
	case "init":
		if os.Getenv("_LIBCONTAINER_INITPIPE") == "" {
			return false // not started by libcontainer: let the program handle "init"
		}
		libcontainer.Init() // does not return
		os.Exit(255)
	case "shim":
		if len(os.Args) != 3 {
			os.Stderr.WriteString("usage: shoal shim STATE-DIR (started by the daemon, not by hand)\n")
			os.Exit(2)
		}
		os.Exit(runShim(os.Args[2]))
	}
	return false
}
