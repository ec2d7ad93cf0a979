package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/runtime/image"
	"github.com/spf13/cobra"
)

// DefaultDataDir is where a node keeps its state.
const DefaultDataDir = "/var/lib/shoal"

func newImageCmd(s Streams) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the images of this node",
		Long: `Image lists and imports the OCI images of this node's image store (<data-dir>/images),
so that nodes without a registry can run pods from archives.`,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", DefaultDataDir, "the node's data directory")
	open := func(ctx context.Context) (*image.Store, error) {
		st, err := image.NewStore(ctx, image.Config{Root: filepath.Join(dataDir, "images"), Progress: s.Err})
		if errors.Is(err, image.ErrStoreLocked) {
			return nil, fmt.Errorf("%w: the daemon of this node holds the store; stop it first", err)
		}
		return st, err
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "import FILE...",
		Short: "Import images from docker or OCI archives",
		Long: `Import reads images from archives made by "docker save", "podman save" or
"skopeo copy ... oci-archive:" (plain, gzip or zstd) and from OCI layout directories, and keeps
them in the node's store under the names the archives give. Imported images are never removed by
image garbage collection.`,
		Example: `  shoal image import hello.tar`,
		Args:    cobraArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			for _, a := range args {
				imgs, err := st.Import(cmd.Context(), a)
				if err != nil {
					return fmt.Errorf("import %s: %w", a, err)
				}
				for _, img := range imgs {
					name := img.Ref
					if name == "" {
						name = "<none>"
					}
					fmt.Fprintf(s.Out, "imported %s %s\n", name, shortID(img.ID))
				}
			}
			return nil
		},
	})
	var pack struct {
		tag, out, path, user string
		cmd, env             []string
	}
	packCmd := &cobra.Command{
		Use:   "pack BINARY --tag REF -o FILE",
		Short: "Pack a static binary into an OCI image archive",
		Long: `Pack makes a one-layer image holding a static binary (Entrypoint), a minimal /etc/passwd
and /etc/group (root, nobody) and /tmp, and writes it as a docker archive that "shoal image
import" reads. The same binary always gives the same image digest.`,
		Example: `  CGO_ENABLED=0 go build -o app ./examples/app
  shoal image pack app --tag localhost/shoal/hello:v1 -o hello.tar`,
		Args: cobraArgs(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, args []string) error {
			if pack.tag == "" || pack.out == "" {
				return usageErrorf("pack needs --tag and --output")
			}
			img, err := image.PackBinary(args[0], image.PackConfig{Path: pack.path, Cmd: pack.cmd, Env: pack.env, User: pack.user})
			if err != nil {
				return err
			}
			if err := image.WriteDockerArchive(img, pack.tag, pack.out); err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "packed %s %s into %s\n", pack.tag, d, pack.out)
			return nil
		},
	}
	packCmd.Flags().StringVarP(&pack.tag, "tag", "t", "", "image reference, e.g. localhost/app:v1")
	packCmd.Flags().StringVarP(&pack.out, "output", "o", "", "archive to write")
	packCmd.Flags().StringVar(&pack.path, "path", "/app", "where the binary goes in the image")
	packCmd.Flags().StringSliceVar(&pack.cmd, "cmd", nil, "default arguments (the image's Cmd)")
	packCmd.Flags().StringSliceVar(&pack.env, "env", nil, "environment, NAME=VALUE")
	packCmd.Flags().StringVar(&pack.user, "user", "", "user to run as, e.g. 65534")
	cmd.AddCommand(packCmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "ls",
		Short: "List the images of this node",
		Args:  cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			imgs, err := st.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(s.Out, 0, 8, 3, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tID\tSIZE\tCREATED\tPINNED")
			for _, img := range imgs {
				names := img.Names
				if len(names) == 0 {
					names = []string{"<none>"}
				}
				created := "-"
				if !img.Created.IsZero() {
					created = img.Created.UTC().Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", strings.Join(names, ","), shortID(img.ID), humanBytes(img.Size), created, img.Pinned)
			}
			return tw.Flush()
		},
	})
	return cmd
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
