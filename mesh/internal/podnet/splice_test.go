package podnet

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
)

// spliced is client -> front listener (the runner's loopback port) -> Splice -> the "pod"'s listener -> server:
// client and server talk through Splice as Envoy and tcp-echo do through the runner.
type spliced struct {
	client, server *net.TCPConn
	done           chan struct{}
}

func newSpliced(t *testing.T) *spliced {
	t.Helper()
	listen := func() *net.TCPListener {
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	front, pod := listen(), listen()
	s := &spliced{done: make(chan struct{})}
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		f, err := front.AcceptTCP()
		if err != nil {
			close(accepted)
			return
		}
		in, err := net.DialTCP("tcp", nil, pod.Addr().(*net.TCPAddr))
		if err != nil {
			Reset(f)
			close(accepted)
			return
		}
		accepted <- f
		Splice(f, in)
		close(s.done)
	}()
	var err error
	if s.client, err = net.DialTCP("tcp", nil, front.Addr().(*net.TCPAddr)); err != nil {
		t.Fatal(err)
	}
	if <-accepted == nil {
		t.Fatal("the splice did not start")
	}
	if s.server, err = pod.AcceptTCP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Close(); s.server.Close() })
	return s
}

func write(t *testing.T, c *net.TCPConn, line string) {
	t.Helper()
	if _, err := c.Write([]byte(line)); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read a line: %q, %v", line, err)
	}
	return line
}

func expectEOF(t *testing.T, r *bufio.Reader, who string) {
	t.Helper()
	rest, err := io.ReadAll(r)
	if err != nil || len(rest) != 0 {
		t.Fatalf("%s: want an orderly end of stream, got %q, %v", who, rest, err)
	}
}

// readUntilError drains the connection and returns the error that ended it (nil for an orderly end of stream).
func readUntilError(c *net.TCPConn) error {
	_, err := io.Copy(io.Discard, c)
	return err
}

func TestSpliceCarriesBothWaysAndTheClientsHalfClose(t *testing.T) {
	s := newSpliced(t)
	cr, sr := bufio.NewReader(s.client), bufio.NewReader(s.server)
	write(t, s.client, "hello\n")
	if got := readLine(t, sr); got != "hello\n" {
		t.Fatalf("server got %q", got)
	}
	write(t, s.server, "one hello\n")
	if got := readLine(t, cr); got != "one hello\n" {
		t.Fatalf("client got %q", got)
	}
	// The client's end of input reaches the server as an end of stream, and the server can still answer
	// (tcp-echo answers the last line after the client half-closed: the seed's `(date; sleep 1) | nc`).
	if err := s.client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expectEOF(t, sr, "server")
	write(t, s.server, "one bye\n")
	if got := readLine(t, cr); got != "one bye\n" {
		t.Fatalf("client got %q after its half-close", got)
	}
	if err := s.server.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expectEOF(t, cr, "client")
	<-s.done
}

func TestSpliceCarriesTheServersHalfClose(t *testing.T) {
	s := newSpliced(t)
	cr, sr := bufio.NewReader(s.client), bufio.NewReader(s.server)
	if err := s.server.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expectEOF(t, cr, "client")
	write(t, s.client, "still there\n")
	if got := readLine(t, sr); got != "still there\n" {
		t.Fatalf("server got %q after its own half-close", got)
	}
	if err := s.client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expectEOF(t, sr, "server")
	<-s.done
}

func TestSpliceCarriesAClientResetAsAReset(t *testing.T) {
	s := newSpliced(t)
	sr := bufio.NewReader(s.server)
	write(t, s.client, "hello\n")
	if got := readLine(t, sr); got != "hello\n" {
		t.Fatalf("server got %q", got)
	}
	Reset(s.client)
	if err := readUntilError(s.server); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("server: want a reset (ECONNRESET), got %v", err)
	}
	<-s.done
}

func TestSpliceCarriesAServerResetAsAReset(t *testing.T) {
	s := newSpliced(t)
	cr := bufio.NewReader(s.client)
	write(t, s.server, "one hello\n")
	if got := readLine(t, cr); got != "one hello\n" {
		t.Fatalf("client got %q", got)
	}
	Reset(s.server)
	if err := readUntilError(s.client); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client: want a reset (ECONNRESET), got %v", err)
	}
	<-s.done
}

// A reset after a half-close: the server ended its side, then the client resets instead of closing.
func TestSpliceCarriesAResetAfterAHalfClose(t *testing.T) {
	s := newSpliced(t)
	cr := bufio.NewReader(s.client)
	if err := s.server.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expectEOF(t, cr, "client")
	Reset(s.client)
	if err := readUntilError(s.server); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("server: want a reset (ECONNRESET), got %v", err)
	}
	<-s.done
}
