package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/manifests/sops"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// sopsFlags are the key files that SOPS-encrypted manifests are decrypted with.
type sopsFlags struct {
	ageKeyFile, gpgKeyring string
}

func (f *sopsFlags) register(fs *pflag.FlagSet, who string) {
	fs.StringVar(&f.ageKeyFile, "sops-age-key-file", "", "age identity file (as age-keygen writes it) "+who+" decrypts SOPS-encrypted manifests with")
	fs.StringVar(&f.gpgKeyring, "sops-gpg-keyring", "", "OpenPGP secret keyring (gpg --export-secret-keys, binary or --armor, no passphrase) "+who+" decrypts SOPS-encrypted manifests with")
}

// decryptor reads the key files once and returns what decrypts with them, or nil when no key
// file was given. Its errors name the flag.
func (f *sopsFlags) decryptor() (manifests.Decryptor, error) {
	if f.ageKeyFile == "" && f.gpgKeyring == "" {
		return nil, nil
	}
	var keys sops.Keys
	read := func(flag, file string, into *[]byte, k func([]byte) sops.Keys) error {
		if file == "" {
			return nil
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--%s: %w", flag, err)
		}
		if _, err := sops.New(k(data)); err != nil {
			return fmt.Errorf("--%s %s: %w", flag, file, err)
		}
		*into = data
		return nil
	}
	if err := read("sops-age-key-file", f.ageKeyFile, &keys.AgeIdentities, func(b []byte) sops.Keys { return sops.Keys{AgeIdentities: b} }); err != nil {
		return nil, err
	}
	if err := read("sops-gpg-keyring", f.gpgKeyring, &keys.OpenPGPKeyring, func(b []byte) sops.Keys { return sops.Keys{OpenPGPKeyring: b} }); err != nil {
		return nil, err
	}
	d, err := sops.New(keys)
	if err != nil {
		return nil, err
	}
	if d.Empty() {
		return nil, fmt.Errorf("--sops-age-key-file and --sops-gpg-keyring: the files given hold no key")
	}
	return d, nil
}

// loadOptions are the options of an offline load: without keys, SOPS-encrypted files are left
// out with a warning when skip is set, else they are errors.
func (f *sopsFlags) loadOptions(skip bool) (manifests.LoadOptions, error) {
	d, err := f.decryptor()
	if err != nil {
		return manifests.LoadOptions{}, err
	}
	return manifests.LoadOptions{Decryptor: d, SkipEncrypted: d == nil && skip}, nil
}

func newValidateCmd(s Streams) *cobra.Command {
	var keys sopsFlags
	cmd := &cobra.Command{
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
2 on a usage error.

Files encrypted with SOPS (see docs/secrets.md) are decrypted in memory with the keys of
--sops-age-key-file and --sops-gpg-keyring, as the daemon decrypts them, and checked like the
others; a file those keys cannot decrypt, or whose MAC does not match, is an error. Without either
flag, every other file is still checked and each encrypted file (and each kustomization that reads
one) is reported as a warning, "not checked", that does not fail the check: a CI job without the
keys can still validate everything else of the repository, and one that holds a key should pass it
to check the encrypted files too.`,
		Example: `  shoal validate
  shoal validate examples/hello
  shoal validate deploy/ extra/service.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := keys.loadOptions(true)
			if err != nil {
				return err
			}
			set, err := load(cmd, args, opts)
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
	keys.register(cmd.Flags(), "validate")
	return cmd
}

func newRenderCmd(s Streams) *cobra.Command {
	var output string
	var keys sopsFlags
	cmd := &cobra.Command{
		Use:   "render [PATH...]",
		Short: "Print the objects of a desired-state repository with defaults applied",
		Long: `Render loads and validates the manifests under the given paths (default: the current
directory), building kustomizations as validate does, and prints the objects as Shoal will apply
them, with Kubernetes' defaults filled in. JSON output is a kubectl-style List.

SOPS-encrypted files are decrypted with the keys of --sops-age-key-file and --sops-gpg-keyring and
rendered decrypted, as the daemon applies them (Secrets' data base64-encoded, as kubectl shows it);
without a key they are an error.`,
		Example: `  shoal render examples/hello
  shoal render examples/hello -o json | jq '.items[].metadata.name'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "yaml" && output != "json" {
				return usageErrorf("unknown output format %q: use yaml or json", output)
			}
			opts, err := keys.loadOptions(false)
			if err != nil {
				return err
			}
			set, err := load(cmd, args, opts)
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
	keys.register(cmd.Flags(), "render")
	return cmd
}

// load reads the manifests under the paths (default "."). Manifest errors are printed one per
// line on stderr and end the command with exit code 1; warnings are printed on stderr too, one per
// line, and do not.
func load(cmd *cobra.Command, paths []string, opts manifests.LoadOptions) (*manifests.Set, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	set, err := manifests.LoadPaths(cmd.Context(), paths, opts)
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
