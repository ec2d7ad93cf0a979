// Package tests holds Shoal's whole-project tests: the architecture rules every package must keep,
// and the end-to-end tests that run the real shoal binary. testapp is the small static program the
// tests and benchmarks pack into images and run as pods.
package tests
