package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/cluster"
	"github.com/spf13/cobra"
)

// newSecretsCmd makes `shoal secrets status|rotate-key`: the keyring that encrypts the
// cluster's Secrets in the store.
func newSecretsCmd(s Streams, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Show and rotate the key that encrypts the cluster's Secrets in the store",
		Long: `The master keeps the Secrets of the desired state encrypted in the store (AES-256-GCM, with
the keys of the cluster's keyring, itself encrypted under a key derived from the cluster CA's),
and seals the Secrets of each pod to its node's key: only that node opens them. These commands
need a server node, one that holds the CA key (it runs a store member).`,
	}
	var output string
	status := &cobra.Command{
		Use:   "status",
		Short: "List the keyring's keys, the primary one, and how many Secrets each encrypts",
		Args:  cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return usageErrorf("-o %q: use json, or nothing for a table", output)
			}
			rep, err := fetch[cluster.SecretsReport](cmd, cf, "/v1/secrets/keyring", nil)
			if err != nil {
				return secretsError(err)
			}
			if output == "json" {
				return printJSON(s.Out, rep)
			}
			return printKeyring(s.Out, rep, time.Now())
		},
	}
	status.Flags().StringVarP(&output, "output", "o", "", "json, or nothing for a table")
	var dryRun bool
	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Add a new primary key, encrypt every stored Secret with it, remove the old keys",
		Long: `rotate-key adds a new key to the keyring and makes it the primary one (new Secrets are
encrypted with it), encrypts every Secret stored in the desired state again with it (also those
stored in plain text by an earlier version), then removes the old keys, which nothing uses any
more. Pods keep running: what is sealed to the nodes is not changed.

It can be stopped at any point: every Secret stays readable, and running it again finishes the
rotation it interrupted instead of adding another key.`,
		Args: cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dryRun {
				rep, err := fetch[cluster.SecretsReport](cmd, cf, "/v1/secrets/keyring", nil)
				if err != nil {
					return secretsError(err)
				}
				fmt.Fprintln(s.Out, "dry run: nothing changed; a rotation would add a new primary key, encrypt these Secrets with it and remove the other keys")
				return printKeyring(s.Out, rep, time.Now())
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var rep cluster.SecretsReport
			if err := c.PostJSON(cmd.Context(), "/v1/secrets/rotate-key", struct{}{}, &rep); err != nil {
				return secretsError(err)
			}
			switch {
			case rep.Resumed:
				fmt.Fprintf(s.Out, "finished the rotation to key %s that was cut short\n", rep.Primary)
			case rep.Added != "":
				fmt.Fprintf(s.Out, "added key %s as the primary key\n", rep.Added)
			}
			fmt.Fprintf(s.Out, "re-encrypted %d stored Secrets\n", rep.Reencrypted)
			if len(rep.Removed) > 0 {
				fmt.Fprintf(s.Out, "removed keys %s\n", strings.Join(rep.Removed, ", "))
			}
			return printKeyring(s.Out, rep, time.Now())
		},
	}
	rotate.Flags().BoolVar(&dryRun, "dry-run", false, "only show the keys and what uses them")
	cmd.AddCommand(status, rotate)
	return cmd
}

// printKeyring prints a keyring's keys as a table.
func printKeyring(w io.Writer, rep cluster.SecretsReport, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "KEY\tPRIMARY\tSECRETS\tAGE")
	for _, k := range rep.Keys {
		primary := ""
		if k.Primary {
			primary = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", k.ID, primary, k.Secrets, age(k.Created, now))
	}
	if len(rep.Keys) == 0 {
		fmt.Fprintln(tw, "(no keyring yet: the master makes it when it starts)\t\t\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Plain > 0 {
		fmt.Fprintf(w, "%d Secrets are stored in plain text (staged before encryption): shoal secrets rotate-key encrypts them\n", rep.Plain)
	}
	return nil
}

// secretsError says where to run the command when the daemon cannot.
func secretsError(err error) error {
	var se *client.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return fmt.Errorf("%w (is the daemon older than shoal secrets?)", err)
	}
	return err
}
