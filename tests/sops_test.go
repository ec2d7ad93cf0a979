package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The SOPS files of ../manifests/testdata/sops were encrypted by the sops command for the age
// identity key.txt there (a test key, of nothing else); stranger/ is for another key.
const sopsData = "../manifests/testdata/sops"

// sopsPassword is the value tree/secret.yaml encrypts, and sopsPasswordB64 its base64.
const (
	sopsPassword    = "s3cret-Passw0rd-tree"
	sopsPasswordB64 = "czNjcmV0LVBhc3N3MHJkLXRyZWU="
	sopsPasswordV2  = "s3cret-Passw0rd-v2"
)

const sopsDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: app
          image: localhost/e2e/app:v1
          args: ["serve"]
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef: {name: db, key: password}
`

func readSOPSData(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sopsData, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSOPSSecretDecryptedByTheMaster commits a SOPS-encrypted Secret and a Deployment that reads
// it into an environment variable: the daemon, given the age identity, decrypts it and the pod
// sees the value. A file encrypted for an unknown recipient and one with a tampered MAC are each
// refused whole, with the file and the recipients, and the pod stays as it was. The value is in
// none of the daemon's log, history, events, describe and diff.
func TestSOPSSecretDecryptedByTheMaster(t *testing.T) {
	needRoot(t)
	key, err := filepath.Abs(filepath.Join(sopsData, "key.txt"))
	if err != nil {
		t.Fatal(err)
	}
	repo := newGitRepo(t)
	secret := readSOPSData(t, "tree/secret.yaml")
	first := repo.commit("web: an encrypted Secret", map[string]string{
		"secret.yaml":     secret,
		"deployment.yaml": sopsDeployment,
	})
	n := startNode(t, repo.httpURL, "--sops-age-key-file", key)
	n.waitConverged(first, 120*time.Second)

	var pod podInfo
	n.waitFor("a Running web pod", 60*time.Second, func() bool {
		for _, p := range n.pods() {
			if strings.HasPrefix(p.Name, "web-") && p.Phase == "Running" {
				pod = p
				return true
			}
		}
		return false
	})
	env, err := n.shoal("exec", pod.Name, "--", "/app", "cat", "/proc/1/environ")
	if err != nil || !strings.Contains(env, "DB_PASSWORD="+sopsPassword) {
		t.Fatalf("the pod's environment lacks the decrypted password (%v)", err)
	}

	// Encrypted for a key the daemon does not have: refused whole, naming the file and the
	// recipient.
	stranger := repo.commit("web: a Secret for someone else", map[string]string{
		"other.yaml": strings.Replace(readSOPSData(t, "stranger/secret.yaml"), "name: db", "name: other", 1),
	})
	n.waitFor("rejection of the stranger's Secret", 60*time.Second, func() bool {
		st := n.status()
		return st.LastRejected != nil && st.LastRejected.SHA == stranger
	})
	st := n.status()
	reasons := strings.Join(st.LastRejected.Reasons, "\n")
	for _, want := range []string{"other.yaml:10:", "age age1eu2rn6596xpjtgrjxdhtxmj94mzclp3gmxqgeuqept6573ke63xqa5e267", "--sops-age-key-file"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("the rejection does not say %q:\n%s", want, reasons)
		}
	}
	if st.Applied.SHA != first {
		t.Errorf("applied %s, want the first commit %s", st.Applied.SHA, first)
	}

	// A tampered MAC: refused whole too.
	lines := strings.Split(secret, "\n")
	for i, l := range lines {
		if j := strings.Index(l, "mac: ENC[AES256_GCM,data:"); j >= 0 {
			k := j + len("mac: ENC[AES256_GCM,data:")
			c := byte('A')
			if l[k] == 'A' {
				c = 'B'
			}
			lines[i] = l[:k] + string(c) + l[k+1:]
		}
	}
	tampered := repo.commit("web: a tampered Secret", map[string]string{"other.yaml": "", "secret.yaml": strings.Join(lines, "\n")})
	n.waitFor("rejection of the tampered Secret", 60*time.Second, func() bool {
		st := n.status()
		return st.LastRejected != nil && st.LastRejected.SHA == tampered
	})
	st = n.status()
	if reasons := strings.Join(st.LastRejected.Reasons, "\n"); !strings.Contains(reasons, "secret.yaml:10:") || !strings.Contains(reasons, "MAC") {
		t.Errorf("the tampered Secret's rejection: %s", reasons)
	}
	if st.Applied.SHA != first {
		t.Errorf("applied %s, want the first commit %s", st.Applied.SHA, first)
	}
	// The pod is untouched.
	time.Sleep(2 * time.Second)
	found := false
	for _, p := range n.pods() {
		if p.Name == pod.Name {
			found = true
			if p.UID != pod.UID || p.Phase != "Running" {
				t.Errorf("pod %s changed: uid %s -> %s, phase %s", p.Name, pod.UID, p.UID, p.Phase)
			}
		}
	}
	if !found {
		t.Errorf("pod %s is gone", pod.Name)
	}

	// A new value, committed but not pushed, for the offline diff.
	repo.commitLocal("web: rotate the password", map[string]string{"secret.yaml": readSOPSData(t, "e2e/secret-v2.yaml")})
	out, _ := exec.Command(shoalBin, "diff", "--repo", repo.work, "--sops-age-key-file", key, first, "HEAD").CombinedOutput()
	diff := string(out)
	if !strings.Contains(diff, "~ data[password]: value changed") {
		t.Errorf("diff does not name the changed key:\n%s", diff)
	}
	describe, err := n.shoal("describe", "secret", "db")
	if err != nil || !strings.Contains(describe, "password:  20 bytes") {
		t.Errorf("describe secret: %v\n%s", err, describe)
	}
	history, _ := n.shoal("history")
	events, _ := n.shoal("events")
	n.logMu.Lock()
	log := n.log.String()
	n.logMu.Unlock()
	for what, out := range map[string]string{"the daemon log": log, "shoal history": history, "shoal events": events, "shoal describe secret": describe, "shoal diff": diff} {
		for _, v := range []string{sopsPassword, sopsPasswordB64, sopsPasswordV2} {
			if strings.Contains(out, v) {
				t.Errorf("%s shows the secret value %q", what, v)
			}
		}
	}
}
