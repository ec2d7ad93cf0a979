// Package manifests is Shoal's model of desired state: Go types mirroring the
// subset of the Kubernetes schema that Shoal runs (v1 Pod, Service, ConfigMap,
// Secret, Namespace and apps/v1 Deployment), a strict YAML decoder that reports
// every problem with its file and line, Kubernetes-compatible defaulting and
// validation, label selectors, safe loading of a manifest tree, and rendering
// back to YAML or JSON.
//
// A directory with a kustomization (kustomization.yaml, kustomization.yml or
// Kustomization) is built with sigs.k8s.io/kustomize/api, the library of
// `kustomize build` and Flux, by Flux's directory rule: see LoadFS. Builds read
// only the repository they are given (never the network, never a program),
// within limits (LoadOptions), and errors about built objects name the file
// and line each object was written in.
//
// Files encrypted with SOPS (age or OpenPGP) are decrypted in memory before
// they are decoded, by the LoadOptions.Decryptor that package manifests/sops
// implements; see DetectSOPS.
//
// The package is pure: it performs no I/O beyond reading the files it is asked
// to load and imports no other Shoal package.
//
// A typical caller loads a tree and either reports the errors or uses the
// objects:
//
//	set, err := manifests.LoadDir(ctx, "deploy", manifests.LoadOptions{})
//	if err != nil {
//		return err // an ErrorList: every problem, each as file:line: field: message
//	}
//	for _, obj := range set.Objects { ... }
package manifests
