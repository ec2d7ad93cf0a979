package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing/fstest"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/spf13/cobra"
)

func newDiffCmd(s Streams) *cobra.Command {
	var repoPath, dir string
	cmd := &cobra.Command{
		Use:   "diff FROM TO",
		Short: "Show what changes, object by object, between two commits of a repository (offline)",
		Long: `Diff loads the manifests of two commits of a local repository, with defaults applied,
and prints the objects added, removed and changed, with a line diff of each change. It needs no
daemon: use it to review a branch before merging. FROM and TO are revisions as git takes them
(main, HEAD~1, a tag, a SHA).

The exit code is 0 when nothing changes, 1 when something does (as kubectl diff) or when TO
does not validate, and 2 on a usage error.`,
		Example: `  shoal diff main feature/scale-web
  shoal diff --repo ~/cluster --path prod HEAD~1 HEAD`,
		Args: cobraArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := git.PlainOpenWithOptions(repoPath, &git.PlainOpenOptions{DetectDotGit: true})
			if err != nil {
				return fmt.Errorf("open repository %s: %w", repoPath, err)
			}
			load := func(rev string) (*manifests.Set, error) {
				h, err := repo.ResolveRevision(plumbing.Revision(rev))
				if err != nil {
					return nil, fmt.Errorf("revision %q: %w", rev, err)
				}
				c, err := repo.CommitObject(*h)
				if err != nil {
					return nil, fmt.Errorf("revision %q: %w", rev, err)
				}
				fsys, err := treeFiles(c, dir)
				if err != nil {
					return nil, fmt.Errorf("revision %q: %w", rev, err)
				}
				return manifests.LoadFS(cmd.Context(), fsys, ".", manifests.LoadOptions{})
			}
			from, err := load(args[0])
			if err != nil {
				return invalidRevision(s, args[0], err)
			}
			to, err := load(args[1])
			if err != nil {
				return invalidRevision(s, args[1], err)
			}
			if changed := diffSets(s.Out, from, to); changed {
				return &exitError{code: ExitFailure}
			}
			fmt.Fprintln(s.Out, "no changes")
			return nil
		},
	}
	cmd.Flags().StringVar(&repoPath, "repo", ".", "the local repository")
	cmd.Flags().StringVar(&dir, "path", "", "directory of the repository that holds the manifests")
	return cmd
}

func invalidRevision(s Streams, rev string, err error) error {
	var list manifests.ErrorList
	if errors.As(err, &list) {
		fmt.Fprintf(s.Err, "%s does not validate:\n", rev)
		for _, e := range list {
			fmt.Fprintln(s.Err, "  "+e.Error())
		}
		return failed()
	}
	return err
}

// treeFiles copies the manifest files of a commit (under dir) into a file system; symbolic links
// stay links so that the loader refuses them as it does in the daemon.
func treeFiles(c *object.Commit, dir string) (fs.FS, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	if dir = strings.Trim(path.Clean("/"+dir), "/"); dir != "" {
		if tree, err = tree.Tree(dir); err != nil {
			return nil, fmt.Errorf("directory %q: %w", dir, err)
		}
	}
	m := fstest.MapFS{}
	err = tree.Files().ForEach(func(f *object.File) error {
		ext := path.Ext(f.Name)
		if ext != ".yaml" && ext != ".yml" {
			return nil
		}
		if f.Mode == filemode.Symlink {
			m[f.Name] = &fstest.MapFile{Mode: fs.ModeSymlink}
			return nil
		}
		if f.Size > manifests.DefaultMaxFileSize {
			m[f.Name] = &fstest.MapFile{Data: make([]byte, manifests.DefaultMaxFileSize+1)}
			return nil
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		m[f.Name] = &fstest.MapFile{Data: data}
		return nil
	})
	return m, err
}

// diffSets prints the differences between two sets and reports whether there are any.
func diffSets(w io.Writer, from, to *manifests.Set) bool {
	render := func(o manifests.Object) []string {
		y, err := manifests.Marshal([]manifests.Object{o}, "yaml")
		if err != nil {
			return []string{err.Error()}
		}
		return strings.Split(strings.TrimSuffix(strings.TrimPrefix(string(y), "---\n"), "\n"), "\n")
	}
	old := map[manifests.ObjectKey]manifests.Object{}
	for _, o := range from.Objects {
		old[manifests.KeyOf(o)] = o
	}
	changed := false
	seen := map[manifests.ObjectKey]bool{}
	for _, o := range to.Objects {
		k := manifests.KeyOf(o)
		seen[k] = true
		prev, ok := old[k]
		if !ok {
			changed = true
			fmt.Fprintf(w, "+ %s (added)\n", k)
			continue
		}
		a, b := render(prev), render(o)
		if strings.Join(a, "\n") == strings.Join(b, "\n") {
			continue
		}
		changed = true
		fmt.Fprintf(w, "~ %s (changed)\n", k)
		for _, l := range lineDiff(a, b) {
			fmt.Fprintln(w, "    "+l)
		}
	}
	for _, o := range from.Objects {
		if k := manifests.KeyOf(o); !seen[k] {
			changed = true
			fmt.Fprintf(w, "- %s (removed: pruned when applied)\n", k)
		}
	}
	return changed
}

// lineDiff returns the lines of a and b marked "-", "+" or " " (changed lines with three lines
// of context), from a longest common subsequence.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var all []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			all = append(all, line{' ', a[i]})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			all = append(all, line{'-', a[i]})
			i++
		default:
			all = append(all, line{'+', b[j]})
			j++
		}
	}
	const context = 3
	keep := make([]bool, len(all))
	for k, l := range all {
		if l.op != ' ' {
			for c := max(0, k-context); c <= min(len(all)-1, k+context); c++ {
				keep[c] = true
			}
		}
	}
	var out []string
	skipped := false
	for k, l := range all {
		if !keep[k] {
			skipped = true
			continue
		}
		if skipped && len(out) > 0 {
			out = append(out, "...")
		}
		skipped = false
		out = append(out, string(l.op)+" "+l.text)
	}
	return out
}
