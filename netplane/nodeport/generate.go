package nodeport

// The programs are compiled with clang and libbpf's bpf_helpers.h (Debian:
// apt-get install clang llvm libbpf-dev); the generated Go files and objects
// are committed so that building Shoal needs no C toolchain. Run
// `make generate` after editing bpf/.

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" nodeport bpf/nodeport.c -- -I/usr/include/x86_64-linux-gnu
