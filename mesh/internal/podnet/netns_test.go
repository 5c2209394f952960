package podnet

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The namespace tests need root (CAP_SYS_ADMIN), as the runner does. Run as root, each one fails when the
// namespace is not what it should be; run as another user, they cannot run and say so (go test reports SKIP,
// which is not a pass), and TestNewUnprivileged checks what the runner then falls back on.
func privileged(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cannot run: creating a network namespace needs root (CAP_SYS_ADMIN); this is not a pass")
	}
}

const unprivilegedChild = "PODNET_TEST_UNPRIVILEGED_CHILD"

func TestMain(m *testing.M) {
	// The unprivileged half of TestNewUnprivileged: this binary, re-run as nobody.
	if os.Getenv(unprivilegedChild) == "1" {
		_, err := New()
		if !errors.Is(err, ErrNotPermitted) {
			fmt.Printf("New() as uid %d: want ErrNotPermitted, got %v\n", os.Geteuid(), err)
			os.Exit(1)
		}
		fmt.Printf("ok: %v\n", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func newNS(t *testing.T) *NS {
	t.Helper()
	privileged(t)
	ns, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// socketInode is the inode /proc/<pid>/net/tcp lists for a socket.
func socketInode(t *testing.T, l *net.TCPListener) uint64 {
	t.Helper()
	raw, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return st.Ino
}

// listening: the inodes of the listening TCP sockets (state 0A) in a /proc/.../net/tcp file.
func listening(path string) (map[uint64]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[uint64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[3] == "0A" {
			ino, _ := strconv.ParseUint(fields[9], 10, 64)
			out[ino] = true
		}
	}
	return out, sc.Err()
}

func TestNewNamespaceHasOnlyLoopbackUp(t *testing.T) {
	ns := newNS(t)
	host, err := HostInode()
	if err != nil {
		t.Fatal(err)
	}
	if ns.Inode() == host {
		t.Fatalf("the pod's namespace is the host's (inode %d)", host)
	}
	ifs, err := ns.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" || ifs[0].Flags&net.FlagUp == 0 {
		t.Fatalf("want only lo, up; got %+v", ifs)
	}
	// The thread that worked inside went back: this goroutine's next socket is the host's.
	if !onHost() {
		t.Fatal("a thread was left in the pod's namespace")
	}
}

func TestAListenerOnEveryInterfaceInsideIsOnlyInside(t *testing.T) {
	ns := newNS(t)
	var l *net.TCPListener
	if err := ns.Do(func() error {
		var err error
		l, err = net.ListenTCP("tcp4", &net.TCPAddr{}) // 0.0.0.0:<free>, as tcp-echo's ":"+port
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ino := socketInode(t, l)
	var inside map[uint64]bool
	if err := ns.Do(func() (err error) { inside, err = listening("/proc/thread-self/net/tcp"); return err }); err != nil {
		t.Fatal(err)
	}
	if !inside[ino] {
		t.Fatalf("the listener (socket inode %d) is not among the pod namespace's listeners", ino)
	}
	// Judged by the host's socket table, not by connecting to one of the host's addresses.
	host, err := listening("/proc/self/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	if host[ino] {
		t.Fatalf("the listener (socket inode %d) is among the host's listeners", ino)
	}
	// Dial reaches it, from inside.
	accepted := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- err.Error()
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		accepted <- line
	}()
	c, err := ns.Dial(l.Addr().(*net.TCPAddr).Port, 2*time.Second)
	if err != nil {
		t.Fatalf("Dial inside: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("inside\n")); err != nil {
		t.Fatal(err)
	}
	if got := <-accepted; got != "inside\n" {
		t.Fatalf("the listener got %q", got)
	}
}

func TestDialToAPortNothingListensOnIsRefused(t *testing.T) {
	ns := newNS(t)
	_, err := ns.Dial(9, 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("want connection refused inside an empty namespace, got %v", err)
	}
}

func TestStartRunsTheProcessInsideAndItOutlivesTheThread(t *testing.T) {
	ns := newNS(t)
	// Pdeathsig, as the runner sets it: were the forking thread ended, the child would be killed.
	cmd := exec.Command("sh", "-c", "read _; readlink /proc/self/ns/net; cat /proc/self/net/dev")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if ino, err := InodeOf(cmd.Process.Pid); err != nil || ino != ns.Inode() {
		t.Fatalf("the process's namespace: %d, %v; want the pod's %d", ino, err, ns.Inode())
	}
	// The child goes on only now, after Start's thread went back to the runtime.
	stdin.Write([]byte("go\n"))
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the child: %v (output %q)", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != fmt.Sprintf("net:[%d]", ns.Inode()) {
		t.Fatalf("the child saw namespace %q, want net:[%d]", lines[0], ns.Inode())
	}
	var devs []string
	for _, l := range lines[1:] {
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			devs = append(devs, name)
		}
	}
	if len(devs) != 1 || devs[0] != "lo" {
		t.Fatalf("the child's interfaces: %v, want only lo (%q)", devs, out.String())
	}
}

// Without CAP_SYS_ADMIN, New refuses with ErrNotPermitted (the runner's cue to fall back): this test binary
// re-run as nobody. Needs root to change user; without root it is the unprivileged case itself.
func TestNewUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		if _, err := New(); !errors.Is(err, ErrNotPermitted) {
			t.Fatalf("New() as uid %d: want ErrNotPermitted, got %v", os.Geteuid(), err)
		}
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test's build folder is root's only: a copy nobody can run.
	dir, err := os.MkdirTemp("", "podnet-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "podnet.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), unprivilegedChild+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v: %s", err, out)
	}
	if !strings.HasPrefix(string(out), "ok: ") {
		t.Fatalf("as nobody: %s", out)
	}
}

// Forward: a connection to the host loopback port reaches the port inside; with nothing listening inside, the
// client sees a reset, as it would connecting to a port nothing listens on.
func TestForwardCarriesAHostLoopbackPortIntoTheNamespace(t *testing.T) {
	ns := newNS(t)
	var inside *net.TCPListener
	if err := ns.Do(func() (err error) { inside, err = net.ListenTCP("tcp", &net.TCPAddr{}); return err }); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	front, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Forward(front, inside.Addr().(*net.TCPAddr).Port)
	defer front.Close()
	go func() {
		c, err := inside.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("inside got " + line))
	}()
	c, err := net.DialTCP("tcp", nil, front.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello\n"))
	if got, err := bufio.NewReader(c).ReadString('\n'); got != "inside got hello\n" {
		t.Fatalf("got %q, %v", got, err)
	}

	empty := newNS(t)
	front2, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer front2.Close()
	go empty.Forward(front2, 9000)
	// The reset can overtake the end of the client's connect on loopback: then the dial itself reports it.
	c2, err := net.DialTCP("tcp", nil, front2.Addr().(*net.TCPAddr))
	if err == nil {
		defer c2.Close()
		err = readUntilError(c2)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("nothing listens inside: want a reset, got %v", err)
	}
}
