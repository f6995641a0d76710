package pgtest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Orphaned runs the test named name of this test binary again as a helper process, with env
// ("KEY") set to 1 in its environment so that it knows it is the helper. The helper starts
// what it leaves behind, prints a line "ORPHAN field…" and waits, reading its stdin until the
// end. Orphaned returns those fields, and kill, which kills the helper (SIGKILL: its cleanups
// do not run, as after go test's -timeout) and reaps it. The helper is killed when the test
// ends too; within wait it must have printed its line, or the test fails.
func Orphaned(t testing.TB, name, env string, wait time.Duration) (fields []string, kill func()) {
	t.Helper()
	helper := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1")
	helper.Env = append(os.Environ(), env+"=1")
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	kill = func() {
		stdin.Close()
		_ = helper.Process.Kill()
		_ = helper.Wait()
	}
	t.Cleanup(kill)
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "ORPHAN ") {
				line <- s.Text()
				break
			}
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			t.Fatalf("the helper (%s) ended without saying what it started", name)
		}
		return strings.Fields(l)[1:], kill
	case <-time.After(wait):
		t.Fatalf("the helper (%s) started nothing within %v", name, wait)
	}
	return nil, kill
}
