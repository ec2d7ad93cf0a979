// Package cli is the shoal command line: a cobra command tree whose commands are thin layers over
// Shoal's packages. Main runs it and turns its outcome into the process exit code: 0 on success,
// 1 when the command ran and found a problem (an invalid manifest, say), 2 on a usage error.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes of the shoal command.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Streams are the standard streams a command reads and writes.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// exitError ends the command with a given exit code. A nil Err means the command has already
// printed what the user needs to know.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a misuse of the command line (exit code 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// failed reports that the command ran and found a problem it has already printed (exit code 1).
func failed() error { return &exitError{code: ExitFailure} }

// NewRoot returns the shoal command tree writing to the given streams.
func NewRoot(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "shoal",
		Short: "Shoal is a declarative GitOps cluster daemon",
		Long: `Shoal keeps a cluster in the state described by a Git repository of Kubernetes-style
manifests. A daemon on each node pulls the repository, the daemons elect a master through etcd,
and every node runs its pods with libcontainer.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%v\nSee '%s --help'.", err, cmd.CommandPath())
	})
	var cf clientFlags
	remote := []*cobra.Command{
		newStatusCmd(s, &cf), newGetCmd(s, &cf), newDescribeCmd(s, &cf), newLogsCmd(s, &cf),
		newExecCmd(s, &cf), newEventsCmd(s, &cf), newHistoryCmd(s, &cf), newNetplaneCmd(s, &cf), newTopCmd(s, &cf),
		newNodeActionCmd(s, &cf, "cordon", "Mark a node unschedulable: its pods stay, new pods go elsewhere"),
		newNodeActionCmd(s, &cf, "uncordon", "Make a cordoned or drained node schedulable again"),
		newNodeActionCmd(s, &cf, "drain", "Cordon a node and move its Deployment pods to other nodes"),
		newDeleteCmd(s, &cf), newTokenCmd(s, &cf),
		newSecretsCmd(s, &cf),
	}
	for _, c := range remote {
		cf.add(c)
	}
	root.AddCommand(
		newVersionCmd(s),
		newValidateCmd(s),
		newRenderCmd(s),
		newImageCmd(s),
		newDaemonCmd(s),
		newNodeCmd(s, &cf),
		newDiffCmd(s),
	)
	root.AddCommand(remote...)
	return root
}

// Main runs the shoal command line with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, s Streams) int {
	root := NewRoot(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(s.Err, "shoal:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(s.Err, "shoal:", err)
	// cobra reports unknown commands and wrong argument counts as plain errors.
	if isCobraUsageError(err) {
		return ExitUsage
	}
	return ExitFailure
}

func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument"} {
		if len(msg) >= len(prefix) && msg[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

// cobraArgs wraps a cobra positional-argument check so that a failure is a usage error.
func cobraArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageErrorf("%v\nSee '%s --help'.", err, cmd.CommandPath())
		}
		return nil
	}
}
