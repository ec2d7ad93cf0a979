package gitsync

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// sshFiles writes an ssh private key and a known_hosts file.
func sshFiles(t *testing.T) (key, knownHosts string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(hostPub)
	if err != nil {
		t.Fatal(err)
	}
	knownHosts = filepath.Join(dir, "known_hosts")
	line := "git.example.org " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + "\n"
	if err := os.WriteFile(knownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, knownHosts
}

func TestParseSource(t *testing.T) {
	key, known := sshFiles(t)
	cases := []struct {
		name     string
		cfg      Config
		wantErr  string
		url      string
		local    string
		refSpec  string
		path     string
		authUser string // basic auth user, or "ssh"
	}{
		{name: "file url", cfg: Config{URL: "file:///srv/repo"}, url: "/srv/repo", local: "/srv/repo",
			refSpec: "+refs/heads/main:refs/remotes/origin/main", path: "."},
		{name: "abs path", cfg: Config{URL: "/srv/repo/", Path: "/deploy/prod/"}, url: "/srv/repo", local: "/srv/repo", path: "deploy/prod"},
		{name: "https token", cfg: Config{URL: "https://git.example.org/ops/state.git", Token: "t0k"},
			url: "https://git.example.org/ops/state.git", authUser: "x-access-token"},
		{name: "https password", cfg: Config{URL: "https://git.example.org/x", Username: "bob", Password: "pw"}, authUser: "bob"},
		{name: "http loopback", cfg: Config{URL: "http://127.0.0.1:3000/x"}},
		{name: "http localhost", cfg: Config{URL: "http://localhost/x"}},
		{name: "http ipv6 loopback", cfg: Config{URL: "http://[::1]:8080/x"}},
		{name: "http remote allowed", cfg: Config{URL: "http://git.lan/x", AllowInsecureHTTP: true}},
		{name: "git protocol", cfg: Config{URL: "git://127.0.0.1/x"}},
		{name: "ssh url", cfg: Config{URL: "ssh://git@git.example.org/ops/state.git", SSHKeyFile: key, KnownHostsFile: known}, authUser: "ssh"},
		{name: "scp-like", cfg: Config{URL: "git@git.example.org:ops/state.git", SSHKeyFile: key, KnownHostsFile: known}, authUser: "ssh"},
		{name: "branch with slash", cfg: Config{URL: "/r", Ref: "release/v2"}, refSpec: "+refs/heads/release/v2:refs/remotes/origin/release/v2"},
		{name: "full branch", cfg: Config{URL: "/r", Ref: "refs/heads/prod"}, refSpec: "+refs/heads/prod:refs/remotes/origin/prod"},
		{name: "tag", cfg: Config{URL: "/r", Ref: "tag:v1.2"}, refSpec: "+refs/tags/v1.2:refs/tags/v1.2"},
		{name: "full tag", cfg: Config{URL: "/r", Ref: "refs/tags/v1.2"}, refSpec: "+refs/tags/v1.2:refs/tags/v1.2"},

		{name: "no url", cfg: Config{}, wantErr: "no repository URL"},
		{name: "relative path", cfg: Config{URL: "repo"}, wantErr: "use https://"},
		{name: "http remote", cfg: Config{URL: "http://git.example.org/x"}, wantErr: "plain http"},
		{name: "password in url", cfg: Config{URL: "https://bob:secret@git.example.org/x"}, wantErr: "contains a password"},
		{name: "ftp", cfg: Config{URL: "ftp://host/x"}, wantErr: "not supported"},
		{name: "file with host", cfg: Config{URL: "file://host/x"}, wantErr: "local path"},
		{name: "token for local", cfg: Config{URL: "/r", Token: "t"}, wantErr: "takes none"},
		{name: "token and password", cfg: Config{URL: "https://h/x", Token: "t", Password: "p"}, wantErr: "keep one"},
		{name: "ssh key for https", cfg: Config{URL: "https://h/x", SSHKeyFile: key}, wantErr: "ssh key is set"},
		{name: "ssh without key", cfg: Config{URL: "ssh://git@h/x"}, wantErr: "needs an ssh key"},
		{name: "ssh missing key file", cfg: Config{URL: "ssh://git@h/x", SSHKeyFile: "/nonexistent/key", KnownHostsFile: known}, wantErr: "read ssh key"},
		{name: "ssh missing known hosts", cfg: Config{URL: "ssh://git@h/x", SSHKeyFile: key, KnownHostsFile: "/nonexistent/kh"}, wantErr: "known hosts"},
		{name: "token for ssh", cfg: Config{URL: "ssh://git@h/x", Token: "t", SSHKeyFile: key}, wantErr: "token or password"},
		{name: "bad ref", cfg: Config{URL: "/r", Ref: "a..b"}, wantErr: "not a valid"},
		{name: "ref with space", cfg: Config{URL: "/r", Ref: "a b"}, wantErr: "not a valid"},
		{name: "other ref namespace", cfg: Config{URL: "/r", Ref: "refs/pull/1/head"}, wantErr: "only branches"},
		{name: "empty tag", cfg: Config{URL: "/r", Ref: "tag:"}, wantErr: "not a valid"},
		{name: "path escapes", cfg: Config{URL: "/r", Path: "../etc"}, wantErr: "leaves the repository"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, err := parseSource(tc.cfg.withDefaults())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.url != "" && src.url != tc.url {
				t.Errorf("url = %q, want %q", src.url, tc.url)
			}
			remote := !strings.HasPrefix(tc.cfg.URL, "/") && !strings.HasPrefix(tc.cfg.URL, "file:")
			if (tc.local != "" && src.local != tc.local) || (remote && src.local != "") {
				t.Errorf("local = %q, want %q", src.local, tc.local)
			}
			if tc.refSpec != "" && src.refSpec != tc.refSpec {
				t.Errorf("refspec = %q, want %q", src.refSpec, tc.refSpec)
			}
			if tc.path != "" && src.path != tc.path {
				t.Errorf("path = %q, want %q", src.path, tc.path)
			}
			switch a := src.auth.(type) {
			case nil:
				if tc.authUser != "" {
					t.Errorf("no auth, want %s", tc.authUser)
				}
			case *githttp.BasicAuth:
				if a.Username != tc.authUser {
					t.Errorf("basic auth user %q, want %q", a.Username, tc.authUser)
				}
			case *gitssh.PublicKeys:
				if tc.authUser != "ssh" || a.User != "git" || a.HostKeyCallback == nil {
					t.Errorf("ssh auth user %q, host key callback set %v", a.User, a.HostKeyCallback != nil)
				}
			default:
				t.Errorf("auth %T", a)
			}
		})
	}
}

func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"https://h/x", "file:///a/b", "/a/b", "git@h:x", "ssh://u@h:22/x", "http://[::1]/x", "git://h/x", "://", "h:"} {
		f.Add(s, "main", "deploy")
	}
	f.Add("/r", "tag:v1", "../x")
	f.Add("/r", "refs/heads/a/b", "/")
	f.Fuzz(func(t *testing.T, url, ref, path string) {
		src, err := parseSource(Config{URL: url, Ref: ref, Path: path}.withDefaults())
		if err != nil {
			return
		}
		if !strings.HasPrefix(src.refSpec, "+refs/") || strings.Count(src.refSpec, ":") != 1 {
			t.Fatalf("refspec %q from ref %q", src.refSpec, ref)
		}
		if src.path != "." && (strings.HasPrefix(src.path, "/") || src.path == ".." || strings.HasPrefix(src.path, "../")) {
			t.Fatalf("path %q from %q", src.path, path)
		}
	})
}
