package lb

// The programs are compiled with clang and libbpf's bpf_helpers.h (Debian:
// apt-get install clang llvm libbpf-dev); the generated Go files and objects
// are committed so that building Shoal needs no C toolchain. Run
// `make generate` after editing bpf/.

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" lb bpf/lb.c -- -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -tags linux -target bpfel -output-suffix _test -type lb_test_io -cflags "-O2 -g -Wall -Werror -mcpu=v3" lbtest bpf/lb_test.c -- -I/usr/include/x86_64-linux-gnu
