package reconcile

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/manifests"
)

// PodTemplateHashLabel is the label that ties a Deployment's pod to the
// revision of the template it was made from.
const PodTemplateHashLabel = "pod-template-hash"

// maxPodNameLen is the longest pod name (a DNS-1123 label, as Kubernetes
// generates them).
const maxPodNameLen = 63

// TemplateHash returns the pod-template-hash of a Deployment's pod template:
// FNV-32a over the template's canonical JSON (map keys sorted), rendered
// with SuffixAlphabet as Kubernetes renders it (at most 10 characters). It
// depends only on the template, so changing replicas or the strategy keeps
// the revision.
func TemplateHash(t *manifests.PodTemplateSpec) string {
	return hashJSON(t)
}

// podObjectHash returns the hash of what a standalone pod takes from its
// Pod object: labels, annotations and spec.
func podObjectHash(p *manifests.Pod) string {
	return hashJSON(struct {
		Labels      map[string]string  `json:"labels,omitempty"`
		Annotations map[string]string  `json:"annotations,omitempty"`
		Spec        *manifests.PodSpec `json:"spec"`
	}{p.Labels, p.Annotations, &p.Spec})
}

func hashJSON(v any) string {
	h := fnv.New32a()
	// encoding/json sorts map keys, so equal values give equal bytes. The
	// manifests types always marshal; an error leaves the hash of what was
	// written, which is still deterministic.
	_ = json.NewEncoder(h).Encode(v)
	return safeEncode(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// safeEncode maps each byte of s into SuffixAlphabet, as Kubernetes does to
// keep hashes from spelling words.
func safeEncode(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = SuffixAlphabet[int(c)%len(SuffixAlphabet)]
	}
	return string(b)
}

// RevisionName names a Deployment's revision as Kubernetes names a
// ReplicaSet: "<deployment>-<template hash>".
func RevisionName(deployment, hash string) string { return deployment + "-" + hash }

// PodName returns "<deployment>-<hash>-<suffix>", shortening the
// Deployment's name so that the pod name has at most 63 characters.
func PodName(deployment, hash, suffix string) string {
	tail := "-" + hash + "-" + suffix
	if keep := maxPodNameLen - len(tail); len(deployment) > keep {
		deployment = strings.TrimRight(deployment[:max(keep, 0)], "-.")
	}
	return deployment + tail
}

// DeploymentOwner returns the Pod.Owner of a Deployment's pods.
func DeploymentOwner(namespace, name string) string {
	return "Deployment/" + namespace + "/" + name
}
