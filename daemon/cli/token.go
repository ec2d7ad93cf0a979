package cli

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/daemon/api"
	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/shoal-dev/shoal/daemon/join"
	"github.com/shoal-dev/shoal/daemon/pki"
	"github.com/spf13/cobra"
)

// newTokenCmd makes `shoal token create|list|delete`: the join tokens new nodes join with, as
// kubeadm's bootstrap tokens.
func newTokenCmd(s Streams, cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make, list and delete the join tokens new nodes join the cluster with",
		Long: `A join token lets a new node join the cluster (shoal daemon --join ADDRESS --join-token-file
FILE). It pins the cluster's CA, names a record in the cluster's store by its ID, and holds a
secret of which the store keeps only a hash. A token admits nodes as servers (they may run a
store member, hold the CA key and become master) or as agents only (they run pods), until it
expires (24 h by default) or is deleted. A node that has joined needs no token again.`,
	}
	var role, description string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Make a join token and print it (only this once)",
		Long: `Create makes a join token and prints it on stdout, only this once: the cluster keeps only a
hash of its secret. It needs a server node, one that runs a store member and holds the CA key.`,
		Example: `  shoal token create > /tmp/agent-token                   # an agent token for 24 h
  shoal token create --role server --ttl 1h --description "n3, ticket 42"
  scp /tmp/agent-token n4:/etc/shoal/join-token && rm /tmp/agent-token`,
		Args: cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := join.ParseRole(role); err != nil {
				return usageErrorf("--role: %v", err)
			}
			if ttl < 0 {
				return usageErrorf("--ttl %v: give a duration such as 24h, or 0 for a token that never expires", ttl)
			}
			if ttl == 0 {
				fmt.Fprintln(s.Err, "shoal: warning: this token never expires: delete it (shoal token delete ID) once the nodes have joined")
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var created api.CreatedToken
			req := api.TokenRequest{Role: role, TTL: ttl.String(), Description: description}
			if err := c.PostJSON(cmd.Context(), "/v1/tokens", req, &created); err != nil {
				return tokenError(err)
			}
			fmt.Fprintln(s.Out, created.Token)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", string(join.RoleAgent), "what the token admits nodes as: agent (runs pods) or server (may run a store member, holds the CA key, becomes master)")
	create.Flags().DurationVar(&ttl, "ttl", join.DefaultTokenTTL, "how long the token admits nodes; 0: forever (not advised)")
	create.Flags().StringVar(&description, "description", "", "what the token is for, shown by shoal token list")

	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the join tokens (never their secrets)",
		Args:  cobraArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return usageErrorf("-o %q: use json, or nothing for a table", output)
			}
			l, err := fetch[api.TokenList](cmd, cf, "/v1/tokens", nil)
			if err != nil {
				return tokenError(err)
			}
			if output == "json" {
				return printJSON(s.Out, l)
			}
			printTokens(s.Out, l.Items, time.Now())
			return nil
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "", "json for the raw list")

	del := &cobra.Command{
		Use:   "delete ID...",
		Short: "Delete join tokens: they admit no node from then on (nodes that joined stay)",
		Args:  cobraArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			defer c.Close()
			for _, a := range args {
				id := a
				if tok, err := pki.ParseToken(a); err == nil {
					id = tok.ID // a whole token: its ID, the secret is not sent
				}
				if err := c.Delete(cmd.Context(), "/v1/tokens/"+url.PathEscape(id)); err != nil {
					return tokenError(err)
				}
				fmt.Fprintf(s.Out, "token %s deleted\n", id)
			}
			return nil
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

// tokenError says what an older daemon's answer means.
func tokenError(err error) error {
	var se *client.StatusError
	if errors.As(err, &se) && se.Code == 404 && strings.Contains(se.Msg, "unknown resource") {
		return fmt.Errorf("the daemon does not know join tokens: it is of an earlier version; upgrade it (%w)", err)
	}
	return err
}

// printTokens writes the tokens as a table: ID, role, time left, expiry, description.
func printTokens(w io.Writer, tokens []join.TokenInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tTTL\tEXPIRES\tDESCRIPTION")
	for _, t := range tokens {
		left, expires := "<forever>", "<never>"
		if !t.Expires.IsZero() {
			expires = t.Expires.Local().Format(time.RFC3339)
			if t.Expired(now) {
				left = "<expired>"
			} else {
				left = shortDuration(t.Expires.Sub(now))
			}
		}
		desc := t.Description
		if desc == "" {
			desc = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, left, expires, desc)
	}
	_ = tw.Flush()
}

// shortDuration writes d as kubeadm's token list does: 23h, 59m, 30s.
func shortDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return fmt.Sprintf("%ds", int(d/time.Second))
}
