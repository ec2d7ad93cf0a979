package gitsync

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Defaults of Config.
const (
	DefaultRef           = "main"
	DefaultPoll          = 30 * time.Second
	DefaultMaxObjectSize = 8 << 20   // 8 MiB
	DefaultMaxPackSize   = 256 << 20 // 256 MiB
	DefaultFetchTimeout  = 2 * time.Minute
)

// Config describes the repository a Syncer follows.
type Config struct {
	// URL of the repository: https://host/repo, ssh://git@host/repo,
	// git@host:repo, git://host/repo, file:///path or /abs/path. http:// is
	// accepted for loopback addresses, or anywhere when AllowInsecureHTTP is
	// set. Credentials never go in the URL: use Token or Username/Password.
	URL string
	// Ref is the branch to follow ("main", the default, or
	// "refs/heads/main"), or a tag ("tag:v1.2" or "refs/tags/v1.2").
	Ref string
	// Path is the directory of the repository holding the manifests,
	// slash-separated; empty or "." is the root.
	Path string
	// CacheDir holds the bare clone, for example <data>/git. It is created
	// when missing; an existing directory must be empty or a Shoal cache.
	CacheDir string

	// Token authenticates https fetches as GitHub, Gitea and GitLab accept
	// access tokens: basic auth with the user "x-access-token".
	Token string
	// Username and Password authenticate https fetches with basic auth.
	Username string
	Password string
	// SSHKeyFile is the private key for ssh URLs, SSHKeyPassword its
	// passphrase if it has one.
	SSHKeyFile     string
	SSHKeyPassword string
	// KnownHostsFile lists the trusted ssh host keys. When empty, the
	// files named by $SSH_KNOWN_HOSTS or ~/.ssh/known_hosts and
	// /etc/ssh/ssh_known_hosts are used. Host keys are always checked.
	KnownHostsFile string
	// AllowInsecureHTTP permits http:// URLs to hosts other than loopback.
	AllowInsecureHTTP bool

	// Poll is the time between fetches (default 30 s), varied by ±10 %.
	Poll time.Duration
	// FetchTimeout bounds one fetch (default 2 min).
	FetchTimeout time.Duration
	// MaxObjectSize is the largest blob Tree opens (default 8 MiB).
	MaxObjectSize int64
	// MaxPackSize is the largest pack one fetch may download (default
	// 256 MiB); a larger fetch fails and leaves the cache as it was.
	MaxPackSize int64

	// OnFetch, when set, is called after every fetch attempt with its
	// error (nil on success) and duration, from the goroutine of Run. It
	// must not block.
	OnFetch func(err error, d time.Duration)
	// Logger receives warnings and fetch errors; nil discards them.
	Logger *slog.Logger
}

// source is the validated, normalised form of Config.URL and Config.Ref.
type source struct {
	url       string // URL given to git
	local     string // file system path of a local repository, or ""
	refName   plumbing.ReferenceName
	localRef  plumbing.ReferenceName // where the fetched ref is kept in the cache
	refSpec   string
	tag       bool
	auth      transport.AuthMethod
	path      string // Config.Path, cleaned; "." for the root
	protocol  string
	redactURL string
}

func (c Config) withDefaults() Config {
	if c.Ref == "" {
		c.Ref = DefaultRef
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.MaxObjectSize <= 0 {
		c.MaxObjectSize = DefaultMaxObjectSize
	}
	if c.MaxPackSize <= 0 {
		c.MaxPackSize = DefaultMaxPackSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// parseRef turns Config.Ref into the remote ref name.
func parseRef(ref string) (name plumbing.ReferenceName, tag bool, err error) {
	switch {
	case strings.HasPrefix(ref, "tag:"):
		name = plumbing.NewTagReferenceName(strings.TrimPrefix(ref, "tag:"))
	case strings.HasPrefix(ref, "refs/tags/"):
		name = plumbing.ReferenceName(ref)
	case strings.HasPrefix(ref, "refs/heads/"):
		name = plumbing.ReferenceName(ref)
	case strings.HasPrefix(ref, "refs/"):
		return "", false, fmt.Errorf("ref %q: only branches (refs/heads/...) and tags (refs/tags/...) can be followed", ref)
	default:
		name = plumbing.NewBranchReferenceName(ref)
	}
	var short string
	if strings.HasPrefix(string(name), "refs/tags/") {
		short = strings.TrimPrefix(string(name), "refs/tags/")
		tag = true
	} else {
		short = strings.TrimPrefix(string(name), "refs/heads/")
	}
	if !validRefComponent(short) {
		return "", false, fmt.Errorf("ref %q is not a valid branch or tag name", ref)
	}
	return name, tag, nil
}

// validRefComponent applies the rules of git check-ref-format that matter
// for a refspec: no empty parts, no "..", no control characters, no
// characters with a meaning in refspecs.
func validRefComponent(s string) bool {
	if s == "" || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.HasSuffix(s, ".lock") ||
		strings.HasSuffix(s, ".") || strings.Contains(s, "..") || strings.Contains(s, "//") || strings.Contains(s, "@{") {
		return false
	}
	for _, part := range strings.Split(s, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	return true
}

// parseSource validates the URL, ref, path and credentials of c, which has
// its defaults applied.
func parseSource(c Config) (*source, error) {
	src := &source{}
	var err error
	src.refName, src.tag, err = parseRef(c.Ref)
	if err != nil {
		return nil, err
	}
	if src.tag {
		src.localRef = src.refName
	} else {
		src.localRef = plumbing.NewRemoteReferenceName("origin", strings.TrimPrefix(string(src.refName), "refs/heads/"))
	}
	src.refSpec = "+" + string(src.refName) + ":" + string(src.localRef)

	p := strings.Trim(c.Path, "/")
	if p == "" {
		p = "."
	}
	p = filepath.ToSlash(filepath.Clean(p))
	if p != "." && (strings.HasPrefix(p, "../") || p == "..") {
		return nil, fmt.Errorf("path %q leaves the repository; give a directory inside it", c.Path)
	}
	src.path = p

	if err := parseURL(c, src); err != nil {
		return nil, err
	}
	return src, nil
}

// parseURL fills the URL-derived fields of src.
func parseURL(c Config, src *source) error {
	raw := strings.TrimSpace(c.URL)
	if raw == "" {
		return errors.New("no repository URL: set the URL of the desired-state repository")
	}
	if strings.HasPrefix(raw, "/") {
		src.local = filepath.Clean(raw)
		src.url = src.local
		src.protocol = "file"
		src.redactURL = src.local
		return checkNoCredentials(c, "a local repository")
	}
	if !strings.Contains(raw, "://") {
		// scp-like syntax: [user@]host:path.
		ep, err := transport.NewEndpoint(raw)
		if err != nil || ep.Protocol != "ssh" {
			return fmt.Errorf("repository URL %q: use https://, ssh://, git@host:path, git://, file:// or an absolute path", raw)
		}
		src.url, src.protocol, src.redactURL = raw, "ssh", raw
		return sshAuth(c, src, ep.User)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("repository URL %q: %w", raw, err)
	}
	if u.User != nil {
		if _, hasPass := u.User.Password(); hasPass {
			return fmt.Errorf("repository URL %q contains a password: put it in the token or password setting instead", u.Redacted())
		}
	}
	src.protocol = u.Scheme
	src.redactURL = u.Redacted()
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return fmt.Errorf("repository URL %q: file URLs name a local path (file:///path)", raw)
		}
		if !filepath.IsAbs(u.Path) {
			return fmt.Errorf("repository URL %q: the path must be absolute", raw)
		}
		src.local = filepath.Clean(u.Path)
		src.url = src.local
		return checkNoCredentials(c, "a local repository")
	case "https":
		src.url = raw
		return httpAuth(c, src)
	case "http":
		if !c.AllowInsecureHTTP && !isLoopback(u.Hostname()) {
			return fmt.Errorf("repository URL %q uses plain http to a remote host: use https, or allow insecure http explicitly", raw)
		}
		src.url = raw
		return httpAuth(c, src)
	case "ssh":
		src.url = raw
		user := ""
		if u.User != nil {
			user = u.User.Username()
		}
		return sshAuth(c, src, user)
	case "git":
		src.url = raw
		return checkNoCredentials(c, "a git:// URL")
	default:
		return fmt.Errorf("repository URL %q: scheme %q is not supported; use https, ssh, git or file", raw, u.Scheme)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkNoCredentials(c Config, what string) error {
	if c.Token != "" || c.Username != "" || c.Password != "" || c.SSHKeyFile != "" {
		return fmt.Errorf("credentials are set but %s takes none: remove them", what)
	}
	return nil
}

func httpAuth(c Config, src *source) error {
	if c.SSHKeyFile != "" {
		return errors.New("an ssh key is set for an http(s) URL: use a token or username and password, or an ssh URL")
	}
	switch {
	case c.Token != "" && (c.Username != "" || c.Password != ""):
		return errors.New("both a token and a username/password are set: keep one")
	case c.Token != "":
		src.auth = &githttp.BasicAuth{Username: "x-access-token", Password: c.Token}
	case c.Username != "" || c.Password != "":
		src.auth = &githttp.BasicAuth{Username: c.Username, Password: c.Password}
	}
	return nil
}

func sshAuth(c Config, src *source, user string) error {
	if c.Token != "" || c.Password != "" {
		return errors.New("a token or password is set for an ssh URL: use an ssh key, or an https URL")
	}
	if user == "" {
		user = "git"
	}
	if c.SSHKeyFile == "" {
		return errors.New("an ssh URL needs an ssh key: set the key file")
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, c.SSHKeyFile, c.SSHKeyPassword)
	if err != nil {
		return fmt.Errorf("read ssh key %s: %w", c.SSHKeyFile, err)
	}
	var files []string
	if c.KnownHostsFile != "" {
		files = append(files, c.KnownHostsFile)
	}
	cb, err := gitssh.NewKnownHostsCallback(files...)
	if err != nil {
		return fmt.Errorf("read ssh known hosts: %w; list the server's host key in a known_hosts file", err)
	}
	keys.HostKeyCallback = cb
	src.auth = keys
	return nil
}
