package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The files of ../../manifests/testdata/sops are encrypted by the sops command for the age
// identity key.txt there (a test key).
const sopsTestdata = "../../manifests/testdata/sops"

func TestValidateSOPS(t *testing.T) {
	key := filepath.Join(sopsTestdata, "key.txt")
	tree := filepath.Join(sopsTestdata, "tree")
	code, out, errOut := run(t, "validate", "--sops-age-key-file", key, tree)
	if code != 0 || !strings.Contains(out, "2 objects in 2 files") {
		t.Errorf("with the key: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Without a key: the other files are checked, the encrypted one is a warning.
	code, out, errOut = run(t, "validate", tree)
	if code != 0 || !strings.Contains(out, "1 object in 1 file, 1 warning") || !strings.Contains(errOut, "secret.yaml:10: warning: not checked: the file is encrypted with SOPS") {
		t.Errorf("without a key: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The wrong key: an error naming the recipients.
	code, _, errOut = run(t, "validate", "--sops-age-key-file", key, filepath.Join(sopsTestdata, "stranger"))
	if code != ExitFailure || !strings.Contains(errOut, "it is encrypted for age age1") {
		t.Errorf("the wrong key: exit %d, stderr %q", code, errOut)
	}
	// A key file that is not there is an error that names the flag.
	code, _, errOut = run(t, "validate", "--sops-age-key-file", filepath.Join(t.TempDir(), "nope"), tree)
	if code == 0 || !strings.Contains(errOut, "--sops-age-key-file") {
		t.Errorf("a missing key file: exit %d, stderr %q", code, errOut)
	}
	// render needs the key, and shows data as kubectl does (base64).
	code, out, _ = run(t, "render", "--sops-age-key-file", key, tree)
	if code != 0 || !strings.Contains(out, "password: czNjcmV0LVBhc3N3MHJkLXRyZWU=") {
		t.Errorf("render: exit %d, stdout %q", code, out)
	}
	if code, _, _ = run(t, "render", tree); code == 0 {
		t.Errorf("render without a key succeeded")
	}
}

func TestDiffHidesSecretValues(t *testing.T) {
	secret := func(pw, extra string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels: {v: \"" + extra + "\"}\nstringData:\n  password: " + pw + "\n  " + extra + ": x\n"
	}
	dir := writeFiles(t, map[string]string{"secret.yaml": secret("first-Hidden-value", "one")})
	gitIn(t, dir, "init", "-q", "-b", "main")
	gitIn(t, dir, "add", ".")
	gitIn(t, dir, "commit", "-qm", "one")
	if err := os.WriteFile(filepath.Join(dir, "secret.yaml"), []byte(secret("second-Hidden-value", "two")), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "commit", "-qam", "two")
	code, out, errOut := run(t, "diff", "--repo", dir, "HEAD~1", "HEAD")
	if code != ExitFailure {
		t.Fatalf("exit %d; stdout %q stderr %q", code, out, errOut)
	}
	for _, want := range []string{"~ Secret default/db (changed)", "+ data[two]: added", "- data[one]: removed", "~ data[password]: value changed", "+     v: two"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range []string{"Hidden", "Zmlyc3Qt", "c2Vjb25kLU", "eA=="} {
		if strings.Contains(out, leak) {
			t.Errorf("diff shows a value (%q):\n%s", leak, out)
		}
	}
}
