package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/shoal-dev/shoal/daemon/client"
	"github.com/spf13/cobra"
)

// clientFlags are the flags of every command that talks to a daemon.
type clientFlags struct {
	socket, server, token, caFile string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.socket, "socket", "", "the daemon's unix socket (default $SHOAL_SOCKET, then "+client.DefaultSocket+")")
	cmd.PersistentFlags().StringVar(&f.server, "server", "", "a daemon's TCP API, https://HOST:PORT (instead of the socket)")
	cmd.PersistentFlags().StringVar(&f.token, "token", "", "bearer token for --server (default $SHOAL_TOKEN)")
	cmd.PersistentFlags().StringVar(&f.caFile, "ca-file", "", "CA certificate that signed the --server certificate")
}

func (f *clientFlags) client() (*client.Client, error) {
	tok := f.token
	if tok == "" {
		tok = os.Getenv("SHOAL_TOKEN")
	}
	return client.New(client.Config{Socket: f.socket, Server: f.server, Token: tok, CAFile: f.caFile})
}

// fetch decodes the daemon's JSON answer to GET path.
func fetch[T any](cmd *cobra.Command, cf *clientFlags, path string, q url.Values) (T, error) {
	var v T
	c, err := cf.client()
	if err != nil {
		return v, err
	}
	err = c.Get(cmd.Context(), path, q, &v)
	return v, err
}

func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	if sha == "" {
		return "-"
	}
	return sha
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nsOrDefault(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}
