package manifests_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifests"
	"github.com/shoal-dev/shoal/manifests/sops"
)

// testdata/sops holds files encrypted by the sops command (v3.13.3) with
// testdata/sops/.sops.yaml, for the age identity testdata/sops/key.txt (a
// test key, of nothing else); stranger/ is encrypted for another key.

// sopsValues are the secret values of testdata/sops, which no error may
// hold.
var sopsValues = []string{"s3cret-Passw0rd-tree", "api-Key-overlay-value", "env-Secret-value-42", "binary-Secret-material"}

func testDecryptor(t *testing.T) manifests.Decryptor {
	t.Helper()
	key, err := os.ReadFile("testdata/sops/key.txt")
	if err != nil {
		t.Fatal(err)
	}
	d, err := sops.New(sops.Keys{AgeIdentities: key})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func secretOf(t *testing.T, set *manifests.Set, name string) *manifests.Secret {
	t.Helper()
	for _, o := range set.Objects {
		if s, ok := o.(*manifests.Secret); ok && s.Name == name {
			return s
		}
	}
	t.Fatalf("no Secret %s in the set", name)
	return nil
}

func TestLoadSOPSTree(t *testing.T) {
	ctx := context.Background()
	fsys := os.DirFS("testdata/sops")
	set, err := manifests.LoadFS(ctx, fsys, "tree", manifests.LoadOptions{Decryptor: testDecryptor(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := secretOf(t, set, "db")
	if got := string(s.Data["password"]); got != "s3cret-Passw0rd-tree" {
		t.Errorf("password = %q", got)
	}
	if got := string(s.Data["token"]); got != "token-value-tree" {
		t.Errorf("token = %q", got)
	}
	if len(set.Objects) != 2 {
		t.Errorf("%d objects, want the Secret and the ConfigMap", len(set.Objects))
	}

	// No key: the file is an error at its sops metadata, naming the
	// recipient and what to do.
	_, err = manifests.LoadFS(ctx, fsys, "tree", manifests.LoadOptions{})
	wantOnly(t, err, "secret.yaml:10: is encrypted with SOPS (for age age14jna09hnt9vm28lxzch42kcuqzsevjv00257ddwx946twmm03qnscfnt2g) and no key was given", "--sops-age-key-file")

	// No key, skipping: the other files are checked, the encrypted one is a
	// warning.
	set, err = manifests.LoadFS(ctx, fsys, "tree", manifests.LoadOptions{SkipEncrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Objects) != 1 || len(set.Warnings) != 1 || !strings.Contains(set.Warnings[0].Warning(), "secret.yaml:10: warning: not checked: the file is encrypted with SOPS") {
		t.Errorf("objects %d, warnings %v", len(set.Objects), set.Warnings)
	}

	// The wrong key: the error lists the recipients.
	_, err = manifests.LoadFS(ctx, fsys, "stranger", manifests.LoadOptions{Decryptor: testDecryptor(t)})
	wantOnly(t, err, "secret.yaml:10: cannot decrypt this SOPS file: no key given matches its recipients; it is encrypted for age age1", "the keys given are for age age14jna09")
}

func TestLoadSOPSKustomize(t *testing.T) {
	ctx := context.Background()
	fsys := os.DirFS("testdata/sops")
	set, err := manifests.LoadFS(ctx, fsys, "kustomize/overlay", manifests.LoadOptions{Decryptor: testDecryptor(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(secretOf(t, set, "api").Data["key"]); got != "api-Key-overlay-value" {
		t.Errorf("resource: key = %q", got)
	}
	env := secretOf(t, set, "web-env")
	if got := string(env.Data["DB_PASSWORD"]); got != "env-Secret-value-42" {
		t.Errorf("envs: DB_PASSWORD = %q", got)
	}
	for k := range env.Data {
		if strings.HasPrefix(k, "sops") {
			t.Errorf("the sops metadata became a key: %s", k)
		}
	}
	if got := string(secretOf(t, set, "web-tls").Data["tls.key"]); !strings.Contains(got, "binary-Secret-material") || strings.Contains(got, "ENC[") {
		t.Errorf("files: tls.key = %q", got)
	}

	_, err = manifests.LoadFS(ctx, fsys, "kustomize/overlay", manifests.LoadOptions{})
	wantOnly(t, err, "secret.yaml:7: is encrypted with SOPS", "no key was given")

	set, err = manifests.LoadFS(ctx, fsys, "kustomize/overlay", manifests.LoadOptions{SkipEncrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Objects) != 0 || len(set.Warnings) < 2 || !strings.Contains(strings.Join(set.Warnings.Warnings(), "\n"), "kustomization.yaml: warning: not built") {
		t.Errorf("objects %d, warnings %v", len(set.Objects), set.Warnings.Warnings())
	}
}

// wantOnly checks that err is an ErrorList saying each of want, and holds
// no secret value.
func wantOnly(t *testing.T, err error, want ...string) {
	t.Helper()
	var list manifests.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v, want an ErrorList", err)
	}
	msg := list.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("errors do not say %q:\n%s", w, msg)
		}
	}
	for _, v := range sopsValues {
		if strings.Contains(msg, v) {
			t.Errorf("errors hold the secret %q:\n%s", v, msg)
		}
	}
}

// TestSOPSValuesRedacted checks that a decrypted value quoted by a
// decoding error is redacted.
func TestSOPSValuesRedacted(t *testing.T) {
	fsys := os.DirFS("testdata/sops")
	_, err := manifests.LoadFS(context.Background(), fsys, "invalid", manifests.LoadOptions{Decryptor: testDecryptor(t)})
	wantOnly(t, err, "<redacted>")
}
