package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/sergi/go-diff/diffmatchpatch"
	"github.com/shoal-dev/shoal/daemon/gitsync"
	"github.com/shoal-dev/shoal/manifests"
	"github.com/spf13/cobra"
)

func newDiffCmd(s Streams) *cobra.Command {
	var repoPath, dir string
	var keys sopsFlags
	cmd := &cobra.Command{
		Use:   "diff FROM TO",
		Short: "Show what changes, object by object, between two commits of a repository (offline)",
		Long: `Diff loads the manifests of two commits of a local repository, with defaults applied,
and prints the objects added, removed and changed, with a line diff of each change. It needs no
daemon: use it to review a branch before merging. FROM and TO are revisions as git takes them
(main, HEAD~1, a tag, a SHA). Both are read from the repository's commits, never from its work
tree, and loaded as the daemon loads them: kustomizations are built.

A Secret's values are never printed: for a Secret whose data changed, diff names the keys added,
removed or whose value changed.

SOPS-encrypted files are decrypted in memory with the keys of --sops-age-key-file and
--sops-gpg-keyring, as the daemon decrypts them. Without either flag, the encrypted files (and the
kustomizations that read them) are left out of both revisions, each with a warning on stderr that
it was not compared: their objects appear neither as added nor as removed.

The exit code is 0 when nothing changes, 1 when something does (as kubectl diff) or when TO
does not validate, and 2 on a usage error.`,
		Example: `  shoal diff main feature/scale-web
  shoal diff --repo ~/cluster --path prod HEAD~1 HEAD`,
		Args: cobraArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := keys.loadOptions(true)
			if err != nil {
				return err
			}
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
				fsys, err := gitsync.CommitTree(repo, c.Hash, gitsync.DefaultMaxObjectSize)
				if err != nil {
					return nil, fmt.Errorf("revision %q: %w", rev, err)
				}
				root := strings.Trim(path.Clean("/"+dir), "/")
				if root == "" {
					root = "."
				}
				if fi, err := fs.Stat(fsys, root); err != nil || !fi.IsDir() {
					return nil, fmt.Errorf("revision %q has no directory %q: check --path", rev, root)
				}
				return manifests.LoadFS(cmd.Context(), fsys, root, opts)
			}
			from, err := load(args[0])
			if err != nil {
				return invalidRevision(s, args[0], err)
			}
			to, err := load(args[1])
			if err != nil {
				return invalidRevision(s, args[1], err)
			}
			var skipped []string
			for _, set := range []*manifests.Set{from, to} {
				for _, w := range set.Skipped.Warnings() {
					if !slices.Contains(skipped, w) {
						skipped = append(skipped, w)
						fmt.Fprintln(s.Err, w)
					}
				}
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
	keys.register(cmd.Flags(), "diff")
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

// diffSets prints the differences between two sets and reports whether there are any. It never
// prints a Secret's values: a Secret is rendered without its data, and the keys of its data that
// were added, removed or changed are listed after its line diff.
func diffSets(w io.Writer, from, to *manifests.Set) bool {
	render := func(o manifests.Object) []string {
		if sec, ok := o.(*manifests.Secret); ok {
			o = withoutValues(sec)
		}
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
		keys := secretKeyChanges(prev, o)
		same := strings.Join(a, "\n") == strings.Join(b, "\n")
		if same && len(keys) == 0 {
			continue
		}
		changed = true
		fmt.Fprintf(w, "~ %s (changed)\n", k)
		if !same {
			for _, l := range lineDiff(a, b) {
				fmt.Fprintln(w, "    "+l)
			}
		}
		for _, l := range keys {
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

// withoutValues is a copy of a Secret without its values, to show in a diff.
func withoutValues(s *manifests.Secret) *manifests.Secret {
	c := *s
	c.Data, c.StringData = nil, nil
	return &c
}

// secretKeyChanges lists the data keys of a Secret that were added, removed or whose value
// changed between two versions (stringData is merged into data by the defaults), never the
// values; nil for objects that are not Secrets.
func secretKeyChanges(prev, cur manifests.Object) []string {
	a, ok1 := prev.(*manifests.Secret)
	b, ok2 := cur.(*manifests.Secret)
	if !ok1 || !ok2 {
		return nil
	}
	values := func(s *manifests.Secret) map[string]string {
		m := make(map[string]string, len(s.Data)+len(s.StringData))
		for k, v := range s.Data {
			m[k] = string(v)
		}
		for k, v := range s.StringData {
			m[k] = v
		}
		return m
	}
	old, cur2 := values(a), values(b)
	var keys []string
	for k := range old {
		keys = append(keys, k)
	}
	for k := range cur2 {
		if _, ok := old[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		ov, inOld := old[k]
		nv, inNew := cur2[k]
		switch {
		case !inOld:
			out = append(out, fmt.Sprintf("+ data[%s]: added", k))
		case !inNew:
			out = append(out, fmt.Sprintf("- data[%s]: removed", k))
		case ov != nv:
			out = append(out, fmt.Sprintf("~ data[%s]: value changed", k))
		}
	}
	return out
}

// diffTimeout bounds the search for a minimal diff of one object; past it the
// diff is still correct, only coarser.
const diffTimeout = 2 * time.Second

// lineDiff returns the lines of a and b marked "-", "+" or " " (changed lines with three lines
// of context). It uses Myers' algorithm (github.com/sergi/go-diff, in line mode), which takes
// time O((N+M)·D) and memory linear in N+M for N and M lines and D differences.
func lineDiff(a, b []string) []string {
	type line struct {
		op   byte
		text string
	}
	var all []line
	for _, d := range myersLines(a, b) {
		op := byte(' ')
		switch d.Type {
		case diffmatchpatch.DiffDelete:
			op = '-'
		case diffmatchpatch.DiffInsert:
			op = '+'
		}
		for _, l := range d.lines {
			all = append(all, line{op, l})
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

// lineRun is a run of lines that a diff keeps, deletes or inserts.
type lineRun struct {
	Type  diffmatchpatch.Operation
	lines []string
}

// myersLines diffs a and b line by line.
func myersLines(a, b []string) []lineRun {
	// go-diff encodes each distinct line as one rune; past that many
	// distinct lines it cannot, and the change is shown whole.
	const maxDistinct = 1_000_000
	if len(a)+len(b) > maxDistinct {
		return []lineRun{{diffmatchpatch.DiffDelete, a}, {diffmatchpatch.DiffInsert, b}}
	}
	dmp := diffmatchpatch.New()
	dmp.DiffTimeout = diffTimeout
	ta, tb := joinLines(a), joinLines(b)
	ra, rb, index := dmp.DiffLinesToRunes(ta, tb)
	diffs := dmp.DiffCharsToLines(dmp.DiffMainRunes(ra, rb, false), index)
	out := make([]lineRun, 0, len(diffs))
	for _, d := range diffs {
		out = append(out, lineRun{d.Type, strings.Split(strings.TrimSuffix(d.Text, "\n"), "\n")})
	}
	return out
}

// joinLines joins lines, each ending in a newline, as go-diff's line mode
// reads them.
func joinLines(lines []string) string {
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	return sb.String()
}
