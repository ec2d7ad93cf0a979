// Command testapp is the small static program that Shoal's tests and benchmarks pack into OCI images.
//
// Its first argument selects a behaviour, so one image serves every test:
//
//	testapp serve [PORT]        HTTP on PORT (default 8080): "/" answers the hostname, "/healthz" 200,
//	                            "/env" the environment, "/exit?code=N" exits with N
//	testapp echo-tcp PORT       TCP echo server
//	testapp echo-udp PORT       UDP echo server
//	testapp sleep SECONDS       sleep, then exit 0 (SECONDS "inf" sleeps forever)
//	testapp exit CODE           exit with CODE at once
//	testapp crash SECONDS CODE  run SECONDS, then exit with CODE
//	testapp alloc MIB           allocate and touch MIB mebibytes, then sleep forever
//	testapp forkbomb            start copies of itself until the kernel refuses, then sleep
//	testapp write FILE TEXT     write TEXT to FILE; exit 0 on success, 1 with the error on failure
//	testapp read FILE           print FILE; exit 0 on success, 1 with the error on failure
//	testapp unshare             call unshare(CLONE_NEWUSER|CLONE_NEWNS); exit 0 if allowed, 1 with errno
//	testapp id                  print uid, gid, groups and the capability sets
//	testapp fds                 list the open file descriptors and what they point to
//	testapp print TEXT...       print TEXT to stdout and "err: TEXT" to stderr, then exit 0
//	testapp ticker MS           print a numbered line to stdout every MS milliseconds, forever
//	testapp ignore-term         ignore SIGTERM and SIGINT and sleep forever (only SIGKILL stops it)
//	testapp get URL             HTTP GET URL, print the body; exit 0 on status 200, else 1
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp MODE [ARGS...]")
		os.Exit(2)
	}
	// Exit promptly on SIGTERM, as a well-behaved workload does.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		os.Exit(0)
	}()
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(argOr(args, 0, "8080"))
	case "echo-tcp":
		echoTCP(argOr(args, 0, "7"))
	case "echo-udp":
		echoUDP(argOr(args, 0, "7"))
	case "sleep":
		if argOr(args, 0, "inf") == "inf" {
			select {}
		}
		time.Sleep(time.Duration(atoi(args[0])) * time.Second)
	case "exit":
		os.Exit(atoi(argOr(args, 0, "0")))
	case "crash":
		time.Sleep(time.Duration(atoi(argOr(args, 0, "1"))) * time.Second)
		os.Exit(atoi(argOr(args, 1, "1")))
	case "alloc":
		alloc(atoi(argOr(args, 0, "64")))
	case "forkbomb":
		forkbomb()
	case "write":
		if err := os.WriteFile(argOr(args, 0, ""), []byte(argOr(args, 1, "x")), 0o644); err != nil {
			fail(err)
		}
		fmt.Println("ok")
	case "read":
		b, err := os.ReadFile(argOr(args, 0, ""))
		if err != nil {
			fail(err)
		}
		os.Stdout.Write(b)
	case "unshare":
		if err := syscall.Unshare(syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS); err != nil {
			fail(err)
		}
		fmt.Println("ok")
	case "id":
		printID()
	case "fds":
		printFDs()
	case "print":
		text := strings.Join(args, " ")
		fmt.Fprintln(os.Stdout, text)
		fmt.Fprintln(os.Stderr, "err: "+text)
	case "ticker":
		ms := atoi(argOr(args, 0, "100"))
		for i := 0; ; i++ {
			fmt.Println("tick", i)
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		fmt.Println("ignoring SIGTERM")
		select {}
	case "get":
		get(argOr(args, 0, ""))
	default:
		fmt.Fprintf(os.Stderr, "testapp: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

func argOr(args []string, i int, def string) string {
	if i < len(args) {
		return args[i]
	}
	return def
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(fmt.Errorf("not a number: %q", s))
	}
	return n
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testapp:", err)
	os.Exit(1)
}

func serve(port string) {
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, host) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) {
		for _, e := range os.Environ() {
			fmt.Fprintln(w, e)
		}
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code := atoi(r.URL.Query().Get("code"))
		fmt.Fprintln(w, "exiting", code)
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(code) }()
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Println("serving on", srv.Addr)
	fail(srv.ListenAndServe())
}

func echoTCP(port string) {
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fail(err)
	}
	host, _ := os.Hostname()
	for {
		c, err := ln.Accept()
		if err != nil {
			fail(err)
		}
		go func(c net.Conn) {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.TrimSpace(line) == "hostname" {
					fmt.Fprintln(c, host)
					continue
				}
				if _, err := c.Write([]byte(line)); err != nil {
					return
				}
			}
		}(c)
	}
}

func echoUDP(port string) {
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		fail(err)
	}
	host, _ := os.Hostname()
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			fail(err)
		}
		reply := buf[:n]
		if strings.TrimSpace(string(reply)) == "hostname" {
			reply = []byte(host + "\n")
		}
		if _, err := pc.WriteTo(reply, addr); err != nil {
			fmt.Fprintln(os.Stderr, "testapp:", err)
		}
	}
}

func alloc(mib int) {
	chunks := make([][]byte, 0, mib)
	for i := 0; i < mib; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		chunks = append(chunks, b)
	}
	fmt.Println("allocated", len(chunks), "MiB")
	select {}
}

func forkbomb() {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	n := 0
	for {
		cmd := exec.Command(self, "sleep", "inf")
		if err := cmd.Start(); err != nil {
			fmt.Printf("started %d processes, then: %v\n", n, err)
			select {}
		}
		n++
	}
}

func printID() {
	fmt.Printf("uid=%d gid=%d euid=%d\n", os.Getuid(), os.Getgid(), os.Geteuid())
	groups, _ := os.Getgroups()
	fmt.Printf("groups=%v\n", groups)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fail(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Cap") || strings.HasPrefix(line, "NoNewPrivs") || strings.HasPrefix(line, "Seccomp:") {
			fmt.Println(line)
		}
	}
}

func printFDs() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fail(err)
	}
	for _, e := range entries {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Printf("%s -> %s\n", e.Name(), target)
	}
}

func get(url string) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(b)
	if resp.StatusCode != http.StatusOK {
		fail(fmt.Errorf("GET %s: %s", url, resp.Status))
	}
}
