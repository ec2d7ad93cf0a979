package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Keyring holds registry credentials from docker config files, such as those of a pod's image
// pull secrets, and finds those for an image as the kubelet's keyring does: an entry matches
// an image when its host (where each dot-separated part may be a glob, as *.example.com) and
// port are the image's registry's and its path, if any, is a prefix of the image's repository;
// more specific entries come first, and Docker Hub images also match an index.docker.io entry.
// Credentials stay in memory. The zero Keyring is empty and ready to use.
type Keyring struct {
	index []string // entry keys (host[:port][/path]), most specific first
	creds map[string][]authn.AuthConfig
}

// dockerConfigJSON is the config.json format of kubernetes.io/dockerconfigjson secrets.
type dockerConfigJSON struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

// AddConfigJSON adds the entries of a docker config.json ({"auths": {"host": {...}}}), the
// content of a kubernetes.io/dockerconfigjson secret's .dockerconfigjson key.
func (k *Keyring) AddConfigJSON(data []byte) error {
	var cfg dockerConfigJSON
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("not a docker config.json: %w", err)
	}
	if cfg.Auths == nil {
		return errors.New(`not a docker config.json: it has no "auths"`)
	}
	return k.add(cfg.Auths)
}

// AddDockercfg adds the entries of a legacy ~/.dockercfg ({"host": {...}}), the content of a
// kubernetes.io/dockercfg secret's .dockercfg key.
func (k *Keyring) AddDockercfg(data []byte) error {
	var cfg map[string]authn.AuthConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("not a .dockercfg file: %w", err)
	}
	return k.add(cfg)
}

// add records the entries of one file, in a stable order.
func (k *Keyring) add(entries map[string]authn.AuthConfig) error {
	if k.creds == nil {
		k.creds = map[string][]authn.AuthConfig{}
	}
	locs := make([]string, 0, len(entries))
	for loc := range entries {
		locs = append(locs, loc)
	}
	slices.Sort(locs)
	var bad []string
	for _, loc := range locs {
		key, err := keyringKey(loc)
		if err != nil {
			bad = append(bad, loc)
			continue
		}
		if _, ok := k.creds[key]; !ok {
			k.index = append(k.index, key)
		}
		k.creds[key] = append(k.creds[key], entries[loc])
	}
	// Reverse order puts longer entries (host/path) before their prefixes (host).
	slices.Sort(k.index)
	slices.Reverse(k.index)
	if len(bad) > 0 {
		return fmt.Errorf("entries that are not registry addresses were ignored: %s", strings.Join(bad, ", "))
	}
	return nil
}

// keyringKey turns a config entry ("https://host:port/v1/", "host/path") into host[:port][/path],
// treating /v1/ and /v2/ as the registry itself, as the docker client does.
func keyringKey(loc string) (string, error) {
	v := loc
	if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
		v = "https://" + v
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("entry %q is not a registry address", loc)
	}
	p := u.Path
	if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/v2/") {
		p = p[3:]
	}
	if p == "" || p == "/" {
		return u.Host, nil
	}
	return u.Host + p, nil
}

// Lookup returns the credentials that match repo (registry/repository, such as
// 127.0.0.1:5000/team/app or docker.io/library/busybox), most specific first.
func (k *Keyring) Lookup(repo string) []authn.AuthConfig {
	var out []authn.AuthConfig
	for _, key := range k.index {
		if keyMatches(key, repo) {
			out = append(out, k.creds[key]...)
		}
	}
	if len(out) == 0 && isDockerHub(repo) {
		out = append(out, k.creds[name.DefaultRegistry]...)
	}
	return out
}

// Len returns the number of entries.
func (k *Keyring) Len() int { return len(k.index) }

// keyMatches reports whether a keyring entry matches a repository: the same port, as many host
// parts each matching the entry's (a glob), and the entry's path a prefix of the repository's.
func keyMatches(key, repo string) bool {
	gh, gp := splitHostPath(key)
	th, tp := splitHostPath(repo)
	gHost, gPort := splitPort(gh)
	tHost, tPort := splitPort(th)
	if gPort != tPort || !strings.HasPrefix(tp, gp) {
		return false
	}
	gParts, tParts := strings.Split(gHost, "."), strings.Split(tHost, ".")
	if len(gParts) != len(tParts) {
		return false
	}
	for i := range gParts {
		if ok, err := path.Match(gParts[i], tParts[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func splitHostPath(s string) (host, p string) {
	host, rest, found := strings.Cut(s, "/")
	if found {
		p = "/" + rest
	}
	return host, p
}

func splitPort(hostport string) (host, port string) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, ""
	}
	return h, p
}

// isDockerHub reports whether repo is on Docker Hub, as the docker client decides it.
func isDockerHub(repo string) bool {
	first, _, found := strings.Cut(repo, "/")
	switch {
	case first == "":
		return false
	case !found:
		return true
	case first == "docker.io" || first == name.DefaultRegistry:
		return true
	}
	return !strings.ContainsAny(first, ".:") && first != "localhost"
}

// lookupName is the name the keyring matches for a reference: Docker Hub images as
// docker.io/<repository>, others as <registry>/<repository>.
func lookupName(r name.Reference) string {
	repo := r.Context()
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + repo.RepositoryStr()
}
