package cli

import (
	"errors"
	"fmt"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/spf13/cobra"
)

func newValidateCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check a desired-state repository before you commit it",
		Long: `Validate decodes, defaults and validates every manifest under the given paths (directories
or single files; default: the current directory), as the master does before it accepts a commit.

A directory with a kustomization (kustomization.yaml, kustomization.yml or Kustomization) is built
as "kustomize build" builds it; otherwise its YAML files are loaded as they are, and each of its
subdirectories that has a kustomization is built as one unit. Kustomizations may use files anywhere
in the enclosing git work tree (such as ../base), never outside it, never remote bases.

Every problem is printed on stderr as "file:line: message", all of them at once, sorted; an object
built by a kustomization is reported at the file and line it was written in. What loads but has no
effect in Shoal (such as RBAC objects) is printed on stderr as "file:line: warning: message" and
does not fail the check. The exit code is 0 when everything is valid, 1 when something is not, and
2 on a usage error.`,
		Example: `  shoal validate
  shoal validate examples/hello
  shoal validate deploy/ extra/service.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := load(cmd, args)
			if err != nil {
				return err
			}
			warnings := ""
			if n := len(set.Warnings); n > 0 {
				warnings = fmt.Sprintf(", %d %s", n, plural(n, "warning", "warnings"))
			}
			fmt.Fprintf(s.Out, "%d %s in %d %s%s\n", len(set.Objects), plural(len(set.Objects), "object", "objects"),
				set.Files, plural(set.Files, "file", "files"), warnings)
			return nil
		},
	}
}

func newRenderCmd(s Streams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "render [PATH...]",
		Short: "Print the objects of a desired-state repository with defaults applied",
		Long: `Render loads and validates the manifests under the given paths (default: the current
directory), building kustomizations as validate does, and prints the objects as Shoal will apply
them, with Kubernetes' defaults filled in. JSON output is a kubectl-style List.`,
		Example: `  shoal render examples/hello
  shoal render examples/hello -o json | jq '.items[].metadata.name'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "yaml" && output != "json" {
				return usageErrorf("unknown output format %q: use yaml or json", output)
			}
			set, err := load(cmd, args)
			if err != nil {
				return err
			}
			out, err := manifests.Marshal(set.Objects, output)
			if err != nil {
				return fmt.Errorf("render: %w", err)
			}
			_, err = s.Out.Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

// load reads the manifests under the paths (default "."). Manifest errors are printed one per
// line on stderr and end the command with exit code 1; warnings are printed on stderr too, one per
// line, and do not.
func load(cmd *cobra.Command, paths []string) (*manifests.Set, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	set, err := manifests.LoadPaths(cmd.Context(), paths, manifests.LoadOptions{})
	var list manifests.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
		}
		return nil, failed()
	}
	if err != nil {
		return nil, err
	}
	for _, w := range set.Warnings.Warnings() {
		fmt.Fprintln(cmd.ErrOrStderr(), w)
	}
	return set, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
