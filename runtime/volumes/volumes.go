// Package volumes keeps the local volumes of PersistentVolumeClaims on a
// node: one directory per claim under the node's data directory, as k3s'
// local-path provisioner keeps them, and a record beside it that says which
// claim it is, so that a directory removed by hand is found missing rather
// than made again empty.
package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrMissing is returned by Prepare for a volume that was made on this node
// and whose directory is gone: its data is lost, and the pods that use it
// must not start on an empty directory as if nothing happened.
var ErrMissing = errors.New("the volume's directory is missing")

// Dir is the directory that holds a node's volumes.
type Dir struct {
	Root string
}

// record is what the node knows of a volume it made.
type record struct {
	UID       string    `json:"uid"`
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
}

// Path is the directory of the volume of claim uid.
func (d Dir) Path(uid string) string { return filepath.Join(d.Root, uid) }

func (d Dir) recordPath(uid string) string { return filepath.Join(d.Root, uid+".claim") }

// Prepare makes the volume of the claim uid (namespace/name) when this node
// has never made it, and returns its directory. The directory is writable
// by every user, as local-path makes it, since the pod's user is not known
// in advance.
func (d Dir) Prepare(uid, namespace, name string) (string, error) {
	if err := validUID(uid); err != nil {
		return "", err
	}
	path := d.Path(uid)
	_, recErr := os.Stat(d.recordPath(uid))
	fi, dirErr := os.Stat(path)
	switch {
	case dirErr == nil && fi.IsDir():
		return path, nil
	case dirErr == nil:
		return "", fmt.Errorf("volume %s of claim %s/%s: %s is not a directory", uid, namespace, name, path)
	case !errors.Is(dirErr, os.ErrNotExist):
		return "", fmt.Errorf("volume %s of claim %s/%s: %w", uid, namespace, name, dirErr)
	case recErr == nil:
		return "", fmt.Errorf("volume %s of claim %s/%s at %s: %w; restore it from a backup, or remove the claim from git and add it again to start empty",
			uid, namespace, name, path, ErrMissing)
	}
	if err := os.MkdirAll(d.Root, 0o700); err != nil {
		return "", fmt.Errorf("make the volumes directory: %w", err)
	}
	data, err := json.Marshal(record{UID: uid, Namespace: namespace, Name: name, Created: time.Now().UTC()})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(d.recordPath(uid), data, 0o600); err != nil {
		return "", fmt.Errorf("record volume %s: %w", uid, err)
	}
	if err := os.Mkdir(path, 0o777); err != nil {
		return "", fmt.Errorf("make volume %s: %w", uid, err)
	}
	// The mode is set apart from Mkdir, which the umask narrows.
	if err := os.Chmod(path, 0o777); err != nil {
		return "", fmt.Errorf("make volume %s: %w", uid, err)
	}
	return path, nil
}

// Remove deletes the volume of claim uid and its record. A volume this node
// does not have is not an error.
func (d Dir) Remove(uid string) error {
	if err := validUID(uid); err != nil {
		return err
	}
	if err := os.RemoveAll(d.Path(uid)); err != nil {
		return fmt.Errorf("remove volume %s: %w", uid, err)
	}
	if err := os.Remove(d.recordPath(uid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove volume %s: %w", uid, err)
	}
	return nil
}

// List returns the UIDs of the volumes this node made.
func (d Dir) List() ([]string, error) {
	entries, err := os.ReadDir(d.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var uids []string
	for _, e := range entries {
		if uid, ok := strings.CutSuffix(e.Name(), ".claim"); ok && validUID(uid) == nil {
			uids = append(uids, uid)
		}
	}
	return uids, nil
}

// validUID refuses a UID that is not one path element: it names a directory.
func validUID(uid string) error {
	if uid == "" || uid == "." || uid == ".." || strings.ContainsAny(uid, "/\\\x00") {
		return fmt.Errorf("invalid claim UID %q", uid)
	}
	return nil
}
