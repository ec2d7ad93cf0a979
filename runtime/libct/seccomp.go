package libct

import (
	"errors"
	"fmt"
	"os"

	"github.com/opencontainers/runc/libcontainer/seccomp"
)

// ErrNoSeccomp means that containers cannot get their seccomp profile, because the binary was
// built without libseccomp or the kernel does not filter system calls.
var ErrNoSeccomp = errors.New("seccomp is not available")

// buildHint says how to build a binary with seccomp support.
const buildHint = "build shoal with `make build`, or with `CGO_ENABLED=1 go build -tags seccomp ./daemon/cmd/shoal` " +
	"with libseccomp-dev (Debian, Ubuntu) or libseccomp-devel (Fedora) installed; the binary then needs libseccomp2 where it runs"

// seccompAvailable is libcontainer's own answer: libseccomp is compiled in only with cgo and
// the seccomp build tag (runc's libcontainer/seccomp). Without it libcontainer refuses every
// container that has a seccomp profile.
var seccompAvailable = seccomp.Enabled

// kernelSeccompFile exists when the kernel has seccomp filters (CONFIG_SECCOMP_FILTER, Linux
// 4.14 and later).
var kernelSeccompFile = "/proc/sys/kernel/seccomp/actions_avail"

// CheckSeccomp reports whether containers can be given Docker's default seccomp profile: the
// binary has libseccomp compiled in (cgo and the seccomp build tag) and the kernel filters
// system calls. The daemon calls it before it starts; Start calls it for every container that
// gets a profile. The error wraps ErrNoSeccomp and says how to build a working binary.
func CheckSeccomp() error {
	if !seccompAvailable {
		return fmt.Errorf("%w: this binary was built without seccomp support (it needs cgo and the seccomp build tag), "+
			"so it cannot give containers their default seccomp profile: %s", ErrNoSeccomp, buildHint)
	}
	if _, err := os.Stat(kernelSeccompFile); err != nil {
		return fmt.Errorf("%w: the kernel does not filter system calls (%v): run shoal on a kernel with CONFIG_SECCOMP_FILTER", ErrNoSeccomp, err)
	}
	return nil
}
