package manifests

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a manifest, located at the line of the offending
// field.
type Error struct {
	// File is the name of the file, relative to the loaded root.
	File string
	// Line is the 1-based line of the offending field, or 0 when unknown.
	Line int
	// Field is the path of the offending field, such as
	// "spec.template.spec.containers[0].image". Empty for file-level errors.
	Field string
	// Msg describes the problem and, where possible, how to fix it.
	Msg string
}

// Error formats the error as "file:line: field: msg", leaving out the parts
// that are unknown.
func (e *Error) Error() string { return e.format("") }

// Warning formats e as a warning, "file:line: warning: field: msg": a
// problem that does not stop the tree from loading.
func (e *Error) Warning() string { return e.format("warning: ") }

func (e *Error) format(kind string) string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	b.WriteString(kind)
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is a list of manifest errors (or warnings, Set.Warnings).
// Loaders return every error of a tree at once, sorted by file, line and
// message.
type ErrorList []*Error

// Error joins the errors, one per line.
func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d errors:", len(l))
	for _, e := range l {
		b.WriteString("\n")
		b.WriteString(e.Error())
	}
	return b.String()
}

// Sort orders the list by file, line, field and message.
func (l ErrorList) Sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Field, b.Field),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
}

// Err returns nil for an empty list and the sorted list otherwise, so that a
// nil error interface is never a typed nil.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	l.Sort()
	return l
}

// notYet is the message for fields and values Kubernetes has but Shoal does
// not implement.
const notYet = "supported by Kubernetes, not by Shoal yet"

// Warnings formats each entry as a warning (Error.Warning), in order.
func (l ErrorList) Warnings() []string {
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.Warning()
	}
	return out
}
